// Kernel micro-benchmarks: vec_dot and activation quantizers per type and ISA,
// matmul (row by row) and the packed GEMM on model-sized shapes, and decode-step
// attention. Names are <kind>/<type>/<isa>[/...], so --benchmark_filter selects
// a type, an ISA or a shape.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_data.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"

namespace muse::kernels {
namespace {

using bench_data::matrix_view;
using bench_data::quantized;
using bench_data::random_values;

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
        const TensorView w = matrix_view(t, rows, cols, w_bytes);
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

// Decode-step attention: `rows` query heads (7 for Qwen2.5-0.5B's GQA) per KV
// head over n_ctx cached positions of head_dim 64, on one thread, cycling through
// `caches` separate caches: 1 (from L2/L3), or 144 = three 0.5B decode steps'
// worth (24 layers x 2 KV heads each; 85 MB at 4096 positions of Q8_0, more
// than any L3 here), so they come from DRAM as in decoding, where the weights
// streamed between steps evict them (48 = one step's Q8_0 caches, 28 MB, fit a
// 32 MB L3). `kv` names the cache type as `muse bench --kv` does (q8_0: Q8_0
// keys and values).
void register_attention(Isa isa, DType kv, int64_t n_ctx, int rows, int caches) {
  KvElems elems{};
  if (!kv_elems_of(kv, elems)) return;
  const KvElem k_elem = elems.k, v_elem = elems.v;
  const std::string label = "attention/" + std::string(dtype_name(kv)) + "/" +
                            std::string(isa_name(isa)) + "/ctx:" + std::to_string(n_ctx) +
                            "/rows:" + std::to_string(rows) + "/caches:" + std::to_string(caches);
  benchmark::RegisterBenchmark(label.c_str(), [=](benchmark::State& st) {
    const int64_t hd = 64;
    const auto k_bytes = static_cast<size_t>(attention_key_bytes(k_elem, hd, n_ctx));
    const auto v_bytes = static_cast<size_t>(attention_value_bytes(v_elem, hd, n_ctx));
    // Huge-page buffers, as the decoder's cache (4 KiB pages stop the hardware
    // prefetchers at every page).
    std::vector<LargeBuffer> kc, vc;
    const auto kv_values = random_values(2 * n_ctx * hd, 6);
    for (int c = 0; c < caches; ++c) {
      kc.emplace_back(k_bytes);
      vc.emplace_back(v_bytes);
      for (int64_t p = 0; p < n_ctx; ++p) {
        attention_store_key(kc.back().data(), hd, p, &kv_values[static_cast<size_t>(p * hd)],
                            k_elem);
        attention_store_value(vc.back().data(), hd, p,
                              &kv_values[static_cast<size_t>((n_ctx + p) * hd)], v_elem);
      }
    }
    const auto q = random_values(rows * hd, 7);
    std::vector<float> out(static_cast<size_t>(rows * hd));
    std::vector<AttnRow> attn_rows(static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r)
      attn_rows[static_cast<size_t>(r)] = {&q[static_cast<size_t>(r * hd)],
                                           &out[static_cast<size_t>(r * hd)], 0,
                                           static_cast<int32_t>(n_ctx - 1)};
    const KernelTable& k = kernels_for(isa);
    size_t c = 0;
    for (auto _ : st) {
      const AttnKv kv{kc[c].data(), vc[c].data(), hd, k_elem, v_elem};
      attention(k, kv, attn_rows.data(), rows, 0.125f);
      benchmark::ClobberMemory();
      c = c + 1 == kc.size() ? 0 : c + 1;
    }
    st.SetItemsProcessed(st.iterations() * 2 * rows * n_ctx * hd);  // multiply-adds
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(k_bytes + v_bytes));
  })->Unit(benchmark::kMicrosecond);
}

// The forward pass's packed GEMM (Linear: weights repacked at load, activations
// quantized once) on one thread, so the numbers are the kernel's own rate.
void register_gemm(DType t, Isa isa, int64_t rows, int64_t cols, int64_t n_tokens) {
  const std::string label = name("gemm", t, isa) + "/" + std::to_string(rows) + "x" +
                            std::to_string(cols) + "/tokens:" + std::to_string(n_tokens);
  benchmark::RegisterBenchmark(label.c_str(), [=](benchmark::State& st) {
    const auto w_bytes = quantized(t, random_values(rows * cols, 4));
    const TensorView w = matrix_view(t, rows, cols, w_bytes);
    const KernelTable& k = kernels_for(isa);
    ThreadPool pool(1);
    const Linear linear_w(w, k, &pool);
    const auto x = random_values(n_tokens * cols, 5);
    std::vector<float> y(static_cast<size_t>(rows * n_tokens));
    GemmScratch scratch;
    scratch.reserve(n_tokens, cols, 1);
    const LinearOut out{&linear_w, y.data(), 0};
    for (auto _ : st) {
      linear(std::span<const LinearOut>(&out, 1), x.data(), cols, n_tokens, pool, scratch, &k);
      benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations() * rows * cols * n_tokens);  // multiply-adds
  })->Unit(benchmark::kMicrosecond);
}

void register_all() {
  for (Isa isa : isas()) {
    for (DType t : weight_types()) register_vec_dot(t, isa);
    for (DType act : {DType::Q8_0, DType::Q8_1, DType::Q8_K})
      if (scalar_kernels().quantize_fn(act) != nullptr) register_quantize(act, isa);
  }
  for (Isa isa : isas())
    for (DType kv : {DType::F32, DType::F16, DType::Q8_0})
      for (int64_t n_ctx : {128, 4096})
        for (int caches : {1, 144})  // rows: Gemma 3's, Llama 3's and Qwen2.5-0.5B's GQA groups
          for (int rows : {2, 4, 7}) register_attention(isa, kv, n_ctx, rows, caches);
  // Qwen2-0.5B's down projection (896 x 4864, a multiple of every block size).
  for (Isa isa : isas())
    for (DType t : weight_types())
      if (kernels_for(isa).gemm_fn(t) != nullptr)
        for (int64_t n_tokens : {1, 8}) register_gemm(t, isa, 896, 4864, n_tokens);
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
