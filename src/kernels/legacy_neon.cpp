// NEON kernels for the legacy block formats on AArch64: integer dot products of
// a weight block with its Q8_0/Q8_1 activation block (SDOT when the compiler
// targets the dot-product extension, widening multiplies otherwise), and the
// Q8_0/Q8_1 activation quantizers, which give exactly the reference bytes.
#include <arm_neon.h>

#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_table.h"
#include "kernels/legacy_rows.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels {
namespace {

// Sum of x[i] * y[i] over 16 int8 pairs, in 4 int32 lanes, added to acc.
inline int32x4_t dot16(int32x4_t acc, int8x16_t x, int8x16_t y) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, x, y);
#else
  // |x * y| <= 128 * 127 fits int16; pairwise widening adds go to int32.
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
  return vpadalq_s16(acc, vmull_high_s8(x, y));
#endif
}

// One 32-element block: weights in element order (w_lo = 0..15, w_hi = 16..31).
inline int32x4_t block_dot(int8x16_t w_lo, int8x16_t w_hi, const int8_t* a) {
  return dot16(dot16(vdupq_n_s32(0), w_lo, vld1q_s8(a)), w_hi, vld1q_s8(a + 16));
}

inline float32x4_t scaled_add(float32x4_t acc, int32x4_t isum, float scale) {
  return vfmaq_n_f32(acc, vcvtq_f32_s32(isum), scale);
}

// 0xff in byte i where bit i of the 16-bit value is set.
inline uint8x16_t expand_bits16(uint32_t bits) {
  static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t spread = vcombine_u8(vdup_n_u8(static_cast<uint8_t>(bits & 0xff)),
                                        vdup_n_u8(static_cast<uint8_t>((bits >> 8) & 0xff)));
  return vtstq_u8(spread, vld1q_u8(kBit));
}

inline uint32_t load_qh(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  const int8x16_t eight = vdupq_n_s8(8);
  float32x4_t acc = vdupq_n_f32(0.0f);
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    const uint8x16_t qs = vld1q_u8(w[b].qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(qs, vdupq_n_u8(0x0f))), eight);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(qs, 4)), eight);
    acc = scaled_add(acc, block_dot(lo, hi, a[b].qs), f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
  }
  *out = vaddvq_f32(acc);
}

void vec_dot_q4_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  float32x4_t acc = vdupq_n_f32(0.0f);
  float bias = 0.0f;  // sum of m * s: the min times the activation block sum
  for (int64_t b = 0; b < n / QK8_1; ++b) {
    const uint8x16_t qs = vld1q_u8(w[b].qs);
    const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(qs, vdupq_n_u8(0x0f)));
    const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(qs, 4));
    acc = scaled_add(acc, block_dot(lo, hi, a[b].qs), f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
    bias += f16_to_f32(w[b].m) * f16_to_f32(a[b].s);
  }
  *out = vaddvq_f32(acc) + bias;
}

void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  float32x4_t acc = vdupq_n_f32(0.0f);
  const uint8x16_t high_clear = vdupq_n_u8(0xf0);
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    const uint32_t qh = load_qh(w[b].qh);
    const uint8x16_t qs = vld1q_u8(w[b].qs);
    // q - 16 in two's complement is the nibble with 0xf0 on top when bit 4 is clear.
    const uint8x16_t lo =
        vorrq_u8(vandq_u8(qs, vdupq_n_u8(0x0f)), vbicq_u8(high_clear, expand_bits16(qh)));
    const uint8x16_t hi =
        vorrq_u8(vshrq_n_u8(qs, 4), vbicq_u8(high_clear, expand_bits16(qh >> 16)));
    acc = scaled_add(acc, block_dot(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), a[b].qs),
                     f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
  }
  *out = vaddvq_f32(acc);
}

void vec_dot_q5_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  float32x4_t acc = vdupq_n_f32(0.0f);
  float bias = 0.0f;
  const uint8x16_t bit4 = vdupq_n_u8(0x10);
  for (int64_t b = 0; b < n / QK8_1; ++b) {
    const uint32_t qh = load_qh(w[b].qh);
    const uint8x16_t qs = vld1q_u8(w[b].qs);
    const uint8x16_t lo =
        vorrq_u8(vandq_u8(qs, vdupq_n_u8(0x0f)), vandq_u8(bit4, expand_bits16(qh)));
    const uint8x16_t hi = vorrq_u8(vshrq_n_u8(qs, 4), vandq_u8(bit4, expand_bits16(qh >> 16)));
    acc = scaled_add(acc, block_dot(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), a[b].qs),
                     f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
    bias += f16_to_f32(w[b].m) * f16_to_f32(a[b].s);
  }
  *out = vaddvq_f32(acc) + bias;
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ8_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  const int64_t nb = n / QK8_0;
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    acc0 = scaled_add(acc0, block_dot(vld1q_s8(w[b].qs), vld1q_s8(w[b].qs + 16), a[b].qs),
                      f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
    acc1 =
        scaled_add(acc1, block_dot(vld1q_s8(w[b + 1].qs), vld1q_s8(w[b + 1].qs + 16), a[b + 1].qs),
                   f16_to_f32(w[b + 1].d) * f16_to_f32(a[b + 1].d));
  }
  if (b < nb) {
    acc0 = scaled_add(acc0, block_dot(vld1q_s8(w[b].qs), vld1q_s8(w[b].qs + 16), a[b].qs),
                      f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
  }
  *out = vaddvq_f32(vaddq_f32(acc0, acc1));
}

// ---- activation quantizers -------------------------------------------------

// One block of 32 floats like the scalar reference (vrndaq = roundf); returns d
// and stores the sum of the quants in *qsum.
inline float quantize_block_q8(const float* x, int8_t* qs, int* qsum) {
  float32x4_t v[8];
  float32x4_t amax = vdupq_n_f32(0.0f);
  for (int k = 0; k < 8; ++k) {
    v[k] = vld1q_f32(x + 4 * k);
    amax = vmaxq_f32(amax, vabsq_f32(v[k]));
  }
  const float d = vmaxvq_f32(amax) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int32x4_t sum = vdupq_n_s32(0);
  for (int k = 0; k < 8; k += 2) {
    const float32x4_t lim = vdupq_n_f32(127.0f);
    const int32x4_t q0 =
        vcvtq_s32_f32(vmaxq_f32(vminq_f32(vrndaq_f32(vmulq_n_f32(v[k], id)), lim), vnegq_f32(lim)));
    const int32x4_t q1 = vcvtq_s32_f32(
        vmaxq_f32(vminq_f32(vrndaq_f32(vmulq_n_f32(v[k + 1], id)), lim), vnegq_f32(lim)));
    sum = vaddq_s32(sum, vaddq_s32(q0, q1));
    const int16x8_t q16 = vcombine_s16(vmovn_s32(q0), vmovn_s32(q1));
    vst1_s8(qs + 4 * k, vmovn_s16(q16));
  }
  *qsum = vaddvq_s32(sum);
  return d;
}

}  // namespace

void register_legacy_neon(KernelTable& t) {
  legacy_rows::register_into<quantize_block_q8, f32_to_f16>(
      t, {vec_dot_q4_0_q8_0, vec_dot_q4_1_q8_1, vec_dot_q5_0_q8_0, vec_dot_q5_1_q8_1,
          vec_dot_q8_0_q8_0});
}

}  // namespace muse::kernels
