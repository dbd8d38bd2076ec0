// NEON kernels for the float weight types (F32, F16, BF16) on AArch64, where
// Advanced SIMD is part of the base ISA (so including core/fp16.h is safe here).
#include <arm_neon.h>

#include "core/fp16.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {
namespace {

struct F32 {
  using T = float;
  static float32x4_t lo(const float* p) { return vld1q_f32(p); }
  static float32x4_t hi(const float* p) { return vld1q_f32(p + 4); }
  static float scalar(float x) { return x; }
};
struct F16 {
  using T = uint16_t;
  static float32x4_t lo(const uint16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
  }
  static float32x4_t hi(const uint16_t* p) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p + 4)));
  }
  static float scalar(uint16_t x) { return f16_to_f32(x); }
};
// bf16 is the top half of an f32: a widening shift by 16 puts it in place.
struct BF16 {
  using T = uint16_t;
  static float32x4_t lo(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
  }
  static float32x4_t hi(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p + 4), 16));
  }
  static float scalar(uint16_t x) { return bf16_to_f32(x); }
};

template <typename W>
float dot_rows(int64_t n, const typename W::T* w, const float* a) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
  float32x4_t acc2 = vdupq_n_f32(0.0f), acc3 = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = vfmaq_f32(acc0, W::lo(w + i), vld1q_f32(a + i));
    acc1 = vfmaq_f32(acc1, W::hi(w + i), vld1q_f32(a + i + 4));
    acc2 = vfmaq_f32(acc2, W::lo(w + i + 8), vld1q_f32(a + i + 8));
    acc3 = vfmaq_f32(acc3, W::hi(w + i + 8), vld1q_f32(a + i + 12));
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = vfmaq_f32(acc0, W::lo(w + i), vld1q_f32(a + i));
    acc1 = vfmaq_f32(acc1, W::hi(w + i), vld1q_f32(a + i + 4));
  }
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
  for (; i < n; ++i) sum += W::scalar(w[i]) * a[i];
  return sum;
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
  for (; i + 8 <= n; i += 8) {
    vst1q_f32(y + i, W::lo(h + i));
    vst1q_f32(y + i + 4, W::hi(h + i));
  }
  for (; i < n; ++i) y[i] = W::scalar(h[i]);
}

}  // namespace

void register_float_neon(KernelTable& t) {
  t.vec_dot[static_cast<uint32_t>(DType::F32)] = vec_dot_f32;
  t.vec_dot[static_cast<uint32_t>(DType::F16)] = vec_dot_f16;
  t.vec_dot[static_cast<uint32_t>(DType::BF16)] = vec_dot_bf16;
  t.dequantize[static_cast<uint32_t>(DType::F16)] = to_f32<F16>;
  t.dequantize[static_cast<uint32_t>(DType::BF16)] = to_f32<BF16>;
  // No packed GEMM kernels for NEON yet: the decoder keeps the vec_dot path,
  // which is faster than the scalar packed reference.
  t.gemm = {};
  register_attention_neon(t);  // attention_neon.cpp
}

}  // namespace muse::kernels
