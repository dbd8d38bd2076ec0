// AVX-512 flash-style attention (layout and contract in attention.h).
//
// A tile of up to 8 query rows walks the cache in blocks of 64 positions:
// scores of 16 positions per zmm from the block-transposed keys (one FMA per
// dimension for float keys, one vpdpbusd per 4 dimensions for Q8_0 keys; each
// key vector shared by every row of the tile; the key format is the tile's `K`
// policy, the value format its `V`), an online
// softmax update per row, then the probabilities times the value rows with
// the output accumulators of 32 dimensions x all rows in registers.
//
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*
// placeholders once inlined (GCC bug 105593); the warnings are not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstring>

#include "kernels/attention.h"
#include "kernels/attention_tiles.h"
#include "kernels/kernel_table.h"
#include "kernels/simd_avx512.h"

namespace muse::kernels {
namespace {

#define MUSE_UNROLL _Pragma("GCC unroll 16")

constexpr int kMaxRows = 8;
constexpr int kBlock = 64;  // positions per softmax update
constexpr int kMaxDim = 256;

// Loads 16 cache elements as f32.
struct F32Elems {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
};
struct F16Elems {
  using T = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};

// Keys stored as floats (E): the query row times the softmax scale, one FMA per
// dimension for 16 positions, two accumulators per row to hide the FMA latency
// when the tile is small.
template <typename E>
struct FloatKeys {
  struct Query {
    alignas(64) float q[kMaxDim];
  };
  static void prepare(const float* q, int64_t hd, float scale, Query& out) {
    for (int64_t d = 0; d < hd; d += 16)
      _mm512_store_ps(&out.q[d], _mm512_mul_ps(_mm512_loadu_ps(q + d), _mm512_set1_ps(scale)));
  }
  // Scores of the 16 positions of key block `block` for every row.
  template <int R>
  static void scores(const void* k, int64_t block, int64_t hd, const Query* q, __m512* out) {
    const typename E::T* kb = static_cast<const typename E::T*>(k) + block * hd * 16;
    __m512 a0[R], a1[R];
    MUSE_UNROLL for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 2) {
      const __m512 k0 = E::load(kb + d * 16);
      const __m512 k1 = E::load(kb + (d + 1) * 16);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        a0[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r].q[d]), k0, a0[r]);
        a1[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r].q[d + 1]), k1, a1[r]);
      }
    }
    MUSE_UNROLL for (int r = 0; r < R; ++r) out[r] = _mm512_add_ps(a0[r], a1[r]);
  }
};

// Q8_0 keys: one vpdpbusd multiplies 4 biased key bytes of 16 positions by 4
// query bytes; per 32-dimension block the integer sums lose the bias and are
// scaled by d_k (16 positions) x d_q x softmax scale.
struct Q8Keys {
  using Query = QueryQ8;
  static void prepare(const float* q, int64_t hd, float scale, Query& out) {
    quantize_query_q8(q, hd, scale, out);
  }
  static int32_t quad(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  template <int R>
  static void scores(const void* k, int64_t block, int64_t hd, const Query* q, __m512* out) {
    const uint8_t* kb = static_cast<const uint8_t*>(k) + block * 18 * hd;
    const float* kd = reinterpret_cast<const float*>(kb + 16 * hd);
    MUSE_UNROLL for (int r = 0; r < R; ++r) out[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < hd / 32; ++b) {
      __m512i acc[R];
      MUSE_UNROLL for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_si512();
      MUSE_UNROLL for (int g = 0; g < 8; ++g) {
        const __m512i kq = _mm512_loadu_si512(kb + (b * 8 + g) * 64);
        MUSE_UNROLL for (int r = 0; r < R; ++r) acc[r] =
            _mm512_dpbusd_epi32(acc[r], kq, _mm512_set1_epi32(quad(&q[r].q[b * 32 + g * 4])));
      }
      const __m512 kscale = _mm512_loadu_ps(kd + b * 16);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m512 dot =
            _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r], _mm512_set1_epi32(q[r].bias[b])));
        out[r] =
            _mm512_fmadd_ps(dot, _mm512_mul_ps(kscale, _mm512_set1_ps(q[r].d_scaled[b])), out[r]);
      }
    }
  }
};

