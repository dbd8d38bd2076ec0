// Kernel harness in the spirit of ggml's test-backend-ops: every weight type in
// the scalar table, on every ISA this CPU runs, is checked against the scalar
// reference and against exact double-precision arithmetic:
//   1. vec_dot (SIMD vs scalar, and scalar vs the exact dot of the dequantized rows)
//   2. quantize -> dequantize round-trip error under a per-type bound
//   3. SIMD activation quantizers vs the scalar ones
//   4. matmul (1, 2, 3 threads) vs matmul_reference
// plus hand-built known-value blocks for the legacy formats (nibble order, qh
// bit order, scale rounding) and exact fp16/bf16 conversion tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "kernels/quant_blocks.h"
#include "kernels/kernel_test_data.h"
#include "muse/error.h"

namespace muse::kernels {
namespace {

// ---- helpers -----------------------------------------------------------------

std::vector<DType> weight_types() {
  std::vector<DType> types;
  for (uint32_t i = 0; i < kTypeSlots; ++i) {
    if (scalar_kernels().vec_dot[i] != nullptr) types.push_back(static_cast<DType>(i));
  }
  return types;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (isa_supported(isa)) isas.push_back(isa);
  }
  return isas;
}

int64_t block_of(DType t) {
  return dtype_info(t).block_size;
}

using testing_data::make_matrix;
using testing_data::Matrix;
using testing_data::random_values;

std::vector<uint8_t> quantize(const KernelTable& k, DType t, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> out(row_bytes(t, n));
  const QuantizeRowFn fn = k.quantize_fn(t);
  EXPECT_NE(fn, nullptr) << "no quantizer for " << dtype_name(t);
  if (fn != nullptr) fn(x.data(), out.data(), n);
  return out;
}

std::vector<float> dequantize(const KernelTable& k, DType t, const std::vector<uint8_t>& q,
                              int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  const DequantizeRowFn fn = k.dequantize_fn(t);
  EXPECT_NE(fn, nullptr) << "no dequantizer for " << dtype_name(t);
  if (fn != nullptr) fn(q.data(), out.data(), n);
  return out;
}

float vec_dot(const KernelTable& k, DType t, int64_t n, const std::vector<uint8_t>& w,
              const std::vector<uint8_t>& a) {
  float out = std::nanf("");
  k.vec_dot_fn(t)(n, &out, w.data(), a.data());
  return out;
}

// Weight and activation rows of one dot-product test, in both representations.
struct DotCase {
  int64_t n;
  std::vector<uint8_t> w, a;  // as the kernels consume them
  std::vector<float> wf, af;  // dequantized (exactly what the bytes encode)
  double exact;               // sum wf * af in double
  double scale;               // error scale: sum |wf||af| + max|wf| * sum |af|
};

DotCase make_dot_case(DType t, int64_t n, uint32_t seed) {
  const KernelTable& ref = scalar_kernels();
  const DType act = vec_dot_act_type(t);
  DotCase c;
  c.n = n;
  c.w = quantize(ref, t, random_values(n, seed));
  c.a = quantize(ref, act, random_values(n, seed + 7919, 0.5f));
  c.wf = dequantize(ref, t, c.w, n);
  c.af = dequantize(ref, act, c.a, n);
  double exact = 0, sum_abs = 0, sum_a = 0, w_max = 0;
  for (int64_t i = 0; i < n; ++i) {
    exact += static_cast<double>(c.wf[i]) * c.af[i];
    sum_abs += std::fabs(static_cast<double>(c.wf[i]) * c.af[i]);
    sum_a += std::fabs(c.af[i]);
    w_max = std::max(w_max, std::fabs(static_cast<double>(c.wf[i])));
  }
  c.exact = exact;
  c.scale = sum_abs + w_max * sum_a;
  return c;
}

// Row lengths to test: odd ones for the float types (tails), several block counts
// (odd and even, for the two-block SIMD loops) for the quantized ones.
std::vector<int64_t> dot_lengths(DType t) {
  const int64_t block = std::max(block_of(t), block_of(vec_dot_act_type(t)));
  if (block == 1) return {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 1000, 4099};
  return {block, 2 * block, 3 * block, 5 * block, 8 * block, 33 * block, 128 * block};
}

// Round-trip bound on the normalised RMSE of the Gaussian test data (seeded, so
// deterministic): about 1.25x what the reference quantizers reach, which also
// tracks the bits per weight (each extra bit roughly halves the error).
double roundtrip_bound(DType t) {
  switch (t) {
    case DType::F32:
      return 0.0;
    case DType::F16:
      return 3e-4;  // measured 2.1e-4
    case DType::BF16:
      return 2.2e-3;  // 1.6e-3
    case DType::Q8_0:
    case DType::Q8_1:
      return 0.008;  // 0.0062
    case DType::Q8_K:
      return 0.013;  // 0.0105 (256-element blocks)
    case DType::Q6_K:
      return 0.024;  // 0.0188
    case DType::Q5_0:
      return 0.062;  // 0.0491
    case DType::Q5_1:
      return 0.051;  // 0.0404
    case DType::Q5_K:
      return 0.047;  // 0.0377
    case DType::Q4_0:
      return 0.122;  // 0.0978
    case DType::Q4_1:
      return 0.106;  // 0.0845
    case DType::Q4_K:
      return 0.095;  // 0.0759
    case DType::Q3_K:
      return 0.20;  // 0.158
    case DType::Q2_K:
      return 0.35;  // 0.280
    default:
      return -1.0;
  }
}

struct TypeIsa {
  DType type;
  Isa isa;
};

std::vector<TypeIsa> type_isa_cases() {
  std::vector<TypeIsa> cases;
  for (DType t : weight_types())
    for (Isa isa : supported_isas()) cases.push_back({t, isa});
  return cases;
}

std::string case_name(const testing::TestParamInfo<TypeIsa>& info) {
  return std::string(dtype_name(info.param.type)) + "_" + std::string(isa_name(info.param.isa));
}

// ---- tables and dispatch -----------------------------------------------------

TEST(KernelTables, ScalarTableIsComplete) {
  const KernelTable& k = scalar_kernels();
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                  DType::Q5_1, DType::Q8_0}) {
    EXPECT_NE(k.vec_dot_fn(t), nullptr) << dtype_name(t);
  }
  for (DType t : weight_types()) {
    EXPECT_NE(k.quantize_fn(t), nullptr) << dtype_name(t);
    EXPECT_NE(k.dequantize_fn(t), nullptr) << dtype_name(t);
    const DType act = vec_dot_act_type(t);
    EXPECT_NE(k.quantize_fn(act), nullptr) << dtype_name(act);
    EXPECT_NE(k.dequantize_fn(act), nullptr) << dtype_name(act);
  }
}

