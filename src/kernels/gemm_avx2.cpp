// AVX2 + FMA + F16C kernels for the packed GEMM (layouts in gemm.h).
//
// A 256-bit register holds 8 rows, so a 16-row group is two halves (bytes 0-31
// and 32-63 of every 64-byte quad); a tile is one half x T tokens, or both
// halves for the float and Q4_0/Q4_1 kernels and Q8_0's of 1-3 tokens
// (kBothHalves). Without VNNI the integer products go through maddubs (u8 x s8
// -> pairs summed in int16): the small unsigned quants (Q4: 0..15, Q5: 0..31)
// let several quads add up in int16 before one madd widens them to int32; Q8_0's
// full-range bytes take the sign trick (|w| x a with w's sign moved onto a) and
// widen every quad. Block scales, offsets and sub-block scales are applied as in
// the AVX-512 kernels.
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

#define MUSE_UNROLL _Pragma("GCC unroll 16")

struct Tile {
  const uint8_t* w;  // the row group
  int half;          // rows 0-7 or 8-15
  GemmActs acts;     // at the tile's first token
  float* y;          // output of the first token, first row of the half
  int64_t ldy;
  int rows;  // rows to store: of this half (<= 8), or of the group (<= 16) if kBothHalves
};

inline __m256i bcast32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
inline __m256i load256(const uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline __m256 load_f16x8(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256i widen_pairs(__m256i pairs16) {  // int16 pairs -> int32 sums
  return _mm256_madd_epi16(pairs16, _mm256_set1_epi16(1));
}

// The hardware prefetchers alone do not keep the weights streaming from memory
// at the bandwidth: fetch the block kAhead ahead. With one token (decoding) the
// tile reads each byte once, so it is fetched non-temporal (not kept in L3 for
// the other core's attention caches and activations). One-sequence decode, Zen 3,
// alternating with the old binary: Q4_0 1.14-1.30x, Q8_0 0.98-1.21x, Q4_K_M
// 1.02-1.21x. Tiles of several tokens read the block's bytes T times.
template <int T, size_t kChunk, size_t kAhead = 2048>
inline void prefetch_ahead(const uint8_t* chunk) {
  for (size_t line = 0; line < kChunk; line += 64)
    _mm_prefetch(reinterpret_cast<const char*>(chunk + kAhead + line),
                 T >= 2 ? _MM_HINT_T0 : _MM_HINT_NTA);
}

inline void store_rows(float* y, __m256 v, int rows) {
  if (rows == 8) {
    _mm256_storeu_ps(y, v);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, v);
  for (int r = 0; r < rows; ++r) y[r] = tmp[r];
}

// Stores token t's sums of both halves of a group (kBothHalves kernels).
inline void store_group(const Tile& c, int t, __m256 lo, __m256 hi) {
  store_rows(c.y + t * c.ldy, lo, c.rows < 8 ? c.rows : 8);
  if (c.rows > 8) store_rows(c.y + t * c.ldy + 8, hi, c.rows - 8);
}
template <int T>
inline void store_group(const Tile& c, const float (*acc)[T][8]) {
  MUSE_UNROLL for (int t = 0; t < T; ++t)
      store_group(c, t, _mm256_load_ps(acc[0][t]), _mm256_load_ps(acc[1][t]));
}

// ---- float weights -------------------------------------------------------------------

struct WF32 {
  static __m256 load(const uint8_t* w, int64_t k, int half) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + k * 16 + half * 8);
  }
};
struct WF16 {
  static __m256 load(const uint8_t* w, int64_t k, int half) {
    return load_f16x8(w + k * 32 + half * 16);
  }
};
struct WBF16 {
  static __m256 load(const uint8_t* w, int64_t k, int half) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + k * 32 + half * 16));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};

