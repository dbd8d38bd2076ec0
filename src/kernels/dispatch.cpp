// Kernel tables per ISA, built once, and the choice of table for this CPU.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cpu_features.h"
#include "kernels/kernel_table.h"
#include "muse/error.h"

#if defined(__x86_64__) || defined(_M_X64)
#define MUSE_DISPATCH_X86 1
#elif defined(__aarch64__)
#define MUSE_DISPATCH_ARM 1
#endif

namespace muse::kernels {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
    case Isa::Neon:
      return "neon";
  }
  return "unknown";
}

DType vec_dot_act_type(DType weight_type) {
  switch (weight_type) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
      return DType::F32;
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
      return DType::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1:
      return DType::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return DType::Q8_K;
    default:
      throw Error(str_cat("tensor type ", static_cast<uint32_t>(weight_type),
                          " has no dot-product kernel (not a supported weight type)"));
  }
}

namespace {

KernelTable build_scalar() {
  KernelTable t;
  register_float_scalar(t);
  register_legacy_scalar(t);
  register_kquants_scalar(t);
  return t;
}

#ifdef MUSE_DISPATCH_X86
KernelTable build_avx2() {
  KernelTable t = build_scalar();
  register_float_avx2(t);
  register_legacy_avx2(t);
  register_kquants_avx2(t);
  return t;
}

// AVX-512 kernels only cover what benefits from 512-bit registers; the rest
// come from the AVX2 layer below them.
KernelTable build_avx512() {
  KernelTable t = build_avx2();
  register_float_avx512(t);
  register_legacy_avx512(t);
  register_kquants_avx512(t);
  return t;
}
#endif

#ifdef MUSE_DISPATCH_ARM
KernelTable build_neon() {
  KernelTable t = build_scalar();
  register_float_neon(t);
  register_legacy_neon(t);
  register_kquants_neon(t);
  return t;
}
#endif

Isa detect_best_isa() {
#ifdef MUSE_DISPATCH_X86
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
#endif
#ifdef MUSE_DISPATCH_ARM
  if (isa_supported(Isa::Neon)) return Isa::Neon;
#endif
  return Isa::Scalar;
}

// Applies MUSE_ISA: it may only lower the choice to another ISA this CPU runs.
Isa choose_isa() {
  const Isa best = detect_best_isa();
  const char* env = std::getenv("MUSE_ISA");
  if (env == nullptr || *env == '\0') return best;
  std::string want(env);
  for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon}) {
    if (want != isa_name(isa)) continue;
    if (!isa_supported(isa)) {
      std::fprintf(stderr, "muse: MUSE_ISA=%s is not supported by this CPU; using %s\n", env,
                   std::string(isa_name(best)).c_str());
      return best;
    }
    return isa;  // supported, so never above `best` on the same architecture
  }
  std::fprintf(stderr, "muse: unknown MUSE_ISA=%s (expected scalar|avx2|avx512|neon); using %s\n",
               env, std::string(isa_name(best)).c_str());
  return best;
}

}  // namespace

const KernelTable& scalar_kernels() {
  static const KernelTable table = build_scalar();
  return table;
}

const KernelTable& kernels_for(Isa isa) {
  MUSE_CHECK(isa_supported(isa), "ISA ", isa_name(isa), " is not supported by this CPU");
  switch (isa) {
    case Isa::Scalar:
      return scalar_kernels();
#ifdef MUSE_DISPATCH_X86
    case Isa::Avx2: {
      static const KernelTable table = build_avx2();
      return table;
    }
    case Isa::Avx512: {
      static const KernelTable table = build_avx512();
      return table;
    }
#endif
#ifdef MUSE_DISPATCH_ARM
    case Isa::Neon: {
      static const KernelTable table = build_neon();
      return table;
    }
#endif
    default:
      break;
  }
  throw Error(str_cat("no kernels for ISA ", isa_name(isa), " in this build"));
}

Isa best_isa() {
  static const Isa isa = choose_isa();
  return isa;
}

const KernelTable& best_kernels() {
  static const KernelTable& table = kernels_for(best_isa());
  return table;
}

}  // namespace muse::kernels
