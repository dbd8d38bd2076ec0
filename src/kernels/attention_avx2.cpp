// AVX2 flash-style attention (layout and contract in attention.h; the structure
// follows attention_avx512.cpp with 8-lane registers): tiles of up to 4 query
// rows, blocks of 64 positions, scores 16 positions (two registers) at a time
// (float keys by FMA, Q8_0 keys by vpmaddubsw; the `K` policy),
// online softmax, and the value accumulation 16 dimensions x all rows at a time.
#include <immintrin.h>

#include <cstring>

#include "kernels/attention.h"
#include "kernels/attention_tiles.h"
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

// Keys stored as floats (E): one FMA per dimension for 8 positions, the scale
// applied to the sums.
template <typename E>
struct FloatKeys {
  struct Query {
    const float* q;
    float scale;
  };
  static void prepare(const float* q, int64_t, float scale, Query& out) { out = {q, scale}; }
  // Scores of the 16 positions of key block `block` for every row (out0: the
  // first 8 positions, out1: the last 8).
  template <int R>
  static void scores(const void* k, int64_t block, int64_t hd, const Query* q, __m256* out0,
                     __m256* out1) {
    const typename E::T* kb = static_cast<const typename E::T*>(k) + block * hd * 16;
    MUSE_UNROLL for (int r = 0; r < R; ++r) out0[r] = out1[r] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) {
      const __m256 k0 = E::load(kb + d * 16), k1 = E::load(kb + d * 16 + 8);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m256 qd = _mm256_broadcast_ss(q[r].q + d);
        out0[r] = _mm256_fmadd_ps(qd, k0, out0[r]);
        out1[r] = _mm256_fmadd_ps(qd, k1, out1[r]);
      }
    }
    MUSE_UNROLL for (int r = 0; r < R; ++r) {
      const __m256 sc = _mm256_set1_ps(q[r].scale);
      out0[r] = _mm256_mul_ps(out0[r], sc);
      out1[r] = _mm256_mul_ps(out1[r], sc);
    }
  }
};

// Q8_0 keys without VNNI: the biased key bytes are flipped back to signed, and
// |q| (unsigned) x (k with q's sign) keeps vpmaddubsw's 16-bit pair sums below
// 2 x 127 x 127, so nothing saturates; vpmaddwd widens them to 32 bits.
struct Q8Keys {
  struct Query {
    QueryQ8 q8;
    alignas(32) uint8_t abs[kMaxDim];
  };
  static void prepare(const float* q, int64_t hd, float scale, Query& out) {
    quantize_query_q8(q, hd, scale, out.q8);
    for (int64_t i = 0; i < hd; ++i)
      out.abs[i] = static_cast<uint8_t>(out.q8.q[i] < 0 ? -out.q8.q[i] : out.q8.q[i]);
  }
  static __m256i quad(const void* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  template <int R>
  static void scores(const void* k, int64_t block, int64_t hd, const Query* q, __m256* out0,
                     __m256* out1) {
    const uint8_t* kb = static_cast<const uint8_t*>(k) + block * 18 * hd;
    const float* kd = reinterpret_cast<const float*>(kb + 16 * hd);
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i ones = _mm256_set1_epi16(1);
    MUSE_UNROLL for (int r = 0; r < R; ++r) out0[r] = out1[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < hd / 32; ++b) {
      __m256i acc0[R], acc1[R];
      MUSE_UNROLL for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_si256();
      for (int g = 0; g < 8; ++g) {
        const uint8_t* kg = kb + (b * 8 + g) * 64;
        const __m256i k0 =
            _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kg)), flip);
        const __m256i k1 =
            _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kg + 32)), flip);
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          const int64_t at = b * 32 + g * 4;
          const __m256i qs = quad(&q[r].q8.q[at]), qa = quad(&q[r].abs[at]);
          acc0[r] = _mm256_add_epi32(
              acc0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(qa, _mm256_sign_epi8(k0, qs)), ones));
          acc1[r] = _mm256_add_epi32(
              acc1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(qa, _mm256_sign_epi8(k1, qs)), ones));
        }
      }
      const __m256 ks0 = _mm256_loadu_ps(kd + b * 16), ks1 = _mm256_loadu_ps(kd + b * 16 + 8);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m256 dq = _mm256_set1_ps(q[r].q8.d_scaled[b]);
        out0[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc0[r]), _mm256_mul_ps(ks0, dq), out0[r]);
        out1[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc1[r]), _mm256_mul_ps(ks1, dq), out1[r]);
      }
    }
  }
};

