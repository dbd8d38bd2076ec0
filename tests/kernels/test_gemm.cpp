// The packed GEMM (kernels/gemm.h) against the unpacked scalar reference
// (matmul_reference, i.e. the scalar vec_dot kernels): every packed type on every
// ISA this CPU runs, for shapes with padded row groups and every token-tile size;
// the threaded drivers (linear, linear_glu) with fused outputs; the packed byte
// layout on hand-built blocks; and the fallback for types without a packed layout.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"
#include "kernels/kernel_test_data.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/quant_blocks.h"
#include "muse/error.h"

namespace muse::kernels {
namespace {

using testing_data::make_matrix;
using testing_data::Matrix;
using testing_data::random_values;

std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (isa_supported(isa)) isas.push_back(isa);
  return isas;
}

const DType kPackedTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                              DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                              DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Error bound per output: the products are exact integers (quantized types) or
// f32 sums in another order (float types), so only float rounding differs.
// The _1 types (x = d q + m) differ by more: their vec_dot takes the min term's
// activation sum from Q8_1's s, d * sum(q) rounded to f16, while the packed
// kernels use it unrounded; so each 32-block adds up to |m| |s| 2^-10.
double bound(const Matrix& w, const std::vector<float>& x, int64_t cols, int64_t r, int64_t t) {
  double s = 0;
  for (int64_t c = 0; c < cols; ++c)
    s += std::fabs(static_cast<double>(w.source[r * cols + c]) * x[t * cols + c]);
  double sum_rounding = 0;
  if (w.view.type == DType::Q4_1 || w.view.type == DType::Q5_1) {
    for (int64_t b = 0; b < cols / 32; ++b) {
      double w_max = 0, x_max = 0, x_sum = 0;
      for (int64_t c = 32 * b; c < 32 * b + 32; ++c) {
        w_max = std::max(w_max, std::fabs(static_cast<double>(w.source[r * cols + c])));
        x_max = std::max(x_max, std::fabs(static_cast<double>(x[t * cols + c])));
        x_sum += x[t * cols + c];
      }
      sum_rounding += w_max * (std::fabs(x_sum) + 32 * x_max / 127) / 1024;
    }
  }
  return 2e-6 * s + 1e-6 + sum_rounding;
}

struct TypeIsa {
  DType type;
  Isa isa;
};

std::vector<TypeIsa> cases() {
  std::vector<TypeIsa> out;
  for (DType t : kPackedTypes)
    for (Isa isa : supported_isas())
      if (kernels_for(isa).gemm_fn(t) != nullptr) out.push_back({t, isa});
  return out;
}

std::string case_name(const testing::TestParamInfo<TypeIsa>& info) {
  return std::string(dtype_name(info.param.type)) + "_" + std::string(isa_name(info.param.isa));
}

class PackedGemm : public testing::TestWithParam<TypeIsa> {};

TEST_P(PackedGemm, MatchesUnpackedReference) {
  const auto [type, isa] = GetParam();
  const KernelTable& k = kernels_for(isa);
  const int64_t block =
      std::max<int64_t>(dtype_info(type).block_size, dtype_info(vec_dot_act_type(type)).block_size);
  const bool is_float = block == 1;
  std::vector<int64_t> cols_list =
      is_float ? std::vector<int64_t>{5, 64, 300} : std::vector<int64_t>{block, 3 * block};
  uint32_t seed = 100;
  for (int64_t cols : cols_list) {
    // Last groups of 1, 16, 12 (both 8-row halves, part of the second) and 5 rows.
    for (int64_t rows : {1, 16, 28, 37}) {
      const Matrix w = make_matrix(type, rows, cols, seed++);
      const PackedMatrix packed = PackedMatrix::pack(w.view);
      EXPECT_EQ(packed.groups(), (rows + 15) / 16);
      EXPECT_EQ(packed.group_bytes(), packed_group_bytes(type, cols));
      // Every tile size of the kernels (up to 16 tokens), and more than one tile.
      for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 16, 17, 33}) {
        const std::vector<float> x = random_values(n * cols, seed++, 0.5f);
        std::vector<float> ref(static_cast<size_t>(n * rows)), y(ref.size(), std::nanf(""));
        matmul_reference(w.view, x.data(), n, ref.data());
        gemm_packed(k, packed, x.data(), n, y.data());
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_NEAR(y[t * rows + r], ref[t * rows + r], bound(w, x, cols, r, t))
                << dtype_name(type) << " rows=" << rows << " cols=" << cols << " n=" << n
                << " t=" << t << " r=" << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, PackedGemm, testing::ValuesIn(cases()), case_name);

// unpack_row inverts the packing byte for byte (so every field of every format
// lands somewhere the kernels and the unpacker agree on).
TEST(PackedGemm, UnpackRowRestoresSourceBytes) {
  for (DType type : kPackedTypes) {
    const int64_t cols = dtype_info(type).block_size == 256 ? 512 : 64;
    const Matrix w = make_matrix(type, 21, cols, 77);
    const PackedMatrix p = PackedMatrix::pack(w.view);
    std::vector<uint8_t> row(row_bytes(type, cols));
    for (int64_t r = 0; r < 21; ++r) {
      p.unpack_row(r, row.data());
      ASSERT_EQ(std::memcmp(row.data(), w.view.row(r), row.size()), 0)
          << dtype_name(type) << " row " << r;
    }
  }
}

TEST(PackedGemm, ScalarTableHasEveryPackedType) {
  for (DType t : kPackedTypes) {
    EXPECT_TRUE(has_packed_layout(t)) << dtype_name(t);
    EXPECT_NE(scalar_kernels().gemm_fn(t), nullptr) << dtype_name(t);
  }
  EXPECT_FALSE(has_packed_layout(DType::Q8_K));  // activation-only
  EXPECT_EQ(scalar_kernels().gemm_fn(DType::Q8_K), nullptr);
}

// The layout itself, on blocks built by hand: Q8_0 quants are stored + 128 in
// quads of 4 bytes per row; Q4_0 keeps its nibble bytes in quads.
TEST(PackedGemm, KnownLayoutQ8_0AndQ4_0) {
  std::vector<BlockQ8_0> q8(2);  // 2 rows x 32 columns
  for (int r = 0; r < 2; ++r) {
    q8[r].d = f32_to_f16(0.5f + r);
    for (int e = 0; e < 32; ++e) q8[r].qs[e] = static_cast<int8_t>(r == 0 ? e : -e);
  }
  TensorView v;
  v.type = DType::Q8_0;
  v.n_dims = 2;
  v.ne = {32, 2, 1, 1};
  v.data = q8.data();
  v.nbytes = q8.size() * sizeof(BlockQ8_0);
  const PackedMatrix p = PackedMatrix::pack(v);
  const uint8_t* g = p.group(0);
  uint16_t d1;
  std::memcpy(&d1, g + 2, 2);
  EXPECT_EQ(f16_to_f32(d1), 1.5f);
  EXPECT_EQ(g[32 + 64 * 1 + 0 * 4 + 2], 128 + 6);   // quad 1, row 0, byte 2: column 6
  EXPECT_EQ(g[32 + 64 * 7 + 1 * 4 + 3], 128 - 31);  // quad 7, row 1, byte 3: column 31
  EXPECT_EQ(g[32 + 64 * 0 + 2 * 4 + 0], 128);       // padding row 2: zero quants
  uint16_t d2;
  std::memcpy(&d2, g + 4, 2);
  EXPECT_EQ(d2, 0);  // padding rows have zero scales

  BlockQ4_0 q4{};
  q4.d = f32_to_f16(1.0f);
  for (int l = 0; l < 16; ++l) q4.qs[l] = static_cast<uint8_t>(l | ((15 - l) << 4));
  v.type = DType::Q4_0;
  v.ne = {32, 1, 1, 1};
  v.data = &q4;
  v.nbytes = sizeof(q4);
  const PackedMatrix p4 = PackedMatrix::pack(v);
  EXPECT_EQ(p4.group(0)[32 + 64 * 2 + 1], q4.qs[9]);  // quad 2, row 0, byte 1: byte 9
}

// linear(): several outputs sharing one input in one pass, 1-3 threads, with an
// The best kernels without the GEMM kernel of `type`, whose weights then stay
// unpacked (as every type does on an ISA without packed kernels, e.g. NEON).
KernelTable without_gemm(DType type) {
  KernelTable t = best_kernels();
  t.gemm[static_cast<uint32_t>(type)] = nullptr;
  return t;
}

// unpacked type (Q3_K) mixed in and an output written with a row stride.
TEST(Linear, FusedOutputsMatchReference) {
  const int64_t cols = 256;
  const Matrix a = make_matrix(DType::Q8_0, 48, cols, 1);
  const Matrix b = make_matrix(DType::Q4_K, 21, cols, 2);
  const Matrix c = make_matrix(DType::Q3_K, 9, cols, 3);
  const Matrix d = make_matrix(DType::F16, 17, cols, 4);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    const KernelTable kernels = without_gemm(DType::Q3_K);
    const Linear la(a.view, kernels, &pool), lb(b.view, kernels, &pool);
    const Linear lc(c.view, kernels, &pool), ld(d.view, kernels, &pool);
    EXPECT_TRUE(la.packed());
    EXPECT_FALSE(lc.packed());
    // 1600 tokens: several token blocks (static shares); fewer: one pass (stealing).
    for (int64_t n : {1, 7, 40, 1600}) {
      const std::vector<float> x = random_values(n * cols, 50 + static_cast<uint32_t>(n), 0.5f);
      const int64_t ldy = 48 + 21 + 9 + 17;
      std::vector<float> y(static_cast<size_t>(n * ldy), std::nanf(""));
      const LinearOut outs[] = {{&la, y.data(), ldy},
                                {&lb, y.data() + 48, ldy},
                                {&lc, y.data() + 69, ldy},
                                {&ld, y.data() + 78, ldy}};
      GemmScratch scratch;
      linear(outs, x.data(), cols, n, pool, scratch, &kernels);
      const Matrix* mats[] = {&a, &b, &c, &d};
      const int64_t offs[] = {0, 48, 69, 78};
      for (int m = 0; m < 4; ++m) {
        const int64_t rows = mats[m]->view.rows();
        std::vector<float> ref(static_cast<size_t>(n * rows));
        matmul_reference(mats[m]->view, x.data(), n, ref.data());
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_NEAR(y[t * ldy + offs[m] + r], ref[t * rows + r], bound(*mats[m], x, cols, r, t))
                << "matrix " << m << " threads " << threads << " n " << n;
      }
    }
  }
}

TEST(Linear, GluMatchesSeparateProducts) {
  const int64_t cols = 256, rows = 40;  // Q3_K: unpacked
  for (DType t : {DType::Q4_0, DType::F32, DType::Q3_K}) {
    const Matrix g = make_matrix(t, rows, cols, 7), u = make_matrix(t, rows, cols, 8);
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      const KernelTable kernels = without_gemm(DType::Q3_K);
      const Linear lg(g.view, kernels, &pool), lu(u.view, kernels, &pool);
      EXPECT_EQ(lg.packed(), t != DType::Q3_K);
      for (int64_t n : {1, 5, 70}) {
        const std::vector<float> x = random_values(n * cols, 9, 0.5f);
        std::vector<float> rg(static_cast<size_t>(n * rows)), ru(rg.size());
        matmul_reference(g.view, x.data(), n, rg.data());
        matmul_reference(u.view, x.data(), n, ru.data());
        for (GluKind kind : {GluKind::Silu, GluKind::GeluTanh}) {
          std::vector<float> ref(rg.size());
          if (kind == GluKind::Silu) {
            silu_mul(rg.data(), ru.data(), ref.data(), n * rows);
          } else {
            gelu_tanh_mul(rg.data(), ru.data(), ref.data(), n * rows);
          }
          const int64_t ldy = rows + 3;
          std::vector<float> y(static_cast<size_t>(n * ldy), 123.0f);
          GemmScratch scratch;
          linear_glu(lg, lu, kind, x.data(), cols, n, y.data(), ldy, pool, scratch, &kernels);
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t r = 0; r < rows; ++r)
              ASSERT_NEAR(y[i * ldy + r], ref[i * rows + r],
                          1e-4 * (std::fabs(ref[i * rows + r]) + 1.0))
                  << dtype_name(t) << " n=" << n << " r=" << r;
            for (int64_t r = rows; r < ldy; ++r) ASSERT_EQ(y[i * ldy + r], 123.0f);
          }
        }
      }
    }
  }
}

