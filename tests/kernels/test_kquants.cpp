// Tests of the k-quant kernels (Q2_K..Q6_K weights, Q8_K activations): exact
// dequantized values of hand-built blocks (bit layout and element order as in the
// GGUF specification), quantization error bounds, exact reproduction of
// representable data, Q8_K blocks, the scalar dot products against dequantized
// data, and every SIMD table this CPU runs against the scalar one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/cpu_features.h"
#include "kernels/kernel_table.h"
#include "kernels/kquants.h"
#include "kernels/quant_blocks.h"
#include "muse/error.h"

namespace muse::kernels {
namespace {

constexpr DType kWeightTypes[] = {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::vector<float> dequantize(DType t, const void* blocks, int64_t n) {
  std::vector<float> y(n);
  scalar_kernels().dequantize_fn(t)(blocks, y.data(), n);
  return y;
}

// Checks y against a block whose elements are `background[sub-block]` except the
// listed ones. `sub` is the sub-block size used for background.
void expect_block(const std::vector<float>& y, const std::map<int, float>& special,
                  const std::map<int, float>& background_by_sub, int sub) {
  ASSERT_EQ(y.size(), static_cast<size_t>(QK_K));
  for (int i = 0; i < QK_K; ++i) {
    float expected = 0.0f;
    if (auto it = special.find(i); it != special.end()) {
      expected = it->second;
    } else if (auto bg = background_by_sub.find(i / sub); bg != background_by_sub.end()) {
      expected = bg->second;
    }
    EXPECT_EQ(y[i], expected) << "element " << i;
  }
}

// --- Known values: blocks built byte by byte from the format description. ---

TEST(KQuantKnownValues, Q2K) {
  BlockQ2_K b{};
  b.d = f32_to_f16(2.0f);
  b.dmin = f32_to_f16(1.0f);
  b.scales[14] = 0x35;  // sub-block 14 (elements 224..239): scale 5, min 3
  b.scales[1] = 0x02;   // sub-block 1 (16..31): scale 2, min 0
  b.scales[3] = 0x01;   // sub-block 3 (48..63): scale 1
  // Byte 32 + 5, bits 6-7 = 2: second half (128+), bit field 3 (+96), position 5.
  b.qs[37] = 0x80;
  // Byte 20: field 0 = 1 -> element 20; field 1 = 3 -> element 32 + 20 = 52.
  b.qs[20] = 0x01 | (0x3 << 2);
  const auto y = dequantize(DType::Q2_K, &b, QK_K);
  expect_block(y, {{229, 2.0f * 5 * 2 - 3}, {20, 2.0f * 2 * 1}, {52, 2.0f * 1 * 3}}, {{14, -3.0f}},
               16);
}

TEST(KQuantKnownValues, Q3K) {
  BlockQ3_K b{};
  b.d = f32_to_f16(0.5f);
  // Stored 6-bit scales (value - 32 is the scale): all 32 (scale 0) except
  // sub-block 5 = 26 (0b01'1010, scale -6) and sub-block 13 = 55 (0b11'0111, scale 23).
  // Low nibbles: byte 5 holds sub-block 5 (low half) and 13 (high half).
  b.scales[5] = 0x7A;
  // High bit pairs: byte 8 + i%4, bits 2*(i/4). Byte 9 serves sub-blocks 1, 5, 9, 13
  // with pairs 2, 1, 2, 3; the other bytes hold pair 2 (= 32 >> 4) four times.
  b.scales[8] = b.scales[10] = b.scales[11] = 0xAA;
  b.scales[9] = 0xE6;  // 0b11'10'01'10
  // All quants 0 with high bit clear decode as -4. Element 85 (half 0, field 2,
  // position 21): low bits 3, high bit (bit 2 of hmask[21]) set -> 3.
  b.qs[21] = 0x3 << 4;
  b.hmask[21] = 1 << 2;
  // Element 210 (half 1, field 2, position 18): low bits 1, high bit clear -> -3.
  b.qs[32 + 18] = 0x1 << 4;
  // Element 211: low bits 0, high bit (bit 6 of hmask[19]) set -> 0.
  b.hmask[19] = 1 << 6;
  const auto y = dequantize(DType::Q3_K, &b, QK_K);
  expect_block(y, {{85, 0.5f * -6 * 3}, {210, 0.5f * 23 * -3}, {211, 0.0f}},
               {{5, 0.5f * -6 * -4}, {13, 0.5f * 23 * -4}}, 16);
}

// Q4_K and Q5_K share the scale packing: sub-block 2: scale 5, min 7; sub-block 6:
// scale 41 (0b10'1001), min 19 (0b01'0011); sub-block 7: scale 3, min 0.
void fill_q4_k_scales(uint8_t* s) {
  s[2] = 5 | (2 << 6);  // scale 2; top bits of scale 6
  s[6] = 7 | (1 << 6);  // min 2; top bits of min 6
  s[10] = 0x39;         // sub-block 6: low nibbles of scale (9) and min (3)
  s[11] = 0x03;         // sub-block 7: scale 3, min 0
}

TEST(KQuantKnownValues, Q4K) {
  BlockQ4_K b{};
  b.d = f32_to_f16(1.0f);
  b.dmin = f32_to_f16(0.5f);
  fill_q4_k_scales(b.scales);
  b.qs[32 + 3] = 0x0A;   // chunk 1, low nibble, position 3 -> element 67 (sub-block 2)
  b.qs[96 + 31] = 0xF1;  // chunk 3: element 223 (sub 6) = 1, element 255 (sub 7) = 15
  const auto y = dequantize(DType::Q4_K, &b, QK_K);
  expect_block(y, {{67, 5.0f * 10 - 0.5f * 7}, {223, 41.0f * 1 - 0.5f * 19}, {255, 3.0f * 15}},
               {{2, -3.5f}, {6, -9.5f}}, 32);
}

TEST(KQuantKnownValues, Q5K) {
  BlockQ5_K b{};
  b.d = f32_to_f16(1.0f);
  b.dmin = f32_to_f16(0.5f);
  fill_q4_k_scales(b.scales);
  b.qs[32 + 3] = 0x0A;
  b.qs[96 + 31] = 0xF1;
  b.qh[3] = 1 << 2;   // fifth bit of element 67 (bit 67/32 of qh[67%32])
  b.qh[31] = 1 << 7;  // fifth bit of element 255; element 223 (bit 6) stays clear
  b.qh[0] = 1 << 1;   // element 32 (sub-block 1, scale 0): q = 16 but contributes 0
  const auto y = dequantize(DType::Q5_K, &b, QK_K);
  expect_block(y, {{67, 5.0f * 26 - 0.5f * 7}, {223, 41.0f * 1 - 0.5f * 19}, {255, 3.0f * 31}},
               {{2, -3.5f}, {6, -9.5f}}, 32);
}

TEST(KQuantKnownValues, Q6K) {
  BlockQ6_K b{};
  b.d = f32_to_f16(0.25f);
  b.scales[3] = -5;
  b.scales[12] = 9;
  // All quants 0 decode as -32. Element 50 (half 0): low nibble of ql[50], bits
  // 2-3 of qh[18] -> 7 | 2 << 4 = 39 -> 7.
  b.ql[50] = 0x07;
  b.qh[18] = 0x2 << 2;
  // Element 200 (half 1, r = 72): high nibble of ql[64 + 8], bits 4-5 of qh[32 + 8]
  // -> 12 | 3 << 4 = 60 -> 28.
  b.ql[72] = 0xC0;
  b.qh[40] = 0x3 << 4;
  const auto y = dequantize(DType::Q6_K, &b, QK_K);
  expect_block(y, {{50, 0.25f * -5 * 7}, {200, 0.25f * 9 * 28}},
               {{3, 0.25f * -5 * -32}, {12, 0.25f * 9 * -32}}, 16);
}

// --- Q8_K ---

TEST(KQuantQ8K, KnownBlock) {
  std::vector<float> x(QK_K);
  for (int i = 0; i < QK_K; ++i) x[i] = 0.5f * static_cast<float>(i - 128);  // -64 .. 63.5
  BlockQ8_K b;
  scalar_kernels().quantize_fn(DType::Q8_K)(x.data(), &b, QK_K);
  EXPECT_FLOAT_EQ(b.d, 64.0f / 127.0f);
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[128], 0);
  EXPECT_EQ(b.qs[255], 126);  // 63.5 * 127 / 64 = 126.0078
  for (int j = 0; j < 16; ++j) {
    int sum = 0;
    for (int l = 0; l < 16; ++l) sum += b.qs[16 * j + l];
    EXPECT_EQ(b.bsums[j], sum) << "bsum " << j;
  }
}

TEST(KQuantQ8K, RandomRowsWithinHalfStep) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int64_t n = 4 * QK_K;
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  std::fill(x.begin() + QK_K, x.begin() + 2 * QK_K, 0.0f);  // an all-zero block
  std::vector<BlockQ8_K> b(n / QK_K);
  scalar_kernels().quantize_fn(DType::Q8_K)(x.data(), b.data(), n);
  const auto y = dequantize(DType::Q8_K, b.data(), n);
  for (int64_t blk = 0; blk < n / QK_K; ++blk) {
    int max_q = 0;
    for (int j = 0; j < 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[blk].qs[16 * j + l];
      EXPECT_EQ(b[blk].bsums[j], sum);
    }
    for (int i = 0; i < QK_K; ++i) {
      max_q = std::max(max_q, std::abs(static_cast<int>(b[blk].qs[i])));
      EXPECT_LE(std::fabs(y[blk * QK_K + i] - x[blk * QK_K + i]), 0.5f * b[blk].d * 1.0001f);
    }
    EXPECT_EQ(max_q, blk == 1 ? 0 : 127);
  }
}

// --- Quantizers ---

double normalized_rmse(DType t, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(t, n));
  scalar_kernels().quantize_fn(t)(x.data(), q.data(), n);
  const auto y = dequantize(t, q.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    ref += static_cast<double>(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

// Normalised RMSE bounds on N(0,1) data, a little above what these formats reach
// with a per-sub-block least-squares fit (about 0.268, 0.145, 0.071, 0.035, 0.017).
double rmse_bound(DType t) {
  switch (t) {
    case DType::Q2_K:
      return 0.28;
    case DType::Q3_K:
      return 0.15;
    case DType::Q4_K:
      return 0.074;
    case DType::Q5_K:
      return 0.037;
    default:
      return 0.019;
  }
}

TEST(KQuantQuantize, GaussianErrorBounds) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(64 * QK_K);
  for (auto& v : x) v = normal(rng);
  // Bounds a little above what these formats reach on Gaussian data with a
  // per-sub-block least-squares fit (about 0.268, 0.145, 0.071, 0.035, 0.017).
  const std::map<DType, double> bound = {{DType::Q2_K, 0.28},
                                         {DType::Q3_K, 0.15},
                                         {DType::Q4_K, 0.074},
                                         {DType::Q5_K, 0.037},
                                         {DType::Q6_K, 0.019}};
  for (DType t : kWeightTypes) {
    const double e = normalized_rmse(t, x);
    std::cout << "[          ] " << dtype_name(t) << " normalised RMSE on N(0,1): " << e << "\n";
    EXPECT_LT(e, rmse_bound(t)) << dtype_name(t);
  }
}

TEST(KQuantQuantize, ScaledShiftedAndOutlierRows) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (DType t : kWeightTypes) {
    for (float scale : {1e-4f, 1.0f, 300.0f}) {
      std::vector<float> x(8 * QK_K);
      for (auto& v : x) v = scale * (uni(rng) + 0.3f);  // not centred
      x[5] = 40.0f * scale;                             // an outlier
      const double e = normalized_rmse(t, x);
      EXPECT_LT(e, t == DType::Q2_K ? 0.4 : 0.2) << dtype_name(t) << " scale " << scale;
    }
  }
}

TEST(KQuantQuantize, ZeroAndConstantRows) {
  for (DType t : kWeightTypes) {
    std::vector<float> zeros(2 * QK_K, 0.0f);
    std::vector<uint8_t> q(row_bytes(t, 2 * QK_K));
    scalar_kernels().quantize_fn(t)(zeros.data(), q.data(), 2 * QK_K);
    for (float v : dequantize(t, q.data(), 2 * QK_K)) ASSERT_EQ(v, 0.0f) << dtype_name(t);

    std::vector<float> constant(QK_K, -0.75f);
    scalar_kernels().quantize_fn(t)(constant.data(), q.data(), QK_K);
    for (float v : dequantize(t, q.data(), QK_K)) EXPECT_NEAR(v, -0.75f, 0.02f) << dtype_name(t);
  }
}

TEST(KQuantQuantize, NonFiniteInputStaysInItsBlock) {
  // NaN / inf in one block must not crash nor disturb the other blocks.
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(2 * QK_K);
  for (auto& v : x) v = normal(rng);
  x[7] = std::numeric_limits<float>::quiet_NaN();
  x[9] = std::numeric_limits<float>::infinity();
  x[100] = -std::numeric_limits<float>::infinity();
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K}) {
    std::vector<uint8_t> q(row_bytes(t, 2 * QK_K));
    scalar_kernels().quantize_fn(t)(x.data(), q.data(), 2 * QK_K);
    const auto y = dequantize(t, q.data(), 2 * QK_K);
    for (int i = QK_K; i < 2 * QK_K; ++i) {
      ASSERT_NEAR(y[i], x[i], 1.0f) << dtype_name(t) << " element " << i;
    }
  }
}

