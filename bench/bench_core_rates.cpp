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

// Twelve copies of one instruction group; %%ymm<i> is chain i's accumulator
// (zeroed first), ymm12/ymm13 hold weights, ymm14 activations (all three the
// bytes of `seed`), ymm15 a temporary; `mem` is read where a pattern loads.
// clang-format off
#define MUSE_STR(x) #x
#define MUSE_X12(G) G(0) G(1) G(2) G(3) G(4) G(5) G(6) G(7) G(8) G(9) G(10) G(11)
#define MUSE_ACC(i) "%%ymm" MUSE_STR(i)
#define MUSE_ZERO(i) "vpxor %%xmm" MUSE_STR(i) ", %%xmm" MUSE_STR(i) ", %%xmm" MUSE_STR(i) "\n"
// acc_i += ymm15 (int16 lanes)
#define MUSE_ADDW(i) "vpaddw %%ymm15, " MUSE_ACC(i) ", " MUSE_ACC(i) "\n"

#define MUSE_FMA(i) "vfmadd231ps %%ymm14, %%ymm12, " MUSE_ACC(i) "\n"
#define MUSE_MADDUBS(i) "vpmaddubsw %%ymm14, %%ymm12, " MUSE_ACC(i) "\n"
#define MUSE_PADDW(i) "vpaddw %%ymm13, " MUSE_ACC(i) ", " MUSE_ACC(i) "\n"
#define MUSE_SIGNB(i) "vpsignb %%ymm14, %%ymm12, " MUSE_ACC(i) "\n"
// f16 -> f32 of 8 values from L1, as the f16 attention and GEMM kernels load them.
#define MUSE_CVTPH(i) "vcvtph2ps " MUSE_STR(i) "*16(%[mem]), " MUSE_ACC(i) "\n"
// An f16 load feeding an FMA, as in the f16 attention's inner loops.
#define MUSE_CVTPH_FMA(i)                            \
  "vcvtph2ps " MUSE_STR(i) "*16(%[mem]), %%ymm15\n"  \
  "vfmadd231ps %%ymm15, %%ymm12, " MUSE_ACC(i) "\n"
// The int8 GEMM's core: 32 byte products summed in pairs into int16 lanes.
#define MUSE_MADDUBS_PADDW(i) "vpmaddubsw %%ymm14, %%ymm12, %%ymm15\n" MUSE_ADDW(i)
// As the Q4_0 GEMM tile: a broadcast activation quad from memory feeds two
// vpmaddubsw (two 8-row weight vectors).
#define MUSE_BCAST_PAIRS(i)                                        \
  "vpbroadcastd " MUSE_STR(i) "*4(%[mem]), %%ymm14\n"              \
  "vpmaddubsw %%ymm14, %%ymm12, %%ymm15\n" MUSE_ADDW(i)            \
  "vpmaddubsw %%ymm14, %%ymm13, %%ymm15\n" MUSE_ADDW(i)
// The activation operand read from L1 by every vpmaddubsw.
#define MUSE_MEM_PAIRS(i) \
  "vpmaddubsw " MUSE_STR(i) "*32(%[mem]), %%ymm12, %%ymm15\n" MUSE_ADDW(i)

// Six chains of another instruction (even registers) beside six vpmaddubsw
// (odd): which instructions issue beside the int8 multiply and which share its
// two pipes. Zen 3: vpmaddwd and register broadcasts share them (2 per cycle
// together), FMA nearly (2.3), vpand, vpsignb, vpshufb and vcvtdq2ps run 2.5-3
// per cycle together, vpsrlw 3.4.
#define MUSE_BESIDE(INSN) MUSE_X6_PAIRS(MUSE_BESIDE_##INSN)
#define MUSE_X6_PAIRS(G) G(0, 1) G(2, 3) G(4, 5) G(6, 7) G(8, 9) G(10, 11)
#define MUSE_MADDUBS_TO(j) "vpmaddubsw %%ymm14, %%ymm12, %%ymm" MUSE_STR(j) "\n"
#define MUSE_BESIDE_fma(i, j) MUSE_FMA(i) MUSE_MADDUBS_TO(j)
#define MUSE_BESIDE_maddwd(i, j) "vpmaddwd %%ymm14, %%ymm12, %%ymm" MUSE_STR(i) "\n" MUSE_MADDUBS_TO(j)
#define MUSE_BESIDE_signb(i, j) "vpsignb %%ymm14, %%ymm12, %%ymm" MUSE_STR(i) "\n" MUSE_MADDUBS_TO(j)
#define MUSE_BESIDE_and(i, j) "vpand %%ymm14, %%ymm12, %%ymm" MUSE_STR(i) "\n" MUSE_MADDUBS_TO(j)
#define MUSE_BESIDE_srlw(i, j) "vpsrlw $4, %%ymm12, %%ymm" MUSE_STR(i) "\n" MUSE_MADDUBS_TO(j)
#define MUSE_BESIDE_cvtdq2ps(i, j) "vcvtdq2ps %%ymm12, %%ymm" MUSE_STR(i) "\n" MUSE_MADDUBS_TO(j)
#define MUSE_BESIDE_bcastd(i, j) "vpbroadcastd %%xmm12, %%ymm" MUSE_STR(i) "\n" MUSE_MADDUBS_TO(j)
#define MUSE_BESIDE_shufb(i, j) "vpshufb %%ymm14, %%ymm12, %%ymm" MUSE_STR(i) "\n" MUSE_MADDUBS_TO(j)