TEST(KernelTables, IsaTablesLayerOverScalar) {
  const KernelTable& ref = scalar_kernels();
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels_for(isa);
    for (size_t i = 0; i < kTypeSlots; ++i) {
      EXPECT_EQ(ref.vec_dot[i] == nullptr, k.vec_dot[i] == nullptr) << isa_name(isa) << " " << i;
      EXPECT_EQ(ref.quantize[i] == nullptr, k.quantize[i] == nullptr) << isa_name(isa) << " " << i;
      EXPECT_EQ(ref.dequantize[i] == nullptr, k.dequantize[i] == nullptr)
          << isa_name(isa) << " " << i;
    }
  }
  EXPECT_EQ(&kernels_for(Isa::Scalar), &scalar_kernels());
  EXPECT_TRUE(isa_supported(best_isa()));
  EXPECT_EQ(&best_kernels(), &kernels_for(best_isa()));
}

TEST(KernelTables, SimdTablesReplaceScalarKernels) {
#if defined(__x86_64__)
  if (!isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
  EXPECT_NE(kernels_for(Isa::Avx2).vec_dot_fn(DType::Q4_0),
            scalar_kernels().vec_dot_fn(DType::Q4_0));
  EXPECT_NE(kernels_for(Isa::Avx2).quantize_fn(DType::Q8_0),
            scalar_kernels().quantize_fn(DType::Q8_0));
  EXPECT_THROW(kernels_for(Isa::Neon), Error);
#elif defined(__aarch64__)
  EXPECT_NE(kernels_for(Isa::Neon).vec_dot_fn(DType::Q4_0),
            scalar_kernels().vec_dot_fn(DType::Q4_0));
  EXPECT_NE(kernels_for(Isa::Neon).quantize_fn(DType::Q8_0),
            scalar_kernels().quantize_fn(DType::Q8_0));
  EXPECT_THROW(kernels_for(Isa::Avx2), Error);
#else
  GTEST_SKIP() << "no SIMD kernels on this architecture";
#endif
}

TEST(KernelTables, ActivationTypes) {
  EXPECT_EQ(vec_dot_act_type(DType::F32), DType::F32);
  EXPECT_EQ(vec_dot_act_type(DType::F16), DType::F32);
  EXPECT_EQ(vec_dot_act_type(DType::BF16), DType::F32);
  EXPECT_EQ(vec_dot_act_type(DType::Q4_0), DType::Q8_0);
  EXPECT_EQ(vec_dot_act_type(DType::Q5_0), DType::Q8_0);
  EXPECT_EQ(vec_dot_act_type(DType::Q8_0), DType::Q8_0);
  EXPECT_EQ(vec_dot_act_type(DType::Q4_1), DType::Q8_1);
  EXPECT_EQ(vec_dot_act_type(DType::Q5_1), DType::Q8_1);
  EXPECT_EQ(vec_dot_act_type(DType::Q4_K), DType::Q8_K);
  EXPECT_EQ(vec_dot_act_type(DType::Q6_K), DType::Q8_K);
  EXPECT_THROW(vec_dot_act_type(DType::I32), Error);
  EXPECT_EQ(isa_name(Isa::Avx512), "avx512");
}

TEST(CpuFeatures, ConsistentWithIsas) {
  const CpuFeatures& f = cpu_features();
  if (isa_supported(Isa::Avx512)) {
    EXPECT_TRUE(isa_supported(Isa::Avx2));
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni);
  }
  if (isa_supported(Isa::Avx2)) {
    EXPECT_TRUE(f.avx && f.avx2 && f.fma && f.f16c);
  }
#if defined(__aarch64__)
  EXPECT_TRUE(isa_supported(Isa::Neon));
#else
  EXPECT_FALSE(isa_supported(Isa::Neon));
#endif
  EXPECT_TRUE(isa_supported(Isa::Scalar));
}