// Both halves of the group (16 rows) x T tokens: per column two weight vectors
// and T broadcast activations feed 2T FMAs (12 accumulators at T = 6).
template <typename W>
struct FloatKernel {
  static constexpr int kMaxTokens = 6;
  static constexpr bool kBothHalves = true;
  template <int T>
  static void tile(const Tile& c) {
    constexpr int U = T >= 2 ? 1 : 2;
    const int64_t k = c.acts.k;
    const float* x[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) x[t] = c.acts.x + t * k;
    __m256 acc[U][2][T];
    MUSE_UNROLL for (int u = 0; u < U; ++u) MUSE_UNROLL for (int h = 0; h < 2; ++h)
        MUSE_UNROLL for (int t = 0; t < T; ++t) acc[u][h][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + U <= k; i += U) {
      MUSE_UNROLL for (int u = 0; u < U; ++u) {
        const __m256 w0 = W::load(c.w, i + u, 0), w1 = W::load(c.w, i + u, 1);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const __m256 xb = _mm256_broadcast_ss(x[t] + i + u);
          acc[u][0][t] = _mm256_fmadd_ps(w0, xb, acc[u][0][t]);
          acc[u][1][t] = _mm256_fmadd_ps(w1, xb, acc[u][1][t]);
        }
      }
    }
    for (; i < k; ++i) {
      const __m256 w0 = W::load(c.w, i, 0), w1 = W::load(c.w, i, 1);
      MUSE_UNROLL for (int t = 0; t < T; ++t) {
        const __m256 xb = _mm256_broadcast_ss(x[t] + i);
        acc[0][0][t] = _mm256_fmadd_ps(w0, xb, acc[0][0][t]);
        acc[0][1][t] = _mm256_fmadd_ps(w1, xb, acc[0][1][t]);
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) {
      __m256 s0 = acc[0][0][t], s1 = acc[0][1][t];
      MUSE_UNROLL for (int u = 1; u < U; ++u) {
        s0 = _mm256_add_ps(s0, acc[u][0][t]);
        s1 = _mm256_add_ps(s1, acc[u][1][t]);
      }
      store_group(c, t, s0, s1);
    }
  }
};

// ---- legacy 32-blocks ----------------------------------------------------------------

// Finishes a block: isum (int32) -> acc += isum * dw * da.
inline __m256 scale_block(__m256i isum, __m256 dw, float da, __m256 acc) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc);
}
inline __m256i offset_init(int32_t nsum, int shift) {
  return _mm256_set1_epi32(nsum * (1 << shift));
}

// Adds the _1 types' min term: m * da * (activation sum) = - m * (da * nsum).
template <size_t kMins>
inline __m256 add_mins(int half, const uint8_t* chunk, float da, int32_t nsum, __m256 acc) {
  if constexpr (kMins == 0) return acc;
  return _mm256_fnmadd_ps(load_f16x8(chunk + kMins + 16 * half),
                          _mm256_set1_ps(da * static_cast<float>(nsum)), acc);
}

// Q4_0 (kMins = 0: quants stored as q + 8) and Q4_1 (x = d q + m). Both halves
// of the group at once, so each broadcast activation quad feeds two maddubs
// (on Zen 3: 1.15-1.2x for 8 tokens, 1.2-1.4x for one, kernel alone). The 2 x T
// int16 sums take the registers; the float sums live in memory (L1).
template <size_t kMins>
struct Q4Kernel {
  static constexpr int kMaxTokens = 4;
  static constexpr bool kBothHalves = true;
  static constexpr size_t kChunk = kMins == 0 ? kQ4_0Chunk : kQ4_1Chunk;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nb = k / 32;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    alignas(32) float acc[2][T][8] = {};
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* chunk = c.w + b * kChunk;
      prefetch_ahead<T, kChunk>(chunk);
      // Q4_0's sums start at its offset (GemmActs::q4_offset), so the epilogue
      // has none to add: 2-4% faster for 4-8 tokens, measured with both kernels
      // called in turn. A lane may wrap on the way (vpaddw wraps) but ends at
      // the sum of 16 products (q - 8) a, within 16 x 8 x 128.
      __m256i s16[2][T];
      MUSE_UNROLL for (int h = 0; h < 2; ++h) MUSE_UNROLL for (int t = 0; t < T; ++t) s16[h][t] =
          kMins == 0 ? _mm256_set1_epi32(c.acts.q4_offset[t * nb + b]) : _mm256_setzero_si256();
      // Quads j (low nibbles) and j + 4 (high nibbles); 8 quads of |q a| <= 3810
      // per int16 pair stay below 2^15 (Q4_1). Kept rolled: unrolled, GCC hoists the
      // weight vectors and spills the sums (AVX2 has 16 registers) to the stack.
      _Pragma("GCC unroll 1") for (int j = 0; j < 4; ++j) {
        const __m256i p0 = load256(chunk + 32 + 64 * j), p1 = load256(chunk + 64 + 64 * j);
        const __m256i lo0 = _mm256_and_si256(p0, low4), lo1 = _mm256_and_si256(p1, low4);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const __m256i a = bcast32(c.acts.qs + t * k + 32 * b + 4 * j);
          s16[0][t] = _mm256_add_epi16(s16[0][t], _mm256_maddubs_epi16(lo0, a));
          s16[1][t] = _mm256_add_epi16(s16[1][t], _mm256_maddubs_epi16(lo1, a));
        }
        // Keeps GCC from adding the low and high products first (reassociation),
        // which needs 8 more registers and spills the sums.
        MUSE_UNROLL for (int h = 0; h < 2; ++h)
            MUSE_UNROLL for (int t = 0; t < T; ++t) asm("" : "+x"(s16[h][t]));
        const __m256i hi0 = _mm256_and_si256(_mm256_srli_epi16(p0, 4), low4);
        const __m256i hi1 = _mm256_and_si256(_mm256_srli_epi16(p1, 4), low4);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const __m256i a = bcast32(c.acts.qs + t * k + 32 * b + 16 + 4 * j);
          s16[0][t] = _mm256_add_epi16(s16[0][t], _mm256_maddubs_epi16(hi0, a));
          s16[1][t] = _mm256_add_epi16(s16[1][t], _mm256_maddubs_epi16(hi1, a));
        }
      }
      MUSE_UNROLL for (int h = 0; h < 2; ++h) {
        const __m256 dw = load_f16x8(chunk + 16 * h);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const int32_t nsum = c.acts.nsum32[t * nb + b];
          const float da = c.acts.d[t * nb + b];
          const __m256i isum = widen_pairs(s16[h][t]);
          _mm256_store_ps(acc[h][t],
                          add_mins<kMins>(h, chunk, da, nsum,
                                          scale_block(isum, dw, da, _mm256_load_ps(acc[h][t]))));
        }
      }
    }
    store_group<T>(c, acc);
  }
};

