// AVX-512 kernels for the float weight types (F32, F16, BF16): 16 lanes, four
// accumulators, and a masked load for the tail so no scalar loop remains.
//
// No header with inline functions is included (see float_avx2.cpp for why).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*
// placeholders once inlined (GCC bug 105593); the warnings are not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/kernel_table.h"

namespace muse::kernels {
namespace {

inline __mmask16 tail_mask(int64_t remaining) {
  return static_cast<__mmask16>((1u << remaining) - 1u);  // remaining < 16
}

struct F32 {
  using T = float;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load_masked(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
};
struct F16 {
  using T = uint16_t;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_masked(const uint16_t* p, __mmask16 k) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p));
  }
};
// bf16 is the top half of an f32: widen to 32 bits and shift into place.
struct BF16 {
  using T = uint16_t;
  static __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  static __m512 load(const uint16_t* p) {
    return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_masked(const uint16_t* p, __mmask16 k) {
    return widen(_mm256_maskz_loadu_epi16(k, p));
  }
};

template <typename W>
float dot_rows(int64_t n, const typename W::T* w, const float* a) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(W::load(w + i), _mm512_loadu_ps(a + i), acc0);
    acc1 = _mm512_fmadd_ps(W::load(w + i + 16), _mm512_loadu_ps(a + i + 16), acc1);
    acc2 = _mm512_fmadd_ps(W::load(w + i + 32), _mm512_loadu_ps(a + i + 32), acc2);
    acc3 = _mm512_fmadd_ps(W::load(w + i + 48), _mm512_loadu_ps(a + i + 48), acc3);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(W::load(w + i), _mm512_loadu_ps(a + i), acc0);
  if (i < n) {
    const __mmask16 k = tail_mask(n - i);
    acc1 = _mm512_fmadd_ps(W::load_masked(w + i, k), _mm512_maskz_loadu_ps(k, a + i), acc1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

void vec_dot_f32(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_rows<F32>(n, static_cast<const float*>(w), static_cast<const float*>(a));
}
void vec_dot_f16(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_rows<F16>(n, static_cast<const uint16_t*>(w), static_cast<const float*>(a));
}
void vec_dot_bf16(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_rows<BF16>(n, static_cast<const uint16_t*>(w), static_cast<const float*>(a));
}

template <typename W>
void to_f32(const void* x, float* y, int64_t n) {
  const auto* h = static_cast<const typename W::T*>(x);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, W::load(h + i));
  if (i < n) {
    const __mmask16 k = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, k, W::load_masked(h + i, k));
  }
}

}  // namespace

void register_float_avx512(KernelTable& t) {
  t.vec_dot[static_cast<uint32_t>(DType::F32)] = vec_dot_f32;
  t.vec_dot[static_cast<uint32_t>(DType::F16)] = vec_dot_f16;
  t.vec_dot[static_cast<uint32_t>(DType::BF16)] = vec_dot_bf16;
  t.dequantize[static_cast<uint32_t>(DType::F16)] = to_f32<F16>;
  t.dequantize[static_cast<uint32_t>(DType::BF16)] = to_f32<BF16>;
  register_gemm_avx512(t);  // packed GEMM kernels and row ops (gemm_avx512.cpp, ops_avx512.cpp)
  register_ops_avx512(t);
}

}  // namespace muse::kernels
