// Kernel micro-benchmarks: vec_dot and activation quantizers per type and ISA,
// and matmul on model-sized shapes. Names are <kind>/<type>/<isa>[/...], so
// --benchmark_filter selects a type, an ISA or a shape.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu_features.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"

namespace muse::kernels {
namespace {

std::vector<float> random_values(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  return v;
}

std::vector<uint8_t> quantized(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> out(row_bytes(t, static_cast<int64_t>(x.size())));
  scalar_kernels().quantize_fn(t)(x.data(), out.data(), static_cast<int64_t>(x.size()));
  return out;
}

std::vector<Isa> isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

std::vector<DType> weight_types() {
  std::vector<DType> out;
  for (uint32_t i = 0; i < kTypeSlots; ++i)
    if (scalar_kernels().vec_dot[i] != nullptr) out.push_back(static_cast<DType>(i));
  return out;
}

std::string name(const char* kind, DType t, Isa isa) {
  return std::string(kind) + "/" + std::string(dtype_name(t)) + "/" + std::string(isa_name(isa));
}

// One row of 4096 weights (a typical hidden size) against its activation row.
void register_vec_dot(DType t, Isa isa) {
  benchmark::RegisterBenchmark(name("vec_dot", t, isa).c_str(), [t, isa](benchmark::State& st) {
    const int64_t n = 4096;
    const auto w = quantized(t, random_values(n, 1));
    const auto a = quantized(vec_dot_act_type(t), random_values(n, 2));
    const VecDotFn dot = kernels_for(isa).vec_dot_fn(t);
    float out = 0;
    for (auto _ : st) {
      dot(n, &out, w.data(), a.data());
      benchmark::DoNotOptimize(out);
    }
    st.SetItemsProcessed(st.iterations() * n);
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(w.size()));
  });
}

void register_quantize(DType act, Isa isa) {
  benchmark::RegisterBenchmark(name("quantize", act, isa).c_str(),
                               [act, isa](benchmark::State& st) {
                                 const int64_t n = 4096;
                                 const auto x = random_values(n, 3);
                                 std::vector<uint8_t> out(row_bytes(act, n));
                                 const QuantizeRowFn q = kernels_for(isa).quantize_fn(act);
                                 for (auto _ : st) {
                                   q(x.data(), out.data(), n);
                                   benchmark::ClobberMemory();
                                 }
                                 st.SetItemsProcessed(st.iterations() * n);
                               });
}

// rows x cols weights times n_tokens activations on all hardware threads.
void register_matmul(DType t, Isa isa, int64_t rows, int64_t cols, int64_t n_tokens) {
  const std::string label = name("matmul", t, isa) + "/" + std::to_string(rows) + "x" +
                            std::to_string(cols) + "/tokens:" + std::to_string(n_tokens);
  benchmark::RegisterBenchmark(
      label.c_str(),
      [=](benchmark::State& st) {
        const auto w_bytes = quantized(t, random_values(rows * cols, 4));
        TensorView w;
        w.type = t;
        w.n_dims = 2;
        w.ne = {cols, rows, 1, 1};
        w.data = w_bytes.data();
        w.nbytes = w_bytes.size();
        const auto x = random_values(n_tokens * cols, 5);
        std::vector<float> y(static_cast<size_t>(rows * n_tokens));
        std::vector<uint8_t> scratch;
        ThreadPool pool(default_thread_count());
        const KernelTable& k = kernels_for(isa);
        for (auto _ : st) {
          matmul_with(k, w, x.data(), n_tokens, y.data(), pool, scratch);
          benchmark::ClobberMemory();
        }
        st.SetItemsProcessed(st.iterations() * rows * cols * n_tokens);  // multiply-adds
        st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(w_bytes.size()));
        st.counters["threads"] = pool.size();
      })
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}

void register_all() {
  for (Isa isa : isas()) {
    for (DType t : weight_types()) register_vec_dot(t, isa);
    for (DType act : {DType::Q8_0, DType::Q8_1, DType::Q8_K})
      if (scalar_kernels().quantize_fn(act) != nullptr) register_quantize(act, isa);
  }
  // Qwen2-0.5B's MLP: up/gate 4864x896 and down 896x4864; decode and a prefill chunk.
  for (Isa isa : isas()) {
    for (DType t : {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
      if (scalar_kernels().vec_dot_fn(t) == nullptr) continue;
      for (int64_t n_tokens : {1, 32}) {
        register_matmul(t, isa, 4864, 896, n_tokens);
        register_matmul(t, isa, 896, 4864, n_tokens);
      }
    }
  }
}

}  // namespace
}  // namespace muse::kernels

int main(int argc, char** argv) {
  muse::kernels::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