// Q5_0 (kMins = 0: quants stored as q + 16) and Q5_1 (x = d q + m).
template <size_t kMins>
struct Q5Kernel {
  static constexpr int kMaxTokens = 4;
  static constexpr size_t kChunk = kMins == 0 ? kQ5_0Chunk : kQ5_1Chunk;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nb = k / 32;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* chunk = c.w + b * kChunk;
      prefetch_ahead<T, kChunk>(chunk);
      const __m256i plane = load256(chunk + kQ5_0Planes + 32 * c.half);
      __m256i s32[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) s32[t] =
          kMins == 0 ? offset_init(c.acts.nsum32[t * nb + b], 4) : _mm256_setzero_si256();
      // Quants up to 31: two quad pairs (4 quads) per int16 sum, then widen.
      MUSE_UNROLL for (int jj = 0; jj < 4; jj += 2) {
        __m256i s16[T];
        MUSE_UNROLL for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
        MUSE_UNROLL for (int j = jj; j < jj + 2; ++j) {
          const __m256i p = load256(chunk + 32 + 64 * j + 32 * c.half);
          const __m256i lo = _mm256_or_si256(
              _mm256_and_si256(p, low4), _mm256_and_si256(_mm256_slli_epi16(plane, 4 - j), bit4));
          const __m256i hb = j == 0 ? plane : _mm256_srli_epi16(plane, j);
          const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(p, 4), low4),
                                             _mm256_and_si256(hb, bit4));
          MUSE_UNROLL for (int t = 0; t < T; ++t) {
            const int8_t* a = c.acts.qs + t * k + 32 * b;
            s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, bcast32(a + 4 * j)));
            s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, bcast32(a + 16 + 4 * j)));
          }
        }
        MUSE_UNROLL for (int t = 0; t < T; ++t) s32[t] =
            _mm256_add_epi32(s32[t], widen_pairs(s16[t]));
      }
      const __m256 dw = load_f16x8(chunk + 16 * c.half);
      MUSE_UNROLL for (int t = 0; t < T; ++t) {
        const float da = c.acts.d[t * nb + b];
        acc[t] = add_mins<kMins>(c.half, chunk, da, c.acts.nsum32[t * nb + b],
                                 scale_block(s32[t], dw, da, acc[t]));
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) store_rows(c.y + t * c.ldy, acc[t], c.rows);
  }
};