TEST(KQuantQuantize, RejectsPartialBlocks) {
  std::vector<float> x(QK_K + 32, 1.0f);
  std::vector<uint8_t> q(4096);
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K}) {
    EXPECT_THROW(scalar_kernels().quantize_fn(t)(x.data(), q.data(), QK_K + 32), Error);
    EXPECT_THROW(scalar_kernels().dequantize_fn(t)(q.data(), x.data(), QK_K + 32), Error);
  }
}

// Blocks whose values the format represents exactly (integers spanning each
// sub-block's full range, scale levels reaching the top level); quantizing their
// dequantized values must give those values back.
void check_representable_blocks(DType t, int nblocks, std::mt19937& rng) {
  auto rnd = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<float> x;
  // Build the float data from integer parts, then let the format's own quantizer
  // find them: an independent construction of the expected values.
  const int sub = (t == DType::Q4_K || t == DType::Q5_K) ? 32 : 16;
  const int nsub = QK_K / sub;
  for (int b = 0; b < nblocks; ++b) {
    const float d = 0.0625f * static_cast<float>(rnd(1, 16));
    const float dmin = 0.03125f * static_cast<float>(rnd(1, 16));
    const bool affine = t == DType::Q2_K || t == DType::Q4_K || t == DType::Q5_K;
    const int level_max = t == DType::Q2_K ? 15 : (affine ? 63 : (t == DType::Q3_K ? 31 : 127));
    const int qmin = t == DType::Q3_K ? -4 : (t == DType::Q6_K ? -32 : 0);
    const int qmax = (t == DType::Q2_K || t == DType::Q3_K) ? 3 : (t == DType::Q4_K ? 15 : 31);
    const int top_sub = rnd(0, nsub - 1), top_min_sub = rnd(0, nsub - 1);
    for (int j = 0; j < nsub; ++j) {
      // Symmetric formats: one sub-block has the most negative level (-level_max - 1
      // for Q3_K's -32) and dominates; the rest stay inside.
      int level = affine ? rnd(1, level_max) : rnd(-level_max + 1, level_max - 1);
      if (j == top_sub) level = affine ? level_max : -(t == DType::Q3_K ? 32 : 127);
      int min_level = affine ? rnd(0, level_max) : 0;
      if (affine && j == top_min_sub) min_level = level_max;
      std::vector<int> q(sub);
      for (auto& v : q) v = rnd(qmin, qmax);
      q[rnd(0, sub / 2 - 1)] = qmin;  // the full range occurs in every sub-block
      q[rnd(sub / 2, sub - 1)] = qmax;
      for (int v : q) x.push_back(d * level * v - dmin * min_level);
    }
  }
  std::vector<uint8_t> out(row_bytes(t, static_cast<int64_t>(x.size())));
  scalar_kernels().quantize_fn(t)(x.data(), out.data(), static_cast<int64_t>(x.size()));
  const auto y = dequantize(t, out.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(y[i], x[i], 1e-4f * (1.0f + std::fabs(x[i]))) << dtype_name(t) << " element " << i;
  }
}

