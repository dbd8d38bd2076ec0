// AVX-512 (F/BW/VL/DQ + VNNI) kernels for the packed GEMM (layouts in gemm.h).
//
// One zmm holds 16 rows (one lane each). A tile is one row group x T tokens:
// for the quantized types each block's integer dot products accumulate through
// vpdpbusd (unsigned weight bytes x the token's 4 activation bytes broadcast to
// every lane); the offset of the unsigned weights comes off through the block's
// activation sum; the block (or sub-block) scales are applied once per block in
// float. The float types do one FMA per column per token with the activation
// broadcast. Every lane accumulates its own row, so nothing is reduced across
// lanes.
//
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*
// placeholders once inlined (GCC bug 105593); the warnings are not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <array>
#include <cstring>
#include <utility>

#include "core/dtype.h"
#include "kernels/gemm_layout.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {
namespace {

using namespace gemm_layout;

struct Tile {
  const uint8_t* w;    // the (first) row group
  size_t group_bytes;  // to the next group (kernels of two groups)
  GemmActs acts;       // at the tile's first token
  float* y;            // output of the tile's first token, first row of the group
  int64_t ldy;
  __mmask16 mask, mask2;  // rows to store of the first and second group
};

inline __m512i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}
inline __m512 load_f16x16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline __m512i load512(const uint8_t* p) {
  return _mm512_loadu_si512(p);
}

#define MUSE_UNROLL _Pragma("GCC unroll 32")

// With several tokens per tile a block takes long enough that the hardware
// prefetchers fall behind the weights streaming in from memory: fetch the block
// kPrefetchBytes ahead (the next group's when this one ends) while this one runs.
// (Measured on Zen 4, 8 tokens: 1.4x for Q4_0, 1.6x for Q8_0 streaming from DRAM.)
template <int T, size_t kChunk, size_t kAhead = 2048>
inline void prefetch_ahead(const uint8_t* chunk) {
  if constexpr (T >= 2) {
    for (size_t line = 0; line < kChunk; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(chunk + kAhead + line), _MM_HINT_T0);
  }
}

// ---- float weights ----------------------------------------------------------------

struct WF32 {
  static __m512 load(const uint8_t* w, int64_t k) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(w) + k * 16);
  }
};
struct WF16 {
  static __m512 load(const uint8_t* w, int64_t k) { return load_f16x16(w + k * 32); }
};
struct WBF16 {
  static __m512 load(const uint8_t* w, int64_t k) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k * 32));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
};

// A tile of G row groups (16 G rows) x T tokens: per column, G weight vectors and
// T broadcast activations feed G * T FMAs. T stays <= 8 so the token pointers
// fit in registers; U independent accumulators per output hide the FMA latency
// when G * T is small.
template <typename W, int G>
struct FloatKernel {
  static constexpr int kMaxTokens = 8;
  static constexpr int kGroups = G;
  template <int T>
  static void tile(const Tile& c) {
    constexpr int U = G * T >= 4 ? 1 : (G * T == 1 ? 4 : 2);
    const int64_t k = c.acts.k;
    const float* x[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) x[t] = c.acts.x + t * k;
    __m512 acc[U][G][T];
    MUSE_UNROLL for (int u = 0; u < U; ++u) MUSE_UNROLL for (int g = 0; g < G; ++g)
        MUSE_UNROLL for (int t = 0; t < T; ++t) acc[u][g][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + U <= k; i += U) {
      MUSE_UNROLL for (int u = 0; u < U; ++u) {
        __m512 w[G];
        MUSE_UNROLL for (int g = 0; g < G; ++g) w[g] = W::load(c.w + g * c.group_bytes, i + u);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const __m512 xb = _mm512_set1_ps(x[t][i + u]);
          MUSE_UNROLL for (int g = 0; g < G; ++g) acc[u][g][t] =
              _mm512_fmadd_ps(w[g], xb, acc[u][g][t]);
        }
      }
    }
    for (; i < k; ++i) {
      MUSE_UNROLL for (int g = 0; g < G; ++g) {
        const __m512 w = W::load(c.w + g * c.group_bytes, i);
        MUSE_UNROLL for (int t = 0; t < T; ++t) acc[0][g][t] =
            _mm512_fmadd_ps(w, _mm512_set1_ps(x[t][i]), acc[0][g][t]);
      }
    }
    MUSE_UNROLL for (int g = 0; g < G; ++g) MUSE_UNROLL for (int t = 0; t < T; ++t) {
      __m512 s = acc[0][g][t];
      MUSE_UNROLL for (int u = 1; u < U; ++u) s = _mm512_add_ps(s, acc[u][g][t]);
      _mm512_mask_storeu_ps(c.y + t * c.ldy + g * kGemmGroupRows, g == 0 ? c.mask : c.mask2, s);
    }
  }
};

