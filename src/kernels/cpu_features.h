// Run-time detection of the SIMD features the kernel tables need.
//
// On x86-64 the features come from cpuid, and a register file only counts as
// usable when the OS saves it on context switches (xgetbv: YMM state for AVX2,
// opmask + ZMM state for AVX-512). On aarch64 NEON is part of the base ISA.
#pragma once

#include "kernels/kernel_table.h"

namespace muse::kernels {

struct CpuFeatures {
  // x86-64 (each true only when the OS also enables the register state).
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool bmi2 = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  // aarch64.
  bool neon = false;
  bool arm_dotprod = false;  // SDOT/UDOT (informational; kernels use it only when compiled in)
};

// Detected once, on first use (thread-safe).
const CpuFeatures& cpu_features();

// Whether the kernels of `isa` can run on this CPU:
//   Scalar: always.
//   Avx2:   AVX2 + FMA + F16C + BMI2 (the flags the *_avx2.cpp files are built with).
//   Avx512: all of Avx2 plus AVX-512 F/BW/VL/DQ/VNNI (the *_avx512.cpp flags).
//   Neon:   aarch64.
bool isa_supported(Isa isa);

}  // namespace muse::kernels
