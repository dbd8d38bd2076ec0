// AVX-512 k-quant kernels: dot products of Q2_K..Q6_K weights with Q8_K activations,
// and the Q8_K activation quantizer. Element layouts: kquants_scalar.cpp.
//
// Each step handles 64 elements: the quants are unpacked into one zmm (variable
// per-half shifts pick the bit field of each 32-element group), multiplied with
// maddubs into int16 pairs, and vpdpwssd (VNNI) multiplies those by the sub-block
// scales, spread across the right lanes by permutexvar, and accumulates in int32.
// Offsets (Q3_K -4, Q6_K -32) and mins are taken off once per block through the
// activation block sums.
//
// Built with -mavx512f/bw/vl/dq/vnni (+AVX2 flags), so nothing here includes
// headers with inline functions shared with other files (see kquants.h;
// kquants_x86.h's are static, a copy per file).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*
// placeholders once inlined (GCC bug 105593); the warnings are not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/kquants.h"
#include "kernels/kquants_x86.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels {
namespace {

__m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
__m512i load512(const void* p) {
  return _mm512_loadu_si512(p);
}
// The same 32 bytes in both 256-bit halves.
__m512i load256_twice(const void* p) {
  return _mm512_broadcast_i64x4(load256(p));
}

// A zmm of int16 (or int8) with one value in the low 256 bits and another in the high.
__m512i halves_epi16(short lo, short hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(lo)), _mm256_set1_epi16(hi),
                            1);
}
__m512i halves_epi8(char lo, char hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8(lo)), _mm256_set1_epi8(hi), 1);
}

// permutexvar index spreading int16 scales k..k+3 over the four 128-bit lanes
// (16 elements each) of a maddubs result; add 4 to every entry for the next four.
__m512i quad_scale_index() {
  const __m128i lane = _mm_set1_epi16(1);
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set_m128i(lane, _mm_setzero_si128())),
                            _mm256_set_m128i(_mm_set1_epi16(3), _mm_set1_epi16(2)), 1);
}

using kquants_x86::unpack_q3_k_scales;
using kquants_x86::unpack_q4_k_scales;

// 16 int8 sub-block scales of 16 elements: as int16 in the low half of a zmm (for
// permutexvar), and sum_j scale_j * bsum_j as 8 int32 partials in the low half of
// another (the rest zero).
void expand_scales16(__m128i scales8, const int16_t* bsums, __m512i& scales,
                     __m512i& scaled_bsums) {
  const __m256i s16 = _mm256_cvtepi8_epi16(scales8);
  scales = _mm512_castsi256_si512(s16);
  scaled_bsums = _mm512_zextsi256_si512(_mm256_madd_epi16(s16, load256(bsums)));
}

void vec_dot_q2_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ2_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  const __m512i three = _mm512_set1_epi8(3);
  const __m512i shift_lo = halves_epi16(0, 2), shift_hi = halves_epi16(4, 6);
  const __m512i four16 = _mm512_set1_epi16(4);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * _cvtsh_ss(wb[b].d);
    const float dmin = ab[b].d * _cvtsh_ss(wb[b].dmin);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].scales));
    const __m512i scales =
        _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(packed, low4)));
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), low4));
    const __m256i summ = _mm256_madd_epi16(mins, load256(ab[b].bsums));
    __m512i idx = quad_scale_index();
    __m512i sumi = _mm512_setzero_si512();
    const int8_t* y = ab[b].qs;
    for (int half = 0; half < 2; ++half, y += 128) {
      const __m512i q = load256_twice(wb[b].qs + 32 * half);
      // Elements 0-63 of this half: bit fields 0 and 1; elements 64-127: fields 2, 3.
      const __m512i q_lo = _mm512_and_si512(_mm512_srlv_epi16(q, shift_lo), three);
      const __m512i q_hi = _mm512_and_si512(_mm512_srlv_epi16(q, shift_hi), three);
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q_lo, load512(y)),
                                 _mm512_permutexvar_epi16(idx, scales));
      idx = _mm512_add_epi16(idx, four16);
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q_hi, load512(y + 64)),
                                 _mm512_permutexvar_epi16(idx, scales));
      idx = _mm512_add_epi16(idx, four16);
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
    acc = _mm512_fnmadd_ps(_mm512_set1_ps(dmin), _mm512_cvtepi32_ps(_mm512_zextsi256_si512(summ)),
                           acc);
  }
  *out = _mm512_reduce_add_ps(acc);
}

