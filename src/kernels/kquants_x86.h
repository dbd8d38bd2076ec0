// The k-quant scale unpacking both x86 kernel files (kquants_avx2.cpp,
// kquants_avx512.cpp) use, in SSE4.1. Include only from files built with x86 ISA
// flags; the functions are `static`, so each file gets its own copy, built with
// its own flags (as gemm_layout.h).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace muse::kernels::kquants_x86 {

// Q4_K/Q5_K: 8 six-bit scales and 8 mins from their 12-byte packing, as int16.
static inline void unpack_q4_k_scales(const uint8_t* packed, __m128i& scales, __m128i& mins) {
  uint32_t aux[3];
  std::memcpy(aux, packed, 12);
  const uint32_t sc_lo = aux[0] & 0x3f3f3f3fu;
  const uint32_t mn_lo = aux[1] & 0x3f3f3f3fu;
  const uint32_t sc_hi = (aux[2] & 0x0f0f0f0fu) | ((aux[0] >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((aux[2] >> 4) & 0x0f0f0f0fu) | ((aux[1] >> 2) & 0x30303030u);
  scales = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(sc_hi), static_cast<int>(sc_lo)));
  mins = _mm_cvtepu8_epi16(_mm_set_epi32(0, 0, static_cast<int>(mn_hi), static_cast<int>(mn_lo)));
}

// Q3_K: 16 signed scales (stored 6-bit value - 32) from their 12-byte packing.
static inline __m128i unpack_q3_k_scales(const uint8_t* packed) {
  uint32_t aux[3];
  std::memcpy(aux, packed, 12);
  const uint32_t s0 = (aux[0] & 0x0f0f0f0fu) | ((aux[2] << 4) & 0x30303030u);
  const uint32_t s1 = (aux[1] & 0x0f0f0f0fu) | ((aux[2] << 2) & 0x30303030u);
  const uint32_t s2 = ((aux[0] >> 4) & 0x0f0f0f0fu) | (aux[2] & 0x30303030u);
  const uint32_t s3 = ((aux[1] >> 4) & 0x0f0f0f0fu) | ((aux[2] >> 2) & 0x30303030u);
  const __m128i v = _mm_set_epi32(static_cast<int>(s3), static_cast<int>(s2), static_cast<int>(s1),
                                  static_cast<int>(s0));
  return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

}  // namespace muse::kernels::kquants_x86
