// AVX-512 row operations (kernel_table.h RowOps; scalar versions in ops.cpp).
// Masked loads and stores finish each row, so no scalar tail remains.
//
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*
// placeholders once inlined (GCC bug 105593); the warnings are not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/kernel_table.h"
#include "kernels/simd_avx512.h"

namespace muse::kernels {
namespace {

using avx512::tail_mask;

// Applies f to 16 lanes at a time; the last step is masked.
template <typename F>
inline void for_lanes(int64_t n, F f) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) f(i, static_cast<__mmask16>(0xffff));
  if (i < n) f(i, tail_mask(n - i));
}

inline __m512 sigmoid(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, avx512::exp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid(g)), u));
  });
}

// 0.5 g (1 + tanh(c)) = g * sigmoid(2c), c = sqrt(2/pi) (g + 0.044715 g^3).
void gelu_tanh_mul(const float* gate, const float* up, float* y, int64_t n) {
  const __m512 k = _mm512_set1_ps(2.0f * 0.7978845608028654f);
  const __m512 cubic = _mm512_set1_ps(0.044715f);
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 u = _mm512_maskz_loadu_ps(m, up + i);
    const __m512 inner =
        _mm512_mul_ps(k, _mm512_fmadd_ps(_mm512_mul_ps(cubic, g), _mm512_mul_ps(g, g), g));
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid(inner)), u));
  });
}

// Sum of squares in double, as the scalar reference does.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi =
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    s0 = _mm512_fmadd_pd(lo, lo, s0);
    s1 = _mm512_fmadd_pd(hi, hi, s1);
  });
  const double ss = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  const float inv = static_cast<float>(1.0 / __builtin_sqrt(ss / static_cast<double>(n) + eps));
  const __m512 vinv = _mm512_set1_ps(inv);
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vinv);
    if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(y + i, m, v);
  });
}

void add_inplace(float* y, const float* x, int64_t n) {
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    _mm512_mask_storeu_ps(
        y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
  });
}

void scale_inplace(float* y, float s, int64_t n) {
  const __m512 vs = _mm512_set1_ps(s);
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, y + i), vs));
  });
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    _mm512_mask_storeu_ps(
        y + i, m,
        _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  });
}

float max_value(const float* x, int64_t n) {
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  __m512 mx = neg_inf;
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(neg_inf, m, x + i));
  });
  return _mm512_reduce_max_ps(mx);
}

float exp_sum(float* x, int64_t n, float max) {
  const __m512 vmax = _mm512_set1_ps(max);
  __m512 sum = _mm512_setzero_ps();
  for_lanes(n, [&](int64_t i, __mmask16 m) {
    const __m512 e = avx512::exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(m, e));
  });
  return _mm512_reduce_add_ps(sum);
}

}  // namespace

void register_ops_avx512(KernelTable& t) {
  t.ops.silu_mul = silu_mul;
  t.ops.gelu_tanh_mul = gelu_tanh_mul;
  t.ops.rms_norm = rms_norm;
  t.ops.add_inplace = add_inplace;
  t.ops.scale_inplace = scale_inplace;
  t.ops.axpy = axpy;
  t.ops.max = max_value;
  t.ops.exp_sum = exp_sum;
  register_attention_avx512(t);
}

}  // namespace muse::kernels
