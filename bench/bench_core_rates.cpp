// What one core can issue: throughput of the instruction patterns the AVX2
// kernels are built from (docs/perf.md argues kernel ceilings from these).
// Each benchmark runs an inline-assembly loop of 12 independent chains, so
// neither latency nor the compiler's register allocation is measured;
// items_per_second counts the pattern's main instruction (an FMA, a
// vpmaddubsw, ...). Written in assembly because compilers fold, hoist or spill
// such loops when written with intrinsics. x86-64 with AVX2 only.
//   bench_core_rates                       # all patterns, on whichever core
//   taskset -c 0 bench_core_rates          # pinned
#include <benchmark/benchmark.h>

#include <cstdint>

#include "kernels/cpu_features.h"

namespace {

#if defined(__x86_64__)

// Twelve copies of one instruction group; %%ymm<i> is chain i's accumulator,
// ymm12/ymm13 hold weights, ymm14 activations, ymm15 a temporary.
#define MUSE_STR(x) #x
#define MUSE_X12(G) G(0) G(1) G(2) G(3) G(4) G(5) G(6) G(7) G(8) G(9) G(10) G(11)
#define MUSE_ACC(i) "%%ymm" MUSE_STR(i)

#define MUSE_FMA(i) "vfmadd231ps %%ymm14, %%ymm12, " MUSE_ACC(i) "\n"
#define MUSE_MADDUBS(i) "vpmaddubsw %%ymm14, %%ymm12, " MUSE_ACC(i) "\n"
#define MUSE_PADDW(i) "vpaddw %%ymm13, " MUSE_ACC(i) ", " MUSE_ACC(i) "\n"
#define MUSE_SIGNB(i) "vpsignb %%ymm14, %%ymm12, " MUSE_ACC(i) "\n"
// f16 -> f32 of 8 values from L1, as the f16 attention and GEMM kernels load them.
#define MUSE_CVTPH(i) "vcvtph2ps " MUSE_STR(i) "*16(%[mem]), " MUSE_ACC(i) "\n"
// An f16 load feeding an FMA, as the f16 attention's inner loops.
#define MUSE_CVTPH_FMA(i) \
  "vcvtph2ps " MUSE_STR(i) "*16(%[mem]), %%ymm15\n vfmadd231ps %%ymm15, %%ymm12, " MUSE_ACC(i) "\n"
// The int8 GEMM's core: a product of 32 byte pairs summed into int16 lanes.
#define MUSE_MADDUBS_PADDW(i) \
  "vpmaddubsw %%ymm14, %%ymm12, %%ymm15\n vpaddw %%ymm15, " MUSE_ACC(i) ", " MUSE_ACC(i) "\n"
// As the Q4_0 GEMM tile: every other pair starts with a broadcast activation
// quad from memory that feeds two vpmaddubsw (two 8-row weight vectors).
#define MUSE_BCAST_PAIRS(i)                                                              \
  "vpbroadcastd " MUSE_STR(i) "*4(%[mem]), %%ymm14\n"                                    \
  "vpmaddubsw %%ymm14, %%ymm12, %%ymm15\n vpaddw %%ymm15, " MUSE_ACC(i) ", " MUSE_ACC(i) \
  "\n vpmaddubsw %%ymm14, %%ymm13, %%ymm15\n vpaddw %%ymm15, " MUSE_ACC(i) ", " MUSE_ACC(i) "\n"
// The activation operand read from L1 by every vpmaddubsw.
#define MUSE_MEM_PAIRS(i) \
  "vpmaddubsw " MUSE_STR(i) "*32(%[mem]), %%ymm12, %%ymm15\n vpaddw %%ymm15, " MUSE_ACC(i) ", " MUSE_ACC(i) "\n"

#define MUSE_LOOP(NAME, GROUP)                                                                \
  void NAME(int64_t n, const void* mem) {                                                     \
    asm volatile(                                                                             \
        "vpcmpeqb %%ymm12, %%ymm12, %%ymm12\n vpabsb %%ymm12, %%ymm12\n"                      \
        "vmovdqa %%ymm12, %%ymm13\n vmovdqa %%ymm12, %%ymm14\n"                               \
        "1:\n" MUSE_X12(GROUP) "dec %[n]\n jnz 1b\n vzeroupper\n"                             \
        : [n] "+r"(n)                                                                         \
        : [mem] "r"(mem)                                                                      \
        : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",     \
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");              \
  }

MUSE_LOOP(loop_fma, MUSE_FMA)
MUSE_LOOP(loop_maddubs, MUSE_MADDUBS)
MUSE_LOOP(loop_paddw, MUSE_PADDW)
MUSE_LOOP(loop_signb, MUSE_SIGNB)
MUSE_LOOP(loop_cvtph, MUSE_CVTPH)
MUSE_LOOP(loop_cvtph_fma, MUSE_CVTPH_FMA)
MUSE_LOOP(loop_maddubs_paddw, MUSE_MADDUBS_PADDW)
MUSE_LOOP(loop_bcast_pairs, MUSE_BCAST_PAIRS)
MUSE_LOOP(loop_mem_pairs, MUSE_MEM_PAIRS)

// Runs fn's loop; `per_iter` main instructions per iteration of it.
void run(benchmark::State& state, void (*fn)(int64_t, const void*), int per_iter) {
  if (!muse::kernels::isa_supported(muse::kernels::Isa::Avx2)) {
    state.SkipWithError("needs AVX2");
    return;
  }
  alignas(64) static int8_t mem[12 * 32] = {};
  constexpr int64_t kIters = 1 << 20;
  for (auto _ : state) fn(kIters, mem);
  state.SetItemsProcessed(state.iterations() * kIters * per_iter);
}

void BM_fma(benchmark::State& s) { run(s, loop_fma, 12); }
void BM_maddubs(benchmark::State& s) { run(s, loop_maddubs, 12); }
void BM_paddw(benchmark::State& s) { run(s, loop_paddw, 12); }
void BM_signb(benchmark::State& s) { run(s, loop_signb, 12); }
void BM_cvtph(benchmark::State& s) { run(s, loop_cvtph, 12); }
void BM_cvtph_fma(benchmark::State& s) { run(s, loop_cvtph_fma, 12); }
void BM_maddubs_paddw(benchmark::State& s) { run(s, loop_maddubs_paddw, 12); }
void BM_bcast_pairs(benchmark::State& s) { run(s, loop_bcast_pairs, 24); }
void BM_mem_pairs(benchmark::State& s) { run(s, loop_mem_pairs, 12); }

BENCHMARK(BM_fma)->Name("core/fma_ps");
BENCHMARK(BM_maddubs)->Name("core/maddubs");
BENCHMARK(BM_paddw)->Name("core/paddw");
BENCHMARK(BM_signb)->Name("core/signb");
BENCHMARK(BM_cvtph)->Name("core/cvtph2ps");
BENCHMARK(BM_cvtph_fma)->Name("core/cvtph2ps+fma_ps");
BENCHMARK(BM_maddubs_paddw)->Name("core/maddubs+paddw");
BENCHMARK(BM_bcast_pairs)->Name("core/maddubs+paddw,bcast_per_2");
BENCHMARK(BM_mem_pairs)->Name("core/maddubs_mem+paddw");

#endif  // __x86_64__

}  // namespace

BENCHMARK_MAIN();
