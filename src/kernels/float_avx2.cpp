// AVX2 + FMA + F16C kernels for the float weight types (F32, F16, BF16).
// Four independent accumulators hide the FMA latency; the < 8 element tail
// of a row (float rows may have any length) is finished with scalar code.
//
// This file deliberately includes no header with inline functions (such as
// core/fp16.h): an inline function compiled here with AVX2 flags could be the
// copy the linker keeps for the whole program and then crash older CPUs.
#include <immintrin.h>

#include "kernels/kernel_table.h"

namespace muse::kernels {
namespace {

inline float f16_to_f32(uint16_t h) {
  return _cvtsh_ss(h);
}
inline float bf16_to_f32(uint16_t h) {
  return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(h) << 16)));
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256 load_f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// bf16 is the top half of an f32: widen to 32 bits and shift into place.
inline __m256 load_bf16x8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

inline __m256 load_f32x8(const float* p) {
  return _mm256_loadu_ps(p);
}

// sum_i load_w(w + i) * a[i], with `to_f32` the scalar conversion for the tail.
template <typename W, __m256 (*LoadW)(const W*), float (*ToF32)(W)>
float dot_rows(int64_t n, const W* w, const float* a) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(LoadW(w + i), _mm256_loadu_ps(a + i), acc0);
    acc1 = _mm256_fmadd_ps(LoadW(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(LoadW(w + i + 16), _mm256_loadu_ps(a + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(LoadW(w + i + 24), _mm256_loadu_ps(a + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(LoadW(w + i), _mm256_loadu_ps(a + i), acc0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += ToF32(w[i]) * a[i];
  return sum;
}

inline float f32_identity(float x) {
  return x;
}

void vec_dot_f32(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_rows<float, load_f32x8, f32_identity>(n, static_cast<const float*>(w),
                                                   static_cast<const float*>(a));
}
void vec_dot_f16(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_rows<uint16_t, load_f16x8, f16_to_f32>(n, static_cast<const uint16_t*>(w),
                                                    static_cast<const float*>(a));
}
void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_rows<uint16_t, load_bf16x8, bf16_to_f32>(n, static_cast<const uint16_t*>(w),
                                                      static_cast<const float*>(a));
}

// Exact conversions to f32 (used by dequantize_row, e.g. embedding lookups).
void dequantize_f16(const void* x, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(x);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16x8(h + i));
  for (; i < n; ++i) y[i] = f16_to_f32(h[i]);
}
void dequantize_bf16(const void* x, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(x);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_bf16x8(h + i));
  for (; i < n; ++i) y[i] = bf16_to_f32(h[i]);
}

}  // namespace

void register_float_avx2(KernelTable& t) {
  t.vec_dot[static_cast<uint32_t>(DType::F32)] = vec_dot_f32;
  t.vec_dot[static_cast<uint32_t>(DType::F16)] = vec_dot_f16;
  t.vec_dot[static_cast<uint32_t>(DType::BF16)] = vec_dot_bf16;
  t.dequantize[static_cast<uint32_t>(DType::F16)] = dequantize_f16;
  t.dequantize[static_cast<uint32_t>(DType::BF16)] = dequantize_bf16;
  register_gemm_avx2(t);  // packed GEMM kernels and row ops (gemm_avx2.cpp, ops_avx2.cpp)
  register_ops_avx2(t);
}

}  // namespace muse::kernels
