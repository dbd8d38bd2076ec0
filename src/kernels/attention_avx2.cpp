// AVX2 flash-style attention (layout and contract in attention.h; the structure
// follows attention_avx512.cpp): tiles of up to 8 query rows, blocks of 64
// positions, the scores of one 16-position key block at a time (float keys by
// FMA, 16 positions x groups of up to 4 rows; Q8_0 keys by vpmaddubsw, 8
// positions x all rows; the `K` policy), online softmax, and the value
// accumulation 16 dimensions x groups of up to 4 rows (float values) or 8
// dimensions x up to 4 rows (Q8_0 values, two int32 sums per row) at a time.
#include <immintrin.h>

#include <cstring>

#include "kernels/attention.h"
#include "kernels/attention_tiles.h"
#include "kernels/kernel_table.h"
#include "kernels/simd_avx2.h"

namespace muse::kernels {
namespace {

#define MUSE_UNROLL _Pragma("GCC unroll 16")

// Up to 8 rows per tile, so the 7 query heads that share a KV head in
// Qwen2.5-0.5B's GQA read the cache once (as 4 + 3 row tiles they read it
// twice); the Q8_0 key scores hold one sum register per row, the other loops
// take the rows in groups (first_group).
constexpr int kMaxRows = 8;
constexpr int kBlock = 64;
constexpr int kMaxDim = 256;

// Float keys and values go through the rows in groups of up to 4 (7 = 4 + 3),
// each group 16 positions (keys) or 16 dimensions (values) wide: per step two
// cache registers and one broadcast per row feed two FMAs, where 8 positions
// x all rows took a broadcast per FMA and one sum chain per row, the broadcasts
// and the FMA latency holding it at ~1.4 FMAs per cycle; 4 x 16 runs ~1.8.
// The second group reads the block again from L1. Groups of up to 3 rows keep
// two sums per register (alternate dimensions or positions) so that enough
// FMAs are in flight (4 cycles' latency, 2 per cycle: 8 chains; a group of 3
// with one sum per register has 6): for the 3-row group of 7 rows, two sums
// took the f16 tile at 4096 positions from 107 to 99 us (best of 14, from
// cache); a loop program of 3 rows x 16 positions ran 4.5 -> 5.5 G FMA/s.
template <int R>
constexpr int first_group() {
  return R > 4 ? (R + 1) / 2 : R;
}
template <int G>
constexpr int chains() {
  return G <= 3 ? 2 : 1;
}
template <int C, int G>
inline __m256 sum_chains(const __m256 (&acc)[C][G][2], int r, int h) {
  __m256 sum = acc[0][r][h];
  MUSE_UNROLL for (int c = 1; c < C; ++c) sum = _mm256_add_ps(sum, acc[c][r][h]);
  return sum;
}

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

// Keys stored as floats (E): one FMA per dimension, row and 8 positions, the
// scale applied to the sums.
template <typename E>
struct FloatKeys {
  using T = typename E::T;
  struct Query {
    const float* q;
    float scale;
  };
  static void prepare(const float* q, int64_t, float scale, Query& out) { out = {q, scale}; }
  // The scaled scores of key block `block`'s 16 positions for every row, into
  // s[r][col..col + 15] (hd is a multiple of 16); all 16 whatever `halves`
  // asks, as the loop is 16 positions wide.
  template <int R>
  static void scores(const void* k, int64_t block, int /*halves*/, int64_t hd, const Query* q,
                     float (*s)[kBlock], int col) {
    const T* kb = static_cast<const T*>(k) + block * hd * 16;
    constexpr int G = first_group<R>();
    group<G>(kb, hd, q, s, col);
    if constexpr (R > G) group<R - G>(kb, hd, q + G, s + G, col);
  }
  template <int G>
  static void group(const T* kb, int64_t hd, const Query* q, float (*s)[kBlock], int col) {
    constexpr int C = chains<G>();
    __m256 acc[C][G][2];
    MUSE_UNROLL for (int c = 0; c < C; ++c) MUSE_UNROLL for (int r = 0; r < G; ++r) acc[c][r][0] =
        acc[c][r][1] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; d += C) {
      MUSE_UNROLL for (int c = 0; c < C; ++c) {
        const __m256 k0 = E::load(kb + (d + c) * 16), k1 = E::load(kb + (d + c) * 16 + 8);
        MUSE_UNROLL for (int r = 0; r < G; ++r) {
          const __m256 qd = _mm256_broadcast_ss(q[r].q + d + c);
          acc[c][r][0] = _mm256_fmadd_ps(qd, k0, acc[c][r][0]);
          acc[c][r][1] = _mm256_fmadd_ps(qd, k1, acc[c][r][1]);
        }
      }
    }
    MUSE_UNROLL for (int r = 0; r < G; ++r) {
      const __m256 scale = _mm256_set1_ps(q[r].scale);
      _mm256_store_ps(&s[r][col], _mm256_mul_ps(sum_chains<C>(acc, r, 0), scale));
      _mm256_store_ps(&s[r][col + 8], _mm256_mul_ps(sum_chains<C>(acc, r, 1), scale));
    }
  }
};

// Q8_0 keys without VNNI: the biased key bytes are flipped back to signed, and
// |k| (unsigned, once per key register) x (q with k's sign) keeps vpmaddubsw's
// 16-bit pair sums within 2 x 128 x 127, so nothing saturates; vpmaddwd widens
// them to 32 bits.
struct Q8Keys {
  using Query = QueryQ8;
  static void prepare(const float* q, int64_t hd, float scale, Query& out) {
    quantize_query_q8(q, hd, scale, out);
  }
  static __m256i quad(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  // The scaled scores of key block `block`'s first 8 x `halves` positions for
  // every row, into s[r][col..].
  template <int R>
  static void scores(const void* k, int64_t block, int halves, int64_t hd, const Query* q,
                     float (*s)[kBlock], int col) {
    for (int half = 0; half < halves; ++half) {
      __m256 a[R];
      half_scores<R>(k, block, half, hd, q, a);
      MUSE_UNROLL for (int r = 0; r < R; ++r) _mm256_store_ps(&s[r][col + 8 * half], a[r]);
    }
  }
  // The scores of 8 positions (half `half` of the block) x all rows.
  template <int R>
  static void half_scores(const void* k, int64_t block, int half, int64_t hd, const Query* q,
                          __m256* out) {
    const uint8_t* base = static_cast<const uint8_t*>(k) + block * 18 * hd;
    const uint8_t* kb = base + 32 * half;  // this half's 8 positions in each 64-byte group
    const float* kd = reinterpret_cast<const float*>(base + 16 * hd) + 8 * half;
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i ones = _mm256_set1_epi16(1);
    MUSE_UNROLL for (int r = 0; r < R; ++r) out[r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < hd / 32; ++b) {
      __m256i acc[R];
      MUSE_UNROLL for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
      _Pragma("GCC unroll 8") for (int g = 0; g < 8; ++g) {
        const __m256i kq = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb + (b * 8 + g) * 64)), flip);
        const __m256i k_abs = _mm256_abs_epi8(kq);
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          const __m256i prod =
              _mm256_maddubs_epi16(k_abs, _mm256_sign_epi8(quad(&q[r].q[b * 32 + g * 4]), kq));
          acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(prod, ones));
          // Keeps each sum in its register: without it GCC turns the unrolled
          // chain of adds into a tree over all 8 x R products held on the
          // stack (integer adds may be reassociated), spilling most of them.
          asm("" : "+x"(acc[r]));
        }
      }
      const __m256 ks = _mm256_loadu_ps(kd + b * 16);
      MUSE_UNROLL for (int r = 0; r < R; ++r) out[r] = _mm256_fmadd_ps(
          _mm256_cvtepi32_ps(acc[r]), _mm256_mul_ps(ks, _mm256_set1_ps(q[r].d_scaled[b])), out[r]);
    }
  }
};

