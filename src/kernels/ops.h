// Element-wise and row-wise f32 operations of the forward pass. Model code calls
// these instead of writing loops of its own, so each op has one place to be made
// fast and tested. The ops listed in KernelTable::ops (kernel_table.h) run the
// SIMD version of the best ISA (ops_avx2.cpp, ops_avx512.cpp); kernels::reference
// holds the scalar versions they are tested against.
#pragma once

#include <cstdint>

namespace muse::kernels {

// y[i] = x[i] / rms(x) * w[i] (w may be null: no weight), rms over n elements.
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
// y[i] = (x[i] - mean) / std * w[i] + b[i] (w, b may be null).
void layer_norm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps);
void add(const float* a, const float* b, float* y, int64_t n);           // y = a + b
void add_inplace(float* y, const float* x, int64_t n);                   // y += x
void scale_inplace(float* y, float s, int64_t n);                        // y *= s
void silu_mul(const float* gate, const float* up, float* y, int64_t n);  // y = silu(g) * u
void gelu_tanh_mul(const float* gate, const float* up, float* y, int64_t n);
void gelu_erf_mul(const float* gate, const float* up, float* y, int64_t n);
void sigmoid_mul_inplace(float* y, const float* gate, int64_t n);  // y *= sigmoid(g)
void softcap_inplace(float* y, float cap, int64_t n);              // y = cap*tanh(y/cap)
float dot(const float* a, const float* b, int64_t n);
void axpy(float a, const float* x, float* y, int64_t n);  // y += a * x
// Softmax over n values in place; returns nothing, handles -inf entries.
void softmax_inplace(float* x, int64_t n);

// Rotary embedding of one head vector of `dim` values (dim even) at position
// `pos`: pairs are (2i, 2i+1) when `interleaved`, else (i, i + dim/2) (the
// "rotate_half" / NeoX layout). inv_freq has dim/2 entries (frequency per pair).
void rope_inplace(float* x, int64_t dim, float pos, const float* inv_freq, bool interleaved);

// The same rotation from precomputed cos/sin of each pair's angle (dim/2 each),
// so a token's angles are computed once for all heads and layers.
void rope_cos_sin(float pos, const float* inv_freq, int64_t half, float* cos, float* sin);
void rope_apply(float* x, int64_t dim, const float* cos, const float* sin, bool interleaved);

float max_value(const float* x, int64_t n);  // -inf for n == 0
// x[i] = exp(x[i] - max) in place; returns the sum of the results.
float exp_sum(float* x, int64_t n, float max);

// The scalar versions (the ground truth of the SIMD row ops).
namespace reference {
void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps);
void add_inplace(float* y, const float* x, int64_t n);
void scale_inplace(float* y, float s, int64_t n);
void silu_mul(const float* gate, const float* up, float* y, int64_t n);
void gelu_tanh_mul(const float* gate, const float* up, float* y, int64_t n);
void axpy(float a, const float* x, float* y, int64_t n);
float max_value(const float* x, int64_t n);
float exp_sum(float* x, int64_t n, float max);
}  // namespace reference

}  // namespace muse::kernels
