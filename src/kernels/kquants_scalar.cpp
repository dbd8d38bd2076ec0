// Reference k-quant kernels: dequantizers, the Q8_K activation quantizer and the
// scalar dot products (the weight quantizers are in kquants_quantize.cpp).
//
// Element order inside a 256-element super-block (i = element index, GGUF layout):
//   Q2_K  2-bit q = (qs[32*(i/128) + i%32] >> 2*((i%128)/32)) & 3; sub-block of 16
//         j = i/16 has scale scales[j] & 15 and min scales[j] >> 4;
//         x = d * scale * q - dmin * min.
//   Q3_K  low 2 bits as Q2_K; high bit = bit (i/32) of hmask[i%32]; q = low + 4*high - 4
//         (in -4..3); 16 six-bit scales (see unpack_q3_k_scales), s = scale - 32;
//         x = d * s * q.
//   Q4_K  4-bit q = (qs[32*(i/64) + i%32] >> 4*((i%64)/32)) & 15; sub-block of 32
//         j = i/32 has a 6-bit scale and min (see q4_k_scale_min); x = d*sc*q - dmin*m.
//   Q5_K  as Q4_K plus bit (i/32) of qh[i%32] as the fifth bit (value 16).
//   Q6_K  low 4 bits = (ql[64*(i/128) + i%64] >> 4*((i%128)/64)) & 15, high 2 bits =
//         (qh[32*(i/128) + i%32] >> 2*((i%128)/32)) & 3; q = (low | high << 4) - 32 in
//         -32..31; sub-block of 16 j = i/16 has an int8 scale; x = d * scale * q.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_table.h"
#include "kernels/kquants.h"
#include "kernels/quant_blocks.h"
#include "muse/error.h"

