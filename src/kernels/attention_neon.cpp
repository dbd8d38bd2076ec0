// NEON flash-style attention (layout and contract in attention.h; the structure
// follows attention_avx2.cpp with 4-lane registers): tiles of up to 4 query
// rows, blocks of 64 positions, scores 16 positions (four registers) at a time
// (float keys by FMA; Q8_0 keys by SDOT where the target has it, else by
// widening multiplies and pairwise adds; the `K` policy), online softmax, and
// the value accumulation 16 dimensions x all rows at a time.
#include <arm_neon.h>

#include <cstring>

#include "kernels/attention.h"
#include "kernels/attention_tiles.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {
namespace {

#define MUSE_UNROLL _Pragma("GCC unroll 16")

constexpr int kMaxRows = 4;
constexpr int kBlock = 64;
constexpr int kMaxDim = 256;

// exp(x) for x <= 0 (scores minus their running max), to a few ulp: x = n ln2 + r
// with |r| <= ln2/2, a degree-6 polynomial for e^r, and 2^n built in the exponent
// bits. Below -87 (under the smallest normal float) the result is 0, which also
// covers the -inf of masked positions.
float32x4_t exp_nonpositive(float32x4_t x) {
  const uint32x4_t tiny = vcltq_f32(x, vdupq_n_f32(-87.0f));
  x = vmaxq_f32(x, vdupq_n_f32(-87.0f));
  const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.0f / 720.0f);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
  const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  const float32x4_t e = vmulq_f32(p, vreinterpretq_f32_s32(bits));
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(e), tiny));
}

// Loads 4 cache elements as f32.
struct F32Elems {
  using T = float;
  static float32x4_t load(const float* p) { return vld1q_f32(p); }
};
struct F16Elems {
  using T = uint16_t;
  static float32x4_t load(const uint16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  }
};

// Keys stored as floats (E): one FMA per dimension for 4 positions, the scale
// applied to the sums. out[r][i] holds positions 4i..4i+3 of the block.
template <typename E>
struct FloatKeys {
  struct Query {
    const float* q;
    float scale;
  };
  static void prepare(const float* q, int64_t, float scale, Query& out) { out = {q, scale}; }
  template <int R>
  static void scores(const void* k, int64_t block, int64_t hd, const Query* q,
                     float32x4_t (*out)[4]) {
    const typename E::T* kb = static_cast<const typename E::T*>(k) + block * hd * 16;
    MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) out[r][i] =
        vdupq_n_f32(0.0f);
    for (int64_t d = 0; d < hd; ++d) {
      float32x4_t kv[4];
      MUSE_UNROLL for (int i = 0; i < 4; ++i) kv[i] = E::load(kb + d * 16 + 4 * i);
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const float qd = q[r].q[d];
        MUSE_UNROLL for (int i = 0; i < 4; ++i) out[r][i] = vfmaq_n_f32(out[r][i], kv[i], qd);
      }
    }
    MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) out[r][i] =
        vmulq_n_f32(out[r][i], q[r].scale);
  }
};

// 4 bytes at p, repeated in all 4 lanes.
int8x16_t quad(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// Per lane: acc + the sum over 4 bytes of a x b.
int32x4_t dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  // 16-bit products (at most 127 x 127 in magnitude), pairs added in 16 bits
  // (fits), then widened pairwise into one sum per lane.
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_high_s8(a, b);
  return vpadalq_s16(acc, vpaddq_s16(lo, hi));
#endif
}

