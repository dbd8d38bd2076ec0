// What the legacy-format kernel files of the ISAs (legacy_avx2.cpp,
// legacy_avx512.cpp, legacy_neon.cpp) share: the Q8_0/Q8_1 row quantizers built
// on each ISA's block quantizer, and the registration of an ISA's legacy dot
// products and quantizers. Included by files built with ISA flags: its functions
// are `static`, so each file gets its own copy, built with its own flags (as
// gemm_layout.h).
#pragma once

#include <cstdint>

#include "kernels/kernel_table.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels::legacy_rows {

// An ISA's block quantizer: the 32 floats at x into qs, byte for byte as the
// scalar reference; the sum of the quants into *qsum; returns the scale d.
using QuantizeBlockFn = float (*)(const float* x, int8_t* qs, int* qsum);
// An ISA's float -> IEEE half bits (round to nearest even).
using ToF16Fn = uint16_t (*)(float f);

template <QuantizeBlockFn Block, ToF16Fn ToF16>
static void quantize_q8_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    int qsum;
    y[b].d = ToF16(Block(x + b * QK8_0, y[b].qs, &qsum));
  }
}

// Q8_1 also keeps s = d x (sum of the quants) for the weights' minimum terms.
template <QuantizeBlockFn Block, ToF16Fn ToF16>
static void quantize_q8_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(out);
  for (int64_t b = 0; b < n / QK8_1; ++b) {
    int qsum;
    const float d = Block(x + b * QK8_1, y[b].qs, &qsum);
    y[b].d = ToF16(d);
    y[b].s = ToF16(static_cast<float>(qsum) * d);
  }
}

// An ISA's dot products of each legacy weight type with its activation type.
struct LegacyDots {
  VecDotFn q4_0, q4_1, q5_0, q5_1, q8_0;
};

// Puts `dots` and the Q8_0/Q8_1 quantizers built on Block into t.
template <QuantizeBlockFn Block, ToF16Fn ToF16>
static void register_into(KernelTable& t, const LegacyDots& dots) {
  auto slot = [](DType type) { return static_cast<uint32_t>(type); };
  t.vec_dot[slot(DType::Q4_0)] = dots.q4_0;
  t.vec_dot[slot(DType::Q4_1)] = dots.q4_1;
  t.vec_dot[slot(DType::Q5_0)] = dots.q5_0;
  t.vec_dot[slot(DType::Q5_1)] = dots.q5_1;
  t.vec_dot[slot(DType::Q8_0)] = dots.q8_0;
  t.quantize[slot(DType::Q8_0)] = quantize_q8_0<Block, ToF16>;
  t.quantize[slot(DType::Q8_1)] = quantize_q8_1<Block, ToF16>;
}

}  // namespace muse::kernels::legacy_rows