// Values stored as floats (E): out = out * corr + p V, 16 dimensions x a
// group of rows in registers (see first_group).
template <typename E>
struct FloatValues {
  using T = typename E::T;
  template <int R>
  static void accumulate(const void* v, int32_t p0, int n_pos, int64_t hd, const float (*s)[kBlock],
                         const float* corr, float (*o)[kMaxDim]) {
    const T* vc = static_cast<const T*>(v) + static_cast<int64_t>(p0) * hd;
    constexpr int G = first_group<R>();
    group<G>(vc, n_pos, hd, s, corr, o);
    if constexpr (R > G) group<R - G>(vc, n_pos, hd, s + G, corr + G, o + G);
  }
  template <int G>
  static void group(const T* vc, int n_pos, int64_t hd, const float (*s)[kBlock],
                    const float* corr, float (*o)[kMaxDim]) {
    constexpr int C = chains<G>();
    for (int64_t d = 0; d < hd; d += 16) {
      __m256 acc[C][G][2];
      // Chain 0 starts from the rescaled output, the others from 0; position j
      // goes to chain j % C until the last C - 1 or fewer.
      MUSE_UNROLL for (int r = 0; r < G; ++r) {
        const __m256 cr = _mm256_set1_ps(corr[r]);
        acc[0][r][0] = _mm256_mul_ps(_mm256_load_ps(&o[r][d]), cr);
        acc[0][r][1] = _mm256_mul_ps(_mm256_load_ps(&o[r][d + 8]), cr);
      }
      MUSE_UNROLL for (int c = 1; c < C; ++c) MUSE_UNROLL for (int r = 0; r < G; ++r) acc[c][r][0] =
          acc[c][r][1] = _mm256_setzero_ps();
      const T* vrow = vc + d;
      // Position j's 16 values times each row's probability, into chain a.
      auto add_position = [&](int j, __m256(&a)[G][2]) {
        const __m256 v0 = E::load(vrow + j * hd), v1 = E::load(vrow + j * hd + 8);
        MUSE_UNROLL for (int r = 0; r < G; ++r) {
          const __m256 p = _mm256_broadcast_ss(&s[r][j]);
          a[r][0] = _mm256_fmadd_ps(p, v0, a[r][0]);
          a[r][1] = _mm256_fmadd_ps(p, v1, a[r][1]);
        }
      };
      int j = 0;
      for (; j + C <= n_pos; j += C)
        MUSE_UNROLL for (int c = 0; c < C; ++c) add_position(j + c, acc[c]);
      for (; j < n_pos; ++j) add_position(j, acc[0]);
      MUSE_UNROLL for (int r = 0; r < G; ++r) {
        _mm256_store_ps(&o[r][d], sum_chains<C>(acc, r, 0));
        _mm256_store_ps(&o[r][d + 8], sum_chains<C>(acc, r, 1));
      }
    }
  }
};

