// Matrix multiplication of a weight matrix (any weight type) with f32 activations.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace muse::kernels {

struct KernelTable;

// y[t * rows + r] = sum_k W[r, k] * x[t * cols + k]  for t < n_tokens, r < rows,
// where rows = w.rows(), cols = w.cols(). Activations are converted once to the
// weight type's activation format in `scratch` (grown as needed, never shrunk, so
// steady-state calls allocate nothing). Work is split over the pool by row blocks.
void matmul(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool,
            std::vector<uint8_t>& scratch);

// Same as matmul, with an explicit kernel table instead of best_kernels() (tests
// and benchmarks compare the ISAs through it).
void matmul_with(const KernelTable& kernels, const TensorView& w, const float* x,
                 int64_t n_tokens, float* y, ThreadPool& pool, std::vector<uint8_t>& scratch);

// Same, with the scalar reference kernels (tests).
void matmul_reference(const TensorView& w, const float* x, int64_t n_tokens, float* y);

// Dequantizes row r of w (any type) into out[0..cols).
void dequantize_row(const TensorView& w, int64_t r, float* out);

}  // namespace muse::kernels
