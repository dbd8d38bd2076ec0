// The packed GEMM layouts (gemm.h): which types have one, packing a weight
// matrix at load (and unpacking single rows back), and the huge-page buffers the
// packed weights and the KV cache live in.
#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/fp16.h"
#include "kernels/gemm.h"
#include "kernels/gemm_layout.h"
#include "kernels/kquants.h"
#include "kernels/quant_blocks.h"
#include "muse/error.h"

namespace muse::kernels {

using namespace gemm_layout;

// ---- layouts -------------------------------------------------------------------

GemmActKind gemm_act_kind(DType type) {
  switch (type) {
    case DType::Q8_0:
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q5_0:
    case DType::Q5_1:
      return GemmActKind::Q8_0;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return GemmActKind::Q8_K;
    default:
      return GemmActKind::F32;
  }
}

// ---- packing (runs once per weight at load) --------------------------------------

namespace {

// Packs one row group: src[r] is row r's data (null for padding rows).
using PackGroupFn = void (*)(const uint8_t* const src[16], uint8_t* dst, int64_t cols);

void pack_floats32(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  auto* out = reinterpret_cast<float*>(dst);
  for (int r = 0; r < 16; ++r) {
    const auto* row = reinterpret_cast<const float*>(src[r]);
    for (int64_t k = 0; k < cols; ++k) out[k * 16 + r] = row ? row[k] : 0.0f;
  }
}

void pack_halves(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  auto* out = reinterpret_cast<uint16_t*>(dst);
  for (int r = 0; r < 16; ++r) {
    const auto* row = reinterpret_cast<const uint16_t*>(src[r]);
    for (int64_t k = 0; k < cols; ++k) out[k * 16 + r] = row ? row[k] : 0;
  }
}

void put_scale(uint8_t* chunk, int r, uint16_t d) {
  std::memcpy(chunk + 2 * r, &d, 2);
}

void pack_q8_0(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 32; ++b) {
    uint8_t* chunk = dst + b * kQ8_0Chunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ8_0*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      for (int e = 0; e < 32; ++e) {
        const int q = blk ? blk->qs[e] : 0;
        chunk[32 + (e / 4) * 64 + r * 4 + e % 4] = static_cast<uint8_t>(q + 128);
      }
    }
  }
}

// Bit j of the plane byte of column 4j + i (i = 0..3), for a 32-column half
// whose fifth bits are bit `shift` of qh[l] (Q5_K) or bit l of a 32-bit word
// (Q5_0/Q5_1, shift = -1).
uint8_t fifth_bit_plane(const uint8_t* qh, int i, int shift) {
  uint8_t plane = 0;
  for (int j = 0; j < 8; ++j) {
    const int l = 4 * j + i;
    const int bit = shift < 0 ? (qh[l / 8] >> (l % 8)) & 1 : (qh[l] >> shift) & 1;
    plane |= static_cast<uint8_t>(bit << j);
  }
  return plane;
}

// Q4_0, Q4_1, Q5_0, Q5_1: scales, the nibble quads, then (Q5) the fifth-bit
// plane and (_1) the mins.
template <typename Block, size_t kChunk, size_t kPlanes, size_t kMins>
void pack_nibbles32(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 32; ++b) {
    uint8_t* chunk = dst + b * kChunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const Block*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      if constexpr (kMins != 0) put_scale(chunk + kMins, r, blk ? blk->m : 0);
      for (int l = 0; l < 16; ++l) chunk[32 + (l / 4) * 64 + r * 4 + l % 4] = blk ? blk->qs[l] : 0;
      if constexpr (kPlanes != 0) {
        for (int i = 0; i < 4; ++i)
          chunk[kPlanes + r * 4 + i] = blk ? fifth_bit_plane(blk->qh, i, -1) : 0;
      }
    }
  }
}

// Q2_K/Q3_K: byte i of a row in the 64-byte group of sub-block j, from the
// source's 2-bit quants (bits 2s: column 16j + 4s + i; kquants_scalar.cpp order).
uint8_t low2_group_byte(const uint8_t* qs, int j, int i) {
  uint8_t byte = 0;
  for (int s = 0; s < 4; ++s) {
    const int e = 16 * j + 4 * s + i;
    const int q = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    byte |= static_cast<uint8_t>(q << (2 * s));
  }
  return byte;
}