// Values stored as floats (E): out = out * corr + p V, 32 dimensions x all rows
// in registers, one FMA per position, dimension group and row.
template <typename E>
struct FloatValues {
  template <int R>
  static void accumulate(const void* v, int32_t p0, int n_pos, int64_t hd, const float (*s)[kBlock],
                         const float* corr, float (*o)[kMaxDim]) {
    const typename E::T* vc = static_cast<const typename E::T*>(v);
    for (int64_t d = 0; d < hd; d += 32) {
      const bool two = d + 16 < hd;
      __m512 o0[R], o1[R];
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m512 c = _mm512_set1_ps(corr[r]);
        o0[r] = _mm512_mul_ps(_mm512_load_ps(&o[r][d]), c);
        o1[r] = two ? _mm512_mul_ps(_mm512_load_ps(&o[r][d + 16]), c) : _mm512_setzero_ps();
      }
      const typename E::T* vrow = vc + static_cast<int64_t>(p0) * hd + d;
      if (two) {
        for (int j = 0; j < n_pos; ++j, vrow += hd) {
          const __m512 v0 = E::load(vrow), v1 = E::load(vrow + 16);
          MUSE_UNROLL for (int r = 0; r < R; ++r) {
            const __m512 pj = _mm512_set1_ps(s[r][j]);
            o0[r] = _mm512_fmadd_ps(pj, v0, o0[r]);
            o1[r] = _mm512_fmadd_ps(pj, v1, o1[r]);
          }
        }
      } else {
        for (int j = 0; j < n_pos; ++j, vrow += hd) {
          const __m512 v0 = E::load(vrow);
          MUSE_UNROLL for (int r = 0; r < R; ++r) o0[r] =
              _mm512_fmadd_ps(_mm512_set1_ps(s[r][j]), v0, o0[r]);
        }
      }
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        _mm512_store_ps(&o[r][d], o0[r]);
        if (two) _mm512_store_ps(&o[r][d + 16], o1[r]);
      }
    }
  }
};

// Q8_0 values: per 32-dimension block, the weights p x d_v / max d_v rounded
// to 16 bits (attention.h); the value bytes of 4 positions x 8 dimensions
// widened to int16 and one vpdpwssd adds 2 positions' products per lane (two
// lanes per dimension, added once per tile); the integer sums are scaled once
// per tile.
struct Q8Values {
  template <int R>
  static void accumulate(const void* v, int32_t p0, int n_pos, int64_t hd, const float (*s)[kBlock],
                         const float* corr, float (*o)[kMaxDim]) {
    const uint8_t* vb = static_cast<const uint8_t*>(v) + static_cast<int64_t>(p0 / 16) * 18 * hd;
    const int n_sub = (n_pos + 15) / 16, n_groups = (n_pos + 3) / 4;
    const __m512 zero = _mm512_setzero_ps();
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int64_t b = 0; b < hd / 32; ++b) {
      // The tile's value scales (0 past its end, where the cache may hold
      // anything), divided by their largest: the weights p x d_v / max d_v,
      // with p <= 1, round into 0..kValueWeightMax with one scale per tile.
      __m512 dv[kBlock / 16];
      __m512 mx = zero;
      for (int sub = 0; sub < n_sub; ++sub) {
        const float* d = reinterpret_cast<const float*>(vb + sub * 18 * hd + 16 * hd) + b * 16;
        const int left = n_pos - 16 * sub;
        dv[sub] = left >= 16 ? _mm512_loadu_ps(d)
                             : _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << left) - 1), d);
        mx = _mm512_max_ps(mx, dv[sub]);
      }
      const float dv_max = _mm512_reduce_max_ps(mx);
      const __m512 w_scale = _mm512_set1_ps(dv_max / kValueWeightMax);
      const __m512 inv = _mm512_set1_ps(dv_max > 0.0f ? kValueWeightMax / dv_max : 0.0f);
      for (int sub = 0; sub < n_sub; ++sub) dv[sub] = _mm512_mul_ps(dv[sub], inv);
      alignas(64) int16_t w[R][kBlock];
      MUSE_UNROLL for (int r = 0; r < R; ++r) for (int sub = 0; sub < n_sub; ++sub)
          _mm256_store_si256(reinterpret_cast<__m256i*>(&w[r][16 * sub]),
                             _mm512_cvtsepi32_epi16(_mm512_cvtps_epi32(
                                 _mm512_mul_ps(_mm512_load_ps(&s[r][16 * sub]), dv[sub]))));
      for (int64_t d = b * 32; d < (b + 1) * 32; d += 16) {
        __m512i a0[R], a1[R];
        MUSE_UNROLL for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm512_setzero_si512();
        for (int g = 0; g < n_groups; ++g) {
          const uint8_t* vq = vb + (g / 4) * 18 * hd + (g % 4) * hd * 4 + d * 4;
          const __m512i v0 =
              _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vq)));
          const __m512i v1 =
              _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(vq + 32)));
          MUSE_UNROLL for (int r = 0; r < R; ++r) {
            int64_t quad;
            std::memcpy(&quad, &w[r][4 * g], 8);
            const __m512i wq = _mm512_set1_epi64(quad);
            a0[r] = _mm512_dpwssd_epi32(a0[r], v0, wq);
            a1[r] = _mm512_dpwssd_epi32(a1[r], v1, wq);
          }
        }
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          const __m512i sum = _mm512_add_epi32(_mm512_permutex2var_epi32(a0[r], even, a1[r]),
                                               _mm512_permutex2var_epi32(a0[r], odd, a1[r]));
          float* od = &o[r][d];
          _mm512_store_ps(
              od, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), w_scale,
                                  _mm512_mul_ps(_mm512_load_ps(od), _mm512_set1_ps(corr[r]))));
        }
      }
    }
  }
};