#define MUSE_LOOP(NAME, GROUP) MUSE_LOOP_OF(NAME, MUSE_X12(GROUP))
#define MUSE_LOOP_OF(NAME, BODY)                                                            \
  void NAME(int64_t n, const void* mem, const void* seed) {                                 \
    asm volatile(                                                                           \
        MUSE_X12(MUSE_ZERO)                                                                 \
        "vmovdqu (%[seed]), %%ymm12\n vmovdqa %%ymm12, %%ymm13\n vmovdqa %%ymm12, %%ymm14\n" \
        "1:\n" BODY "dec %[n]\n jnz 1b\n vzeroupper\n"                                      \
        : [n] "+r"(n)                                                                       \
        : [mem] "r"(mem), [seed] "r"(seed)                                                  \
        : "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",   \
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");            \
  }
// clang-format on

MUSE_LOOP(loop_fma, MUSE_FMA)
MUSE_LOOP(loop_maddubs, MUSE_MADDUBS)
MUSE_LOOP(loop_paddw, MUSE_PADDW)
MUSE_LOOP(loop_signb, MUSE_SIGNB)
MUSE_LOOP(loop_cvtph, MUSE_CVTPH)
MUSE_LOOP(loop_cvtph_fma, MUSE_CVTPH_FMA)
MUSE_LOOP(loop_maddubs_paddw, MUSE_MADDUBS_PADDW)
MUSE_LOOP(loop_bcast_pairs, MUSE_BCAST_PAIRS)
MUSE_LOOP(loop_mem_pairs, MUSE_MEM_PAIRS)
MUSE_LOOP_OF(beside_fma, MUSE_BESIDE(fma))
MUSE_LOOP_OF(beside_maddwd, MUSE_BESIDE(maddwd))
MUSE_LOOP_OF(beside_signb, MUSE_BESIDE(signb))
MUSE_LOOP_OF(beside_and, MUSE_BESIDE(and))
MUSE_LOOP_OF(beside_srlw, MUSE_BESIDE(srlw))
MUSE_LOOP_OF(beside_cvtdq2ps, MUSE_BESIDE(cvtdq2ps))
MUSE_LOOP_OF(beside_bcastd, MUSE_BESIDE(bcastd))
MUSE_LOOP_OF(beside_shufb, MUSE_BESIDE(shufb))

// Runs fn's loop; `per_iter` main instructions per iteration of it.
void core(benchmark::State& state, void (*fn)(int64_t, const void*, const void*), int per_iter) {
  if (!muse::kernels::isa_supported(muse::kernels::Isa::Avx2)) {  // AVX2, FMA, F16C
    state.SkipWithError("needs AVX2");
    return;
  }
  alignas(64) static const int8_t mem[12 * 32] = {};
  // Words 0x3f80: read as floats 0x3f803f80, about 1.0 (no denormals in the
  // FMA chains); as bytes 0x80 and 0x3f for the integer patterns.
  alignas(32) static const uint16_t seed[16] = {0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80,
                                                0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80,
                                                0x3f80, 0x3f80, 0x3f80, 0x3f80};
  constexpr int64_t kIters = 1 << 20;
  for (auto _ : state) fn(kIters, mem, seed);
  state.SetItemsProcessed(state.iterations() * kIters * per_iter);
}

BENCHMARK_CAPTURE(core, fma_ps, loop_fma, 12);
BENCHMARK_CAPTURE(core, maddubs, loop_maddubs, 12);
BENCHMARK_CAPTURE(core, paddw, loop_paddw, 12);
BENCHMARK_CAPTURE(core, signb, loop_signb, 12);
BENCHMARK_CAPTURE(core, cvtph2ps, loop_cvtph, 12);
BENCHMARK_CAPTURE(core, cvtph2ps_fma_ps, loop_cvtph_fma, 12);
BENCHMARK_CAPTURE(core, maddubs_paddw, loop_maddubs_paddw, 12);
BENCHMARK_CAPTURE(core, maddubs_paddw_bcast_per_2, loop_bcast_pairs, 24);
BENCHMARK_CAPTURE(core, maddubs_l1_paddw, loop_mem_pairs, 12);
// Both instructions counted: 2 per cycle where they share the pipes.
BENCHMARK_CAPTURE(core, fma_ps_beside_maddubs, beside_fma, 12);
BENCHMARK_CAPTURE(core, maddwd_beside_maddubs, beside_maddwd, 12);
BENCHMARK_CAPTURE(core, signb_beside_maddubs, beside_signb, 12);
BENCHMARK_CAPTURE(core, pand_beside_maddubs, beside_and, 12);
BENCHMARK_CAPTURE(core, psrlw_beside_maddubs, beside_srlw, 12);
BENCHMARK_CAPTURE(core, cvtdq2ps_beside_maddubs, beside_cvtdq2ps, 12);
BENCHMARK_CAPTURE(core, bcastd_reg_beside_maddubs, beside_bcastd, 12);
BENCHMARK_CAPTURE(core, pshufb_beside_maddubs, beside_shufb, 12);

#endif  // __x86_64__

}  // namespace

BENCHMARK_MAIN();
