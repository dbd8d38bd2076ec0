// Per-type kernel tables and run-time ISA dispatch.
//
// Every weight type has a scalar reference quantizer, dequantizer and dot product
// (the ground truth the SIMD kernels are tested against). Each ISA (AVX2, AVX-512,
// NEON) has its own kernel files compiled with that ISA's flags only
// (`*_avx2.cpp`, `*_avx512.cpp`, `*_neon.cpp`); they register their faster
// versions into a table, and the table for the running CPU is chosen once.
//
// Dot products multiply a weight row of type W by an activation row converted to
// vec_dot_act_type(W): F32 for float weights, Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for
// Q4_1/Q5_1, Q8_K for the k-quants.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "core/dtype.h"

namespace muse::kernels {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Neon = 3 };
std::string_view isa_name(Isa isa);

using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n);
using DequantizeRowFn = void (*)(const void* x, float* y, int64_t n);
// *out = sum_i w[i] * a[i] over n elements (n a multiple of both block sizes).
using VecDotFn = void (*)(int64_t n, float* out, const void* w_row, const void* a_row);

constexpr size_t kTypeSlots = 32;  // indexed by static_cast<uint32_t>(DType)

// Packed-layout GEMM kernels (gemm.h): one call multiplies row groups of a
// repacked weight matrix by a tile of tokens. Null: the type has no packed path
// on this ISA and matmul() (vec_dot) is used.
struct GemmArgs;
using GemmKernelFn = void (*)(const GemmArgs& args);
struct AttnKv;
struct AttnRow;

// SIMD row operations of the forward pass (ops.h dispatches to them; null entries
// fall back to the scalar code in ops.cpp).
struct RowOps {
  void (*silu_mul)(const float* gate, const float* up, float* y, int64_t n) = nullptr;
  void (*gelu_tanh_mul)(const float* gate, const float* up, float* y, int64_t n) = nullptr;
  void (*rms_norm)(const float* x, const float* w, float* y, int64_t n, float eps) = nullptr;
  void (*add_inplace)(float* y, const float* x, int64_t n) = nullptr;
  void (*scale_inplace)(float* y, float s, int64_t n) = nullptr;
  // y[i] = exp(x[i] - max) in place, returns the sum (softmax numerator).
  float (*exp_sum)(float* x, int64_t n, float max) = nullptr;
  float (*max)(const float* x, int64_t n) = nullptr;
  void (*axpy)(float a, const float* x, float* y, int64_t n) = nullptr;
  // Flash-style attention of query rows sharing one kv head (attention.h).
  void (*attention)(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale) = nullptr;
};

struct KernelTable {
  std::array<QuantizeRowFn, kTypeSlots> quantize{};      // f32 -> type
  std::array<DequantizeRowFn, kTypeSlots> dequantize{};  // type -> f32
  std::array<VecDotFn, kTypeSlots> vec_dot{};            // weight type x its act type
  std::array<GemmKernelFn, kTypeSlots> gemm{};           // packed weights x tokens
  RowOps ops;

  QuantizeRowFn quantize_fn(DType t) const { return quantize[static_cast<uint32_t>(t)]; }
  DequantizeRowFn dequantize_fn(DType t) const { return dequantize[static_cast<uint32_t>(t)]; }
  VecDotFn vec_dot_fn(DType t) const { return vec_dot[static_cast<uint32_t>(t)]; }
  GemmKernelFn gemm_fn(DType t) const { return gemm[static_cast<uint32_t>(t)]; }
};

// The activation type a weight type's dot product consumes.
DType vec_dot_act_type(DType weight_type);

// Reference (scalar) kernels: every supported type has all three entries (the
// activation-only types Q8_1 and Q8_K have quantize and dequantize).
const KernelTable& scalar_kernels();
// Scalar table with the entries of `isa` layered on top; `isa` must be supported
// by this CPU (see cpu_features.h).
const KernelTable& kernels_for(Isa isa);
// The best table for this CPU. The environment variable MUSE_ISA
// (scalar|avx2|avx512|neon) may force a lower ISA, e.g. for benchmarks.
const KernelTable& best_kernels();
Isa best_isa();

// Registration hooks, one per (type family, ISA) kernel file group.
void register_float_scalar(KernelTable& t);    // F32, F16, BF16
void register_legacy_scalar(KernelTable& t);   // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1
void register_kquants_scalar(KernelTable& t);  // Q2_K..Q6_K, Q8_K
void register_float_avx2(KernelTable& t);
void register_legacy_avx2(KernelTable& t);
void register_kquants_avx2(KernelTable& t);
void register_float_avx512(KernelTable& t);
void register_legacy_avx512(KernelTable& t);
void register_kquants_avx512(KernelTable& t);
void register_float_neon(KernelTable& t);
void register_legacy_neon(KernelTable& t);
void register_kquants_neon(KernelTable& t);
// Packed GEMM kernels and row ops (gemm_*.cpp, ops_*.cpp); called from the
// register_float_* hook of the same ISA.
void register_gemm_scalar(KernelTable& t);
void register_gemm_avx2(KernelTable& t);
void register_gemm_avx512(KernelTable& t);
void register_ops_avx2(KernelTable& t);
void register_ops_avx512(KernelTable& t);
void register_attention_avx2(KernelTable& t);
void register_attention_avx512(KernelTable& t);
void register_attention_neon(KernelTable& t);

}  // namespace muse::kernels