namespace muse::kernels {
namespace kquants {

void check_row_length(int64_t n, const char* what) {
  MUSE_CHECK(n >= 0 && n % QK_K == 0, what, ": row length ", n,
             " is not a multiple of the k-quant block size ", QK_K);
}

// Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins packed in 12 bytes. Bytes 0-3
// hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3; bytes 8-11 hold the
// low nibbles of scales 4-7 (low half) and mins 4-7 (high half), whose top two
// bits live in the top two bits of bytes 0-3 (scales) and 4-7 (mins).
void q4_k_scale_min(const uint8_t* s, int j, int& scale, int& min) {
  if (j < 4) {
    scale = s[j] & 63;
    min = s[j + 4] & 63;
  } else {
    scale = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
    min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

void pack_q4_k_scales(const int* scales, const int* mins, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((scales[j] & 63) | ((scales[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((mins[j] & 63) | ((mins[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((scales[j + 4] & 15) | ((mins[j + 4] & 15) << 4));
  }
}

// Q3_K: 16 six-bit scales in 12 bytes. Low nibbles: scale i < 8 in the low half
// of byte i, scale i >= 8 in the high half of byte i - 8. High two bits: scale i
// in bits 2*(i/4) .. 2*(i/4)+1 of byte 8 + i%4. Returns the signed value - 32.
void unpack_q3_k_scales(const uint8_t* s, int out[16]) {
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? (s[i] & 15) : (s[i - 8] >> 4);
    const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    out[i] = (low | (high << 4)) - 32;
  }
}

// Inverse of unpack_q3_k_scales (values -32..31).
void pack_q3_k_scales(const int* scales, uint8_t* s) {
  for (int i = 0; i < 12; ++i) s[i] = 0;
  for (int j = 0; j < 16; ++j) {
    const int v = scales[j] + 32;
    if (j < 8) {
      s[j] |= static_cast<uint8_t>(v & 15);
    } else {
      s[j - 8] |= static_cast<uint8_t>((v & 15) << 4);
    }
    s[8 + j % 4] |= static_cast<uint8_t>((v >> 4) << (2 * (j / 4)));
  }
}

namespace {

// Each decode_* writes the block's 256 integer quants in element order.
void decode_q2_k(const BlockQ2_K& b, int8_t q[QK_K]) {
  for (int i = 0; i < QK_K; ++i) {
    q[i] = static_cast<int8_t>((b.qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3);
  }
}

void decode_q3_k(const BlockQ3_K& b, int8_t q[QK_K]) {
  for (int i = 0; i < QK_K; ++i) {
    const int low = (b.qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
    const int high = (b.hmask[i % 32] >> (i / 32)) & 1;
    q[i] = static_cast<int8_t>(low + 4 * high - 4);
  }
}

void decode_q4_k(const BlockQ4_K& b, int8_t q[QK_K]) {
  for (int i = 0; i < QK_K; ++i) {
    q[i] = static_cast<int8_t>((b.qs[32 * (i / 64) + i % 32] >> (4 * ((i % 64) / 32))) & 15);
  }
}

void decode_q5_k(const BlockQ5_K& b, int8_t q[QK_K]) {
  for (int i = 0; i < QK_K; ++i) {
    const int low = (b.qs[32 * (i / 64) + i % 32] >> (4 * ((i % 64) / 32))) & 15;
    const int high = (b.qh[i % 32] >> (i / 32)) & 1;
    q[i] = static_cast<int8_t>(low | (high << 4));
  }
}

// Q6_K: each half of 128 elements uses 64 bytes of ql and 32 of qh. Within a half,
// element r (0..127) takes its low nibble from ql[r % 64] (low nibble for r < 64,
// high nibble for r >= 64) and its top two bits from qh[r % 32] >> 2*(r/32).
void decode_q6_k(const BlockQ6_K& b, int8_t q[QK_K]) {
  for (int i = 0; i < QK_K; ++i) {
    const int half = i / 128, r = i % 128;
    const int low = (b.ql[64 * half + r % 64] >> (4 * (r / 64))) & 15;
    const int high = (b.qh[32 * half + r % 32] >> (2 * (r / 32))) & 3;
    q[i] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
}

// sum_{l<len} q[l] * a[l]
int32_t int_dot(const int8_t* q, const int8_t* a, int len) {
  int32_t s = 0;
  for (int l = 0; l < len; ++l) s += static_cast<int32_t>(q[l]) * a[l];
  return s;
}

}  // namespace

void dequantize_row_q2_k(const void* x, float* y, int64_t n) {
  check_row_length(n, "dequantize q2_k");
  const auto* blocks = static_cast<const BlockQ2_K*>(x);
  int8_t q[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const BlockQ2_K& blk = blocks[b];
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    decode_q2_k(blk, q);
    for (int i = 0; i < QK_K; ++i) {
      const int sc = blk.scales[i / 16];
      y[i] = d * static_cast<float>(sc & 15) * q[i] - dmin * static_cast<float>(sc >> 4);
    }
  }
}

void dequantize_row_q3_k(const void* x, float* y, int64_t n) {
  check_row_length(n, "dequantize q3_k");
  const auto* blocks = static_cast<const BlockQ3_K*>(x);
  int8_t q[QK_K];
  int scales[16];
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const BlockQ3_K& blk = blocks[b];
    const float d = f16_to_f32(blk.d);
    decode_q3_k(blk, q);
    unpack_q3_k_scales(blk.scales, scales);
    for (int i = 0; i < QK_K; ++i) y[i] = d * static_cast<float>(scales[i / 16]) * q[i];
  }
}

void dequantize_row_q4_k(const void* x, float* y, int64_t n) {
  check_row_length(n, "dequantize q4_k");
  const auto* blocks = static_cast<const BlockQ4_K*>(x);
  int8_t q[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const BlockQ4_K& blk = blocks[b];
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    decode_q4_k(blk, q);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      q4_k_scale_min(blk.scales, j, sc, m);
      const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * q[32 * j + l] - ml;
    }
  }
}

void dequantize_row_q5_k(const void* x, float* y, int64_t n) {
  check_row_length(n, "dequantize q5_k");
  const auto* blocks = static_cast<const BlockQ5_K*>(x);
  int8_t q[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const BlockQ5_K& blk = blocks[b];
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    decode_q5_k(blk, q);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      q4_k_scale_min(blk.scales, j, sc, m);
      const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) y[32 * j + l] = dl * q[32 * j + l] - ml;
    }
  }
}

void dequantize_row_q6_k(const void* x, float* y, int64_t n) {
  check_row_length(n, "dequantize q6_k");
  const auto* blocks = static_cast<const BlockQ6_K*>(x);
  int8_t q[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    const BlockQ6_K& blk = blocks[b];
    const float d = f16_to_f32(blk.d);
    decode_q6_k(blk, q);
    for (int i = 0; i < QK_K; ++i) y[i] = d * static_cast<float>(blk.scales[i / 16]) * q[i];
  }
}

void quantize_row_q8_k(const float* x, void* y, int64_t n) {
  check_row_length(n, "quantize q8_k");
  auto* blocks = static_cast<BlockQ8_K*>(y);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ8_K& blk = blocks[b];
    float amax = 0.0f;
    for (int i = 0; i < QK_K; ++i) amax = std::max(amax, std::fabs(x[i]));
    if (amax == 0.0f) {
      std::memset(&blk, 0, sizeof(blk));
      continue;
    }
    const float iscale = 127.0f / amax;
    for (int i = 0; i < QK_K; ++i) {
      // lrint rounds to nearest even, as the SIMD conversions do.
      blk.qs[i] = static_cast<int8_t>(std::clamp<long>(std::lrint(x[i] * iscale), -127, 127));
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += blk.qs[16 * j + l];
      blk.bsums[j] = static_cast<int16_t>(sum);
    }
    blk.d = 1.0f / iscale;
  }
}

void dequantize_row_q8_k(const void* x, float* y, int64_t n) {
  check_row_length(n, "dequantize q8_k");
  const auto* blocks = static_cast<const BlockQ8_K*>(x);
  for (int64_t b = 0; b < n / QK_K; ++b, y += QK_K) {
    for (int i = 0; i < QK_K; ++i) y[i] = blocks[b].d * blocks[b].qs[i];
  }
}

void vec_dot_q2_k_q8_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ2_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  int8_t q[QK_K];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    decode_q2_k(wb[b], q);
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 16; ++j) {
      const int sc = wb[b].scales[j];
      sumi += (sc & 15) * int_dot(q + 16 * j, ab[b].qs + 16 * j, 16);
      summ += (sc >> 4) * ab[b].bsums[j];
    }
    sum += ab[b].d * (f16_to_f32(wb[b].d) * static_cast<float>(sumi) -
                      f16_to_f32(wb[b].dmin) * static_cast<float>(summ));
  }
  *out = sum;
}

void vec_dot_q3_k_q8_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ3_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  int8_t q[QK_K];
  int scales[16];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    decode_q3_k(wb[b], q);
    unpack_q3_k_scales(wb[b].scales, scales);
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) sumi += scales[j] * int_dot(q + 16 * j, ab[b].qs + 16 * j, 16);
    sum += ab[b].d * f16_to_f32(wb[b].d) * static_cast<float>(sumi);
  }
  *out = sum;
}

namespace {

// Shared by Q4_K and Q5_K, which differ only in how their quants are stored.
template <typename Block, void (*Decode)(const Block&, int8_t*)>
float dot_q45_k(int64_t n, const Block* wb, const BlockQ8_K* ab) {
  int8_t q[QK_K];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    Decode(wb[b], q);
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      q4_k_scale_min(wb[b].scales, j, sc, m);
      sumi += sc * int_dot(q + 32 * j, ab[b].qs + 32 * j, 32);
      summ += m * (ab[b].bsums[2 * j] + ab[b].bsums[2 * j + 1]);
    }
    sum += ab[b].d * (f16_to_f32(wb[b].d) * static_cast<float>(sumi) -
                      f16_to_f32(wb[b].dmin) * static_cast<float>(summ));
  }
  return sum;
}

}  // namespace