void unpack_low2_group_byte(uint8_t byte, int j, int i, uint8_t* qs) {
  for (int s = 0; s < 4; ++s) {
    const int e = 16 * j + 4 * s + i;
    qs[32 * (e / 128) + e % 32] |=
        static_cast<uint8_t>(((byte >> (2 * s)) & 3) << (2 * ((e % 128) / 32)));
  }
}

void pack_q2_k(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    uint8_t* chunk = dst + b * kQ2_KChunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ2_K*>(src[r]) + b : nullptr;
      put_scale(chunk + kQ2_KD, r, blk ? blk->d : 0);
      put_scale(chunk + kQ2_KDmin, r, blk ? blk->dmin : 0);
      for (int j = 0; j < 16; ++j) {
        chunk[kQ2_KScales + j * 16 + r] = blk ? blk->scales[j] : 0;
        for (int i = 0; i < 4; ++i)
          chunk[kQ2_KQuants + j * 64 + r * 4 + i] = blk ? low2_group_byte(blk->qs, j, i) : 0;
      }
    }
  }
}

void pack_q3_k(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    uint8_t* chunk = dst + b * kQ3_KChunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ3_K*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      int scales[16] = {};
      if (blk) kquants::unpack_q3_k_scales(blk->scales, scales);
      for (int j = 0; j < 16; ++j) {
        chunk[kQ3_KScales + j * 16 + r] = static_cast<uint8_t>(static_cast<int8_t>(scales[j]));
        for (int i = 0; i < 4; ++i)
          chunk[kQ3_KQuants + j * 64 + r * 4 + i] = blk ? low2_group_byte(blk->qs, j, i) : 0;
      }
      for (int p = 0; p < 8; ++p) {
        for (int i = 0; i < 4; ++i) {
          uint8_t plane = 0;
          for (int h = 0; h < 2; ++h)
            for (int s = 0; s < 4; ++s) {
              const int e = 16 * (2 * p + h) + 4 * s + i;
              if (blk)
                plane |=
                    static_cast<uint8_t>(((blk->hmask[e % 32] >> (e / 32)) & 1) << (s + 4 * h));
            }
          chunk[kQ3_KHigh + p * 64 + r * 4 + i] = plane;
        }
      }
    }
  }
}

// Q4_K and Q5_K (kChunk = kQ5_KChunk: then the fifth-bit planes).
template <typename Block, size_t kChunk>
void pack_k_min(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    uint8_t* chunk = dst + b * kChunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const Block*>(src[r]) + b : nullptr;
      put_scale(chunk + kQ4_KD, r, blk ? blk->d : 0);
      put_scale(chunk + kQ4_KDmin, r, blk ? blk->dmin : 0);
      for (int j = 0; j < 8; ++j) {
        int sc = 0, m = 0;
        if (blk) kquants::q4_k_scale_min(blk->scales, j, sc, m);
        chunk[kQ4_KScales + j * 16 + r] = static_cast<uint8_t>(sc);
        const auto m16 = static_cast<int16_t>(m);
        std::memcpy(chunk + kQ4_KMins + ((j / 2) * 16 + r) * 4 + 2 * (j % 2), &m16, 2);
      }
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
          chunk[kQ4_KQuants + (c * 8 + l / 4) * 64 + r * 4 + l % 4] = blk ? blk->qs[32 * c + l] : 0;
      if constexpr (kChunk == kQ5_KChunk) {
        for (int h = 0; h < 8; ++h)  // chunk c = h / 2, low/high nibble columns h % 2
          for (int i = 0; i < 4; ++i)
            chunk[kQ5_KPlanes + h * 64 + r * 4 + i] = blk ? fifth_bit_plane(blk->qh, i, h) : 0;
      }
    }
  }
}

