// Weight quantizers f32 -> Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (layouts: kquants_scalar.cpp).
//
// Every format is a two-level scheme: small sub-blocks (16 or 32 elements) with
// their own scale (and for Q2_K/Q4_K/Q5_K a min), and per 256-element super-block
// one or two f16 factors by which those small scales are themselves quantized.
// The quantizers work in three steps:
//   1. per sub-block, a small search over candidate scales: for each candidate the
//      elements are rounded, the best scale (and min) for those integers is solved
//      for by least squares, and the candidate with the lowest weighted squared
//      error wins;
//   2. the sub-block scales (and mins) are quantized to the few bits the format
//      stores by the same search, weighting each sub-block by how much its scale
//      error costs in element space;
//   3. the elements are rounded again against the scales actually stored.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/fp16.h"
#include "kernels/kquants.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels::kquants {
namespace {

// Round to nearest, ties to even (like lrint, without a library call). Adding
// 1.5 * 2^23 leaves the rounded integer in the low mantissa bits; inputs are
// clamped first so that outliers (x / a tiny scale) stay in range. NaN gives an
// arbitrary integer, which callers clamp.
int nearest(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  const float shifted = std::min(std::max(v, -4.0e6f), 4.0e6f) + kMagic;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return bits - 0x4B400000;
}

int clamp_int(int v, int lo, int hi) {
  return std::min(std::max(v, lo), hi);
}

// Element importance for the error measure: the squared error of large elements
// costs a little more than that of small ones (|x| grows the weight), which keeps
// the outliers of a weight row well represented without giving up the bulk.
void element_weights(const float* x, float* w) {
  double sum2 = 0;
  for (int i = 0; i < QK_K; ++i) sum2 += static_cast<double>(x[i]) * x[i];
  const float rms = static_cast<float>(std::sqrt(sum2 / QK_K));
  for (int i = 0; i < QK_K; ++i) w[i] = rms + std::fabs(x[i]);
}

// Step 1 and 2, symmetric formats: x ~= scale * L with integer L in [-nneg, npos].
// Candidate inverse scales map the element of largest magnitude to a little less
// or more than either end of the range; returns the scale (0 for an all-zero x)
// and leaves the integers in L.
float fit_scale(const float* x, const float* w, int n, int nneg, int npos, int8_t* L) {
  float amax = 0, max_val = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max_val = x[i];
    }
  }
  if (!(amax > 1e-30f)) {  // also catches NaN
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  int8_t trial[64];
  float best_score = -1.0f, best_scale = 0.0f;
  auto try_inverse_scale = [&](float iscale) {
    float sxl = 0, sll = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest(iscale * x[i]), -nneg, npos);
      trial[i] = static_cast<int8_t>(l);
      sxl += w[i] * x[i] * l;
      sll += w[i] * static_cast<float>(l * l);
    }
    // With the least-squares scale sxl/sll the error is sum(w x^2) - sxl^2/sll.
    if (sll > 0 && sxl * sxl / sll > best_score) {
      best_score = sxl * sxl / sll;
      best_scale = sxl / sll;
      std::copy(trial, trial + n, L);
      return true;
    }
    return false;
  };
  for (int step = -10; step <= 10; ++step) {
    const float delta = 0.1f * static_cast<float>(step);
    if (nneg > 0) try_inverse_scale(-(static_cast<float>(nneg) + delta) / max_val);
    if (npos > 0) try_inverse_scale((static_cast<float>(npos) + delta) / max_val);
  }
  // Re-round against the best scale found until that stops helping.
  for (int iter = 0; iter < 4 && best_scale != 0.0f; ++iter) {
    if (!try_inverse_scale(1.0f / best_scale)) break;
  }
  return best_scale;
}

// Step 1, formats with a min: x ~= scale * L + offset with integer L in [0, nmax],
// scale >= 0 and offset <= 0 (the format stores -offset as an unsigned "min").
struct AffineFit {
  float scale = 0, offset = 0, err = std::numeric_limits<float>::infinity();
};

// Sums over a sub-block that do not depend on the rounding.
struct AffineSums {
  double sw = 0, sx = 0, sxx = 0;
};

