// Reference (scalar) k-quant kernels: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K weights and the
// Q8_K activation format. Internal to the kernels layer; everyone else reaches
// these through the KernelTable (kernel_table.h). Declared here so the quantizers,
// the SIMD files and the tests can call the reference versions directly.
//
// All row functions take n elements, n a multiple of QK_K (256); quantize and
// dequantize throw muse::Error otherwise. Element order inside each 256-element
// block is the GGUF one (see the dequantizers in kquants_scalar.cpp).
//
// Only plain declarations live here: this header is included by files built with
// different ISA flags, and an inline function defined here could be emitted with
// AVX-512 instructions and then picked by the linker for a scalar caller.
#pragma once

#include <cstdint>

namespace muse::kernels::kquants {

// f32 -> weight formats. Each sub-block's scale (and min) is chosen by a small
// search minimising the squared error, then the per-block super-scales are
// quantized and the elements re-quantized against the scales actually stored.
void quantize_row_q2_k(const float* x, void* y, int64_t n);
void quantize_row_q3_k(const float* x, void* y, int64_t n);
void quantize_row_q4_k(const float* x, void* y, int64_t n);
void quantize_row_q5_k(const float* x, void* y, int64_t n);
void quantize_row_q6_k(const float* x, void* y, int64_t n);
// f32 -> Q8_K: d = max|x| / 127, qs = round-to-nearest-even(x / d), bsums[j] =
// sum of qs[16j .. 16j+15]. The SIMD versions produce identical blocks.
void quantize_row_q8_k(const float* x, void* y, int64_t n);

void dequantize_row_q2_k(const void* x, float* y, int64_t n);
void dequantize_row_q3_k(const void* x, float* y, int64_t n);
void dequantize_row_q4_k(const void* x, float* y, int64_t n);
void dequantize_row_q5_k(const void* x, float* y, int64_t n);
void dequantize_row_q6_k(const void* x, float* y, int64_t n);
void dequantize_row_q8_k(const void* x, float* y, int64_t n);

// *out = sum_i w[i] * a[i], w a row of the weight format, a a Q8_K row.
void vec_dot_q2_k_q8_k(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q3_k_q8_k(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q4_k_q8_k(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q5_k_q8_k(int64_t n, float* out, const void* w, const void* a);
void vec_dot_q6_k_q8_k(int64_t n, float* out, const void* w, const void* a);

// The packed sub-block scales. Q4_K/Q5_K: scale and min j (0..7, 6 bits each) of
// the 12 scale bytes, and the inverse; Q3_K: the 16 signed scales (stored 6-bit
// value - 32), and the inverse.
void q4_k_scale_min(const uint8_t* s, int j, int& scale, int& min);
void pack_q4_k_scales(const int* scales, const int* mins, uint8_t* s);
void unpack_q3_k_scales(const uint8_t* s, int out[16]);
void pack_q3_k_scales(const int* scales, uint8_t* s);

// Throws muse::Error unless n is a non-negative multiple of QK_K.
void check_row_length(int64_t n, const char* what);

}  // namespace muse::kernels::kquants