// One half's Q8_0 quads (8 rows x 4 columns) with their stored bias flipped
// back to signed, and their magnitudes for the sign trick.
struct Q8Quads {
  __m256i w, abs_w;
};
inline Q8Quads q8_quads(const uint8_t* p) {
  const __m256i w = _mm256_xor_si256(load256(p), _mm256_set1_epi8(static_cast<char>(0x80)));
  return {w, _mm256_sign_epi8(w, w)};
}
// w x a per row as int32 (|w| x a with w's sign, which no int16 pair saturates).
inline __m256i q8_products(const Q8Quads& q, __m256i a) {
  return widen_pairs(_mm256_maddubs_epi16(q.abs_w, _mm256_sign_epi8(a, q.w)));
}

// Both halves at once, as Q4Kernel (3 tokens: at 4, GCC spills the sums).
struct Q8_0Kernel {
  static constexpr int kMaxTokens = 3;
  static constexpr bool kBothHalves = true;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nb = k / 32;
    alignas(32) float acc[2][T][8] = {};
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* chunk = c.w + b * kQ8_0Chunk;
      prefetch_ahead<T, kQ8_0Chunk>(chunk);
      __m256i s32[2][T];
      MUSE_UNROLL for (int h = 0; h < 2; ++h) MUSE_UNROLL for (int t = 0; t < T; ++t) s32[h][t] =
          _mm256_setzero_si256();
      _Pragma("GCC unroll 1") for (int j = 0; j < 8; ++j) {
        const Q8Quads q0 = q8_quads(chunk + 32 + 64 * j), q1 = q8_quads(chunk + 64 + 64 * j);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const __m256i a = bcast32(c.acts.qs + t * k + 32 * b + 4 * j);
          s32[0][t] = _mm256_add_epi32(s32[0][t], q8_products(q0, a));
          s32[1][t] = _mm256_add_epi32(s32[1][t], q8_products(q1, a));
        }
      }
      MUSE_UNROLL for (int h = 0; h < 2; ++h) {
        const __m256 dw = load_f16x8(chunk + 16 * h);
        MUSE_UNROLL for (int t = 0; t < T; ++t) _mm256_store_ps(
            acc[h][t], scale_block(s32[h][t], dw, c.acts.d[t * nb + b], _mm256_load_ps(acc[h][t])));
      }
    }
    store_group<T>(c, acc);
  }
};

// One 8-row half x up to 8 tokens, for 4 or more tokens: |w| is taken once per
// weight vector for all the tile's tokens, where Q8_0Kernel takes it once per 3
// tokens and half. With the two kernels called in turn (bench/gemm_ab, one
// thread): 8 tokens 1.07-1.19x, 16 and 64 tokens 1.07-1.13x, 4 tokens 1.0x;
// 1 and 3 tokens 0.78-0.89x, so those keep Q8_0Kernel (gemm_q8_0).
struct Q8_0HalfKernel {
  static constexpr int kMaxTokens = 8;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nb = k / 32;
    alignas(32) float acc[T][8] = {};
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* chunk = c.w + b * kQ8_0Chunk;
      prefetch_ahead<T, kQ8_0Chunk>(chunk);
      __m256i s32[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) s32[t] = _mm256_setzero_si256();
      _Pragma("GCC unroll 1") for (int j = 0; j < 8; ++j) {
        const Q8Quads q = q8_quads(chunk + 32 + 64 * j + 32 * c.half);
        MUSE_UNROLL for (int t = 0; t < T; ++t) s32[t] =
            _mm256_add_epi32(s32[t], q8_products(q, bcast32(c.acts.qs + t * k + 32 * b + 4 * j)));
        MUSE_UNROLL for (int t = 0; t < T; ++t) asm("" : "+x"(s32[t]));  // as in Q4Kernel
      }
      const __m256 dw = load_f16x8(chunk + 16 * c.half);
      MUSE_UNROLL for (int t = 0; t < T; ++t) _mm256_store_ps(
          acc[t], scale_block(s32[t], dw, c.acts.d[t * nb + b], _mm256_load_ps(acc[t])));
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t)
        store_rows(c.y + t * c.ldy, _mm256_load_ps(acc[t]), c.rows);
  }
};

// ---- k-quants --------------------------------------------------------------------------