// Q6_K quant (0..63, i.e. the signed value + 32) of element i of a block.
int q6_k_value(const BlockQ6_K& b, int i) {
  const int low = (b.ql[64 * (i / 128) + i % 64] >> (4 * ((i % 128) / 64))) & 15;
  const int high = (b.qh[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
  return low | (high << 4);
}

void pack_q6_k(const uint8_t* const src[16], uint8_t* dst, int64_t cols) {
  for (int64_t b = 0; b < cols / 256; ++b) {
    uint8_t* chunk = dst + b * kQ6_KChunk;
    for (int r = 0; r < 16; ++r) {
      const auto* blk = src[r] ? reinterpret_cast<const BlockQ6_K*>(src[r]) + b : nullptr;
      put_scale(chunk, r, blk ? blk->d : 0);
      for (int s = 0; s < 16; ++s)
        chunk[kQ6_KScales + s * 16 + r] = static_cast<uint8_t>(blk ? blk->scales[s] : 0);
      auto q = [&](int sub, int pos) { return blk ? q6_k_value(*blk, 16 * sub + pos) : 32; };
      for (int p = 0; p < 8; ++p) {
        uint8_t* base = chunk + kQ6_KQuants + p * kQ6_KPairBytes;
        for (int bi = 0; bi < 4; ++bi) {
          for (int i = 0; i < 4; ++i) {
            base[i * 64 + r * 4 + bi] = static_cast<uint8_t>(
                (q(2 * p, 4 * i + bi) & 15) | ((q(2 * p + 1, 4 * i + bi) & 15) << 4));
          }
          for (int h = 0; h < 2; ++h) {
            const int v = (q(2 * p, 8 * h + bi) >> 4) | ((q(2 * p, 8 * h + 4 + bi) >> 4) << 2) |
                          ((q(2 * p + 1, 8 * h + bi) >> 4) << 4) |
                          ((q(2 * p + 1, 8 * h + 4 + bi) >> 4) << 6);
            base[256 + h * 64 + r * 4 + bi] = static_cast<uint8_t>(v);
          }
        }
      }
    }
  }
}

// ---- unpacking one row (the inverse of the packers) ------------------------------

uint16_t get_scale(const uint8_t* chunk, int r) {
  uint16_t d;
  std::memcpy(&d, chunk + 2 * r, 2);
  return d;
}

void unpack_q8_0(const uint8_t* g, int r, uint8_t* out, int64_t cols) {
  auto* blk = reinterpret_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < cols / 32; ++b) {
    const uint8_t* chunk = g + b * kQ8_0Chunk;
    blk[b].d = get_scale(chunk, r);
    for (int e = 0; e < 32; ++e)
      blk[b].qs[e] = static_cast<int8_t>(chunk[32 + (e / 4) * 64 + r * 4 + e % 4] - 128);
  }
}

// Sets the fifth bits that `plane` (a fifth_bit_plane byte for i) holds.
void unpack_fifth_bits(uint8_t plane, int i, int shift, uint8_t* qh) {
  for (int j = 0; j < 8; ++j) {
    const int l = 4 * j + i;
    const auto bit = static_cast<uint8_t>((plane >> j) & 1);
    if (shift < 0)
      qh[l / 8] |= static_cast<uint8_t>(bit << (l % 8));
    else
      qh[l] |= static_cast<uint8_t>(bit << shift);
  }
}

template <typename Block, size_t kChunk, size_t kPlanes, size_t kMins>
void unpack_nibbles32(const uint8_t* g, int r, uint8_t* out, int64_t cols) {
  auto* blk = reinterpret_cast<Block*>(out);
  for (int64_t b = 0; b < cols / 32; ++b) {
    const uint8_t* chunk = g + b * kChunk;
    blk[b].d = get_scale(chunk, r);
    if constexpr (kMins != 0) blk[b].m = get_scale(chunk + kMins, r);
    for (int l = 0; l < 16; ++l) blk[b].qs[l] = chunk[32 + (l / 4) * 64 + r * 4 + l % 4];
    if constexpr (kPlanes != 0) {
      std::memset(blk[b].qh, 0, sizeof(blk[b].qh));
      for (int i = 0; i < 4; ++i) unpack_fifth_bits(chunk[kPlanes + r * 4 + i], i, -1, blk[b].qh);
    }
  }
}

void unpack_q2_k(const uint8_t* g, int r, uint8_t* out, int64_t cols) {
  auto* blk = reinterpret_cast<BlockQ2_K*>(out);
  for (int64_t b = 0; b < cols / 256; ++b) {
    const uint8_t* chunk = g + b * kQ2_KChunk;
    BlockQ2_K& o = blk[b];
    std::memset(&o, 0, sizeof(o));
    o.d = get_scale(chunk + kQ2_KD, r);
    o.dmin = get_scale(chunk + kQ2_KDmin, r);
    for (int j = 0; j < 16; ++j) {
      o.scales[j] = chunk[kQ2_KScales + j * 16 + r];
      for (int i = 0; i < 4; ++i)
        unpack_low2_group_byte(chunk[kQ2_KQuants + j * 64 + r * 4 + i], j, i, o.qs);
    }
  }
}

void unpack_q3_k(const uint8_t* g, int r, uint8_t* out, int64_t cols) {
  auto* blk = reinterpret_cast<BlockQ3_K*>(out);
  for (int64_t b = 0; b < cols / 256; ++b) {
    const uint8_t* chunk = g + b * kQ3_KChunk;
    BlockQ3_K& o = blk[b];
    std::memset(&o, 0, sizeof(o));
    o.d = get_scale(chunk, r);
    int scales[16];
    for (int j = 0; j < 16; ++j) {
      scales[j] = static_cast<int8_t>(chunk[kQ3_KScales + j * 16 + r]);
      for (int i = 0; i < 4; ++i)
        unpack_low2_group_byte(chunk[kQ3_KQuants + j * 64 + r * 4 + i], j, i, o.qs);
    }
    kquants::pack_q3_k_scales(scales, o.scales);
    for (int p = 0; p < 8; ++p)
      for (int i = 0; i < 4; ++i) {
        const uint8_t plane = chunk[kQ3_KHigh + p * 64 + r * 4 + i];
        for (int h = 0; h < 2; ++h)
          for (int s = 0; s < 4; ++s) {
            const int e = 16 * (2 * p + h) + 4 * s + i;
            o.hmask[e % 32] |= static_cast<uint8_t>(((plane >> (s + 4 * h)) & 1) << (e / 32));
          }
      }
  }
}

template <typename Block, size_t kChunk>
void unpack_k_min(const uint8_t* g, int r, uint8_t* out, int64_t cols) {
  auto* blk = reinterpret_cast<Block*>(out);
  for (int64_t b = 0; b < cols / 256; ++b) {
    const uint8_t* chunk = g + b * kChunk;
    blk[b].d = get_scale(chunk + kQ4_KD, r);
    blk[b].dmin = get_scale(chunk + kQ4_KDmin, r);
    int sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = chunk[kQ4_KScales + j * 16 + r];
      int16_t m16;
      std::memcpy(&m16, chunk + kQ4_KMins + ((j / 2) * 16 + r) * 4 + 2 * (j % 2), 2);
      m[j] = m16;
    }
    kquants::pack_q4_k_scales(sc, m, blk[b].scales);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        blk[b].qs[32 * c + l] = chunk[kQ4_KQuants + (c * 8 + l / 4) * 64 + r * 4 + l % 4];
    if constexpr (kChunk == kQ5_KChunk) {
      std::memset(blk[b].qh, 0, sizeof(blk[b].qh));
      for (int h = 0; h < 8; ++h)
        for (int i = 0; i < 4; ++i)
          unpack_fifth_bits(chunk[kQ5_KPlanes + h * 64 + r * 4 + i], i, h, blk[b].qh);
    }
  }
}