void vec_dot_q4_k_q8_k(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_q45_k<BlockQ4_K, decode_q4_k>(n, static_cast<const BlockQ4_K*>(w),
                                           static_cast<const BlockQ8_K*>(a));
}

void vec_dot_q5_k_q8_k(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_q45_k<BlockQ5_K, decode_q5_k>(n, static_cast<const BlockQ5_K*>(w),
                                           static_cast<const BlockQ8_K*>(a));
}

void vec_dot_q6_k_q8_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ6_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  int8_t q[QK_K];
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    decode_q6_k(wb[b], q);
    int32_t sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += wb[b].scales[j] * int_dot(q + 16 * j, ab[b].qs + 16 * j, 16);
    }
    sum += ab[b].d * f16_to_f32(wb[b].d) * static_cast<float>(sumi);
  }
  *out = sum;
}

}  // namespace kquants

void register_kquants_scalar(KernelTable& t) {
  using namespace kquants;
  auto set = [&t](DType type, QuantizeRowFn q, DequantizeRowFn dq, VecDotFn dot) {
    const auto slot = static_cast<uint32_t>(type);
    t.quantize[slot] = q;
    t.dequantize[slot] = dq;
    t.vec_dot[slot] = dot;
  };
  set(DType::Q2_K, quantize_row_q2_k, dequantize_row_q2_k, vec_dot_q2_k_q8_k);
  set(DType::Q3_K, quantize_row_q3_k, dequantize_row_q3_k, vec_dot_q3_k_q8_k);
  set(DType::Q4_K, quantize_row_q4_k, dequantize_row_q4_k, vec_dot_q4_k_q8_k);
  set(DType::Q5_K, quantize_row_q5_k, dequantize_row_q5_k, vec_dot_q5_k_q8_k);
  set(DType::Q6_K, quantize_row_q6_k, dequantize_row_q6_k, vec_dot_q6_k_q8_k);
  set(DType::Q8_K, quantize_row_q8_k, dequantize_row_q8_k, nullptr);  // activation only
}

}  // namespace muse::kernels