inline __m256i load_u8x8_epi32(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
inline __m256i load_s8x8_epi32(const uint8_t* p) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

// Q4_K, and Q5_K (kChunk = kQ5_KChunk) with the fifth bits from its planes.
template <size_t kChunk>
struct KMinKernel {
  static constexpr int kMaxTokens = 2;
  static constexpr bool kFifth = kChunk == kQ5_KChunk;
  // |q a| pairs stay below 2^15 for 8 quads of 4-bit quants, 4 of 5-bit ones.
  static constexpr int kQuadsPerSum = kFifth ? 4 : 8;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nsb = k / 256, nb32 = k / 32;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = c.w + sb * kChunk;
      prefetch_ahead<T, kChunk, 2 * kChunk>(chunk);
      __m256i sumi[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
      for (int ch = 0; ch < 4; ++ch) {
        __m256i lo[T], hi[T];
        MUSE_UNROLL for (int t = 0; t < T; ++t) lo[t] = hi[t] = _mm256_setzero_si256();
        const uint8_t* quads = chunk + kQ4_KQuants + ch * 8 * 64 + 32 * c.half;
        const int8_t* a = c.acts.qs + sb * 256 + ch * 64;
        __m256i plane_lo = _mm256_setzero_si256(), plane_hi = plane_lo;
        if constexpr (kFifth) {
          plane_lo = load256(chunk + kQ5_KPlanes + (2 * ch) * 64 + 32 * c.half);
          plane_hi = load256(chunk + kQ5_KPlanes + (2 * ch + 1) * 64 + 32 * c.half);
        }
        MUSE_UNROLL for (int jj = 0; jj < 8; jj += kQuadsPerSum) {
          __m256i l16[T], h16[T];
          MUSE_UNROLL for (int t = 0; t < T; ++t) l16[t] = h16[t] = _mm256_setzero_si256();
          MUSE_UNROLL for (int j = jj; j < jj + kQuadsPerSum; ++j) {
            const __m256i p = load256(quads + 64 * j);
            __m256i ql = _mm256_and_si256(p, low4);
            __m256i qh = _mm256_and_si256(_mm256_srli_epi16(p, 4), low4);
            if constexpr (kFifth) {  // bit j of each plane byte becomes 0x10
              const __m256i bl =
                  j <= 4 ? _mm256_slli_epi16(plane_lo, 4 - j) : _mm256_srli_epi16(plane_lo, j - 4);
              const __m256i bh =
                  j <= 4 ? _mm256_slli_epi16(plane_hi, 4 - j) : _mm256_srli_epi16(plane_hi, j - 4);
              ql = _mm256_or_si256(ql, _mm256_and_si256(bl, bit4));
              qh = _mm256_or_si256(qh, _mm256_and_si256(bh, bit4));
            }
            MUSE_UNROLL for (int t = 0; t < T; ++t) {
              l16[t] =
                  _mm256_add_epi16(l16[t], _mm256_maddubs_epi16(ql, bcast32(a + t * k + 4 * j)));
              h16[t] = _mm256_add_epi16(h16[t],
                                        _mm256_maddubs_epi16(qh, bcast32(a + t * k + 32 + 4 * j)));
            }
          }
          MUSE_UNROLL for (int t = 0; t < T; ++t) {
            lo[t] = _mm256_add_epi32(lo[t], widen_pairs(l16[t]));
            hi[t] = _mm256_add_epi32(hi[t], widen_pairs(h16[t]));
          }
        }
        const __m256i sc_lo = load_u8x8_epi32(chunk + kQ4_KScales + (2 * ch) * 16 + 8 * c.half);
        const __m256i sc_hi = load_u8x8_epi32(chunk + kQ4_KScales + (2 * ch + 1) * 16 + 8 * c.half);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_mullo_epi32(lo[t], sc_lo));
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_mullo_epi32(hi[t], sc_hi));
        }
      }
      const __m256 dw = load_f16x8(chunk + kQ4_KD + 16 * c.half);
      const __m256 dmin = load_f16x8(chunk + kQ4_KDmin + 16 * c.half);
      MUSE_UNROLL for (int t = 0; t < T; ++t) {
        __m256i summ = _mm256_setzero_si256();
        const int16_t* sums = c.acts.sum32 + t * nb32 + sb * 8;
        MUSE_UNROLL for (int p = 0; p < 4; ++p) {
          int32_t pair;
          std::memcpy(&pair, sums + 2 * p, 4);
          summ = _mm256_add_epi32(
              summ, _mm256_madd_epi16(load256(chunk + kQ4_KMins + p * 64 + 32 * c.half),
                                      _mm256_set1_epi32(pair)));
        }
        const __m256 v = _mm256_fmsub_ps(dw, _mm256_cvtepi32_ps(sumi[t]),
                                         _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(summ)));
        acc[t] = _mm256_fmadd_ps(v, _mm256_set1_ps(c.acts.d[t * nb32 + sb * 8]), acc[t]);
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) store_rows(c.y + t * c.ldy, acc[t], c.rows);
  }
};