// ---- 1. vec_dot ------------------------------------------------------------------

class VecDot : public testing::TestWithParam<TypeIsa> {};

TEST_P(VecDot, MatchesScalarAndExact) {
  const auto [t, isa] = GetParam();
  const KernelTable& k = kernels_for(isa);
  const DType act = vec_dot_act_type(t);
  uint32_t seed = 1;
  for (int64_t n : dot_lengths(t)) {
    const DotCase c = make_dot_case(t, n, seed++);
    const float ref = vec_dot(scalar_kernels(), t, n, c.w, c.a);
    const float got = vec_dot(k, t, n, c.w, c.a);
    // Different summation orders only: tight.
    EXPECT_NEAR(got, ref, 1e-5 * c.scale) << dtype_name(t) << " n=" << n;
    // Against exact arithmetic on what the bytes encode. Q8_1's block sum s is
    // stored as f16 (relative error 2^-11), which bounds the extra error.
    const double slack = act == DType::Q8_1 ? 1e-3 * c.scale : 0.0;
    EXPECT_NEAR(ref, c.exact, 1e-5 * c.scale + slack) << dtype_name(t) << " n=" << n;
  }
}

TEST_P(VecDot, HandlesZeroAndExtremeBlocks) {
  const auto [t, isa] = GetParam();
  const KernelTable& k = kernels_for(isa);
  const DType act = vec_dot_act_type(t);
  const int64_t n = 4 * std::max(block_of(t), block_of(act)) + (block_of(t) == 1 ? 3 : 0);
  std::vector<float> w(static_cast<size_t>(n), 0.0f), a = random_values(n, 99);
  // Block 0 stays zero, block 1 has one spike, the rest is large-magnitude data.
  w[static_cast<size_t>(n / 4 + 1)] = -1000.0f;
  for (int64_t i = n / 2; i < n; ++i) w[i] = 300.0f * std::sin(static_cast<float>(i));
  const auto wq = quantize(scalar_kernels(), t, w);
  const auto aq = quantize(scalar_kernels(), act, a);
  const float ref = vec_dot(scalar_kernels(), t, n, wq, aq);
  const float got = vec_dot(k, t, n, wq, aq);
  EXPECT_TRUE(std::isfinite(got));
  EXPECT_NEAR(got, ref, 1e-5 * (std::fabs(ref) + 1000.0 * n));
}

INSTANTIATE_TEST_SUITE_P(AllTypes, VecDot, testing::ValuesIn(type_isa_cases()), case_name);

// ---- 2. round trip -------------------------------------------------------------

class RoundTrip : public testing::TestWithParam<TypeIsa> {};

TEST_P(RoundTrip, ErrorWithinBoundAndDequantizeMatchesScalar) {
  const auto [t, isa] = GetParam();
  const KernelTable& k = kernels_for(isa);
  const double bound = roundtrip_bound(t);
  ASSERT_GE(bound, 0.0) << "no round-trip bound for type " << dtype_name(t);
  for (DType type : {t, vec_dot_act_type(t)}) {
    const int64_t n = 4096;
    const std::vector<float> x = random_values(n, 1234);
    const auto q = quantize(k, type, x);
    const auto y = dequantize(k, type, q, n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
      ref += static_cast<double>(x[i]) * x[i];
    }
    const double nrmse = std::sqrt(err / ref);
    EXPECT_LE(nrmse, type == t ? bound : roundtrip_bound(type)) << dtype_name(type);
    if (type != DType::F32) {
      EXPECT_GT(nrmse, 0.0) << dtype_name(type) << " lost nothing?";
    }
    // The ISA's dequantizer must reproduce the scalar one exactly.
    const auto y_ref = dequantize(scalar_kernels(), type, q, n);
    EXPECT_EQ(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)), 0)
        << dtype_name(type) << " dequantize differs from scalar";
  }
}