void unpack_q6_k(const uint8_t* g, int r, uint8_t* out, int64_t cols) {
  auto* blk = reinterpret_cast<BlockQ6_K*>(out);
  for (int64_t b = 0; b < cols / 256; ++b) {
    const uint8_t* chunk = g + b * kQ6_KChunk;
    BlockQ6_K& o = blk[b];
    std::memset(&o, 0, sizeof(o));
    o.d = get_scale(chunk, r);
    for (int s = 0; s < 16; ++s) o.scales[s] = static_cast<int8_t>(chunk[kQ6_KScales + s * 16 + r]);
    for (int i = 0; i < 256; ++i) {
      const int sub = i / 16, pos = i % 16, p = sub / 2, hi = sub % 2;
      const int quad = pos / 4, bi = pos % 4;
      const uint8_t* base = chunk + kQ6_KQuants + p * kQ6_KPairBytes;
      const uint8_t nib = base[quad * 64 + r * 4 + bi];
      const uint8_t plane = base[256 + (quad / 2) * 64 + r * 4 + bi];
      const int low = hi ? (nib >> 4) : (nib & 15);
      const int high = (plane >> (2 * (quad % 2) + 4 * hi)) & 3;
      o.ql[64 * (i / 128) + i % 64] |= static_cast<uint8_t>(low << (4 * ((i % 128) / 64)));
      o.qh[32 * (i / 128) + i % 32] |= static_cast<uint8_t>(high << (2 * ((i % 128) / 32)));
    }
  }
}