TEST(Linear, RejectsBadShapes) {
  const Matrix a = make_matrix(DType::Q8_0, 16, 64, 1);
  const Matrix b = make_matrix(DType::Q8_0, 16, 32, 2);
  ThreadPool pool(1);
  const Linear la(a.view, best_kernels(), &pool), lb(b.view, best_kernels(), &pool);
  std::vector<float> x(64 * 2), y(64);
  const LinearOut outs[] = {{&la, y.data(), 0}, {&lb, y.data(), 0}};
  GemmScratch scratch;
  EXPECT_THROW(linear(outs, x.data(), 64, 1, pool, scratch), Error);
  TensorView bad = a.view;
  bad.type = DType::Q8_K;
  EXPECT_THROW(PackedMatrix::pack(bad), Error);
  bad = a.view;
  bad.ne = {48, 16, 1, 1};
  EXPECT_THROW(PackedMatrix::pack(bad), Error);
}

// The spin-then-sleep pool the drivers run on: every region runs once on every
// thread, regions never overlap, and sleeping workers wake up for later regions.
TEST(ThreadPoolHandoff, RegionsRunOnceOnEveryThreadInOrder) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<int> hits(static_cast<size_t>(threads), 0);
    int64_t total = 0;
    for (int region = 0; region < 2000; ++region) {
      pool.run_on_all([&](int t) { ++hits[static_cast<size_t>(t)]; });
      if (region == 1000)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // workers sleep
      int64_t sum = 0;
      pool.parallel_for(1000, [&](int, int64_t b, int64_t e) {
        int64_t local = 0;
        for (int64_t i = b; i < e; ++i) local += i;
        __atomic_fetch_add(&sum, local, __ATOMIC_RELAXED);
      });
      total += sum;
    }
    for (int h : hits) EXPECT_EQ(h, 2000) << threads;
    EXPECT_EQ(total, 2000 * int64_t{999 * 1000 / 2}) << threads;
  }
}

}  // namespace
}  // namespace muse::kernels
