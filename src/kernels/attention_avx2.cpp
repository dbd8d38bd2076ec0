// AVX2 flash-style attention (layout and contract in attention.h; the structure
// follows attention_avx512.cpp with 8-lane registers): tiles of up to 4 query
// rows, blocks of 64 positions, scores 16 positions (two registers) at a time,
// online softmax, and the value accumulation 16 dimensions x all rows at a time.
#include <immintrin.h>

#include <array>
#include <utility>

#include "kernels/attention.h"
#include "kernels/kernel_table.h"
#include "kernels/simd_avx2.h"

namespace muse::kernels {
namespace {

#define MUSE_UNROLL _Pragma("GCC unroll 16")

constexpr int kMaxRows = 4;
constexpr int kBlock = 64;
constexpr int kMaxDim = 256;

// Loads 8 cache elements as f32.
struct F32Elems {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};
struct F16Elems {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
};

template <typename E, int R>
void tile(const AttnKv& kv, const AttnRow* rows, float scale) {
  using T = typename E::T;
  const T* kc = static_cast<const T*>(kv.k);
  const T* vc = static_cast<const T*>(kv.v);
  const int64_t hd = kv.head_dim;
  alignas(32) float o[R][kMaxDim];
  alignas(32) float s[R][kBlock];
  float m[R], l[R], corr[R];
  int32_t lo = rows[0].lo, hi = rows[0].hi;
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    m[r] = -__builtin_inff();
    l[r] = 0.0f;
    lo = rows[r].lo < lo ? rows[r].lo : lo;
    hi = rows[r].hi > hi ? rows[r].hi : hi;
    for (int64_t d = 0; d < hd; d += 8) _mm256_store_ps(&o[r][d], _mm256_setzero_ps());
  }
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int32_t p0 = lo & ~15; p0 <= hi; p0 += kBlock) {
    const int32_t p1 = p0 + kBlock - 1 < hi ? p0 + kBlock : hi + 1;
    const int n_sub = (p1 - p0 + 15) / 16;
    for (int sub = 0; sub < n_sub; ++sub) {
      const T* kb = kc + (p0 / 16 + sub) * hd * 16;
      __m256 a0[R], a1[R];
      MUSE_UNROLL for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
      for (int64_t d = 0; d < hd; ++d) {
        const __m256 k0 = E::load(kb + d * 16), k1 = E::load(kb + d * 16 + 8);
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          const __m256 q = _mm256_broadcast_ss(rows[r].q + d);
          a0[r] = _mm256_fmadd_ps(q, k0, a0[r]);
          a1[r] = _mm256_fmadd_ps(q, k1, a1[r]);
        }
      }
      const int32_t base = p0 + 16 * sub;
      const __m256i pos0 = _mm256_add_epi32(_mm256_set1_epi32(base), lane);
      const __m256i pos1 = _mm256_add_epi32(_mm256_set1_epi32(base + 8), lane);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m256i lo_m1 = _mm256_set1_epi32(rows[r].lo - 1),
                      hi_p1 = _mm256_set1_epi32(rows[r].hi + 1);
        const __m256i vis0 =
            _mm256_and_si256(_mm256_cmpgt_epi32(pos0, lo_m1), _mm256_cmpgt_epi32(hi_p1, pos0));
        const __m256i vis1 =
            _mm256_and_si256(_mm256_cmpgt_epi32(pos1, lo_m1), _mm256_cmpgt_epi32(hi_p1, pos1));
        _mm256_store_ps(&s[r][16 * sub], _mm256_blendv_ps(neg_inf, _mm256_mul_ps(a0[r], vscale),
                                                          _mm256_castsi256_ps(vis0)));
        _mm256_store_ps(&s[r][16 * sub + 8], _mm256_blendv_ps(neg_inf, _mm256_mul_ps(a1[r], vscale),
                                                              _mm256_castsi256_ps(vis1)));
      }
    }
    MUSE_UNROLL for (int r = 0; r < R; ++r) {
      __m256 mx = neg_inf;
      for (int i = 0; i < n_sub * 16; i += 8) mx = _mm256_max_ps(mx, _mm256_load_ps(&s[r][i]));
      const float block_max = avx2::hmax(mx);
      const float new_max = block_max > m[r] ? block_max : m[r];
      if (new_max == -__builtin_inff()) {
        corr[r] = 1.0f;
        for (int i = 0; i < n_sub * 16; i += 8) _mm256_store_ps(&s[r][i], _mm256_setzero_ps());
        continue;
      }
      const __m256 vmax = _mm256_set1_ps(new_max);
      __m256 sum = _mm256_setzero_ps();
      for (int i = 0; i < n_sub * 16; i += 8) {
        const __m256 e = avx2::exp(_mm256_sub_ps(_mm256_load_ps(&s[r][i]), vmax));
        _mm256_store_ps(&s[r][i], e);
        sum = _mm256_add_ps(sum, e);
      }
      corr[r] = _mm256_cvtss_f32(avx2::exp(_mm256_set1_ps(m[r] - new_max)));
      l[r] = l[r] * corr[r] + avx2::hsum(sum);
      m[r] = new_max;
    }
    const int n_pos = p1 - p0;
    for (int64_t d = 0; d < hd; d += 16) {
      __m256 o0[R], o1[R];
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m256 c = _mm256_set1_ps(corr[r]);
        o0[r] = _mm256_mul_ps(_mm256_load_ps(&o[r][d]), c);
        o1[r] = _mm256_mul_ps(_mm256_load_ps(&o[r][d + 8]), c);
      }
      const T* vrow = vc + static_cast<int64_t>(p0) * hd + d;
      for (int j = 0; j < n_pos; ++j, vrow += hd) {
        const __m256 v0 = E::load(vrow), v1 = E::load(vrow + 8);
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          const __m256 pj = _mm256_broadcast_ss(&s[r][j]);
          o0[r] = _mm256_fmadd_ps(pj, v0, o0[r]);
          o1[r] = _mm256_fmadd_ps(pj, v1, o1[r]);
        }
      }
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        _mm256_store_ps(&o[r][d], o0[r]);
        _mm256_store_ps(&o[r][d + 8], o1[r]);
      }
    }
  }
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    const __m256 inv = _mm256_set1_ps(l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
    for (int64_t d = 0; d < hd; d += 8)
      _mm256_storeu_ps(rows[r].out + d, _mm256_mul_ps(_mm256_load_ps(&o[r][d]), inv));
  }
}

using TileFn = void (*)(const AttnKv&, const AttnRow*, float);

template <typename E, int... I>
constexpr std::array<TileFn, sizeof...(I)> tiles(std::integer_sequence<int, I...>) {
  return {&tile<E, I + 1>...};
}

void attention(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale) {
  static constexpr auto kF32 = tiles<F32Elems>(std::make_integer_sequence<int, kMaxRows>());
  static constexpr auto kF16 = tiles<F16Elems>(std::make_integer_sequence<int, kMaxRows>());
  const auto& kTiles = kv.f16 ? kF16 : kF32;
  const int n_tiles = (n_rows + kMaxRows - 1) / kMaxRows;
  for (int i = 0; i < n_tiles; ++i) {
    const int r0 = n_rows * i / n_tiles, r1 = n_rows * (i + 1) / n_tiles;
    kTiles[static_cast<size_t>(r1 - r0 - 1)](kv, rows + r0, scale);
  }
}

}  // namespace

void register_attention_avx2(KernelTable& t) {
  t.ops.attention = attention;
}

}  // namespace muse::kernels