TEST_P(RoundTrip, AllZeroAndConstantRows) {
  const auto [t, isa] = GetParam();
  const KernelTable& k = kernels_for(isa);
  const int64_t n = 2 * std::max<int64_t>(block_of(t), 256);
  const std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
  for (float v : zeros) ASSERT_EQ(v, 0.0f);
  const auto yz = dequantize(k, t, quantize(k, t, zeros), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(yz[i], 0.0f) << dtype_name(t) << " i=" << i;
  const std::vector<float> ones(static_cast<size_t>(n), 0.75f);
  const auto yo = dequantize(k, t, quantize(k, t, ones), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(yo[i], 0.75f, 0.75f * 0.1f) << dtype_name(t) << " i=" << i;
}

INSTANTIATE_TEST_SUITE_P(AllTypes, RoundTrip, testing::ValuesIn(type_isa_cases()), case_name);

// ---- 3. activation quantizers --------------------------------------------------

// Blocks that stress the rounding: exact .5 ties (amax 127 makes d = 1),
// zeros, one spike, tiny values, and random data.
std::vector<float> activation_stress(int64_t n) {
  std::vector<float> x = random_values(n, 4321);
  for (int j = 0; j < 31; ++j) x[j] = static_cast<float>(j) - 15.5f;
  x[31] = 127.0f;
  for (int j = 32; j < 64; ++j) x[j] = 0.0f;
  for (int j = 64; j < 96; ++j) x[j] = j == 70 ? -3.0f : 0.0f;
  for (int j = 96; j < 128; ++j) x[j] = 1e-30f * static_cast<float>(j - 110);
  for (int j = 128; j < 159; ++j) x[j] = -static_cast<float>(j - 128) - 90.5f;  // ties again
  x[159] = -127.0f;
  return x;
}

uint32_t float_bits(float f) {
  return std::bit_cast<uint32_t>(f);
}

TEST(ActivationQuantizers, SimdMatchesScalar) {
  const int64_t n = 1024;
  const std::vector<float> x = activation_stress(n);
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels_for(isa);
    for (DType act : {DType::Q8_0, DType::Q8_1, DType::Q8_K}) {
      if (scalar_kernels().quantize_fn(act) == nullptr) continue;
      const auto ref = quantize(scalar_kernels(), act, x);
      const auto got = quantize(k, act, x);
      if (act == DType::Q8_0 || act == DType::Q8_1) {
        // Same scale, same rounding: byte-identical.
        EXPECT_EQ(ref, got) << dtype_name(act) << " on " << isa_name(isa);
        continue;
      }
      // Q8_K: d within 1 ulp, quants within 1, bsums consistent with the quants.
      const auto* r = reinterpret_cast<const BlockQ8_K*>(ref.data());
      const auto* g = reinterpret_cast<const BlockQ8_K*>(got.data());
      for (int64_t b = 0; b < n / QK_K; ++b) {
        EXPECT_LE(std::abs(static_cast<int64_t>(float_bits(r[b].d)) -
                           static_cast<int64_t>(float_bits(g[b].d))),
                  1)
            << "block " << b << " on " << isa_name(isa);
        for (int j = 0; j < QK_K; ++j) EXPECT_LE(std::abs(r[b].qs[j] - g[b].qs[j]), 1);
        for (int s = 0; s < QK_K / 16; ++s) {
          int sum = 0;
          for (int j = 0; j < 16; ++j) sum += g[b].qs[16 * s + j];
          EXPECT_EQ(g[b].bsums[s], sum) << "block " << b << " group " << s;
        }
      }
    }
  }
}

// ---- 4. matmul -------------------------------------------------------------------


class Matmul : public testing::TestWithParam<TypeIsa> {};

TEST_P(Matmul, MatchesReferenceForShapesAndThreads) {
  const auto [t, isa] = GetParam();
  const KernelTable& k = kernels_for(isa);
  const int64_t block = std::max(block_of(t), block_of(vec_dot_act_type(t)));
  const int64_t cols_list[] = {block == 1 ? 37 : block, block == 1 ? 320 : 2 * block};
  ThreadPool pools[] = {ThreadPool(1), ThreadPool(2), ThreadPool(3)};
  std::vector<uint8_t> scratch;
  uint32_t seed = 10;
  for (int64_t cols : cols_list) {
    for (int64_t rows : {1, 7, 13, 67}) {
      const Matrix w = make_matrix(t, rows, cols, seed++);
      for (int64_t n_tokens : {1, 2, 5, 37}) {
        const std::vector<float> x = random_values(n_tokens * cols, seed++, 0.5f);
        std::vector<float> ref(static_cast<size_t>(rows * n_tokens));
        matmul_reference(w.view, x.data(), n_tokens, ref.data());
        // Per-output error scale from the f32 inputs.
        std::vector<double> scale(ref.size());
        for (int64_t tok = 0; tok < n_tokens; ++tok) {
          double sum_x = 0;
          for (int64_t c = 0; c < cols; ++c) sum_x += std::fabs(x[tok * cols + c]);
          for (int64_t r = 0; r < rows; ++r) {
            double s = 0, w_max = 0;
            for (int64_t c = 0; c < cols; ++c) {
              const double wv = std::fabs(w.source[r * cols + c]);
              s += wv * std::fabs(x[tok * cols + c]);
              w_max = std::max(w_max, wv);
            }
            scale[tok * rows + r] = 1.3 * (s + w_max * sum_x);
          }
        }
        for (ThreadPool& pool : pools) {
          std::vector<float> y(ref.size(), std::nanf(""));
          matmul_with(k, w.view, x.data(), n_tokens, y.data(), pool, scratch);
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_NEAR(y[i], ref[i], 1e-5 * scale[i])
                << dtype_name(t) << " rows=" << rows << " cols=" << cols << " tokens=" << n_tokens
                << " threads=" << pool.size() << " out=" << i;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, Matmul, testing::ValuesIn(type_isa_cases()), case_name);

TEST(MatmulApi, BestKernelsAndScratchReuse) {
  ThreadPool pool(2);
  const Matrix w = make_matrix(DType::Q4_0, 29, 256, 5);
  const std::vector<float> x = random_values(256 * 9, 6);
  std::vector<float> ref(29 * 9), y(29 * 9);
  matmul_reference(w.view, x.data(), 9, ref.data());
  std::vector<uint8_t> scratch;
  matmul(w.view, x.data(), 9, y.data(), pool, scratch);
  const uint8_t* first = scratch.data();
  const size_t capacity = scratch.capacity();
  matmul(w.view, x.data(), 4, y.data(), pool, scratch);  // smaller: no regrowth
  matmul(w.view, x.data(), 9, y.data(), pool, scratch);
  EXPECT_EQ(scratch.data(), first);
  EXPECT_EQ(scratch.capacity(), capacity);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-3) << i;
}

// Enough activation data (n_tokens * cols >= 32K) that the conversion itself is
// split over the threads, with token boundaries inside the threads' shares.
TEST(MatmulApi, LargeBatchSplitsActivationConversion) {
  for (DType t : {DType::Q4_1, DType::Q8_0}) {
    const int64_t rows = 11, cols = 1024, n_tokens = 41;
    const Matrix w = make_matrix(t, rows, cols, 21);
    const std::vector<float> x = random_values(n_tokens * cols, 22);
    std::vector<float> ref(rows * n_tokens), y(rows * n_tokens);
    matmul_reference(w.view, x.data(), n_tokens, ref.data());
    std::vector<uint8_t> scratch;
    for (int threads : {2, 3}) {
      ThreadPool pool(threads);
      std::fill(y.begin(), y.end(), std::nanf(""));
      matmul(w.view, x.data(), n_tokens, y.data(), pool, scratch);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], ref[i], 2e-5 * (std::fabs(ref[i]) + 100.0))
            << dtype_name(t) << " threads=" << threads << " out=" << i;
      }
    }
  }
}

TEST(MatmulApi, RejectsBadInput) {
  ThreadPool pool(1);
  std::vector<uint8_t> scratch;
  std::vector<float> x(64), y(64);
  Matrix w = make_matrix(DType::Q8_0, 2, 64, 1);
  w.view.ne = {48, 2, 1, 1};  // not a multiple of 32
  EXPECT_THROW(matmul(w.view, x.data(), 1, y.data(), pool, scratch), Error);
  EXPECT_THROW(matmul_reference(w.view, x.data(), 1, y.data()), Error);
  w.view.ne = {64, 4, 1, 1};  // more rows than bytes
  EXPECT_THROW(matmul(w.view, x.data(), 1, y.data(), pool, scratch), Error);
  w.view.ne = {64, 2, 1, 1};
  EXPECT_THROW(matmul(w.view, x.data(), -1, y.data(), pool, scratch), Error);
  TensorView ints = w.view;
  ints.type = DType::I32;
  EXPECT_THROW(matmul(ints, x.data(), 1, y.data(), pool, scratch), Error);
  EXPECT_THROW(dequantize_row(w.view, 2, y.data()), Error);
  EXPECT_THROW(dequantize_row(w.view, -1, y.data()), Error);
  EXPECT_NO_THROW(matmul(w.view, x.data(), 0, y.data(), pool, scratch));
}

TEST(MatmulApi, DequantizeRowEveryType) {
  for (DType t : weight_types()) {
    const int64_t cols = std::max<int64_t>(block_of(t), 256);
    const Matrix w = make_matrix(t, 3, cols, 77);
    std::vector<float> got(static_cast<size_t>(cols));
    dequantize_row(w.view, 2, got.data());
    const std::vector<uint8_t> row(w.view.row(2), w.view.row(2) + w.view.row_stride());
    const auto ref = dequantize(scalar_kernels(), t, row, cols);
    EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)), 0) << dtype_name(t);
  }
}

