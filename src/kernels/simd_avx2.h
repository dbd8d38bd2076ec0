// Inline AVX2/FMA helpers shared by the *_avx2.cpp kernel files. Include this
// header ONLY from files compiled with the AVX2 flags (see simd_avx512.h).
#pragma once

#include <immintrin.h>

namespace muse::kernels::avx2 {

// exp(x) = p * 2^n with n = round(x / ln 2) and p the polynomial of the
// remainder (Cody-Waite split of ln 2; to about 2 ulp, see avx512::exp), for x
// already clamped by the caller.
inline __m256 exp_reduced(__m256 x, __m256& n) {
  n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  return _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
}

// 2^n for integral n in [-126, 127], built in the exponent bits.
inline __m256 exp2_int(__m256i n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
}

// exp(x); x is clamped to the normal range and results below it (x < -87.3,
// -inf included) are flushed to 0.
inline __m256 exp(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  x = _mm256_min_ps(x, _mm256_set1_ps(88.7f));
  __m256 n;
  const __m256 p = exp_reduced(x, n);
  // n in [-126, 128] after the clamps; 2^128 overflows the exponent, so split
  // it as 2^(n/2) * 2^(n - n/2).
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i half = _mm256_srai_epi32(ni, 1);
  const __m256 result =
      _mm256_mul_ps(_mm256_mul_ps(p, exp2_int(half)), exp2_int(_mm256_sub_epi32(ni, half)));
  return _mm256_andnot_ps(underflow, result);
}

// exp(x) for x <= 0 only (softmax terms: a score minus the running maximum):
// n stays in [-126, 0], so 2^n needs no split and no upper clamp.
inline __m256 exp_nonpositive(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  __m256 n;
  const __m256 p = exp_reduced(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), n);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, exp2_int(_mm256_cvtps_epi32(n))));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lanes < remaining set (remaining in 0..8).
inline __m256i tail_mask(long remaining) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(remaining)), idx);
}

}  // namespace muse::kernels::avx2