// Values stored as floats (E): out = out * corr + p V, 16 dimensions x all rows
// in registers.
template <typename E>
struct FloatValues {
  template <int R>
  static void accumulate(const void* v, int32_t p0, int n_pos, int64_t hd, const float (*s)[kBlock],
                         const float* corr, float (*o)[kMaxDim]) {
    const typename E::T* vc = static_cast<const typename E::T*>(v);
    for (int64_t d = 0; d < hd; d += 16) {
      __m256 o0[R], o1[R];
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m256 c = _mm256_set1_ps(corr[r]);
        o0[r] = _mm256_mul_ps(_mm256_load_ps(&o[r][d]), c);
        o1[r] = _mm256_mul_ps(_mm256_load_ps(&o[r][d + 8]), c);
      }
      const typename E::T* vrow = vc + static_cast<int64_t>(p0) * hd + d;
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
};

// Q8_0 values: per 32-dimension block, the weights p x d_v / max d_v rounded
// to 16 bits (attention.h); the value bytes of 4 positions x 4 dimensions
// widened to int16 and vpmaddwd adds 2 positions' products per lane (two lanes
// per dimension, added once per tile); the integer sums are scaled once per
// tile.
struct Q8Values {
  template <int R>
  static void accumulate(const void* v, int32_t p0, int n_pos, int64_t hd, const float (*s)[kBlock],
                         const float* corr, float (*o)[kMaxDim]) {
    const uint8_t* vb = static_cast<const uint8_t*>(v) + static_cast<int64_t>(p0 / 16) * 18 * hd;
    const int n_oct = (n_pos + 7) / 8, n_groups = (n_pos + 3) / 4;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t b = 0; b < hd / 32; ++b) {
      // The tile's value scales (0 past its end, where the cache may hold
      // anything), divided by their largest: the weights p x d_v / max d_v,
      // with p <= 1, round into 0..kValueWeightMax with one scale per tile.
      __m256 dv[kBlock / 8];
      __m256 mx = zero;
      for (int i = 0; i < n_oct; ++i) {
        const float* d =
            reinterpret_cast<const float*>(vb + (i / 2) * 18 * hd + 16 * hd) + b * 16 + (i % 2) * 8;
        const int left = n_pos - 8 * i;
        dv[i] = left >= 8 ? _mm256_loadu_ps(d) : _mm256_maskload_ps(d, avx2::tail_mask(left));
        mx = _mm256_max_ps(mx, dv[i]);
      }
      const float dv_max = avx2::hmax(mx);
      const __m256 w_scale = _mm256_set1_ps(dv_max / kValueWeightMax);
      const __m256 inv = _mm256_set1_ps(dv_max > 0.0f ? kValueWeightMax / dv_max : 0.0f);
      for (int i = 0; i < n_oct; ++i) dv[i] = _mm256_mul_ps(dv[i], inv);
      alignas(32) int16_t w[R][kBlock];
      MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < n_oct; ++i) {
        const __m256i x = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(&s[r][8 * i]), dv[i]));
        _mm_store_si128(reinterpret_cast<__m128i*>(&w[r][8 * i]),
                        _mm_packs_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1)));
      }
      for (int64_t d = b * 32; d < (b + 1) * 32; d += 8) {
        __m256i a0[R], a1[R];
        MUSE_UNROLL for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_si256();
        for (int g = 0; g < n_groups; ++g) {
          const uint8_t* vq = vb + (g / 4) * 18 * hd + (g % 4) * hd * 4 + d * 4;
          const __m256i v0 =
              _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vq)));
          const __m256i v1 =
              _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(vq + 16)));
          MUSE_UNROLL for (int r = 0; r < R; ++r) {
            int64_t quad;
            std::memcpy(&quad, &w[r][4 * g], 8);
            const __m256i wq = _mm256_set1_epi64x(quad);
            a0[r] = _mm256_add_epi32(a0[r], _mm256_madd_epi16(v0, wq));
            a1[r] = _mm256_add_epi32(a1[r], _mm256_madd_epi16(v1, wq));
          }
        }
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          // Lane pairs added: dimensions 0 1 4 5 | 2 3 6 7, put in order.
          const __m256i sum = _mm256_permute4x64_epi64(_mm256_hadd_epi32(a0[r], a1[r]), 0xD8);
          float* od = &o[r][d];
          _mm256_store_ps(
              od, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), w_scale,
                                  _mm256_mul_ps(_mm256_load_ps(od), _mm256_set1_ps(corr[r]))));
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
  alignas(32) float o[R][kMaxDim];
  alignas(32) float s[R][kBlock];
  typename K::Query q[R];
  float m[R], l[R], corr[R];
  const attention_tiles::RowSpan span = attention_tiles::span_of(rows, R);
  const int32_t lo = span.lo, hi = span.hi;
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    m[r] = -__builtin_inff();
    l[r] = 0.0f;
    for (int64_t d = 0; d < hd; d += 8) _mm256_store_ps(&o[r][d], _mm256_setzero_ps());
    K::prepare(rows[r].q, hd, scale, q[r]);
  }
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int32_t p0 = lo & ~15; p0 <= hi; p0 += kBlock) {
    const int32_t p1 = p0 + kBlock - 1 < hi ? p0 + kBlock : hi + 1;
    const int n_sub = (p1 - p0 + 15) / 16;
    for (int sub = 0; sub < n_sub; ++sub) {
      __m256 a0[R], a1[R];
      attention_tiles::prefetch_ahead(kv, prefetch, p0 + 16 * sub, kBlock, hi);
      K::template scores<R>(kv.k, p0 / 16 + sub, hd, q, a0, a1);
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
        _mm256_store_ps(&s[r][16 * sub],
                        _mm256_blendv_ps(neg_inf, a0[r], _mm256_castsi256_ps(vis0)));
        _mm256_store_ps(&s[r][16 * sub + 8],
                        _mm256_blendv_ps(neg_inf, a1[r], _mm256_castsi256_ps(vis1)));
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
    V::template accumulate<R>(kv.v, p0, p1 - p0, hd, s, corr, o);
  }
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    const __m256 inv = _mm256_set1_ps(l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
    for (int64_t d = 0; d < hd; d += 8)
      _mm256_storeu_ps(rows[r].out + d, _mm256_mul_ps(_mm256_load_ps(&o[r][d]), inv));
  }
}

}  // namespace

void register_attention_avx2(KernelTable& t) {
  t.ops.attention = attention_tiles::run<kMaxRows, Tile, FloatKeys, Q8Keys, FloatValues, Q8Values,
                                         F32Elems, F16Elems>;
}

}  // namespace muse::kernels