// ---- known values: legacy block layouts ---------------------------------------

std::vector<float> dequantize_block(DType t, const void* block) {
  std::vector<float> out(32);
  scalar_kernels().dequantize_fn(t)(block, out.data(), 32);
  return out;
}

template <typename Block>
std::vector<uint8_t> bytes_of(const Block& b) {
  std::vector<uint8_t> v(sizeof(Block));
  std::memcpy(v.data(), &b, sizeof(Block));
  return v;
}

TEST(LegacyKnownValues, Q4_0Dequantize) {
  BlockQ4_0 b{};
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const float expected[32] = {-4.0f, -3.5f, -3.0f, -2.5f, -2.0f, -1.5f, -1.0f, -0.5f,
                              0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  2.5f,  3.0f,  3.5f,
                              3.5f,  3.0f,  2.5f,  2.0f,  1.5f,  1.0f,  0.5f,  0.0f,
                              -0.5f, -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f, -4.0f};
  const auto got = dequantize_block(DType::Q4_0, &b);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(got[i], expected[i]) << i;
}

TEST(LegacyKnownValues, Q4_1Dequantize) {
  BlockQ4_1 b{};
  b.d = 0x4000;  // 2
  b.m = 0xbc00;  // -1
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>((j % 3) | (j << 4));
  const auto got = dequantize_block(DType::Q4_1, &b);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(got[j], 2.0f * (j % 3) - 1.0f) << j;
    EXPECT_EQ(got[j + 16], 2.0f * j - 1.0f) << j;
  }
  EXPECT_EQ(got[2], 3.0f);
  EXPECT_EQ(got[31], 29.0f);
}