// ---- legacy 32-blocks -------------------------------------------------------------

// Unsigned quants of quad j (0..7, columns 4j..4j+3) of a block, per format.
// kMins: where the _1 types keep their f16 mins (x = d q + m), 0 for none.
struct Q8_0Format {
  static constexpr size_t kChunk = kQ8_0Chunk;
  static constexpr int kOffsetShift = 7;  // stored as q + 128
  static constexpr size_t kMins = 0;
  struct Block {
    const uint8_t* chunk;
    explicit Block(const uint8_t* c) : chunk(c) {}
    __m512i quad(int j) const { return load512(chunk + 32 + 64 * j); }
  };
};

struct Q4_0Format {
  static constexpr size_t kChunk = kQ4_0Chunk;
  static constexpr int kOffsetShift = 3;  // q + 8
  static constexpr size_t kMins = 0;
  struct Block {
    __m512i packed[4];
    explicit Block(const uint8_t* c) {
      MUSE_UNROLL for (int j = 0; j < 4; ++j) packed[j] = load512(c + 32 + 64 * j);
    }
    __m512i quad(int j) const {
      const __m512i low4 = _mm512_set1_epi8(0x0f);
      return j < 4 ? _mm512_and_si512(packed[j], low4)
                   : _mm512_and_si512(_mm512_srli_epi16(packed[j - 4], 4), low4);
    }
  };
};

struct Q5_0Format {
  static constexpr size_t kChunk = kQ5_0Chunk;
  static constexpr int kOffsetShift = 4;  // q + 16
  static constexpr size_t kMins = 0;
  struct Block {
    Q4_0Format::Block nibbles;
    __m512i plane;
    explicit Block(const uint8_t* c) : nibbles(c), plane(load512(c + kQ5_0Planes)) {}
    __m512i quad(int j) const {
      // Bit j of each plane byte becomes 0x10.
      const __m512i bit =
          j <= 4 ? _mm512_slli_epi16(plane, 4 - j) : _mm512_srli_epi16(plane, j - 4);
      return _mm512_ternarylogic_epi32(nibbles.quad(j), bit, _mm512_set1_epi8(0x10), 0xf8);
    }
  };
};

struct Q4_1Format {
  static constexpr size_t kChunk = kQ4_1Chunk;
  static constexpr size_t kMins = kQ4_1Mins;
  using Block = Q4_0Format::Block;
};

struct Q5_1Format {
  static constexpr size_t kChunk = kQ5_1Chunk;
  static constexpr size_t kMins = kQ5_1Mins;
  using Block = Q5_0Format::Block;
};

template <typename F>
struct Legacy32Kernel {
  static constexpr int kMaxTokens = 8;
  static constexpr int kGroups = 1;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nb = k / 32;
    __m512 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* chunk = c.w + b * F::kChunk;
      prefetch_ahead<T, F::kChunk>(chunk);
      const typename F::Block blk(chunk);
      __m512i isum[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) {
        if constexpr (F::kMins != 0)
          isum[t] = _mm512_setzero_si512();
        else
          isum[t] =
              _mm512_slli_epi32(_mm512_set1_epi32(c.acts.nsum32[t * nb + b]), F::kOffsetShift);
      }
      MUSE_UNROLL for (int j = 0; j < 8; ++j) {
        const __m512i q = blk.quad(j);
        MUSE_UNROLL for (int t = 0; t < T; ++t) isum[t] =
            _mm512_dpbusd_epi32(isum[t], q, bcast32(c.acts.qs + t * k + 32 * b + 4 * j));
      }
      const __m512 dw = load_f16x16(chunk);
      MUSE_UNROLL for (int t = 0; t < T; ++t) {
        const float da = c.acts.d[t * nb + b];
        const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(da));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), s, acc[t]);
        if constexpr (F::kMins != 0)  // + m * da * (activation sum) = - m * (da * nsum)
          acc[t] = _mm512_fnmadd_ps(
              load_f16x16(chunk + F::kMins),
              _mm512_set1_ps(da * static_cast<float>(c.acts.nsum32[t * nb + b])), acc[t]);
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(c.y + t * c.ldy, c.mask, acc[t]);
  }
};

