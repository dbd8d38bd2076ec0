// A/B comparison of the AVX2 packed GEMM against a variant of it, in one
// process: the library's kernels (A) and a modified copy of
// src/kernels/gemm_avx2.cpp (B, built in with -DMUSE_GEMM_AB_VARIANT=path; by
// default the library's own file, so B = A and the ratio shows the method's
// spread) are called in turn, round after round, so both sides see the same
// phases of a machine whose speed drifts by 20-50% within minutes (timing two
// binaries one after the other could not resolve 5% there).
//
//   gemm_ab [type rows cols tokens matrices rounds]   (q4_0 896 4864 8 1 200)
//
// `matrices` copies of one rows x cols weight matrix are multiplied in turn
// (more than fit the caches: the weights stream from memory, as in decoding);
// one round is one pass over them per side. Prints both rates and B's speed
// relative to A (total time, and the median and 10th/90th percentiles of the
// per-round ratios), and the largest difference between the two outputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bench_data.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {
void register_gemm_avx2_variant(KernelTable& t);  // the variant's register_gemm_avx2
}

namespace {

using namespace muse;
using namespace muse::kernels;

int64_t arg(int argc, char** argv, int i, int64_t fallback) {
  return argc > i ? std::atoll(argv[i]) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string type_name = argc > 1 ? argv[1] : "q4_0";
  const int64_t rows = arg(argc, argv, 2, 896), cols = arg(argc, argv, 3, 4864);
  const int64_t n_tokens = arg(argc, argv, 4, 8), n_mats = arg(argc, argv, 5, 1);
  const int64_t rounds = arg(argc, argv, 6, 200);
  const std::optional<DType> parsed = dtype_from_name(type_name);
  const DType type = parsed.value_or(DType::F32);
  if (!parsed || scalar_kernels().quantize_fn(type) == nullptr || rows <= 0 || cols <= 0 ||
      n_tokens <= 0 || n_mats <= 0 || rounds <= 0) {
    std::fprintf(stderr, "usage: gemm_ab [type rows cols tokens matrices rounds]\n");
    return 2;
  }
  if (!isa_supported(Isa::Avx2)) {
    std::fprintf(stderr, "gemm_ab: this CPU has no AVX2\n");
    return 2;
  }
  const KernelTable& table_a = kernels_for(Isa::Avx2);
  KernelTable table_b = table_a;
  register_gemm_avx2_variant(table_b);
  if (table_a.gemm_fn(type) == nullptr || table_b.gemm_fn(type) == nullptr) {
    std::fprintf(stderr, "gemm_ab: no AVX2 GEMM kernel for %s\n", type_name.c_str());
    return 2;
  }

  const std::vector<uint8_t> w_bytes =
      bench_data::quantized(type, bench_data::random_values(rows * cols, 1));
  const TensorView w = bench_data::matrix_view(type, rows, cols, w_bytes);

  ThreadPool pool(1);
  std::vector<Linear> mats;
  mats.reserve(static_cast<size_t>(n_mats));
  for (int64_t i = 0; i < n_mats; ++i) mats.emplace_back(w, table_a, &pool);
  const std::vector<float> x = bench_data::random_values(n_tokens * cols, 2);
  std::vector<float> y_a(static_cast<size_t>(rows * n_tokens)), y_b(y_a.size());
  GemmScratch scratch;
  scratch.reserve(n_tokens, cols, 1);

  auto pass = [&](const KernelTable& table, std::vector<float>& y) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const Linear& m : mats) {
      const LinearOut out{&m, y.data(), 0};
      linear(std::span<const LinearOut>(&out, 1), x.data(), cols, n_tokens, pool, scratch, &table);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  pass(table_a, y_a);  // warm-up, and the outputs to compare
  pass(table_b, y_b);
  double max_diff = 0.0;
  for (size_t i = 0; i < y_a.size(); ++i)
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(y_a[i] - y_b[i])));

  double total_a = 0.0, total_b = 0.0;
  std::vector<double> ratios;
  for (int64_t r = 0; r < rounds; ++r) {
    // Alternate which side goes first, so neither always follows the other.
    double a, b;
    if (r % 2 == 0) {
      a = pass(table_a, y_a);
      b = pass(table_b, y_b);
    } else {
      b = pass(table_b, y_b);
      a = pass(table_a, y_a);
    }
    total_a += a;
    total_b += b;
    ratios.push_back(a / b);
  }
  std::sort(ratios.begin(), ratios.end());
  auto pct = [&ratios](size_t p) { return ratios[(ratios.size() - 1) * p / 100]; };
  const double macs = static_cast<double>(rows * cols * n_tokens * n_mats * rounds);
  std::printf(
      "%s %lldx%lld, %lld tokens, %lld matrices, %lld rounds: A %.1f, B %.1f GMAC/s; "
      "B/A speed %.3f (total), %.3f median [p10 %.3f, p90 %.3f]; max |yA - yB| %.3g\n",
      type_name.c_str(), static_cast<long long>(rows), static_cast<long long>(cols),
      static_cast<long long>(n_tokens), static_cast<long long>(n_mats),
      static_cast<long long>(rounds), macs / total_a / 1e9, macs / total_b / 1e9, total_a / total_b,
      pct(50), pct(10), pct(90), max_diff);
  return 0;
}