// qh bytes {0x01, 0x80, 0x55, 0xaa}: bit 0 (element 0), bit 15 (element 15),
// bits 16,18,20,22 and 25,27,29,31 carry the fifth bit.
TEST(LegacyKnownValues, Q5_0Dequantize) {
  BlockQ5_0 b{};
  b.d = 0x3c00;  // 1
  const uint8_t qh[4] = {0x01, 0x80, 0x55, 0xaa};
  std::memcpy(b.qh, qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const float expected[32] = {
      0,  -15, -14, -13, -12, -11, -10, -9, -8, -7, -6,  -5, -4,  -3, -2,  15,  // 0..15
      15, -2,  13,  -4,  11,  -6,  9,   -8, -9, 6,  -11, 4,  -13, 2,  -15, 0};  // 16..31
  const auto got = dequantize_block(DType::Q5_0, &b);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(got[i], expected[i]) << i;
}

TEST(LegacyKnownValues, Q5_1Dequantize) {
  BlockQ5_1 b{};
  b.d = 0x3800;  // 0.5
  b.m = 0x4000;  // 2
  const uint8_t qh[4] = {0x01, 0x80, 0x55, 0xaa};
  std::memcpy(b.qh, qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const int q[32] = {16, 1,  2,  3,  4,  5,  6,  7, 8, 9,  10, 11, 12, 13, 14, 31,
                     31, 14, 29, 12, 27, 10, 25, 8, 7, 22, 5,  20, 3,  18, 1,  16};
  const auto got = dequantize_block(DType::Q5_1, &b);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(got[i], 0.5f * q[i] + 2.0f) << i;
}

TEST(LegacyKnownValues, Q8_0AndQ8_1Dequantize) {
  BlockQ8_0 b{};
  b.d = 0x3400;  // 0.25
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);
  const auto got = dequantize_block(DType::Q8_0, &b);
  EXPECT_EQ(got[0], -32.0f);
  EXPECT_EQ(got[17], 2.0f);
  EXPECT_EQ(got[31], 30.0f);
  BlockQ8_1 c{};
  c.d = 0x3400;
  c.s = 0x7bff;  // ignored by dequantize
  std::memcpy(c.qs, b.qs, 32);
  EXPECT_EQ(dequantize_block(DType::Q8_1, &c), got);
}

TEST(LegacyKnownValues, Q4_0Quantize) {
  // x = i - 16: largest magnitude -16 (first), so d = -16 / -8 = 2 and
  // q = min(15, trunc((i - 16) / 2 + 8.5)) = min(15, trunc(i / 2 + 0.5)).
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16);
  const auto q = quantize(scalar_kernels(), DType::Q4_0, x);
  BlockQ4_0 b;
  std::memcpy(&b, q.data(), sizeof(b));
  EXPECT_EQ(b.d, 0x4000);  // 2.0
  // Low nibbles (elements 0..15): (j + 1) / 2; high (16..31): min(15, (j + 17) / 2).
  const uint8_t expected_qs[16] = {0x80, 0x91, 0x91, 0xa2, 0xa2, 0xb3, 0xb3, 0xc4,
                                   0xc4, 0xd5, 0xd5, 0xe6, 0xe6, 0xf7, 0xf7, 0xf8};
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], expected_qs[j]) << j;
  // A positive largest value gives a negative scale.
  x[5] = 40.0f;
  const auto q2 = quantize(scalar_kernels(), DType::Q4_0, x);
  std::memcpy(&b, q2.data(), sizeof(b));
  EXPECT_EQ(b.d, 0xc500);        // -5.0
  EXPECT_EQ(b.qs[5] & 0x0f, 0);  // 40 / -5 + 8.5 = 0.5 -> 0
}

