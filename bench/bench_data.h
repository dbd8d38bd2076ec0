// Test data for the kernel benchmarks (bench_kernels, gemm_ab): random values,
// their quantization by the scalar kernels, and a weight matrix view over them.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/kernel_table.h"

namespace muse::kernels::bench_data {

// n values drawn from N(0, 1) with `seed`.
inline std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  return v;
}

// x quantized to type t by the scalar kernels (t must have a quantizer).
inline std::vector<uint8_t> quantized(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> out(row_bytes(t, static_cast<int64_t>(x.size())));
  scalar_kernels().quantize_fn(t)(x.data(), out.data(), static_cast<int64_t>(x.size()));
  return out;
}

// A rows x cols weight matrix of type t over `bytes`.
inline TensorView matrix_view(DType t, int64_t rows, int64_t cols,
                              const std::vector<uint8_t>& bytes) {
  TensorView w;
  w.type = t;
  w.n_dims = 2;
  w.ne = {cols, rows, 1, 1};
  w.data = bytes.data();
  w.nbytes = bytes.size();
  return w;
}

}  // namespace muse::kernels::bench_data