void vec_dot_q3_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ3_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  const __m512i three = _mm512_set1_epi8(3);
  const __m512i four = _mm512_set1_epi8(4);
  const __m512i shift_lo = halves_epi16(0, 2), shift_hi = halves_epi16(4, 6);
  const __m512i four16 = _mm512_set1_epi16(4);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * _cvtsh_ss(wb[b].d);
    __m512i scales, scaled_bsums;
    expand_scales16(unpack_q3_k_scales(wb[b].scales), ab[b].bsums, scales, scaled_bsums);
    // Quants are multiplied as q + 4 (0..7); take 4 * scale * bsum off up front.
    __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(scaled_bsums, 2));
    __m512i idx = quad_scale_index();
    const __m512i hbits = load256_twice(wb[b].hmask);  // bit k of byte l: element 32k + l
    __m512i bit = halves_epi8(1, 2);
    const int8_t* y = ab[b].qs;
    for (int half = 0; half < 2; ++half) {
      const __m512i q = load256_twice(wb[b].qs + 32 * half);
      for (int part = 0; part < 2; ++part, y += 64) {
        __m512i q3 = _mm512_and_si512(_mm512_srlv_epi16(q, part == 0 ? shift_lo : shift_hi), three);
        q3 = _mm512_mask_add_epi8(q3, _mm512_test_epi8_mask(hbits, bit), q3, four);
        bit = _mm512_slli_epi16(bit, 2);
        sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(q3, load512(y)),
                                   _mm512_permutexvar_epi16(idx, scales));
        idx = _mm512_add_epi16(idx, four16);
      }
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  *out = _mm512_reduce_add_ps(acc);
}

// Q4_K and Q5_K share everything but the fifth bit.
template <bool kFifthBit, typename Block>
float dot_q45_k(int64_t n, const Block* wb, const BlockQ8_K* ab) {
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i bit4 = _mm512_set1_epi8(0x10);
  const __m512i nibble_shift = halves_epi16(0, 4);  // low nibbles, then high nibbles
  const __m512i two16 = _mm512_set1_epi16(2);
  __m512 acc = _mm512_setzero_ps();
  __m128 acc_min = _mm_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * _cvtsh_ss(wb[b].d);
    const float dmin = ab[b].d * _cvtsh_ss(wb[b].dmin);
    __m128i scales16, mins16;
    unpack_q4_k_scales(wb[b].scales, scales16, mins16);
    // Sums of the 32-element sub-blocks from the 16-element bsums.
    const __m256i bsums = load256(ab[b].bsums);
    const __m128i bsums32 =
        _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
    acc_min =
        _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(_mm_madd_epi16(mins16, bsums32)), acc_min);

    const __m512i scales = _mm512_castsi128_si512(scales16);
    __m512i idx = halves_epi16(0, 1);  // scale 2c for elements 0-31 of chunk c, 2c+1 after
    __m512i hbits, bit;
    if constexpr (kFifthBit) {
      hbits = load256_twice(wb[b].qh);  // bit j of byte l: element 32j + l
      bit = halves_epi8(1, 2);
    }
    __m512i sumi = _mm512_setzero_si512();
    for (int chunk = 0; chunk < 4; ++chunk) {
      __m512i q = _mm512_and_si512(
          _mm512_srlv_epi16(load256_twice(wb[b].qs + 32 * chunk), nibble_shift), low4);
      if constexpr (kFifthBit) {
        q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(hbits, bit), q, bit4);
        bit = _mm512_slli_epi16(bit, 2);
      }
      const __m512i p = _mm512_maddubs_epi16(q, load512(ab[b].qs + 64 * chunk));
      sumi = _mm512_dpwssd_epi32(sumi, p, _mm512_permutexvar_epi16(idx, scales));
      idx = _mm512_add_epi16(idx, two16);
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  __m128 s = _mm_add_ps(acc_min, _mm_movehl_ps(acc_min, acc_min));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(s);
}