// One tile of R query rows, keys in format K, values in format V.
template <typename K, typename V, int R>
struct Tile {
  static void run(const AttnKv& kv, const AttnRow* rows, float scale);
};

template <typename K, typename V, int R>
void Tile<K, V, R>::run(const AttnKv& kv, const AttnRow* rows, float scale) {
  const int64_t hd = kv.head_dim;
  const attention_tiles::PrefetchBlocks prefetch = attention_tiles::prefetch_blocks(kv);
  alignas(64) float o[R][kMaxDim];
  typename K::Query q[R];  // the query rows, prepared for the key format
  alignas(64) float s[R][kBlock];
  float m[R], l[R], corr[R];
  const auto [lo, hi, max_lo, min_hi] = attention_tiles::span_of(rows, R);
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    m[r] = -__builtin_inff();
    l[r] = 0.0f;
    for (int64_t d = 0; d < hd; d += 16) _mm512_store_ps(&o[r][d], _mm512_setzero_ps());
    K::prepare(rows[r].q, hd, scale, q[r]);
  }
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int32_t p0 = lo & ~15; p0 <= hi; p0 += kBlock) {
    const int32_t p1 = p0 + kBlock - 1 < hi ? p0 + kBlock : hi + 1;  // exclusive
    const int n_sub = (p1 - p0 + 15) / 16;
    // Scores, 16 positions at a time.
    for (int sub = 0; sub < n_sub; ++sub) {
      __m512 sc[R];
      attention_tiles::prefetch_ahead(kv, prefetch, p0 + 16 * sub, kBlock, hi);
      K::template scores<R>(kv.k, p0 / 16 + sub, hd, q, sc);
      const int32_t first = p0 + 16 * sub;
      if (first >= max_lo && first + 15 <= min_hi) {  // every row sees all 16
        MUSE_UNROLL for (int r = 0; r < R; ++r) _mm512_store_ps(&s[r][16 * sub], sc[r]);
        continue;
      }
      const __m512i pos = _mm512_add_epi32(_mm512_set1_epi32(first), lane);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __mmask16 visible =
            _mm512_cmp_epi32_mask(pos, _mm512_set1_epi32(rows[r].lo), _MM_CMPINT_NLT) &
            _mm512_cmp_epi32_mask(pos, _mm512_set1_epi32(rows[r].hi), _MM_CMPINT_LE);
        _mm512_store_ps(&s[r][16 * sub], _mm512_mask_blend_ps(visible, neg_inf, sc[r]));
      }
    }
    // Online softmax: rescale what was accumulated by exp(old max - new max).
    MUSE_UNROLL for (int r = 0; r < R; ++r) {
      __m512 mx = _mm512_load_ps(&s[r][0]);
      for (int sub = 1; sub < n_sub; ++sub) mx = _mm512_max_ps(mx, _mm512_load_ps(&s[r][16 * sub]));
      const float block_max = _mm512_reduce_max_ps(mx);
      const float new_max = block_max > m[r] ? block_max : m[r];
      if (new_max == -__builtin_inff()) {  // nothing visible yet: all weights 0
        corr[r] = 1.0f;
        for (int sub = 0; sub < n_sub; ++sub) _mm512_store_ps(&s[r][16 * sub], _mm512_setzero_ps());
        continue;
      }
      const __m512 vmax = _mm512_set1_ps(new_max);
      __m512 sum = _mm512_setzero_ps();
      for (int sub = 0; sub < n_sub; ++sub) {
        const __m512 e = avx512::exp(_mm512_sub_ps(_mm512_load_ps(&s[r][16 * sub]), vmax));
        _mm512_store_ps(&s[r][16 * sub], e);
        sum = _mm512_add_ps(sum, e);
      }
      corr[r] = _mm512_cvtss_f32(avx512::exp(_mm512_set1_ps(m[r] - new_max)));
      l[r] = l[r] * corr[r] + _mm512_reduce_add_ps(sum);
      m[r] = new_max;
    }
    // out = out * corr + p V.
    V::template accumulate<R>(kv.v, p0, p1 - p0, hd, s, corr, o);
  }
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    const __m512 inv = _mm512_set1_ps(l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
    attention_tiles::store_lse(rows[r], m[r], l[r]);
    for (int64_t d = 0; d < hd; d += 16)
      _mm512_storeu_ps(rows[r].out + d, _mm512_mul_ps(_mm512_load_ps(&o[r][d]), inv));
  }
}

}  // namespace

void register_attention_avx512(KernelTable& t) {
  t.ops.attention = attention_tiles::run<kMaxRows, Tile, FloatKeys, Q8Keys, FloatValues, Q8Values,
                                         F32Elems, F16Elems>;
}

}  // namespace muse::kernels
