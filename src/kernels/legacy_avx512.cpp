// AVX-512 (F/BW/VL/DQ + VNNI) kernels for the legacy block formats.
//
// Dot products handle two 32-element blocks per 512-bit register: the integer
// products go through vpdpbusd (u8 x s8 summed into s32, no 16-bit saturation),
// the two blocks' scales fill the low and high halves of a scale vector. An odd
// last block uses the 256-bit form. Also the Q8_0/Q8_1 activation quantizers,
// which give exactly the bytes of the scalar reference.
//
// No header with inline functions is included (see float_avx2.cpp for why;
// legacy_rows.h's functions are static, a copy per file).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*
// placeholders once inlined (GCC bug 105593); the warnings are not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/legacy_rows.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels {
namespace {

inline float fp16(uint16_t h) {
  return _cvtsh_ss(h);
}
inline uint16_t to_fp16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---- two blocks per zmm ------------------------------------------------------

inline __m512i load_2x32(const int8_t* first, const int8_t* second) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second)), 1);
}

inline __m512 scales_2x8(float first, float second) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(first)), _mm256_set1_ps(second),
                            1);
}

// Two blocks' packed nibbles in element order: [first lo | first hi | second lo | second hi].
inline __m512i unpack_nibbles_2(const uint8_t* first, const uint8_t* second) {
  const __m256i a =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(first)));
  const __m256i b =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(second)));
  const __m512i twice = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
  // 128-bit lanes 1 and 3 (qwords 2,3,6,7) take the high nibbles.
  const __m512i nibbles = _mm512_mask_blend_epi64(0xcc, twice, _mm512_srli_epi16(twice, 4));
  return _mm512_and_si512(nibbles, _mm512_set1_epi8(0x0f));
}

inline __m512i dot_u8_s8(__m512i u, __m512i s) {
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
}

// s8 x s8: |x| as unsigned, y negated where x < 0.
inline __m512i dot_s8_s8(__m512i x, __m512i y) {
  const __mmask64 negative = _mm512_movepi8_mask(x);
  const __m512i signed_y = _mm512_mask_sub_epi8(y, negative, _mm512_setzero_si512(), y);
  return dot_u8_s8(_mm512_abs_epi8(x), signed_y);
}

// ---- one block per ymm (odd last block) ------------------------------------

inline __m256i load_32(const int8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
inline __m256i unpack_nibbles_1(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
                          _mm256_set1_epi8(0x0f));
}
inline __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}
inline __m256i dot_s8_s8(__m256i x, __m256i y) {
  return dot_u8_s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

inline float reduce(__m512 acc, __m256 tail) {
  return _mm512_reduce_add_ps(acc) + [&] {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(tail), _mm256_extractf128_ps(tail, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }();
}

// The kernels: Pair(b, acc) adds blocks b and b+1, Single(b, acc) block b.
template <typename Pair, typename Single>
inline float sum_blocks(int64_t nb, Pair pair, Single single) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    acc0 = pair(b, acc0);
    acc1 = pair(b + 2, acc1);
  }
  if (b + 2 <= nb) {
    acc0 = pair(b, acc0);
    b += 2;
  }
  __m256 tail = _mm256_setzero_ps();
  if (b < nb) tail = single(b, tail);
  return reduce(_mm512_add_ps(acc0, acc1), tail);
}

inline __m512 scaled_add(__m512i isum, float s0, float s1, __m512 acc) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scales_2x8(s0, s1), acc);
}
inline __m256 scaled_add(__m256i isum, float s, __m256 acc) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(s), acc);
}

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  // sum (q - 8) a = sum q a - 8 sum a, both through vpdpbusd on unsigned q.
  *out = sum_blocks(
      n / QK8_0,
      [&](int64_t b, __m512 acc) {
        const __m512i act = load_2x32(a[b].qs, a[b + 1].qs);
        const __m512i qa = dot_u8_s8(unpack_nibbles_2(w[b].qs, w[b + 1].qs), act);
        const __m512i eight_a = dot_u8_s8(_mm512_set1_epi8(8), act);
        return scaled_add(_mm512_sub_epi32(qa, eight_a), fp16(w[b].d) * fp16(a[b].d),
                          fp16(w[b + 1].d) * fp16(a[b + 1].d), acc);
      },
      [&](int64_t b, __m256 acc) {
        const __m256i q = _mm256_sub_epi8(unpack_nibbles_1(w[b].qs), _mm256_set1_epi8(8));
        return scaled_add(dot_s8_s8(q, load_32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d), acc);
      });
}

void vec_dot_q4_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  const int64_t nb = n / QK8_1;
  float bias = 0.0f;  // sum of m * s: the min times the activation block sum
  for (int64_t b = 0; b < nb; ++b) bias += fp16(w[b].m) * fp16(a[b].s);
  *out = bias + sum_blocks(
                    nb,
                    [&](int64_t b, __m512 acc) {
                      const __m512i q = unpack_nibbles_2(w[b].qs, w[b + 1].qs);
                      return scaled_add(dot_u8_s8(q, load_2x32(a[b].qs, a[b + 1].qs)),
                                        fp16(w[b].d) * fp16(a[b].d),
                                        fp16(w[b + 1].d) * fp16(a[b + 1].d), acc);
                    },
                    [&](int64_t b, __m256 acc) {
                      return scaled_add(dot_u8_s8(unpack_nibbles_1(w[b].qs), load_32(a[b].qs)),
                                        fp16(w[b].d) * fp16(a[b].d), acc);
                    });
}

