// AVX2 kernels for the legacy block formats: integer dot products of a weight
// block with a Q8_0/Q8_1 activation block (maddubs: u8 x s8 -> s16 pairs, then
// madd -> s32), scaled and accumulated in float; and the activation quantizers
// Q8_0/Q8_1, which give exactly the bytes of the scalar reference.
//
// No header with inline functions is included (see float_avx2.cpp for why;
// legacy_rows.h's functions are static, a copy per file).
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

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

// u8 x s8 products summed in groups of four into 8 int32 lanes. Callers keep
// |u * s| pairs below 2^15 (weights <= 31 or |w| <= 128 against |a| <= 127).
inline __m256i dot_u8_s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// s8 x s8: move the sign of x onto y so x can be used unsigned.
inline __m256i dot_s8_s8(__m256i x, __m256i y) {
  return dot_u8_s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// The 16 packed bytes as 32 nibbles in element order: low nibbles (elements
// 0..15) in the low half, high nibbles (16..31) in the high half.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// Byte i = 0xff where bit i of the 32-bit qh field is set, else 0.
inline __m256i expand_bits(const uint8_t qh[4]) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i byte_of_bit = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                0x0101010101010101, 0x0000000000000000);
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), byte_of_bit);
  const __m256i bit_in_byte = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_in_byte), bit_in_byte);
}

// Sums block_dot(b) (8 float lanes, already scaled) over nb blocks with two
// independent accumulators.
template <typename BlockDot>
inline float sum_blocks(int64_t nb, BlockDot block_dot) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    acc0 = block_dot(b, acc0);
    acc1 = block_dot(b + 1, acc1);
  }
  if (b < nb) acc0 = block_dot(b, acc0);
  return hsum(_mm256_add_ps(acc0, acc1));
}

inline __m256 scaled_add(__m256i isum, float scale, __m256 acc) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(scale), acc);
}

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  *out = sum_blocks(n / QK8_0, [&](int64_t b, __m256 acc) {
    const __m256i q = _mm256_sub_epi8(unpack_nibbles(w[b].qs), _mm256_set1_epi8(8));
    return scaled_add(dot_s8_s8(q, load32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d), acc);
  });
}

void vec_dot_q4_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  const int64_t nb = n / QK8_1;
  float bias = 0.0f;  // sum of m * s: the min times the activation block sum
  for (int64_t b = 0; b < nb; ++b) bias += fp16(w[b].m) * fp16(a[b].s);
  *out = bias + sum_blocks(nb, [&](int64_t b, __m256 acc) {
           const __m256i q = unpack_nibbles(w[b].qs);
           return scaled_add(dot_u8_s8(q, load32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d), acc);
         });
}

void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  *out = sum_blocks(n / QK8_0, [&](int64_t b, __m256 acc) {
    // q - 16 in two's complement is the nibble with 0xf0 on top when bit 4 is clear.
    const __m256i high_clear = _mm256_andnot_si256(expand_bits(w[b].qh), _mm256_set1_epi8(-16));
    const __m256i q = _mm256_or_si256(unpack_nibbles(w[b].qs), high_clear);
    return scaled_add(dot_s8_s8(q, load32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d), acc);
  });
}

void vec_dot_q5_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  const int64_t nb = n / QK8_1;
  float bias = 0.0f;
  for (int64_t b = 0; b < nb; ++b) bias += fp16(w[b].m) * fp16(a[b].s);
  *out = bias + sum_blocks(nb, [&](int64_t b, __m256 acc) {
           const __m256i high = _mm256_and_si256(expand_bits(w[b].qh), _mm256_set1_epi8(0x10));
           const __m256i q = _mm256_or_si256(unpack_nibbles(w[b].qs), high);
           return scaled_add(dot_u8_s8(q, load32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d), acc);
         });
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ8_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  *out = sum_blocks(n / QK8_0, [&](int64_t b, __m256 acc) {
    return scaled_add(dot_s8_s8(load32(w[b].qs), load32(a[b].qs)), fp16(w[b].d) * fp16(a[b].d),
                      acc);
  });
}

// ---- activation quantizers -------------------------------------------------

// round-half-away-from-zero (C's roundf) of values with |v| < 2^23.
inline __m256 round_half_away(__m256 v) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(v, t));  // exact
  const __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign_bit), _mm256_set1_ps(1.0f));
  return _mm256_add_ps(t,
                       _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
}

// Quantizes one block of 32 floats to int8 (same rounding as the scalar
// reference); returns d and stores the sum of the quants in *qsum.
inline float quantize_block_q8(const float* x, int8_t* qs, int* qsum) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    amax = _mm256_max_ps(amax, _mm256_and_ps(v[k], abs_mask));
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float d = _mm_cvtss_f32(m) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;

  const __m256 scale = _mm256_set1_ps(id);
  const __m256 limit = _mm256_set1_ps(127.0f);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) {
    __m256 r = round_half_away(_mm256_mul_ps(v[k], scale));
    r = _mm256_max_ps(_mm256_min_ps(r, limit), _mm256_sub_ps(_mm256_setzero_ps(), limit));
    q[k] = _mm256_cvtps_epi32(r);
  }
  *qsum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  // The packs interleave the two 128-bit lanes; the permute restores element order.
  const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
  const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
  const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                                    _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), bytes);
  return d;
}

}  // namespace

void register_legacy_avx2(KernelTable& t) {
  legacy_rows::register_into<quantize_block_q8, to_fp16>(
      t, {vec_dot_q4_0_q8_0, vec_dot_q4_1_q8_1, vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1,
          vec_dot_q8_0_q8_0});
}

}  // namespace muse::kernels