TEST(LegacyKnownValues, Q4_1Quantize) {
  // x = (i % 16) + 1: min 1, max 16, d = 1, q = i % 16.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i % 16 + 1);
  BlockQ4_1 b;
  std::memcpy(&b, quantize(scalar_kernels(), DType::Q4_1, x).data(), sizeof(b));
  EXPECT_EQ(b.d, 0x3c00);
  EXPECT_EQ(b.m, 0x3c00);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], j | (j << 4)) << j;
}

TEST(LegacyKnownValues, Q5_0Quantize) {
  // x = i - 16: d = -16 / -16 = 1, q = trunc(i - 16 + 16.5) = i; bit 4 set for i >= 16.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16);
  const auto q = quantize(scalar_kernels(), DType::Q5_0, x);
  BlockQ5_0 b;
  std::memcpy(&b, q.data(), sizeof(b));
  EXPECT_EQ(b.d, 0x3c00);
  const uint8_t expected_qh[4] = {0x00, 0x00, 0xff, 0xff};
  for (int j = 0; j < 4; ++j) EXPECT_EQ(b.qh[j], expected_qh[j]) << j;
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], j | (j << 4)) << j;
  EXPECT_EQ(dequantize(scalar_kernels(), DType::Q5_0, q, 32), x);
}

TEST(LegacyKnownValues, Q5_1Quantize) {
  // x = i + 2: min 2, max 33, d = 1, q = i.
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i + 2);
  x[3] = 4.6f;  // q = trunc(2.6 + 0.5) = 3 and the fifth bit of element 3 stays clear
  const auto q = quantize(scalar_kernels(), DType::Q5_1, x);
  BlockQ5_1 b;
  std::memcpy(&b, q.data(), sizeof(b));
  EXPECT_EQ(b.d, 0x3c00);
  EXPECT_EQ(b.m, 0x4000);
  const uint8_t expected_qh[4] = {0x00, 0x00, 0xff, 0xff};
  for (int j = 0; j < 4; ++j) EXPECT_EQ(b.qh[j], expected_qh[j]) << j;
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], j | (j << 4)) << j;
}