void vec_dot_q4_k(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_q45_k<false>(n, static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(a));
}

void vec_dot_q5_k(int64_t n, float* out, const void* w, const void* a) {
  *out = dot_q45_k<true>(n, static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(a));
}

void vec_dot_q6_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ6_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i bits45 = _mm512_set1_epi8(0x30);
  // Elements 0-31 / 32-63 of a half take qh bit pairs 0-1 / 2-3 (shifted up to bits
  // 4-5); elements 64-95 / 96-127 take pairs 4-5 / 6-7.
  const __m512i high_shift_first = halves_epi16(4, 2);   // left shifts
  const __m512i high_shift_second = halves_epi16(0, 2);  // right shifts
  const __m512i four16 = _mm512_set1_epi16(4);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * _cvtsh_ss(wb[b].d);
    __m512i scales, scaled_bsums;
    expand_scales16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].scales)), ab[b].bsums,
                    scales, scaled_bsums);
    // Quants are multiplied as q + 32 (0..63); take 32 * scale * bsum off up front.
    __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(scaled_bsums, 5));
    __m512i idx = quad_scale_index();
    for (int half = 0; half < 2; ++half) {
      const __m512i ql = load512(wb[b].ql + 64 * half);
      const __m512i qh = load256_twice(wb[b].qh + 32 * half);
      const __m512i first =
          _mm512_or_si512(_mm512_and_si512(ql, low4),
                          _mm512_and_si512(_mm512_sllv_epi16(qh, high_shift_first), bits45));
      const __m512i second =
          _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                          _mm512_and_si512(_mm512_srlv_epi16(qh, high_shift_second), bits45));
      const int8_t* y = ab[b].qs + 128 * half;
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(first, load512(y)),
                                 _mm512_permutexvar_epi16(idx, scales));
      idx = _mm512_add_epi16(idx, four16);
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(second, load512(y + 64)),
                                 _mm512_permutexvar_epi16(idx, scales));
      idx = _mm512_add_epi16(idx, four16);
    }
    acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), acc);
  }
  *out = _mm512_reduce_add_ps(acc);
}

void quantize_q8_k(const float* x, void* out, int64_t n) {
  kquants::check_row_length(n, "quantize q8_k");
  auto* blocks = static_cast<BlockQ8_K*>(out);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ8_K& blk = blocks[b];
    __m512 vmax = _mm512_setzero_ps();
    for (int i = 0; i < QK_K; i += 16)
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    const float amax = _mm512_reduce_max_ps(vmax);
    if (amax == 0.0f) {
      std::memset(&blk, 0, sizeof(blk));
      continue;
    }
    const float iscale = 127.0f / amax;
    const __m512 vscale = _mm512_set1_ps(iscale);
    for (int j = 0; j < QK_K / 16; ++j) {
      // cvtps rounds to nearest even, as the scalar reference does.
      const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * j), vscale));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(blk.qs + 16 * j), _mm512_cvtsepi32_epi8(v));
      blk.bsums[j] = static_cast<int16_t>(_mm512_reduce_add_epi32(v));
    }
    blk.d = 1.0f / iscale;
  }
}

}  // namespace

void register_kquants_avx512(KernelTable& t) {
  t.vec_dot[static_cast<uint32_t>(DType::Q2_K)] = vec_dot_q2_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q3_K)] = vec_dot_q3_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q4_K)] = vec_dot_q4_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q5_K)] = vec_dot_q5_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q6_K)] = vec_dot_q6_k;
  t.quantize[static_cast<uint32_t>(DType::Q8_K)] = quantize_q8_k;
}

}  // namespace muse::kernels