// Least-squares scale and offset for integers L (with their sums sl = sum w L,
// sll = sum w L^2, slx = sum w L x), and the weighted squared error they leave.
AffineFit solve_affine(const AffineSums& s, double sl, double sll, double slx) {
  // Centred moments; double keeps the offset clear of cancellation.
  const double var_l = sll - sl * sl / s.sw;
  const double cov_lx = slx - sl * s.sx / s.sw;
  double scale = var_l > 0 ? cov_lx / var_l : 0.0;  // all L equal: only the offset matters
  double offset = (s.sx - scale * sl) / s.sw;
  if (offset > 0) {  // the format cannot add: refit through the origin
    offset = 0;
    scale = sll > 0 ? slx / sll : 0.0;
  }
  if (scale < 0) {
    scale = 0;
    offset = std::min(s.sx / s.sw, 0.0);
  }
  // sum w (scale L + offset - x)^2, expanded.
  const double err = s.sxx + scale * scale * sll + offset * offset * s.sw - 2 * scale * slx -
                     2 * offset * s.sx + 2 * scale * offset * sl;
  AffineFit fit;
  fit.scale = static_cast<float>(scale);
  fit.offset = static_cast<float>(offset);
  fit.err = static_cast<float>(std::max(err, 0.0));
  return fit;
}

AffineFit fit_affine(const float* x, const float* w, int n, int nmax, uint8_t* L) {
  float xmin = x[0], xmax = x[0];
  AffineSums sums;
  for (int i = 0; i < n; ++i) {
    xmin = std::min(xmin, x[i]);
    xmax = std::max(xmax, x[i]);
    sums.sw += w[i];
    sums.sx += static_cast<double>(w[i]) * x[i];
    sums.sxx += static_cast<double>(w[i]) * x[i] * x[i];
  }
  xmin = std::min(xmin, 0.0f);
  if (!(xmax - xmin > 1e-30f)) {  // constant non-positive block (or NaN)
    std::fill(L, L + n, 0);
    AffineFit fit;
    fit.offset = std::isfinite(xmin) ? xmin : 0.0f;
    fit.err = 0;
    return fit;
  }
  uint8_t trial[32];
  AffineFit best;
  auto try_rounding = [&](float iscale, float origin) {
    // Float sums let this loop vectorise and are good enough to rank candidates;
    // the winner is solved again from double sums below.
    float sl = 0, sll = 0, slx = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest(iscale * (x[i] - origin)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      const float wl = w[i] * static_cast<float>(l);
      sl += wl;
      sll += wl * static_cast<float>(l);
      slx += wl * x[i];
    }
    const AffineFit fit = solve_affine(sums, sl, sll, slx);
    if (fit.err < best.err) {
      best = fit;
      std::copy(trial, trial + n, L);
      return true;
    }
    return false;
  };
  for (int step = -10; step <= 15; ++step) {
    try_rounding((static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / (xmax - xmin),
                 xmin);
  }
  for (int iter = 0; iter < 4 && best.scale > 0; ++iter) {
    if (!try_rounding(1.0f / best.scale, best.offset)) break;
  }
  // Exact sums for the chosen integers: data the format represents exactly (say,
  // dequantized k-quant weights) must get its scale and min back to the last bit.
  double sl = 0, sll = 0, slx = 0;
  for (int i = 0; i < n; ++i) {
    const double wl = static_cast<double>(w[i]) * L[i];
    sl += wl;
    sll += wl * L[i];
    slx += wl * x[i];
  }
  return solve_affine(sums, sl, sll, slx);
}

// An f16 super-scale as it will be read back; 0 when it does not survive f16.
float to_f16_and_back(float v, uint16_t& stored) {
  stored = f32_to_f16(v);
  const float back = f16_to_f32(stored);
  if (!std::isfinite(back) || back == 0.0f) {
    stored = 0;
    return 0.0f;
  }
  return back;
}

// Step 2 for unsigned scale sets (Q2_K, Q4_K, Q5_K): values[j] >= 0 quantized to
// integers 0..nmax times an f16 factor, stored in `factor`; integers in out[].
void quantize_unsigned_set(const float* values, const float* weights, int n, int nmax,
                           uint16_t& factor, int* out) {
  int8_t levels[16];
  const float d = to_f16_and_back(fit_scale(values, weights, n, 0, nmax, levels), factor);
  for (int j = 0; j < n; ++j) out[j] = d > 0 ? clamp_int(nearest(values[j] / d), 0, nmax) : 0;
}

// Step 3 for the formats with mins: integer in [0, nmax] for x given scale and min.
int requantize_affine(float x, float scale, float min, int nmax) {
  return scale > 0 ? clamp_int(nearest((x + min) / scale), 0, nmax) : 0;
}

// Steps 1-2 for the formats with mins. Returns the effective per-sub-block scale
// and min (as read back from the stored integers) in eff_scale / eff_min.
template <int kSub, int kNmax, int kScaleMax>
void fit_block_affine(const float* x, const float* w, uint16_t& d, uint16_t& dmin, int* ls, int* lm,
                      float* eff_scale, float* eff_min) {
  constexpr int kCount = QK_K / kSub;
  float scales[kCount], mins[kCount], scale_w[kCount], min_w[kCount];
  uint8_t L[kSub];
  for (int j = 0; j < kCount; ++j) {
    const AffineFit fit = fit_affine(x + kSub * j, w + kSub * j, kSub, kNmax, L);
    scales[j] = fit.scale;
    mins[j] = -fit.offset;
    // Cost of an error e in this sub-block's scale is e^2 * sum(w L^2), in its min
    // e^2 * sum(w).
    scale_w[j] = 0;
    min_w[j] = 0;
    for (int l = 0; l < kSub; ++l) {
      scale_w[j] += w[kSub * j + l] * static_cast<float>(L[l] * L[l]);
      min_w[j] += w[kSub * j + l];
    }
    scale_w[j] = std::max(scale_w[j], 1e-30f);
  }
  quantize_unsigned_set(scales, scale_w, kCount, kScaleMax, d, ls);
  quantize_unsigned_set(mins, min_w, kCount, kScaleMax, dmin, lm);
  const float df = f16_to_f32(d), dminf = f16_to_f32(dmin);
  for (int j = 0; j < kCount; ++j) {
    // The rounded levels need not be the best pair once the elements are rounded
    // again: try the neighbours of each and keep the pair with the least error.
    const float* xs = x + kSub * j;
    const float* ws = w + kSub * j;
    float best_err = std::numeric_limits<float>::infinity();
    int best_ls = ls[j], best_lm = lm[j];
    for (int cs = std::max(ls[j] - 1, 0); cs <= std::min(ls[j] + 1, kScaleMax); ++cs) {
      for (int cm = std::max(lm[j] - 1, 0); cm <= std::min(lm[j] + 1, kScaleMax); ++cm) {
        const float s = df * static_cast<float>(cs), m = dminf * static_cast<float>(cm);
        float err = 0;
        for (int l = 0; l < kSub; ++l) {
          const int q = requantize_affine(xs[l], s, m, kNmax);
          const float diff = s * static_cast<float>(q) - m - xs[l];
          err += ws[l] * diff * diff;
        }
        if (err < best_err) {
          best_err = err;
          best_ls = cs;
          best_lm = cm;
        }
      }
    }
    ls[j] = best_ls;
    lm[j] = best_lm;
    eff_scale[j] = df * static_cast<float>(ls[j]);
    eff_min[j] = dminf * static_cast<float>(lm[j]);
  }
}

// Step 2-3 for the symmetric formats: the integer level (|level| <= level_max) for
// a sub-block's scale under super-scale d. Rounding scale / d is the start; its
// neighbours are tried too, each with the elements rounded again into
// [-nneg, npos], and the level with the least error wins.
int best_symmetric_level(const float* x, const float* w, int n, float d, float scale, int level_max,
                         int nneg, int npos) {
  if (d == 0) return 0;
  const int start = clamp_int(nearest(scale / d), -level_max, level_max);
  int best = start;
  float best_err = std::numeric_limits<float>::infinity();
  for (int level = std::max(start - 1, -level_max); level <= std::min(start + 1, level_max);
       ++level) {
    const float s = d * static_cast<float>(level);
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const int q = s != 0 ? clamp_int(nearest(x[i] / s), -nneg, npos) : 0;
      const float diff = s * static_cast<float>(q) - x[i];
      err += w[i] * diff * diff;
    }
    if (err < best_err) {
      best_err = err;
      best = level;
    }
  }
  return best;
}

}  // namespace