// The 5th bits of two Q5 blocks as 0x10 bytes in element order.
inline __m512i high_bits_2(const uint8_t* qh0, const uint8_t* qh1) {
  const __mmask64 set =
      static_cast<__mmask64>(load_u32(qh0)) | (static_cast<__mmask64>(load_u32(qh1)) << 32);
  return _mm512_maskz_mov_epi8(set, _mm512_set1_epi8(0x10));
}
inline __m256i high_bits_1(const uint8_t* qh) {
  return _mm256_maskz_mov_epi8(static_cast<__mmask32>(load_u32(qh)), _mm256_set1_epi8(0x10));
}

void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  *out = sum_blocks(
      n / QK8_0,
      [&](int64_t b, __m512 acc) {
        const __m512i act = load_2x32(a[b].qs, a[b + 1].qs);
        const __m512i q = _mm512_or_si512(unpack_nibbles_2(w[b].qs, w[b + 1].qs),
                                          high_bits_2(w[b].qh, w[b + 1].qh));
        const __m512i qa = dot_u8_s8(q, act);
        const __m512i sixteen_a = dot_u8_s8(_mm512_set1_epi8(16), act);
        return scaled_add(_mm512_sub_epi32(qa, sixteen_a), fp16(w[b].d) * fp16(a[b].d),
                          fp16(w[b + 1].d) * fp16(a[b + 1].d), acc);
      },
      [&](int64_t b, __m256 acc) {
        const __m256i q = _mm256_sub_epi8(
            _mm256_or_si256(unpack_nibbles_1(w[b].qs), high_bits_1(w[b].qh)), _mm256_set1_epi8(16));
        return scaled_add(dot_s8_s8(q, load_32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d), acc);
      });
}

void vec_dot_q5_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  const int64_t nb = n / QK8_1;
  float bias = 0.0f;
  for (int64_t b = 0; b < nb; ++b) bias += fp16(w[b].m) * fp16(a[b].s);
  *out = bias +
         sum_blocks(
             nb,
             [&](int64_t b, __m512 acc) {
               const __m512i q = _mm512_or_si512(unpack_nibbles_2(w[b].qs, w[b + 1].qs),
                                                 high_bits_2(w[b].qh, w[b + 1].qh));
               return scaled_add(dot_u8_s8(q, load_2x32(a[b].qs, a[b + 1].qs)),
                                 fp16(w[b].d) * fp16(a[b].d), fp16(w[b + 1].d) * fp16(a[b + 1].d),
                                 acc);
             },
             [&](int64_t b, __m256 acc) {
               const __m256i q = _mm256_or_si256(unpack_nibbles_1(w[b].qs), high_bits_1(w[b].qh));
               return scaled_add(dot_u8_s8(q, load_32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d), acc);
             });
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ8_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  *out = sum_blocks(
      n / QK8_0,
      [&](int64_t b, __m512 acc) {
        return scaled_add(
            dot_s8_s8(load_2x32(w[b].qs, w[b + 1].qs), load_2x32(a[b].qs, a[b + 1].qs)),
            fp16(w[b].d) * fp16(a[b].d), fp16(w[b + 1].d) * fp16(a[b + 1].d), acc);
      },
      [&](int64_t b, __m256 acc) {
        return scaled_add(dot_s8_s8(load_32(w[b].qs), load_32(a[b].qs)),
                          fp16(w[b].d) * fp16(a[b].d), acc);
      });
}

// ---- activation quantizers -------------------------------------------------

// round-half-away-from-zero (C's roundf) of values with |v| < 2^23.
inline __m512 round_half_away(__m512 v) {
  const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));  // exact
  const __mmask16 round_up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  const __m512 step = _mm512_castsi512_ps(_mm512_or_si512(
      _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(static_cast<int>(0x80000000u))),
      _mm512_castps_si512(_mm512_set1_ps(1.0f))));
  return _mm512_mask_add_ps(t, round_up, t, step);
}

// Quantizes one block of 32 floats like the scalar reference; returns d and
// stores the sum of the quants in *qsum.
inline float quantize_block_q8(const float* x, int8_t* qs, int* qsum) {
  const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
  const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m512 scale = _mm512_set1_ps(id);
  const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
  const __m512 r0 = _mm512_max_ps(_mm512_min_ps(round_half_away(_mm512_mul_ps(v0, scale)), hi), lo);
  const __m512 r1 = _mm512_max_ps(_mm512_min_ps(round_half_away(_mm512_mul_ps(v1, scale)), hi), lo);
  const __m512i q0 = _mm512_cvtps_epi32(r0), q1 = _mm512_cvtps_epi32(r1);
  *qsum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtepi32_epi8(q0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + 16), _mm512_cvtepi32_epi8(q1));
  return d;
}

}  // namespace

void register_legacy_avx512(KernelTable& t) {
  legacy_rows::register_into<quantize_block_q8, to_fp16>(
      t, {vec_dot_q4_0_q8_0, vec_dot_q4_1_q8_1, vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1,
          vec_dot_q8_0_q8_0});
}

}  // namespace muse::kernels