// Q8_0 keys: the biased key bytes flipped back to signed (XOR 0x80), 4 dimensions
// x 4 positions per 16-byte register, dotted with the query's 4 bytes repeated.
struct Q8Keys {
  using Query = QueryQ8;
  static void prepare(const float* q, int64_t hd, float scale, Query& out) {
    quantize_query_q8(q, hd, scale, out);
  }
  template <int R>
  static void scores(const void* k, int64_t block, int64_t hd, const Query* q,
                     float32x4_t (*out)[4]) {
    const uint8_t* kb = static_cast<const uint8_t*>(k) + block * 18 * hd;
    const float* kd = reinterpret_cast<const float*>(kb + 16 * hd);
    const uint8x16_t flip = vdupq_n_u8(0x80);
    MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) out[r][i] =
        vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < hd / 32; ++b) {
      int32x4_t acc[R][4];
      MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) acc[r][i] =
          vdupq_n_s32(0);
      for (int g = 0; g < 8; ++g) {
        const uint8_t* kg = kb + (b * 8 + g) * 64;
        int8x16_t kv[4];
        MUSE_UNROLL for (int i = 0; i < 4; ++i) kv[i] =
            vreinterpretq_s8_u8(veorq_u8(vld1q_u8(kg + 16 * i), flip));
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          const int8x16_t qq = quad(&q[r].q[b * 32 + g * 4]);
          MUSE_UNROLL for (int i = 0; i < 4; ++i) acc[r][i] = dot4(acc[r][i], kv[i], qq);
        }
      }
      MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) out[r][i] =
          vfmaq_f32(out[r][i], vcvtq_f32_s32(acc[r][i]),
                    vmulq_n_f32(vld1q_f32(kd + b * 16 + 4 * i), q[r].d_scaled[b]));
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
      float32x4_t acc[R][4];
      MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) acc[r][i] =
          vmulq_n_f32(vld1q_f32(&o[r][d + 4 * i]), corr[r]);
      const typename E::T* vrow = vc + static_cast<int64_t>(p0) * hd + d;
      for (int j = 0; j < n_pos; ++j, vrow += hd) {
        float32x4_t vv[4];
        MUSE_UNROLL for (int i = 0; i < 4; ++i) vv[i] = E::load(vrow + 4 * i);
        MUSE_UNROLL for (int r = 0; r < R; ++r) {
          const float pj = s[r][j];
          MUSE_UNROLL for (int i = 0; i < 4; ++i) acc[r][i] = vfmaq_n_f32(acc[r][i], vv[i], pj);
        }
      }
      MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i)
          vst1q_f32(&o[r][d + 4 * i], acc[r][i]);
    }
  }
};