// Q8_0 values: per 32-dimension block, the weights p x d_v / max d_v rounded
// to 16 bits (attention.h); the value bytes of 4 positions x 4 dimensions
// widened to int16 and vpmaddwd adds 2 positions' products per lane (two lanes
// per dimension); the integer sums are scaled once per tile. One pass over the
// tile's positions covers 8 dimensions for up to 4 rows (dims8).
struct Q8Values {
  template <int R>
  static void accumulate(const void* v, int32_t p0, int n_pos, int64_t hd, const float (*s)[kBlock],
                         const float* corr, float (*o)[kMaxDim]) {
    const uint8_t* vb = static_cast<const uint8_t*>(v) + static_cast<int64_t>(p0 / 16) * 18 * hd;
    const int n_oct = (n_pos + 7) / 8, n_groups = (n_pos + 3) / 4;
    const int64_t block_bytes = 18 * hd;
    const __m256 zero = _mm256_setzero_ps();
    for (int64_t b = 0; b < hd / 32; ++b) {
      // The tile's value scales (0 past its end, where the cache may hold
      // anything), divided by their largest: the weights p x d_v / max d_v,
      // with p <= 1, round into 0..kValueWeightMax with one scale per tile.
      __m256 dv[kBlock / 8];
      __m256 mx = zero;
      for (int i = 0; i < n_oct; ++i) {
        const float* d = reinterpret_cast<const float*>(vb + (i / 2) * block_bytes + 16 * hd) +
                         b * 16 + (i % 2) * 8;
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
        __m256i lo[R], hi[R];  // the sums of dimensions d..d+3 and d+4..d+7
        // Rows in groups of up to 4 (7 = 4 + 3): 2 sums per row.
        constexpr int kFirst = first_group<R>();
        dims8<kFirst>(vb + d * 4, n_groups, hd, &w[0][0], lo, hi);
        if constexpr (R > kFirst)
          dims8<R - kFirst>(vb + d * 4, n_groups, hd, &w[kFirst][0], lo + kFirst, hi + kFirst);
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          // Lane pairs added: dimensions 0 1 4 5 | 2 3 6 7, put in order.
          const __m256i sum = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0xD8);
          float* od = &o[r][d];
          _mm256_store_ps(
              od, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), w_scale,
                                  _mm256_mul_ps(_mm256_load_ps(od), _mm256_set1_ps(corr[r]))));
        }
      }
    }
  }

  // The integer sums over the tile's n_groups groups of 4 positions of 8
  // dimensions (the bytes at vq in the first 16-position block: dimensions
  // d..d+3 of the group's 4 positions, then d+4..d+7) for N rows whose weights
  // start at wg: two int32 lanes per dimension in lo (d..d+3) and hi. Group g is
  // group g % 4 of block g / 4, walked block by block so no index arithmetic
  // remains in the loop.
  template <int N>
  [[gnu::always_inline]] static inline void dims8(const uint8_t* vq, int n_groups, int64_t hd,
                                                  const int16_t* wg, __m256i* lo, __m256i* hi) {
    __m256i acc_lo[N], acc_hi[N];
    MUSE_UNROLL for (int r = 0; r < N; ++r) acc_lo[r] = acc_hi[r] = _mm256_setzero_si256();
    for (int g0 = 0; g0 < n_groups; g0 += 4, vq += 18 * hd) {
      const int n = n_groups - g0 < 4 ? n_groups - g0 : 4;
      const uint8_t* at = vq;
      for (int g = 0; g < n; ++g, wg += 4, at += 4 * hd) {
        const __m256i v0 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)));
        const __m256i v1 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at + 16)));
        MUSE_UNROLL for (int r = 0; r < N; ++r) {
          int64_t quad;
          std::memcpy(&quad, wg + r * kBlock, 8);
          const __m256i wq = _mm256_set1_epi64x(quad);
          acc_lo[r] = _mm256_add_epi32(acc_lo[r], _mm256_madd_epi16(v0, wq));
          acc_hi[r] = _mm256_add_epi32(acc_hi[r], _mm256_madd_epi16(v1, wq));
        }
      }
    }
    MUSE_UNROLL for (int r = 0; r < N; ++r) {
      lo[r] = acc_lo[r];
      hi[r] = acc_hi[r];
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
    const int n_oct = (p1 - p0 + 7) / 8;
    for (int blk = 0; blk < (n_oct + 1) / 2; ++blk) {
      attention_tiles::prefetch_ahead(kv, prefetch, p0 + 16 * blk, kBlock, hi);
      const int halves = n_oct - 2 * blk < 2 ? 1 : 2;  // 8-position groups the tile needs
      K::template scores<R>(kv.k, p0 / 16 + blk, halves, hd, q, s, 16 * blk);
    }
    // Positions a row does not see get -inf; octs that every row sees whole
    // keep their scores.
    for (int oct = 0; oct < n_oct; ++oct) {
      const int32_t first = p0 + 8 * oct;
      if (first >= span.max_lo && first + 7 <= span.min_hi) continue;
      const __m256i pos = _mm256_add_epi32(_mm256_set1_epi32(first), lane);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const __m256i vis =
            _mm256_and_si256(_mm256_cmpgt_epi32(pos, _mm256_set1_epi32(rows[r].lo - 1)),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(rows[r].hi + 1), pos));
        _mm256_store_ps(&s[r][8 * oct], _mm256_blendv_ps(neg_inf, _mm256_load_ps(&s[r][8 * oct]),
                                                         _mm256_castsi256_ps(vis)));
      }
    }
    MUSE_UNROLL for (int r = 0; r < R; ++r) {
      __m256 mx = neg_inf;
      for (int i = 0; i < n_oct * 8; i += 8) mx = _mm256_max_ps(mx, _mm256_load_ps(&s[r][i]));
      const float block_max = avx2::hmax(mx);
      const float new_max = block_max > m[r] ? block_max : m[r];
      if (new_max == -__builtin_inff()) {
        corr[r] = 1.0f;
        for (int i = 0; i < n_oct * 8; i += 8) _mm256_store_ps(&s[r][i], _mm256_setzero_ps());
        continue;
      }
      const __m256 vmax = _mm256_set1_ps(new_max);
      __m256 sum = _mm256_setzero_ps();
      for (int i = 0; i < n_oct * 8; i += 8) {
        const __m256 e = avx2::exp_nonpositive(_mm256_sub_ps(_mm256_load_ps(&s[r][i]), vmax));
        _mm256_store_ps(&s[r][i], e);
        sum = _mm256_add_ps(sum, e);
      }
      corr[r] = _mm256_cvtss_f32(avx2::exp_nonpositive(_mm256_set1_ps(m[r] - new_max)));
      l[r] = l[r] * corr[r] + avx2::hsum(sum);
      m[r] = new_max;
    }
    V::template accumulate<R>(kv.v, p0, p1 - p0, hd, s, corr, o);
  }
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    const __m256 inv = _mm256_set1_ps(l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
    attention_tiles::store_lse(rows[r], m[r], l[r]);
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