TEST(KQuantQuantize, RepresentableDataIsReproduced) {
  std::mt19937 rng(11);
  for (DType t : kWeightTypes) check_representable_blocks(t, 24, rng);
}

// --- Dot products ---

// Random blocks: random bytes for every quant and scale, sane f16 super-scales.
std::vector<uint8_t> random_weight_row(DType t, int64_t n, std::mt19937& rng) {
  std::vector<uint8_t> row(row_bytes(t, n));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& v : row) v = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> mag(0.001f, 0.05f);
  const size_t block_bytes = dtype_info(t).block_bytes;
  for (size_t off = 0; off < row.size(); off += block_bytes) {
    uint8_t* blk = row.data() + off;
    const uint16_t d = f32_to_f16(mag(rng)), dmin = f32_to_f16(mag(rng));
    switch (t) {
      case DType::Q2_K:
        std::memcpy(blk + offsetof(BlockQ2_K, d), &d, 2);
        std::memcpy(blk + offsetof(BlockQ2_K, dmin), &dmin, 2);
        break;
      case DType::Q3_K:
        std::memcpy(blk + offsetof(BlockQ3_K, d), &d, 2);
        break;
      case DType::Q4_K:
      case DType::Q5_K:  // d and dmin lead both layouts
        std::memcpy(blk, &d, 2);
        std::memcpy(blk + 2, &dmin, 2);
        break;
      case DType::Q6_K:
        std::memcpy(blk + offsetof(BlockQ6_K, d), &d, 2);
        break;
      default:
        ADD_FAILURE() << "not a k-quant weight type";
    }
  }
  return row;
}