// Q8_0 values: per 32-dimension block, the weights p x d_v / max d_v rounded
// to 16 bits (attention.h); vld4 splits 4 positions x 16 dimensions of value
// bytes into one register per position, widened to int16 and multiplied by that
// position's weight into 32-bit sums, scaled once per tile.
struct Q8Values {
  template <int R>
  static void accumulate(const void* v, int32_t p0, int n_pos, int64_t hd, const float (*s)[kBlock],
                         const float* corr, float (*o)[kMaxDim]) {
    const uint8_t* vb = static_cast<const uint8_t*>(v) + static_cast<int64_t>(p0 / 16) * 18 * hd;
    const int n_sub = (n_pos + 15) / 16, n_groups = (n_pos + 3) / 4;
    for (int64_t b = 0; b < hd / 32; ++b) {
      // The tile's value scales (0 past its end, where the cache may hold
      // anything), divided by their largest: the weights p x d_v / max d_v,
      // with p <= 1, round into 0..kValueWeightMax with one scale per tile.
      float32x4_t dv[kBlock / 4];
      float32x4_t mx = vdupq_n_f32(0.0f);
      for (int i = 0; i < n_sub * 4; ++i) {
        const float* d =
            reinterpret_cast<const float*>(vb + (i / 4) * 18 * hd + 16 * hd) + b * 16 + (i % 4) * 4;
        const int left = n_pos - 4 * i;
        if (left >= 4) {
          dv[i] = vld1q_f32(d);
        } else {
          float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          for (int j = 0; j < left; ++j) part[j] = d[j];
          dv[i] = vld1q_f32(part);
        }
        mx = vmaxq_f32(mx, dv[i]);
      }
      const float dv_max = vmaxvq_f32(mx);
      const float w_scale = dv_max / kValueWeightMax;
      const float inv = dv_max > 0.0f ? kValueWeightMax / dv_max : 0.0f;
      for (int i = 0; i < n_sub * 4; ++i) dv[i] = vmulq_n_f32(dv[i], inv);
      alignas(16) int16_t w[R][kBlock];
      MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < n_sub * 4; ++i) vst1_s16(
          &w[r][4 * i], vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(vld1q_f32(&s[r][4 * i]), dv[i]))));
      for (int64_t d = b * 32; d < (b + 1) * 32; d += 16) {
        int32x4_t acc[R][4];
        MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) acc[r][i] =
            vdupq_n_s32(0);
        for (int g = 0; g < n_groups; ++g) {
          const int8x16x4_t x = vld4q_s8(
              reinterpret_cast<const int8_t*>(vb + (g / 4) * 18 * hd + (g % 4) * hd * 4 + d * 4));
          MUSE_UNROLL for (int j = 0; j < 4; ++j) {
            const int16x8_t lo = vmovl_s8(vget_low_s8(x.val[j])), hi = vmovl_high_s8(x.val[j]);
            MUSE_UNROLL for (int r = 0; r < R; ++r) {
              const int16_t wj = w[r][4 * g + j];
              acc[r][0] = vmlal_n_s16(acc[r][0], vget_low_s16(lo), wj);
              acc[r][1] = vmlal_high_n_s16(acc[r][1], lo, wj);
              acc[r][2] = vmlal_n_s16(acc[r][2], vget_low_s16(hi), wj);
              acc[r][3] = vmlal_high_n_s16(acc[r][3], hi, wj);
            }
          }
        }
        MUSE_UNROLL for (int r = 0; r < R; ++r) for (int i = 0; i < 4; ++i) {
          float* od = &o[r][d + 4 * i];
          vst1q_f32(od, vfmaq_n_f32(vmulq_n_f32(vld1q_f32(od), corr[r]), vcvtq_f32_s32(acc[r][i]),
                                    w_scale));
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
  alignas(16) float o[R][kMaxDim];
  alignas(16) float s[R][kBlock];
  typename K::Query q[R];
  float m[R], l[R], corr[R];
  const attention_tiles::RowSpan span = attention_tiles::span_of(rows, R);
  const int32_t lo = span.lo, hi = span.hi;
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    m[r] = -__builtin_inff();
    l[r] = 0.0f;
    for (int64_t d = 0; d < hd; d += 4) vst1q_f32(&o[r][d], vdupq_n_f32(0.0f));
    K::prepare(rows[r].q, hd, scale, q[r]);
  }
  const float32x4_t neg_inf = vdupq_n_f32(-__builtin_inff());
  const int32_t lane_init[4] = {0, 1, 2, 3};
  const int32x4_t lane = vld1q_s32(lane_init);
  for (int32_t p0 = lo & ~15; p0 <= hi; p0 += kBlock) {
    const int32_t p1 = p0 + kBlock - 1 < hi ? p0 + kBlock : hi + 1;
    const int n_sub = (p1 - p0 + 15) / 16;
    for (int sub = 0; sub < n_sub; ++sub) {
      float32x4_t a[R][4];
      attention_tiles::prefetch_ahead(kv, prefetch, p0 + 16 * sub, kBlock, hi);
      K::template scores<R>(kv.k, p0 / 16 + sub, hd, q, a);
      const int32_t base = p0 + 16 * sub;
      MUSE_UNROLL for (int r = 0; r < R; ++r) {
        const int32x4_t rlo = vdupq_n_s32(rows[r].lo), rhi = vdupq_n_s32(rows[r].hi);
        MUSE_UNROLL for (int i = 0; i < 4; ++i) {
          const int32x4_t pos = vaddq_s32(vdupq_n_s32(base + 4 * i), lane);
          const uint32x4_t visible = vandq_u32(vcgeq_s32(pos, rlo), vcleq_s32(pos, rhi));
          vst1q_f32(&s[r][16 * sub + 4 * i], vbslq_f32(visible, a[r][i], neg_inf));
        }
      }
    }
    MUSE_UNROLL for (int r = 0; r < R; ++r) {
      float32x4_t mx = neg_inf;
      for (int i = 0; i < n_sub * 16; i += 4) mx = vmaxq_f32(mx, vld1q_f32(&s[r][i]));
      const float block_max = vmaxvq_f32(mx);
      const float new_max = block_max > m[r] ? block_max : m[r];
      if (new_max == -__builtin_inff()) {
        corr[r] = 1.0f;
        for (int i = 0; i < n_sub * 16; i += 4) vst1q_f32(&s[r][i], vdupq_n_f32(0.0f));
        continue;
      }
      const float32x4_t vmax = vdupq_n_f32(new_max);
      float32x4_t sum = vdupq_n_f32(0.0f);
      for (int i = 0; i < n_sub * 16; i += 4) {
        const float32x4_t e = exp_nonpositive(vsubq_f32(vld1q_f32(&s[r][i]), vmax));
        vst1q_f32(&s[r][i], e);
        sum = vaddq_f32(sum, e);
      }
      corr[r] = vgetq_lane_f32(exp_nonpositive(vdupq_n_f32(m[r] - new_max)), 0);
      l[r] = l[r] * corr[r] + vaddvq_f32(sum);
      m[r] = new_max;
    }
    V::template accumulate<R>(kv.v, p0, p1 - p0, hd, s, corr, o);
  }
  MUSE_UNROLL for (int r = 0; r < R; ++r) {
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    attention_tiles::store_lse(rows[r], m[r], l[r]);
    for (int64_t d = 0; d < hd; d += 4)
      vst1q_f32(rows[r].out + d, vmulq_n_f32(vld1q_f32(&o[r][d]), inv));
  }
}

}  // namespace

void register_attention_neon(KernelTable& t) {
  t.ops.attention = attention_tiles::run<kMaxRows, Tile, FloatKeys, Q8Keys, FloatValues, Q8Values,
                                         F32Elems, F16Elems>;
}

}  // namespace muse::kernels