// Q2_K and Q3_K (see the AVX-512 kernel): a sub-block's 4 quads sum in int16
// (|q a| pairs <= 1778), and one madd with the row's scale in both int16 halves
// widens and scales them at once; Q3_K's -4 offset rides in the low halves.
template <DType kType>
struct Low2Kernel {
  static constexpr int kMaxTokens = 2;
  static constexpr bool kQ3 = kType == DType::Q3_K;
  static constexpr size_t kChunk = kQ3 ? kQ3_KChunk : kQ2_KChunk;
  static constexpr size_t kQuants = kQ3 ? kQ3_KQuants : kQ2_KQuants;
  static constexpr size_t kScales = kQ3 ? kQ3_KScales : kQ2_KScales;
  static __m256i scales8(const uint8_t* p) {  // 8 rows' bytes as int32
    return kQ3 ? load_s8x8_epi32(p) : load_u8x8_epi32(p);
  }
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nsb = k / 256, nb32 = k / 32, nb16 = k / 16;
    const __m256i three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    const __m256i low16 = _mm256_set1_epi32(0xffff);
    __m256 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = c.w + sb * kChunk;
      prefetch_ahead<T, kChunk, 2 * kChunk>(chunk);
      __m256i sumi[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
      for (int jp = 0; jp < 16; jp += 2) {
        const __m256i plane =
            kQ3 ? load256(chunk + kQ3_KHigh + (jp / 2) * 64 + 32 * c.half) : three;
        MUSE_UNROLL for (int h = 0; h < 2; ++h) {
          const int j = jp + h;
          const __m256i g = load256(chunk + kQuants + 64 * j + 32 * c.half);
          const int8_t* a = c.acts.qs + sb * 256 + 16 * j;
          __m256i s16[T];
          MUSE_UNROLL for (int t = 0; t < T; ++t) s16[t] =
              kQ3 ? _mm256_set1_epi32(
                        static_cast<uint16_t>(4 * c.acts.nsum16[t * nb16 + sb * 16 + j]))
                  : _mm256_setzero_si256();
          MUSE_UNROLL for (int s = 0; s < 4; ++s) {
            __m256i q = _mm256_and_si256(s == 0 ? g : _mm256_srli_epi16(g, 2 * s), three);
            if constexpr (kQ3) {  // bit s + 4h of the plane byte becomes 4
              const int shift = s + 4 * h - 2;
              const __m256i hb =
                  shift >= 0 ? _mm256_srli_epi16(plane, shift) : _mm256_slli_epi16(plane, -shift);
              q = _mm256_or_si256(q, _mm256_and_si256(hb, four));
            }
            MUSE_UNROLL for (int t = 0; t < T; ++t) s16[t] =
                _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(q, bcast32(a + t * k + 4 * s)));
          }
          __m256i sc = scales8(chunk + kScales + j * 16 + 8 * c.half);
          if constexpr (!kQ3) sc = _mm256_and_si256(sc, _mm256_set1_epi32(15));
          const __m256i sc16 =
              _mm256_or_si256(_mm256_and_si256(sc, low16), _mm256_slli_epi32(sc, 16));
          MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] =
              _mm256_add_epi32(sumi[t], _mm256_madd_epi16(s16[t], sc16));
        }
      }
      const __m256 dw = load_f16x8(chunk + 16 * c.half);
      if constexpr (kQ3) {
        MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] =
            scale_block(sumi[t], dw, c.acts.d[t * nb32 + sb * 8], acc[t]);
      } else {
        const __m256 dmin = load_f16x8(chunk + kQ2_KDmin + 16 * c.half);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const int32_t* ns = c.acts.nsum16 + t * nb16 + sb * 16;
          __m256i summ = _mm256_setzero_si256();
          MUSE_UNROLL for (int p = 0; p < 8; ++p) {
            const __m256i m0 =
                _mm256_srli_epi32(scales8(chunk + kScales + (2 * p) * 16 + 8 * c.half), 4);
            const __m256i m1 =
                _mm256_srli_epi32(scales8(chunk + kScales + (2 * p + 1) * 16 + 8 * c.half), 4);
            const auto pair = static_cast<int32_t>(static_cast<uint16_t>(-ns[2 * p]) |
                                                   (static_cast<uint32_t>(-ns[2 * p + 1]) << 16));
            summ = _mm256_add_epi32(
                summ, _mm256_madd_epi16(_mm256_or_si256(m0, _mm256_slli_epi32(m1, 16)),
                                        _mm256_set1_epi32(pair)));
          }
          const __m256 v = _mm256_fmsub_ps(dw, _mm256_cvtepi32_ps(sumi[t]),
                                           _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(summ)));
          acc[t] = _mm256_fmadd_ps(v, _mm256_set1_ps(c.acts.d[t * nb32 + sb * 8]), acc[t]);
        }
      }
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) store_rows(c.y + t * c.ldy, acc[t], c.rows);
  }
};