// ---- k-quants -----------------------------------------------------------------------

// Q4_K, and Q5_K (kChunk = kQ5_KChunk) with the fifth bits from its planes.
template <size_t kChunk>
struct KMinKernel {
  static constexpr int kMaxTokens = 5;
  static constexpr int kGroups = 1;
  static constexpr bool kFifth = kChunk == kQ5_KChunk;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nsb = k / 256, nb32 = k / 32;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    __m512 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = c.w + sb * kChunk;
      prefetch_ahead<T, kChunk, 2 * kChunk>(chunk);
      __m512i sumi[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
      for (int ch = 0; ch < 4; ++ch) {
        __m512i lo[T], hi[T];
        MUSE_UNROLL for (int t = 0; t < T; ++t) lo[t] = hi[t] = _mm512_setzero_si512();
        const uint8_t* quads = chunk + kQ4_KQuants + ch * 8 * 64;
        const int8_t* a = c.acts.qs + sb * 256 + ch * 64;
        __m512i plane_lo = _mm512_setzero_si512(), plane_hi = plane_lo;
        if constexpr (kFifth) {
          plane_lo = load512(chunk + kQ5_KPlanes + (2 * ch) * 64);
          plane_hi = load512(chunk + kQ5_KPlanes + (2 * ch + 1) * 64);
        }
        MUSE_UNROLL for (int j = 0; j < 8; ++j) {
          const __m512i p = load512(quads + 64 * j);
          __m512i ql = _mm512_and_si512(p, low4);
          __m512i qh = _mm512_and_si512(_mm512_srli_epi16(p, 4), low4);
          if constexpr (kFifth) {  // bit j of each plane byte becomes 0x10
            const __m512i bl =
                j <= 4 ? _mm512_slli_epi16(plane_lo, 4 - j) : _mm512_srli_epi16(plane_lo, j - 4);
            const __m512i bh =
                j <= 4 ? _mm512_slli_epi16(plane_hi, 4 - j) : _mm512_srli_epi16(plane_hi, j - 4);
            ql = _mm512_ternarylogic_epi32(ql, bl, bit4, 0xf8);
            qh = _mm512_ternarylogic_epi32(qh, bh, bit4, 0xf8);
          }
          MUSE_UNROLL for (int t = 0; t < T; ++t) {
            lo[t] = _mm512_dpbusd_epi32(lo[t], ql, bcast32(a + t * k + 4 * j));
            hi[t] = _mm512_dpbusd_epi32(hi[t], qh, bcast32(a + t * k + 32 + 4 * j));
          }
        }
        const __m512i sc_lo = _mm512_cvtepu8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(chunk + kQ4_KScales + (2 * ch) * 16)));
        const __m512i sc_hi = _mm512_cvtepu8_epi32(_mm_loadu_si128(
            reinterpret_cast<const __m128i*>(chunk + kQ4_KScales + (2 * ch + 1) * 16)));
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(lo[t], sc_lo));
          sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(hi[t], sc_hi));
        }
      }
      // Mins: sum over the 8 sub-blocks of min * activation sum, as int16 pairs.
      const __m512 dw = load_f16x16(chunk + kQ4_KD);
      const __m512 dmin = load_f16x16(chunk + kQ4_KDmin);
      MUSE_UNROLL for (int t = 0; t < T; ++t) {
        __m512i summ = _mm512_setzero_si512();
        const int16_t* sums = c.acts.sum32 + t * nb32 + sb * 8;
        MUSE_UNROLL for (int p = 0; p < 4; ++p) {
          int32_t pair;
          std::memcpy(&pair, sums + 2 * p, 4);
          summ = _mm512_dpwssd_epi32(summ, load512(chunk + kQ4_KMins + p * 64),
                                     _mm512_set1_epi32(pair));
        }
        const __m512 v = _mm512_fmsub_ps(dw, _mm512_cvtepi32_ps(sumi[t]),
                                         _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(summ)));
        acc[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(c.acts.d[t * nb32 + sb * 8]), acc[t]);
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(c.y + t * c.ldy, c.mask, acc[t]);
  }
};