void quantize_row_q2_k(const float* x, void* y, int64_t n) {
  check_row_length(n, "quantize q2_k");
  auto* blocks = static_cast<BlockQ2_K*>(y);
  float w[QK_K], eff_scale[16], eff_min[16];
  int ls[16], lm[16];
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ2_K& blk = blocks[b];
    std::memset(&blk, 0, sizeof(blk));
    element_weights(x, w);
    fit_block_affine<16, 3, 15>(x, w, blk.d, blk.dmin, ls, lm, eff_scale, eff_min);
    for (int j = 0; j < 16; ++j) blk.scales[j] = static_cast<uint8_t>(ls[j] | (lm[j] << 4));
    for (int i = 0; i < QK_K; ++i) {
      const int q = requantize_affine(x[i], eff_scale[i / 16], eff_min[i / 16], 3);
      blk.qs[32 * (i / 128) + i % 32] |= static_cast<uint8_t>(q << (2 * ((i % 128) / 32)));
    }
  }
}

void quantize_row_q3_k(const float* x, void* y, int64_t n) {
  check_row_length(n, "quantize q3_k");
  auto* blocks = static_cast<BlockQ3_K*>(y);
  float w[QK_K], scales[16], scale_w[16];
  int8_t L[QK_K], ls[16];
  int levels[16];
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ3_K& blk = blocks[b];
    std::memset(&blk, 0, sizeof(blk));
    element_weights(x, w);
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_scale(x + 16 * j, w + 16 * j, 16, 4, 3, L + 16 * j);
      scale_w[j] = 1e-30f;
      for (int l = 0; l < 16; ++l) {
        scale_w[j] += w[16 * j + l] * static_cast<float>(L[16 * j + l] * L[16 * j + l]);
      }
    }
    const float d = to_f16_and_back(fit_scale(scales, scale_w, 16, 32, 31, ls), blk.d);
    for (int j = 0; j < 16; ++j) {
      const int level = best_symmetric_level(x + 16 * j, w + 16 * j, 16, d, scales[j], 32, 4, 3);
      levels[j] = level;
      const float s = d * static_cast<float>(level);
      for (int l = 0; l < 16; ++l) {
        const int i = 16 * j + l;
        const int q = (s != 0 ? clamp_int(nearest(x[i] / s), -4, 3) : 0) + 4;  // 0..7
        blk.qs[32 * (i / 128) + i % 32] |= static_cast<uint8_t>((q & 3) << (2 * ((i % 128) / 32)));
        blk.hmask[i % 32] |= static_cast<uint8_t>((q >> 2) << (i / 32));
      }
    }
    pack_q3_k_scales(levels, blk.scales);
  }
}