TEST(LegacyKnownValues, Q8_0AndQ8_1QuantizeRoundHalfAwayFromZero) {
  // amax 127 gives d = 1, so x = j - 15.5 lands exactly on ties.
  std::vector<float> x(32);
  for (int j = 0; j < 31; ++j) x[j] = static_cast<float>(j) - 15.5f;
  x[31] = 127.0f;
  for (Isa isa : supported_isas()) {
    BlockQ8_0 b;
    std::memcpy(&b, quantize(kernels_for(isa), DType::Q8_0, x).data(), sizeof(b));
    EXPECT_EQ(b.d, 0x3c00) << isa_name(isa);
    int sum = 127;
    for (int j = 0; j < 31; ++j) {
      const int expected = j < 16 ? j - 16 : j - 15;  // -15.5 -> -16, 0.5 -> 1
      EXPECT_EQ(b.qs[j], expected) << j << " on " << isa_name(isa);
      sum += expected;
    }
    EXPECT_EQ(b.qs[31], 127);
    BlockQ8_1 c;
    std::memcpy(&c, quantize(kernels_for(isa), DType::Q8_1, x).data(), sizeof(c));
    EXPECT_EQ(c.d, 0x3c00);
    EXPECT_EQ(std::memcmp(c.qs, b.qs, 32), 0);
    EXPECT_EQ(f16_to_f32(c.s), static_cast<float>(sum)) << "s = d * sum(q)";
  }
}

TEST(LegacyKnownValues, VecDotSmallExample) {
  // One Q4_0 block (all q = 9, d = 1 -> weights 1) against Q8_0 activations
  // 0..31 with d = 0.5: dot = 0.5 * sum(0..31) = 248.
  BlockQ4_0 w{};
  w.d = 0x3c00;
  std::memset(w.qs, 0x99, sizeof(w.qs));
  BlockQ8_0 a{};
  a.d = 0x3800;
  for (int j = 0; j < 32; ++j) a.qs[j] = static_cast<int8_t>(j);
  for (Isa isa : supported_isas()) {
    float out = 0;
    kernels_for(isa).vec_dot_fn(DType::Q4_0)(32, &out, &w, &a);
    EXPECT_EQ(out, 248.0f) << isa_name(isa);
  }
}

// ---- fp16 / bf16 conversions --------------------------------------------------------

float from_bits(uint32_t b) {
  return std::bit_cast<float>(b);
}

TEST(Fp16, ExactValues) {
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(0.333251953125f), 0x3555);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);               // largest half
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x8000), -0.0f);
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

TEST(Fp16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(f32_to_f16(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // tie at the top rounds to inf
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-1e6f), 0xfc00);
  // Subnormal results: ties to even, and below half the smallest subnormal -> 0.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(std::ldexp(5.0f, -25)), 0x0002);
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(-std::ldexp(3.0f, -25)), 0x8002);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
  // Rounding up out of the subnormal range gives the smallest normal.
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.0f, -25)), 0x0400);
}

TEST(Fp16, InfAndNan) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f32_to_f16(inf), 0x7c00);
  EXPECT_EQ(f32_to_f16(-inf), 0xfc00);
  const uint16_t nan = f32_to_f16(std::nanf(""));
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xfc01)));
  EXPECT_EQ(f16_to_f32(0x7c00), inf);
  EXPECT_EQ(f16_to_f32(0xfc00), -inf);
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

// For random floats in the half range, the result is the nearest half (ties to even).
TEST(Fp16, NearestOnRandomFloats) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0x33000000u, 0x477fefffu);  // 2^-25 .. max
  for (int i = 0; i < 200000; ++i) {
    const float f = from_bits(bits(rng));
    const uint16_t h = f32_to_f16(f);
    const double v = f16_to_f32(h);
    const double up = f16_to_f32(static_cast<uint16_t>(h + 1));
    const double down = h > 0 ? f16_to_f32(static_cast<uint16_t>(h - 1)) : -1.0;
    const double err = std::fabs(v - f);
    ASSERT_LE(err, std::fabs(up - f)) << f;
    if (h > 0) {
      ASSERT_LE(err, std::fabs(down - f)) << f;
    }
    if (err == std::fabs(up - f) || (h > 0 && err == std::fabs(down - f))) {
      ASSERT_EQ(h & 1, 0) << "tie not rounded to even: " << f;
    }
  }
}

TEST(Bf16, ExactValuesAndRounding) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie -> even (down)
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);  // above tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f807fffu)), 0x3f80);  // below tie
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000u)), 0x0001);  // subnormal kept
  EXPECT_EQ(f32_to_bf16(from_bits(0x00008000u)), 0x0000);  // subnormal tie -> even
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  const uint16_t nan = f32_to_bf16(from_bits(0x7f800001u));  // NaN with low payload only
  EXPECT_EQ(nan & 0x7f80, 0x7f80);
  EXPECT_NE(nan & 0x007f, 0) << "NaN must not become inf";
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xc0a0), -5.0f);
  EXPECT_EQ(bf16_to_f32(0x0001), from_bits(0x00010000u));
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7fc0)));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
    }
  }
}

}  // namespace
}  // namespace muse::kernels