template <size_t kBytes>  // F32 (4) and F16/BF16 (2): one element per column
void unpack_floats(const uint8_t* g, int r, uint8_t* out, int64_t cols) {
  for (int64_t k = 0; k < cols; ++k)
    std::memcpy(out + kBytes * k, g + (k * 16 + r) * kBytes, kBytes);
}

using UnpackRowFn = void (*)(const uint8_t* g, int r, uint8_t* out, int64_t cols);

// One packed layout: `cols` columns per chunk of `bytes` per row group, its
// packer and its row unpacker.
struct PackedFormat {
  int64_t cols = 0;
  size_t bytes = 0;
  PackGroupFn pack = nullptr;
  UnpackRowFn unpack = nullptr;
};

// The nibble and k-quant families: one template instance packs and unpacks.
template <typename Block, size_t kChunk, size_t kPlanes, size_t kMins>
PackedFormat nibbles32_format() {
  return {32, kChunk, pack_nibbles32<Block, kChunk, kPlanes, kMins>,
          unpack_nibbles32<Block, kChunk, kPlanes, kMins>};
}
template <typename Block, size_t kChunk>
PackedFormat k_min_format() {
  return {256, kChunk, pack_k_min<Block, kChunk>, unpack_k_min<Block, kChunk>};
}

PackedFormat packed_format(DType type) {
  switch (type) {
    case DType::F32:
      return {1, 16 * 4, pack_floats32, unpack_floats<4>};
    case DType::F16:
    case DType::BF16:
      return {1, 16 * 2, pack_halves, unpack_floats<2>};
    case DType::Q8_0:
      return {32, kQ8_0Chunk, pack_q8_0, unpack_q8_0};
    case DType::Q4_0:
      return nibbles32_format<BlockQ4_0, kQ4_0Chunk, 0, 0>();
    case DType::Q4_1:
      return nibbles32_format<BlockQ4_1, kQ4_1Chunk, 0, kQ4_1Mins>();
    case DType::Q5_0:
      return nibbles32_format<BlockQ5_0, kQ5_0Chunk, kQ5_0Planes, 0>();
    case DType::Q5_1:
      return nibbles32_format<BlockQ5_1, kQ5_1Chunk, kQ5_0Planes, kQ5_1Mins>();
    case DType::Q2_K:
      return {256, kQ2_KChunk, pack_q2_k, unpack_q2_k};
    case DType::Q3_K:
      return {256, kQ3_KChunk, pack_q3_k, unpack_q3_k};
    case DType::Q4_K:
      return k_min_format<BlockQ4_K, kQ4_KChunk>();
    case DType::Q5_K:
      return k_min_format<BlockQ5_K, kQ5_KChunk>();
    case DType::Q6_K:
      return {256, kQ6_KChunk, pack_q6_k, unpack_q6_k};
    default:
      return {};
  }
}

}  // namespace

bool has_packed_layout(DType type) {
  return packed_format(type).bytes != 0;
}

size_t packed_group_bytes(DType type, int64_t cols) {
  const PackedFormat f = packed_format(type);
  if (f.bytes == 0 || cols <= 0 || cols % f.cols != 0) return 0;
  return static_cast<size_t>(cols / f.cols) * f.bytes;
}

