// AVX2 k-quant kernels: dot products of Q2_K..Q6_K weights with Q8_K activations,
// and the Q8_K activation quantizer. Element layouts: kquants_scalar.cpp.
//
// The products use maddubs (unsigned 8-bit quant x signed 8-bit activation, pairs
// summed to int16; no format gets near int16 saturation) and madd with the
// sub-block scales (pairs summed to int32). Quants stored with an offset (Q3_K's
// -4, Q6_K's -32) are multiplied unsigned and the offset is taken off once per
// block through the activation block sums, as are the mins of Q2_K/Q4_K/Q5_K.
//
// Built with -mavx2 -mfma -mf16c -mbmi2, so nothing here includes headers with
// inline functions shared with other files (see kquants.h; kquants_x86.h's are
// static, a copy per file); f16 goes through F16C.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/kquants.h"
#include "kernels/kquants_x86.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels {
namespace {

float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float hsum_ps(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__m256i load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// Shuffle mask that, applied to 16 int8 sub-block scales, puts scale 2p in bytes
// 0-7 and scale 2p+1 in bytes 8-15; adding 2 to every byte moves to the next pair.
__m128i first_pair_mask() {
  return _mm_set_epi64x(0x0101010101010101LL, 0);
}

// Scales of sub-blocks (2p, 2p+1) of 16 elements as int16: low 128-bit lane =
// scale 2p, high lane = scale 2p+1, matching the halves of a 32-byte quant vector.
__m256i scale_pair(__m128i scales8, __m128i mask) {
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales8, mask));
}

using kquants_x86::unpack_q3_k_scales;
using kquants_x86::unpack_q4_k_scales;

// sum over the block of scale_j * bsum_j (16 sub-blocks of 16), as 8 int32 partials.
__m256i scaled_bsums(__m128i scales8, const int16_t* bsums) {
  return _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales8), load256(bsums));
}

void vec_dot_q2_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ2_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  const __m256i three = _mm256_set1_epi8(3);
  const __m128i low4 = _mm_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * _cvtsh_ss(wb[b].d);
    const float dmin = ab[b].d * _cvtsh_ss(wb[b].dmin);
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].scales));
    const __m128i scales8 = _mm_and_si128(packed, low4);
    const __m128i mins8 = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);
    const __m256i summ = scaled_bsums(mins8, ab[b].bsums);
    __m256i sumi = _mm256_setzero_si256();
    __m128i mask = first_pair_mask();
    const int8_t* y = ab[b].qs;
    for (int half = 0; half < 2; ++half) {
      __m256i q = load256(wb[b].qs + 32 * half);
      for (int shift = 0; shift < 4; ++shift, y += 32) {
        const __m256i q2 = _mm256_and_si256(q, three);
        q = _mm256_srli_epi16(q, 2);
        const __m256i p = _mm256_maddubs_epi16(q2, load256(y));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales8, mask)));
        mask = _mm_add_epi8(mask, _mm_set1_epi8(2));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    acc = _mm256_fnmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(summ), acc);
  }
  *out = hsum_ps(acc);
}

void vec_dot_q3_k(int64_t n, float* out, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ3_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i four = _mm256_set1_epi8(4);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * _cvtsh_ss(wb[b].d);
    const __m128i scales8 = unpack_q3_k_scales(wb[b].scales);
    // Quants are multiplied as q + 4 (0..7); take 4 * scale * bsum off up front.
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),
                                    _mm256_slli_epi32(scaled_bsums(scales8, ab[b].bsums), 2));
    __m256i hbits = load256(wb[b].hmask);  // bit k of byte l: element 32k + l
    __m128i mask = first_pair_mask();
    const int8_t* y = ab[b].qs;
    for (int half = 0; half < 2; ++half) {
      __m256i q = load256(wb[b].qs + 32 * half);
      for (int shift = 0; shift < 4; ++shift, y += 32) {
        const __m256i high = _mm256_and_si256(_mm256_slli_epi16(hbits, 2), four);
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(q, three), high);
        q = _mm256_srli_epi16(q, 2);
        hbits = _mm256_srli_epi16(hbits, 1);
        const __m256i p = _mm256_maddubs_epi16(q3, load256(y));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales8, mask)));
        mask = _mm_add_epi8(mask, _mm_set1_epi8(2));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum_ps(acc);
}