// Random activation blocks over the whole int8 range (including -128), bsums consistent.
std::vector<BlockQ8_K> random_act_row(int64_t n, std::mt19937& rng) {
  std::vector<BlockQ8_K> row(n / QK_K);
  std::uniform_int_distribution<int> q(-128, 127);
  std::uniform_real_distribution<float> scale(0.001f, 0.1f);
  for (auto& b : row) {
    b.d = scale(rng);
    for (auto& v : b.qs) v = static_cast<int8_t>(q(rng));
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += b.qs[16 * j + l];
      b.bsums[j] = static_cast<int16_t>(s);
    }
  }
  return row;
}

// Reference: the double-precision dot product of the dequantized rows, and the
// sum of |w_i a_i| that bounds its float rounding.
void reference_dot(DType t, const void* w, const BlockQ8_K* a, int64_t n, double& dot,
                   double& magnitude) {
  const auto wf = dequantize(t, w, n);
  const auto af = dequantize(DType::Q8_K, a, n);
  dot = 0;
  magnitude = 0;
  for (int64_t i = 0; i < n; ++i) {
    dot += static_cast<double>(wf[i]) * af[i];
    magnitude += std::fabs(static_cast<double>(wf[i]) * af[i]);
  }
}

TEST(KQuantVecDot, ScalarMatchesDequantizedDot) {
  std::mt19937 rng(5);
  for (DType t : kWeightTypes) {
    ASSERT_EQ(vec_dot_act_type(t), DType::Q8_K);
    for (int64_t n : {QK_K, 5 * QK_K}) {
      for (int trial = 0; trial < 5; ++trial) {
        const auto w = random_weight_row(t, n, rng);
        const auto a = random_act_row(n, rng);
        double expected, magnitude;
        reference_dot(t, w.data(), a.data(), n, expected, magnitude);
        float got = 0;
        scalar_kernels().vec_dot_fn(t)(n, &got, w.data(), a.data());
        EXPECT_NEAR(got, expected, 2e-6 * magnitude + 1e-6) << dtype_name(t) << " n " << n;
      }
    }
  }
}