struct Q6KKernel {
  static constexpr int kMaxTokens = 2;
  template <int T>
  static void tile(const Tile& c) {
    const int64_t k = c.acts.k, nsb = k / 256, nb32 = k / 32, nb16 = k / 16;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    __m256 acc[T];
    MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = c.w + sb * kQ6_KChunk;
      prefetch_ahead<T, kQ6_KChunk, 2 * kQ6_KChunk>(chunk);
      __m256i sumi[T];
      MUSE_UNROLL for (int t = 0; t < T; ++t) sumi[t] = _mm256_setzero_si256();
      for (int p = 0; p < 8; ++p) {
        const uint8_t* base = chunk + kQ6_KQuants + p * kQ6_KPairBytes + 32 * c.half;
        const int8_t* a = c.acts.qs + sb * 256 + p * 32;
        __m256i lo[T], hi[T];
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          const int32_t* ns = c.acts.nsum16 + t * nb16 + sb * 16 + 2 * p;
          lo[t] = offset_init(ns[0], 5);
          hi[t] = offset_init(ns[1], 5);
        }
        // Quants up to 63: two quads per int16 sum.
        MUSE_UNROLL for (int ii = 0; ii < 4; ii += 2) {
          const __m256i plane = load256(base + 256 + (ii / 2) * 64);
          __m256i l16[T], h16[T];
          MUSE_UNROLL for (int t = 0; t < T; ++t) l16[t] = h16[t] = _mm256_setzero_si256();
          MUSE_UNROLL for (int i = ii; i < ii + 2; ++i) {
            const __m256i n = load256(base + 64 * i);
            const __m256i hb_lo =
                i % 2 == 0 ? _mm256_slli_epi16(plane, 4) : _mm256_slli_epi16(plane, 2);
            const __m256i hb_hi = i % 2 == 0 ? plane : _mm256_srli_epi16(plane, 2);
            const __m256i ql =
                _mm256_or_si256(_mm256_and_si256(n, low4), _mm256_and_si256(hb_lo, bits45));
            const __m256i qh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(n, 4), low4),
                                               _mm256_and_si256(hb_hi, bits45));
            MUSE_UNROLL for (int t = 0; t < T; ++t) {
              l16[t] =
                  _mm256_add_epi16(l16[t], _mm256_maddubs_epi16(ql, bcast32(a + t * k + 4 * i)));
              h16[t] = _mm256_add_epi16(h16[t],
                                        _mm256_maddubs_epi16(qh, bcast32(a + t * k + 16 + 4 * i)));
            }
          }
          MUSE_UNROLL for (int t = 0; t < T; ++t) {
            lo[t] = _mm256_add_epi32(lo[t], widen_pairs(l16[t]));
            hi[t] = _mm256_add_epi32(hi[t], widen_pairs(h16[t]));
          }
        }
        const __m256i sc_lo = load_s8x8_epi32(chunk + kQ6_KScales + (2 * p) * 16 + 8 * c.half);
        const __m256i sc_hi = load_s8x8_epi32(chunk + kQ6_KScales + (2 * p + 1) * 16 + 8 * c.half);
        MUSE_UNROLL for (int t = 0; t < T; ++t) {
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_mullo_epi32(lo[t], sc_lo));
          sumi[t] = _mm256_add_epi32(sumi[t], _mm256_mullo_epi32(hi[t], sc_hi));
        }
      }
      const __m256 dw = load_f16x8(chunk + 16 * c.half);
      MUSE_UNROLL for (int t = 0; t < T; ++t) acc[t] =
          scale_block(sumi[t], dw, c.acts.d[t * nb32 + sb * 8], acc[t]);
    }
    MUSE_UNROLL for (int t = 0; t < T; ++t) store_rows(c.y + t * c.ldy, acc[t], c.rows);
  }
};

