// NEON (AArch64) k-quant dot products for Q4_K, Q5_K and Q6_K weights with Q8_K
// activations; the other k-quant formats and the Q8_K quantizer use the scalar
// reference (not registered here). Element layouts: kquants_scalar.cpp.
//
// 16 quants at a time are unpacked to int8 and multiplied with the activations:
// with SDOT (built with the dotprod extension) four products sum straight into
// int32, otherwise vmull/vmlal form int16 pair sums (at most 2 * 32 * 128, far
// from saturation) that vpadal widens into int32. Sub-block scales multiply the
// int32 partials; mins come from the activation block sums.
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "kernels/kernel_table.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels {
namespace {

float f16_value(uint16_t h) {
  float16_t f;
  std::memcpy(&f, &h, sizeof(h));
  return static_cast<float>(f);
}

// acc + the products q[i] * y[i] summed in groups (any grouping: callers reduce).
int32x4_t dot16(int32x4_t acc, int8x16_t q, int8x16_t y) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, q, y);
#else
  const int16x8_t p =
      vmlal_s8(vmull_s8(vget_low_s8(q), vget_low_s8(y)), vget_high_s8(q), vget_high_s8(y));
  return vpadalq_s16(acc, p);
#endif
}

// Q4_K/Q5_K: 8 six-bit scales and 8 mins from their 12-byte packing.
void unpack_q4_k_scales(const uint8_t* packed, uint8_t scales[8], uint8_t mins[8]) {
  uint32_t aux[3];
  std::memcpy(aux, packed, 12);
  const uint32_t sc[2] = {aux[0] & 0x3f3f3f3fu,
                          (aux[2] & 0x0f0f0f0fu) | ((aux[0] >> 2) & 0x30303030u)};
  const uint32_t mn[2] = {aux[1] & 0x3f3f3f3fu,
                          ((aux[2] >> 4) & 0x0f0f0f0fu) | ((aux[1] >> 2) & 0x30303030u)};
  std::memcpy(scales, sc, 8);
  std::memcpy(mins, mn, 8);
}

// Q4_K and Q5_K share everything but the fifth bit.
template <bool kFifthBit, typename Block>
float dot_q45_k(int64_t n, const Block* wb, const BlockQ8_K* ab) {
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const uint8x16_t bit4 = vdupq_n_u8(0x10);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * f16_value(wb[b].d);
    const float dmin = ab[b].d * f16_value(wb[b].dmin);
    uint8_t scales[8], mins[8];
    unpack_q4_k_scales(wb[b].scales, scales, mins);
    // Sums of the 32-element sub-blocks from the 16-element bsums, times the mins.
    const int16x8_t bsums32 = vpaddq_s16(vld1q_s16(ab[b].bsums), vld1q_s16(ab[b].bsums + 8));
    const int16x8_t mins16 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins)));
    int32x4_t prod_min = vmull_s16(vget_low_s16(mins16), vget_low_s16(bsums32));
    prod_min = vmlal_s16(prod_min, vget_high_s16(mins16), vget_high_s16(bsums32));
    const int32_t summ = vaddvq_s32(prod_min);

    uint8x16_t hbits[2];
    if constexpr (kFifthBit) {  // bit j of byte l: element 32j + l
      hbits[0] = vld1q_u8(wb[b].qh);
      hbits[1] = vld1q_u8(wb[b].qh + 16);
    }
    int32x4_t acc = vdupq_n_s32(0);
    const uint8_t* qs = wb[b].qs;
    const int8_t* y = ab[b].qs;
    for (int chunk = 0; chunk < 4; ++chunk, qs += 32, y += 64) {
      int32x4_t lo = vdupq_n_s32(0), hi = vdupq_n_s32(0);
      for (int part = 0; part < 2; ++part) {
        const uint8x16_t q = vld1q_u8(qs + 16 * part);
        uint8x16_t q_lo = vandq_u8(q, low4);
        uint8x16_t q_hi = vshrq_n_u8(q, 4);
        if constexpr (kFifthBit) {
          const uint8x16_t sel_lo = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * chunk)));
          const uint8x16_t sel_hi = vdupq_n_u8(static_cast<uint8_t>(2u << (2 * chunk)));
          q_lo = vorrq_u8(q_lo, vandq_u8(vtstq_u8(hbits[part], sel_lo), bit4));
          q_hi = vorrq_u8(q_hi, vandq_u8(vtstq_u8(hbits[part], sel_hi), bit4));
        }
        lo = dot16(lo, vreinterpretq_s8_u8(q_lo), vld1q_s8(y + 16 * part));
        hi = dot16(hi, vreinterpretq_s8_u8(q_hi), vld1q_s8(y + 32 + 16 * part));
      }
      acc = vmlaq_n_s32(acc, lo, scales[2 * chunk]);
      acc = vmlaq_n_s32(acc, hi, scales[2 * chunk + 1]);
    }
    sum += d * static_cast<float>(vaddvq_s32(acc)) - dmin * static_cast<float>(summ);
  }
  return sum;
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
  const uint8x16_t low4 = vdupq_n_u8(0x0f);
  const uint8x16_t low2 = vdupq_n_u8(0x03);
  const int8x16_t offset = vdupq_n_s8(32);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const float d = ab[b].d * f16_value(wb[b].d);
    int32x4_t acc = vdupq_n_s32(0);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = wb[b].ql + 64 * half;
      const uint8_t* qh = wb[b].qh + 32 * half;
      const int8_t* y = ab[b].qs + 128 * half;
      const int8_t* sc = wb[b].scales + 8 * half;
      for (int k = 0; k < 2; ++k) {
        const uint8x16_t h = vld1q_u8(qh + 16 * k);
        const uint8x16_t l0 = vld1q_u8(ql + 16 * k);
        const uint8x16_t l1 = vld1q_u8(ql + 32 + 16 * k);
        // Elements 16k.. of the four 32-element groups of this half: low nibbles of
        // ql[0..31] / ql[32..63], then high nibbles; qh bit pairs 0-1, 2-3, 4-5, 6-7.
        const uint8x16_t q[4] = {
            vorrq_u8(vandq_u8(l0, low4), vshlq_n_u8(vandq_u8(h, low2), 4)),
            vorrq_u8(vandq_u8(l1, low4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), low2), 4)),
            vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), low2), 4)),
            vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4)),
        };
        for (int g = 0; g < 4; ++g) {
          const int8x16_t qs = vsubq_s8(vreinterpretq_s8_u8(q[g]), offset);
          const int32x4_t p = dot16(vdupq_n_s32(0), qs, vld1q_s8(y + 32 * g + 16 * k));
          acc = vmlaq_n_s32(acc, p, sc[2 * g + k]);  // sub-block (32g + 16k) / 16
        }
      }
    }
    sum += d * static_cast<float>(vaddvq_s32(acc));
  }
  *out = sum;
}

}  // namespace

void register_kquants_neon(KernelTable& t) {
  t.vec_dot[static_cast<uint32_t>(DType::Q4_K)] = vec_dot_q4_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q5_K)] = vec_dot_q5_k;
  t.vec_dot[static_cast<uint32_t>(DType::Q6_K)] = vec_dot_q6_k;
}

}  // namespace muse::kernels