void PackedMatrix::unpack_row(int64_t r, void* out) const {
  MUSE_CHECK(r >= 0 && r < rows_, "unpack_row: row ", r, " out of range");
  const uint8_t* g = group(r / kGemmGroupRows);
  const int lane = static_cast<int>(r % kGemmGroupRows);
  const UnpackRowFn unpack = packed_format(type_).unpack;
  if (unpack == nullptr)
    throw Error(str_cat("unpack_row: type ", dtype_name(type_), " has no packed layout"));
  unpack(g, lane, static_cast<uint8_t*>(out), cols_);
}

void PackedMatrix::Free::operator()(uint8_t* p) const {
  std::free(p);
}

LargeBuffer::LargeBuffer(size_t bytes, bool zero) {
  constexpr size_t kHuge = size_t{2} << 20;
  size_ = bytes;
  const size_t total = std::max<size_t>(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
  data_.reset(static_cast<uint8_t*>(std::aligned_alloc(kHuge, total)));
  MUSE_CHECK(data_ != nullptr, "out of memory (", total, " bytes)");
#ifdef MADV_HUGEPAGE
  madvise(data_.get(), total, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  if (zero) std::memset(data_.get(), 0, bytes);
}

void LargeBuffer::Free::operator()(uint8_t* p) const {
  std::free(p);
}

size_t packed_bytes(const TensorView& w) {
  if (!has_packed_layout(w.type) || w.rows() <= 0) return 0;
  const size_t gbytes = packed_group_bytes(w.type, w.cols());
  const size_t groups = static_cast<size_t>((w.rows() + kGemmGroupRows - 1) / kGemmGroupRows);
  return (groups * gbytes + 63) / 64 * 64;
}

PackedMatrix PackedMatrix::pack(const TensorView& w, ThreadPool* pool,
                                const PackedRowsFn& on_packed, uint8_t* storage) {
  const PackGroupFn fn = packed_format(w.type).pack;
  MUSE_CHECK(fn != nullptr, "pack: type ", dtype_name(w.type), " has no packed GEMM layout");
  const int64_t rows = w.rows(), cols = w.cols();
  MUSE_CHECK(rows > 0 && cols > 0, "pack: bad weight shape ", shape_string(w));
  const size_t gbytes = packed_group_bytes(w.type, cols);
  MUSE_CHECK(gbytes > 0, "pack: row length ", cols, " does not fit the ", dtype_name(w.type),
             " block size");
  MUSE_CHECK(w.data != nullptr, "pack: weight tensor has no data");
  MUSE_CHECK(w.nbytes == 0 || w.nbytes >= static_cast<size_t>(rows) * w.row_stride(),
             "pack: weight tensor ", shape_string(w), " is truncated");
  PackedMatrix m;
  m.type_ = w.type;
  m.rows_ = rows;
  m.cols_ = cols;
  m.group_bytes_ = gbytes;
  const int64_t groups = m.groups();
  if (storage != nullptr) {
    m.data_ = storage;
  } else {
    const size_t total = packed_bytes(w);
    m.owned_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, total)));
    MUSE_CHECK(m.owned_ != nullptr, "pack: out of memory (", total, " bytes)");
    m.data_ = m.owned_.get();
  }
  auto pack_range = [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      const uint8_t* src[16];
      for (int r = 0; r < 16; ++r) {
        const int64_t row = g * 16 + r;
        src[r] = row < rows ? static_cast<const uint8_t*>(w.row(row)) : nullptr;
      }
      fn(src, m.data_ + static_cast<size_t>(g) * gbytes, cols);
    }
  };
  // In slices of about 16 MiB of source, so on_packed can release each slice.
  const int64_t slice = std::max<int64_t>(1, (16 << 20) / static_cast<int64_t>(gbytes));
  for (int64_t s0 = 0; s0 < groups; s0 += slice) {
    const int64_t s1 = std::min(groups, s0 + slice);
    if (pool != nullptr && pool->size() > 1 && s1 - s0 > 1) {
      pool->parallel_for(s1 - s0,
                         [&](int, int64_t g0, int64_t g1) { pack_range(s0 + g0, s0 + g1); });
    } else {
      pack_range(s0, s1);
    }
    if (on_packed) on_packed(s0 * kGemmGroupRows, std::min(rows, s1 * kGemmGroupRows));
  }
  return m;
}

}  // namespace muse::kernels