TEST(KQuantVecDot, QuantizedRowsApproximateFloatDot) {
  // End to end: quantized weights and activations against the float dot product.
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 16 * QK_K;
  std::vector<float> w(n), x(n);
  for (auto& v : w) v = normal(rng);
  for (auto& v : x) v = normal(rng);
  double exact = 0;
  for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(w[i]) * x[i];
  std::vector<BlockQ8_K> a(n / QK_K);
  scalar_kernels().quantize_fn(DType::Q8_K)(x.data(), a.data(), n);
  for (DType t : kWeightTypes) {
    std::vector<uint8_t> q(row_bytes(t, n));
    scalar_kernels().quantize_fn(t)(w.data(), q.data(), n);
    float got = 0;
    scalar_kernels().vec_dot_fn(t)(n, &got, q.data(), a.data());
    // For unit data the error of the dot is about (weight rmse + activation rmse)
    // * sqrt(n); the exact dot itself is about sqrt(n) in size.
    EXPECT_NEAR(got, exact, 4.0 * (rmse_bound(t) + 0.01) * std::sqrt(static_cast<double>(n)))
        << dtype_name(t);
  }
}

std::vector<Isa> simd_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (isa_supported(isa)) isas.push_back(isa);
  }
  return isas;
}

TEST(KQuantSimd, VecDotMatchesScalar) {
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD ISA on this CPU";
  std::mt19937 rng(13);
  for (Isa isa : isas) {
    const KernelTable& table = kernels_for(isa);
    for (DType t : kWeightTypes) {
      const VecDotFn simd = table.vec_dot_fn(t);
      ASSERT_NE(simd, nullptr);
      if (isa != Isa::Neon) {  // NEON covers only some formats; x86 covers all
        EXPECT_NE(simd, scalar_kernels().vec_dot_fn(t)) << isa_name(isa) << " " << dtype_name(t);
      }
      for (int64_t n : {QK_K, 2 * QK_K, 7 * QK_K}) {
        for (int trial = 0; trial < 6; ++trial) {
          const auto w = random_weight_row(t, n, rng);
          const auto a = random_act_row(n, rng);
          double expected, magnitude;
          reference_dot(t, w.data(), a.data(), n, expected, magnitude);
          float scalar = 0, got = 0;
          scalar_kernels().vec_dot_fn(t)(n, &scalar, w.data(), a.data());
          simd(n, &got, w.data(), a.data());
          EXPECT_NEAR(got, scalar, 4e-6 * magnitude + 1e-6)
              << isa_name(isa) << " " << dtype_name(t) << " n " << n;
        }
      }
    }
  }
}