// ---- driver ------------------------------------------------------------------------------

using TileFn = void (*)(const Tile&);

template <typename K, int... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {&K::template tile<I + 1>...};
}

template <typename K>
constexpr bool both_halves() {
  if constexpr (requires { K::kBothHalves; }) {
    return K::kBothHalves;
  } else {
    return false;
  }
}

// Each row group one half at a time (or both at once for kernels that take
// both), the tokens in even tiles.
template <typename K>
void gemm(const GemmArgs& a) {
  static constexpr auto kTiles = tile_table<K>(std::make_integer_sequence<int, K::kMaxTokens>());
  constexpr int64_t kMax = K::kMaxTokens;
  const int64_t n_tiles = (a.n_tokens + kMax - 1) / kMax;
  for (int64_t g = 0; g < a.n_groups; ++g) {
    const int valid = g + 1 == a.n_groups ? a.last_rows : 16;
    Tile c;
    c.w = a.w + g * a.group_bytes;
    c.ldy = a.ldy;
    const int halves = both_halves<K>() ? 1 : 2;
    for (int half = 0; half < halves && 8 * half < valid; ++half) {
      c.half = half;
      c.rows = both_halves<K>() ? valid : (valid - 8 * half < 8 ? valid - 8 * half : 8);
      for (int64_t i = 0; i < n_tiles; ++i) {
        const int64_t t0 = a.n_tokens * i / n_tiles, t1 = a.n_tokens * (i + 1) / n_tiles;
        c.acts = offset_acts(a.acts, t0);
        c.y = a.y + t0 * a.ldy + g * kGemmGroupRows + 8 * half;
        kTiles[static_cast<size_t>(t1 - t0 - 1)](c);
      }
    }
  }
}

// Q8_0: both halves x up to 3 tokens for 1-3 tokens, one half x up to 8 beyond.
void gemm_q8_0(const GemmArgs& a) {
  if (a.n_tokens <= Q8_0Kernel::kMaxTokens) return gemm<Q8_0Kernel>(a);
  gemm<Q8_0HalfKernel>(a);
}

}  // namespace

void register_gemm_avx2(KernelTable& t) {
  t.gemm[static_cast<uint32_t>(DType::F32)] = gemm<FloatKernel<WF32>>;
  t.gemm[static_cast<uint32_t>(DType::F16)] = gemm<FloatKernel<WF16>>;
  t.gemm[static_cast<uint32_t>(DType::BF16)] = gemm<FloatKernel<WBF16>>;
  t.gemm[static_cast<uint32_t>(DType::Q8_0)] = gemm_q8_0;
  t.gemm[static_cast<uint32_t>(DType::Q4_0)] = gemm<Q4Kernel<0>>;
  t.gemm[static_cast<uint32_t>(DType::Q4_1)] = gemm<Q4Kernel<kQ4_1Mins>>;
  t.gemm[static_cast<uint32_t>(DType::Q5_0)] = gemm<Q5Kernel<0>>;
  t.gemm[static_cast<uint32_t>(DType::Q5_1)] = gemm<Q5Kernel<kQ5_1Mins>>;
  t.gemm[static_cast<uint32_t>(DType::Q2_K)] = gemm<Low2Kernel<DType::Q2_K>>;
  t.gemm[static_cast<uint32_t>(DType::Q3_K)] = gemm<Low2Kernel<DType::Q3_K>>;
  t.gemm[static_cast<uint32_t>(DType::Q4_K)] = gemm<KMinKernel<kQ4_KChunk>>;
  t.gemm[static_cast<uint32_t>(DType::Q5_K)] = gemm<KMinKernel<kQ5_KChunk>>;
  t.gemm[static_cast<uint32_t>(DType::Q6_K)] = gemm<Q6KKernel>;
}

}  // namespace muse::kernels