// Q2_K (x = d sc q - dmin m) and Q3_K (x = d s q, stored q + 4 with a third-bit
// plane): 16-column sub-blocks whose 2-bit quants are one 64-byte group; each
// sub-block's dot products are scaled in int32, then the mins (Q2_K) come off
// through the activation sums per 16 columns.
template <DType kType>
struct Low2Kernel {
  static constexpr int kMaxTokens = 5;
  static constexpr int kGroups = 1;
  static constexpr bool kQ3 = kType == DType::Q3_K;
  static constexpr size_t kChunk = kQ3 ? kQ3_KChunk : kQ2_KChunk;
  static constexpr size_t kQuants = kQ3 ? kQ3_KQuants : kQ2_KQuants;
  static constexpr size_t kScales = kQ3 ? kQ3_KScales : kQ2_KScales;
  static __m512i scales16(const uint8_t* p) {  // 16 rows' bytes as int32
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return kQ3 ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
  }
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nsb = k / 256, nb32 = k / 32, nb16 = k / 16;
    const __m512i three = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
    const __m512i low4 = _mm512_set1_epi32(15);
    __m512 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = c.w + sb * kChunk;
      prefetch_ahead<T, kChunk, 2 * kChunk>(chunk);
      __m512i sumi[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
      for (int jp = 0; jp < 16; jp += 2) {
        const __m512i plane = kQ3 ? load512(chunk + kQ3_KHigh + (jp / 2) * 64) : three;
        MUSE_UNROLL for (int h = 0; h < 2; ++h) {
          const int j = jp + h;
          const __m512i g = load512(chunk + kQuants + 64 * j);
          const int8_t* a = c.acts.qs + sb * 256 + 16 * j;
          __m512i isum[T];
          MUSE_UNROLL for (int t = 0; t < T; ++t) isum[t] =
              kQ3 ? _mm512_slli_epi32(_mm512_set1_epi32(c.acts.nsum16[t * nb16 + sb * 16 + j]), 2)
                  : _mm512_setzero_si512();
          MUSE_UNROLL for (int s = 0; s < 4; ++s) {
            __m512i q = _mm512_and_si512(s == 0 ? g : _mm512_srli_epi16(g, 2 * s), three);
            if constexpr (kQ3) {  // bit s + 4h of the plane byte becomes 4
              const int shift = s + 4 * h - 2;
              const __m512i hb =
                  shift >= 0 ? _mm512_srli_epi16(plane, shift) : _mm512_slli_epi16(plane, -shift);
              q = _mm512_ternarylogic_epi32(q, hb, four, 0xf8);
            }
            MUSE_UNROLL for (int t = 0; t < T; ++t) isum[t] =
                _mm512_dpbusd_epi32(isum[t], q, bcast32(a + t * k + 4 * s));
          }
          __m512i sc = scales16(chunk + kScales + j * 16);
          if constexpr (!kQ3) sc = _mm512_and_si512(sc, low4);
          MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] =
              _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(isum[t], sc));
        }
      }
      const __m512 dw = load_f16x16(chunk);
      if constexpr (kQ3) {
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(c.acts.d[t * nb32 + sb * 8]));
          acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), s, acc[t]);
        }
      } else {
        // Mins of sub-blocks 2p, 2p+1 as int16 pairs times the activation sums.
        __m512i mins[8];
        MUSE_UNROLL for (int p = 0; p < 8; ++p) {
          const __m512i m0 = _mm512_srli_epi32(scales16(chunk + kScales + (2 * p) * 16), 4);
          const __m512i m1 = _mm512_srli_epi32(scales16(chunk + kScales + (2 * p + 1) * 16), 4);
          mins[p] = _mm512_or_si512(m0, _mm512_slli_epi32(m1, 16));
        }
        const __m512 dmin = load_f16x16(chunk + kQ2_KDmin);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const int32_t* ns = c.acts.nsum16 + t * nb16 + sb * 16;
          __m512i summ = _mm512_setzero_si512();
          MUSE_UNROLL for (int p = 0; p < 8; ++p) {
            const auto pair = static_cast<int32_t>(static_cast<uint16_t>(-ns[2 * p]) |
                                                   (static_cast<uint32_t>(-ns[2 * p + 1]) << 16));
            summ = _mm512_dpwssd_epi32(summ, mins[p], _mm512_set1_epi32(pair));
          }
          const __m512 v = _mm512_fmsub_ps(dw, _mm512_cvtepi32_ps(sumi[t]),
                                           _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(summ)));
          acc[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(c.acts.d[t * nb32 + sb * 8]), acc[t]);
        }
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(c.y + t * c.ldy, c.mask, acc[t]);
  }
};

