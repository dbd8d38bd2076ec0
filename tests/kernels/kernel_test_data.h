// Test data shared by the kernel tests: weight-like random values and quantized matrices.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "kernels/kernel_table.h"

namespace muse::kernels::testing_data {

// Gaussian data with a few outliers, as real weights and activations have.
inline std::vector<float> random_values(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::uniform_int_distribution<int> pick(0, 63);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = pick(rng) == 0 ? 4.0f * normal(rng) : normal(rng);
  return v;
}

// A rows x cols weight matrix of type t, quantized from `source` with the scalar reference.
struct Matrix {
  std::vector<float> source;
  std::vector<uint8_t> bytes;
  TensorView view;
};

inline Matrix make_matrix(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  Matrix m;
  m.source = random_values(rows * cols, seed);
  m.bytes.resize(row_bytes(t, cols) * static_cast<size_t>(rows));
  const QuantizeRowFn q = scalar_kernels().quantize_fn(t);
  for (int64_t r = 0; r < rows; ++r)
    q(m.source.data() + r * cols, m.bytes.data() + r * row_bytes(t, cols), cols);
  m.view.type = t;
  m.view.n_dims = 2;
  m.view.ne = {cols, rows, 1, 1};
  m.view.data = m.bytes.data();
  m.view.nbytes = m.bytes.size();
  return m;
}

}  // namespace muse::kernels::testing_data