TEST(KQuantSimd, Q8KQuantizeMatchesScalarExactly) {
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD ISA on this CPU";
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  const int64_t n = 6 * QK_K;
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  std::fill(x.begin() + QK_K, x.begin() + 2 * QK_K, 0.0f);  // all-zero block
  // A block with max 63.5, so the inverse scale is exactly 2 and x * 2 lands on
  // .5 ties: both versions must round them half to even.
  for (int i = 0; i < QK_K; ++i) x[2 * QK_K + i] = 0.25f * static_cast<float>(i - 127);
  x[2 * QK_K + 3] = 63.5f;
  std::vector<BlockQ8_K> expected(n / QK_K), got(n / QK_K);
  scalar_kernels().quantize_fn(DType::Q8_K)(x.data(), expected.data(), n);
  for (Isa isa : isas) {
    std::memset(got.data(), 0x5A, got.size() * sizeof(BlockQ8_K));
    kernels_for(isa).quantize_fn(DType::Q8_K)(x.data(), got.data(), n);
    for (size_t b = 0; b < got.size(); ++b) {
      EXPECT_EQ(got[b].d, expected[b].d) << isa_name(isa) << " block " << b;
      EXPECT_EQ(std::memcmp(got[b].qs, expected[b].qs, sizeof(got[b].qs)), 0)
          << isa_name(isa) << " block " << b;
      EXPECT_EQ(std::memcmp(got[b].bsums, expected[b].bsums, sizeof(got[b].bsums)), 0)
          << isa_name(isa) << " block " << b;
    }
  }
}

}  // namespace
}  // namespace muse::kernels