// Q4_K and Q5_K share everything but the fifth bit.
template <bool kFifthBit, typename Block>
float dot_q45_k(int64_t n, const Block* wb, const BlockQ8_K* ab) {
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps();
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
    const __m128i summ = _mm_madd_epi16(mins16, bsums32);
    acc_min = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(summ), acc_min);

    const __m256i scales = _mm256_broadcastsi128_si256(scales16);
    __m256i pick = _mm256_set1_epi16(0x0100);  // shuffle mask broadcasting int16 scale j
    const __m256i next = _mm256_set1_epi16(0x0202);
    __m256i hbits;
    if constexpr (kFifthBit) hbits = load256(wb[b].qh);  // bit j of byte l: element 32j + l
    __m256i sumi = _mm256_setzero_si256();
    const uint8_t* qs = wb[b].qs;
    const int8_t* y = ab[b].qs;
    for (int chunk = 0; chunk < 4; ++chunk, qs += 32, y += 64) {
      const __m256i q = load256(qs);
      __m256i q_lo = _mm256_and_si256(q, low4);
      __m256i q_hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      if constexpr (kFifthBit) {
        q_lo = _mm256_or_si256(q_lo, _mm256_and_si256(_mm256_slli_epi16(hbits, 4), bit4));
        q_hi = _mm256_or_si256(q_hi, _mm256_and_si256(_mm256_slli_epi16(hbits, 3), bit4));
        hbits = _mm256_srli_epi16(hbits, 2);
      }
      const __m256i s_lo = _mm256_shuffle_epi8(scales, pick);
      pick = _mm256_add_epi8(pick, next);
      const __m256i s_hi = _mm256_shuffle_epi8(scales, pick);
      pick = _mm256_add_epi8(pick, next);
      const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, load256(y)), s_lo);
      const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, load256(y + 32)), s_hi);
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum_ps(acc) - hsum_ps(acc_min);
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
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  const __m256i bits45 = _mm256_set1_epi8(0x30);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * _cvtsh_ss(wb[b].d);
    const __m128i scales8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[b].scales));
    // Quants are multiplied as q + 32 (0..63); take 32 * scale * bsum off up front.
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),
                                    _mm256_slli_epi32(scaled_bsums(scales8, ab[b].bsums), 5));
    __m128i mask = first_pair_mask();
    const __m128i two = _mm_set1_epi8(2);
    const int8_t* y = ab[b].qs;
    for (int half = 0; half < 2; ++half, y += 128) {
      const __m256i ql0 = load256(wb[b].ql + 64 * half);
      const __m256i ql1 = load256(wb[b].ql + 64 * half + 32);
      const __m256i qh = load256(wb[b].qh + 32 * half);
      // Element groups of 32: low nibble of ql0 / ql1, then high nibbles; the two
      // high bits come from bit pairs 0-1, 2-3, 4-5, 6-7 of qh, moved to bits 4-5.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(ql1, low4),
                          _mm256_and_si256(_mm256_slli_epi16(qh, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                          _mm256_and_si256(qh, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), bits45)),
      };
      for (int g = 0; g < 4; ++g) {
        const __m256i p = _mm256_maddubs_epi16(q[g], load256(y + 32 * g));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(scales8, mask)));
        mask = _mm_add_epi8(mask, two);
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum_ps(acc);
}

void quantize_q8_k(const float* x, void* out, int64_t n) {
  kquants::check_row_length(n, "quantize q8_k");
  auto* blocks = static_cast<BlockQ8_K*>(out);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    BlockQ8_K& blk = blocks[b];
    __m256 vmax = _mm256_setzero_ps();
    for (int i = 0; i < QK_K; i += 8) {
      vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float amax = _mm_cvtss_f32(m);
    if (amax == 0.0f) {
      std::memset(&blk, 0, sizeof(blk));
      continue;
    }
    const float iscale = 127.0f / amax;
    const __m256 vscale = _mm256_set1_ps(iscale);
    for (int g = 0; g < QK_K / 32; ++g) {
      const float* xg = x + 32 * g;
      // cvtps rounds to nearest even, as the scalar reference does.
      const __m256i v0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg), vscale));
      const __m256i v1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 8), vscale));
      const __m256i v2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 16), vscale));
      const __m256i v3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xg + 24), vscale));
      // Sums of elements 0-15 and 16-31 for bsums.
      const __m256i t = _mm256_hadd_epi32(_mm256_add_epi32(v0, v1), _mm256_add_epi32(v2, v3));
      const __m256i t2 = _mm256_hadd_epi32(t, t);
      const __m128i sums =
          _mm_add_epi32(_mm256_castsi256_si128(t2), _mm256_extracti128_si256(t2, 1));
      blk.bsums[2 * g] = static_cast<int16_t>(_mm_cvtsi128_si32(sums));
      blk.bsums[2 * g + 1] = static_cast<int16_t>(_mm_extract_epi32(sums, 1));
      // Packing interleaves 128-bit lanes; the permute restores element order.
      const __m256i p16 =
          _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.qs + 32 * g),
                          _mm256_permutevar8x32_epi32(p16, order));
    }
    blk.d = 1.0f / iscale;
  }
}

}  // namespace

void register_kquants_avx2(KernelTable& t) {
  t.vec_dot[static_cast<uint32_t>(DType::Q2_K)] = vec_dot_q2_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q3_K)] = vec_dot_q3_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q4_K)] = vec_dot_q4_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q5_K)] = vec_dot_q5_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q6_K)] = vec_dot_q6_k;
  t.quantize[static_cast<uint32_t>(DType::Q8_K)] = quantize_q8_k;
}

}  // namespace muse::kernels