struct Q6KKernel {
  static constexpr int kMaxTokens = 5;
  static constexpr int kGroups = 1;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nsb = k / 256, nb32 = k / 32, nb16 = k / 16;
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i bits45 = _mm512_set1_epi8(0x30);
    __m512 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = c.w + sb * kQ6_KChunk;
      prefetch_ahead<T, kQ6_KChunk, 2 * kQ6_KChunk>(chunk);
      __m512i sumi[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] = _mm512_setzero_si512();
      for (int p = 0; p < 8; ++p) {
        const uint8_t* base = chunk + kQ6_KQuants + p * kQ6_KPairBytes;
        __m512i lo[T], hi[T];
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          // Quants are stored as q + 32: start from -32 * (sum of the 16 activations).
          const int32_t* ns = c.acts.nsum16 + t * nb16 + sb * 16 + 2 * p;
          lo[t] = _mm512_slli_epi32(_mm512_set1_epi32(ns[0]), 5);
          hi[t] = _mm512_slli_epi32(_mm512_set1_epi32(ns[1]), 5);
        }
        const int8_t* a = c.acts.qs + sb * 256 + p * 32;
        const __m512i plane0 = load512(base + 256), plane1 = load512(base + 320);
        MUSE_UNROLL for (int i = 0; i < 4; ++i) {
          const __m512i n = load512(base + 64 * i);
          const __m512i plane = i < 2 ? plane0 : plane1;
          const __m512i hb_lo =
              i % 2 == 0 ? _mm512_slli_epi16(plane, 4) : _mm512_slli_epi16(plane, 2);
          const __m512i hb_hi = i % 2 == 0 ? plane : _mm512_srli_epi16(plane, 2);
          // (n & 0x0f) | (hb & 0x30), and the same for the high nibbles.
          const __m512i ql =
              _mm512_ternarylogic_epi32(_mm512_and_si512(n, low4), hb_lo, bits45, 0xf8);
          const __m512i qh = _mm512_ternarylogic_epi32(
              _mm512_and_si512(_mm512_srli_epi16(n, 4), low4), hb_hi, bits45, 0xf8);
          MUSE_UNROLL for (int t = 0; t < T; ++t) {
            lo[t] = _mm512_dpbusd_epi32(lo[t], ql, bcast32(a + t * k + 4 * i));
            hi[t] = _mm512_dpbusd_epi32(hi[t], qh, bcast32(a + t * k + 16 + 4 * i));
          }
        }
        const __m512i sc_lo = _mm512_cvtepi8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(chunk + kQ6_KScales + (2 * p) * 16)));
        const __m512i sc_hi = _mm512_cvtepi8_epi32(_mm_loadu_si128(
            reinterpret_cast<const __m128i*>(chunk + kQ6_KScales + (2 * p + 1) * 16)));
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(lo[t], sc_lo));
          sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(hi[t], sc_hi));
        }
      }
      const __m512 dw = load_f16x16(chunk);
      MUSE_UNROLL for (int t = 0; t < T; ++t) {
        const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(c.acts.d[t * nb32 + sb * 8]));
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi[t]), s, acc[t]);
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(c.y + t * c.ldy, c.mask, acc[t]);
  }
};