void quantize_row_q4_k(const float* x, void* y, int64_t n) {
  check_row_length(n, "quantize q4_k");
  auto* blocks = static_cast<BlockQ4_K*>(y);
  float w[QK_K], eff_scale[8], eff_min[8];
  int ls[8], lm[8];
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ4_K& blk = blocks[b];
    std::memset(&blk, 0, sizeof(blk));
    element_weights(x, w);
    fit_block_affine<32, 15, 63>(x, w, blk.d, blk.dmin, ls, lm, eff_scale, eff_min);
    pack_q4_k_scales(ls, lm, blk.scales);
    for (int i = 0; i < QK_K; ++i) {
      const int q = requantize_affine(x[i], eff_scale[i / 32], eff_min[i / 32], 15);
      blk.qs[32 * (i / 64) + i % 32] |= static_cast<uint8_t>(q << (4 * ((i % 64) / 32)));
    }
  }
}

void quantize_row_q5_k(const float* x, void* y, int64_t n) {
  check_row_length(n, "quantize q5_k");
  auto* blocks = static_cast<BlockQ5_K*>(y);
  float w[QK_K], eff_scale[8], eff_min[8];
  int ls[8], lm[8];
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ5_K& blk = blocks[b];
    std::memset(&blk, 0, sizeof(blk));
    element_weights(x, w);
    fit_block_affine<32, 31, 63>(x, w, blk.d, blk.dmin, ls, lm, eff_scale, eff_min);
    pack_q4_k_scales(ls, lm, blk.scales);
    for (int i = 0; i < QK_K; ++i) {
      const int q = requantize_affine(x[i], eff_scale[i / 32], eff_min[i / 32], 31);
      blk.qs[32 * (i / 64) + i % 32] |= static_cast<uint8_t>((q & 15) << (4 * ((i % 64) / 32)));
      blk.qh[i % 32] |= static_cast<uint8_t>((q >> 4) << (i / 32));
    }
  }
}

void quantize_row_q6_k(const float* x, void* y, int64_t n) {
  check_row_length(n, "quantize q6_k");
  auto* blocks = static_cast<BlockQ6_K*>(y);
  float w[QK_K], scales[16];
  int8_t L[QK_K];
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ6_K& blk = blocks[b];
    std::memset(&blk, 0, sizeof(blk));
    element_weights(x, w);
    float amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = fit_scale(x + 16 * j, w + 16 * j, 16, 32, 31, L + 16 * j);
      amax = std::max(amax, std::fabs(scales[j]));
    }
    // Eight-bit scales lose little, so the super-scale is simply max|scale| / 127.
    const float d = to_f16_and_back(amax / 127.0f, blk.d);
    for (int j = 0; j < 16; ++j) {
      const int level = best_symmetric_level(x + 16 * j, w + 16 * j, 16, d, scales[j], 127, 32, 31);
      blk.scales[j] = static_cast<int8_t>(level);
      const float s = d * static_cast<float>(level);
      for (int l = 0; l < 16; ++l) {
        const int i = 16 * j + l;
        const int q = (s != 0 ? clamp_int(nearest(x[i] / s), -32, 31) : 0) + 32;  // 0..63
        blk.ql[64 * (i / 128) + i % 64] |= static_cast<uint8_t>((q & 15) << (4 * ((i % 128) / 64)));
        blk.qh[32 * (i / 128) + i % 32] |= static_cast<uint8_t>((q >> 4) << (2 * ((i % 128) / 32)));
      }
    }
  }
}

}  // namespace muse::kernels::kquants
