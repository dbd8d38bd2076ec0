// Scalar reference kernels for the plain float weight types F32, F16 and BF16.
// "Quantizing" is a conversion; the dot products take F32 activations and
// accumulate in float in index order (the SIMD versions are tested against this).
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {
namespace {

void f32_copy_in(const float* x, void* y, int64_t n) {
  std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}
void f32_copy_out(const void* x, float* y, int64_t n) {
  std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}
void vec_dot_f32(int64_t n, float* out, const void* w_row, const void* a_row) {
  const float* w = static_cast<const float*>(w_row);
  const float* a = static_cast<const float*>(a_row);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += w[i] * a[i];
  *out = sum;
}

void quantize_f16(const float* x, void* y, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_f16(x[i]);
}
void dequantize_f16(const void* x, float* y, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(h[i]);
}
void vec_dot_f16(int64_t n, float* out, const void* w_row, const void* a_row) {
  const uint16_t* w = static_cast<const uint16_t*>(w_row);
  const float* a = static_cast<const float*>(a_row);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += f16_to_f32(w[i]) * a[i];
  *out = sum;
}

void quantize_bf16(const float* x, void* y, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = f32_to_bf16(x[i]);
}
void dequantize_bf16(const void* x, float* y, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(h[i]);
}
void vec_dot_bf16(int64_t n, float* out, const void* w_row, const void* a_row) {
  const uint16_t* w = static_cast<const uint16_t*>(w_row);
  const float* a = static_cast<const float*>(a_row);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += bf16_to_f32(w[i]) * a[i];
  *out = sum;
}

void set(KernelTable& t, DType type, QuantizeRowFn q, DequantizeRowFn dq, VecDotFn dot) {
  const auto i = static_cast<uint32_t>(type);
  t.quantize[i] = q;
  t.dequantize[i] = dq;
  t.vec_dot[i] = dot;
}

}  // namespace

void register_float_scalar(KernelTable& t) {
  set(t, DType::F32, f32_copy_in, f32_copy_out, vec_dot_f32);
  set(t, DType::F16, quantize_f16, dequantize_f16, vec_dot_f16);
  set(t, DType::BF16, quantize_bf16, dequantize_bf16, vec_dot_bf16);
  register_gemm_scalar(t);  // packed GEMM reference kernels (gemm.cpp)
}

}  // namespace muse::kernels