// ---- driver: row groups x token tiles ---------------------------------------------

using TileFn = void (*)(const Tile&);

template <typename K, int... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {&K::template tile<I + 1>...};
}

// Row groups one at a time (K) or, for kernels of two groups (K2), two at a
// time with K for an odd last group; for each, the tokens in even tiles (13
// tokens with at most 12 per tile run as 7 + 6, not 12 + 1).
template <typename K, typename K2 = K>
void gemm(const GemmArgs& a) {
  static constexpr auto kTiles = tile_table<K>(std::make_integer_sequence<int, K::kMaxTokens>());
  static constexpr auto kTiles2 = tile_table<K2>(std::make_integer_sequence<int, K2::kMaxTokens>());
  const auto last_mask = static_cast<__mmask16>((1u << a.last_rows) - 1u);
  for (int64_t g = 0; g < a.n_groups;) {
    const bool pair = K2::kGroups == 2 && g + 1 < a.n_groups;
    const int64_t max_t = pair ? K2::kMaxTokens : K::kMaxTokens;
    const int64_t n_tiles = (a.n_tokens + max_t - 1) / max_t;
    Tile c;
    c.w = a.w + g * a.group_bytes;
    c.group_bytes = a.group_bytes;
    c.ldy = a.ldy;
    c.mask = g + 1 == a.n_groups ? last_mask : 0xffff;
    c.mask2 = g + 2 == a.n_groups ? last_mask : 0xffff;
    for (int64_t i = 0; i < n_tiles; ++i) {
      const int64_t t0 = a.n_tokens * i / n_tiles, t1 = a.n_tokens * (i + 1) / n_tiles;
      c.acts = offset_acts(a.acts, t0);
      c.y = a.y + t0 * a.ldy + g * kGemmGroupRows;
      (pair ? kTiles2 : kTiles)[static_cast<size_t>(t1 - t0 - 1)](c);
    }
    g += pair ? 2 : 1;
  }
}

}  // namespace

void register_gemm_avx512(KernelTable& t) {
  t.gemm[static_cast<uint32_t>(DType::F32)] = gemm<FloatKernel<WF32, 1>, FloatKernel<WF32, 2>>;
  t.gemm[static_cast<uint32_t>(DType::F16)] = gemm<FloatKernel<WF16, 1>, FloatKernel<WF16, 2>>;
  t.gemm[static_cast<uint32_t>(DType::BF16)] = gemm<FloatKernel<WBF16, 1>, FloatKernel<WBF16, 2>>;
  t.gemm[static_cast<uint32_t>(DType::Q8_0)] = gemm<Legacy32Kernel<Q8_0Format>>;
  t.gemm[static_cast<uint32_t>(DType::Q4_0)] = gemm<Legacy32Kernel<Q4_0Format>>;
  t.gemm[static_cast<uint32_t>(DType::Q4_1)] = gemm<Legacy32Kernel<Q4_1Format>>;
  t.gemm[static_cast<uint32_t>(DType::Q5_0)] = gemm<Legacy32Kernel<Q5_0Format>>;
  t.gemm[static_cast<uint32_t>(DType::Q5_1)] = gemm<Legacy32Kernel<Q5_1Format>>;
  t.gemm[static_cast<uint32_t>(DType::Q2_K)] = gemm<Low2Kernel<DType::Q2_K>>;
  t.gemm[static_cast<uint32_t>(DType::Q3_K)] = gemm<Low2Kernel<DType::Q3_K>>;
  t.gemm[static_cast<uint32_t>(DType::Q4_K)] = gemm<KMinKernel<kQ4_KChunk>>;
  t.gemm[static_cast<uint32_t>(DType::Q5_K)] = gemm<KMinKernel<kQ5_KChunk>>;
  t.gemm[static_cast<uint32_t>(DType::Q6_K)] = gemm<Q6KKernel>;
}

}  // namespace muse::kernels
