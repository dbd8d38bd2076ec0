// AVX2/FMA row operations (kernel_table.h RowOps; scalar versions in ops.cpp).
// Rows are processed 8 lanes at a time; only the last partial step uses masked
// loads and stores (on AMD Zen a masked 256-bit store takes about 20 cycles: five
// times a plain loop's whole step).
#include <immintrin.h>

#include "kernels/kernel_table.h"
#include "kernels/simd_avx2.h"

namespace muse::kernels {
namespace {

using avx2::tail_mask;

// The lanes of a full step: plain loads and stores.
struct AllLanes {};

// Applies f(i, lanes) to 8 lanes at a time: AllLanes, then a mask (__m256i) for
// the last partial step. f takes `auto lanes` and passes it to load/store/select.
template <typename F>
inline void for_lanes(int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) f(i, AllLanes{});
  if (i < n) f(i, tail_mask(n - i));
}

inline __m256 load(const float* p, AllLanes) { return _mm256_loadu_ps(p); }
inline __m256 load(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
inline void store(float* p, AllLanes, __m256 v) { _mm256_storeu_ps(p, v); }
inline void store(float* p, __m256i m, __m256 v) { _mm256_maskstore_ps(p, m, v); }
// v in the step's lanes, `outside` in the others.
inline __m256 select(AllLanes, __m256 v, __m256) { return v; }
inline __m256 select(__m256i m, __m256 v, __m256 outside) {
  return _mm256_blendv_ps(outside, v, _mm256_castsi256_ps(m));
}

inline __m256 sigmoid(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, avx2::exp(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  for_lanes(n, [&](int64_t i, auto m) {
    const __m256 g = load(gate + i, m);
    store(y + i, m, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid(g)), load(up + i, m)));
  });
}

void gelu_tanh_mul(const float* gate, const float* up, float* y, int64_t n) {
  const __m256 k = _mm256_set1_ps(2.0f * 0.7978845608028654f);
  const __m256 cubic = _mm256_set1_ps(0.044715f);
  for_lanes(n, [&](int64_t i, auto m) {
    const __m256 g = load(gate + i, m);
    const __m256 inner =
        _mm256_mul_ps(k, _mm256_fmadd_ps(_mm256_mul_ps(cubic, g), _mm256_mul_ps(g, g), g));
    store(y + i, m, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid(inner)), load(up + i, m)));
  });
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for_lanes(n, [&](int64_t i, auto m) {
    const __m256 v = load(x + i, m);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  });
  const __m256d s = _mm256_add_pd(s0, s1);
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  h = _mm_add_sd(h, _mm_unpackhi_pd(h, h));
  const double ss = _mm_cvtsd_f64(h);
  const __m256 inv =
      _mm256_set1_ps(static_cast<float>(1.0 / __builtin_sqrt(ss / static_cast<double>(n) + eps)));
  for_lanes(n, [&](int64_t i, auto m) {
    __m256 v = _mm256_mul_ps(load(x + i, m), inv);
    if (w) v = _mm256_mul_ps(v, load(w + i, m));
    store(y + i, m, v);
  });
}

void add_inplace(float* y, const float* x, int64_t n) {
  for_lanes(n, [&](int64_t i, auto m) {
    store(y + i, m, _mm256_add_ps(load(y + i, m), load(x + i, m)));
  });
}

void scale_inplace(float* y, float s, int64_t n) {
  const __m256 vs = _mm256_set1_ps(s);
  for_lanes(n, [&](int64_t i, auto m) { store(y + i, m, _mm256_mul_ps(load(y + i, m), vs)); });
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  for_lanes(n, [&](int64_t i, auto m) {
    store(y + i, m, _mm256_fmadd_ps(va, load(x + i, m), load(y + i, m)));
  });
}

float max_value(const float* x, int64_t n) {
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff());
  __m256 mx = neg_inf;
  for_lanes(n, [&](int64_t i, auto m) {
    mx = _mm256_max_ps(mx, select(m, load(x + i, m), neg_inf));
  });
  return avx2::hmax(mx);
}

float exp_sum(float* x, int64_t n, float max) {
  const __m256 vmax = _mm256_set1_ps(max);
  __m256 sum = _mm256_setzero_ps();
  for_lanes(n, [&](int64_t i, auto m) {
    const __m256 e =
        select(m, avx2::exp(_mm256_sub_ps(load(x + i, m), vmax)), _mm256_setzero_ps());
    store(x + i, m, e);
    sum = _mm256_add_ps(sum, e);
  });
  return avx2::hsum(sum);
}

}  // namespace

void register_ops_avx2(KernelTable& t) {
  t.ops.silu_mul = silu_mul;
  t.ops.gelu_tanh_mul = gelu_tanh_mul;
  t.ops.rms_norm = rms_norm;
  t.ops.add_inplace = add_inplace;
  t.ops.scale_inplace = scale_inplace;
  t.ops.axpy = axpy;
  t.ops.max = max_value;
  t.ops.exp_sum = exp_sum;
  register_attention_avx2(t);
}

}  // namespace muse::kernels
