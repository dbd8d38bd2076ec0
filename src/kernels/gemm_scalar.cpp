// Scalar reference kernels of the packed GEMM (layouts in gemm.h): the ground
// truth every SIMD kernel is tested against, and the MUSE_ISA=scalar path.
#include <cstring>

#include "core/dtype.h"
#include "core/fp16.h"
#include "kernels/gemm_layout.h"
#include "kernels/kernel_table.h"

namespace muse::kernels {

using namespace gemm_layout;

namespace {

float load_f16(const uint8_t* p, int r) {
  uint16_t h;
  std::memcpy(&h, p + 2 * r, 2);
  return f16_to_f32(h);
}

// Stores dot(w, t, r) -- lane r of the row group at w times token t -- for every
// output of the call.
template <typename Dot>
void for_each_output(const GemmArgs& a, Dot dot) {
  for (int64_t g = 0; g < a.n_groups; ++g) {
    const uint8_t* w = a.w + g * a.group_bytes;
    const int lanes = g + 1 == a.n_groups ? a.last_rows : 16;
    for (int64_t t = 0; t < a.n_tokens; ++t)
      for (int r = 0; r < lanes; ++r) a.y[t * a.ldy + g * 16 + r] = dot(w, t, r);
  }
}

template <typename Elem>
void gemm_float_scalar(const GemmArgs& a) {
  for_each_output(a, [&](const uint8_t* w, int64_t t, int r) {
    const float* x = a.acts.x + t * a.acts.k;
    float acc = 0.0f;
    for (int64_t k = 0; k < a.acts.k; ++k) acc += Elem::get(w, k * 16 + r) * x[k];
    return acc;
  });
}

struct ElemF32 {
  static float get(const uint8_t* w, int64_t i) {
    float v;
    std::memcpy(&v, w + 4 * i, 4);
    return v;
  }
};
struct ElemF16 {
  static float get(const uint8_t* w, int64_t i) { return load_f16(w, static_cast<int>(i)); }
};
struct ElemBF16 {
  static float get(const uint8_t* w, int64_t i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    return bf16_to_f32(h);
  }
};

// The legacy 32-blocks: value(chunk, r, e) gives the unsigned quant of element e
// of row r, kOffset what it is stored above the signed value, kMins where the
// mins of the _1 types are (0: none).
template <typename Format>
void gemm_q32_scalar(const GemmArgs& a) {
  const int64_t nb = a.acts.k / 32;
  for_each_output(a, [&](const uint8_t* w, int64_t t, int r) {
    const int8_t* qs = a.acts.qs + t * a.acts.k;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* chunk = w + b * Format::kChunk;
      const int32_t nsum = a.acts.nsum32[t * nb + b];
      const float da = a.acts.d[t * nb + b];
      int32_t isum = Format::kOffset * nsum;
      for (int e = 0; e < 32; ++e) isum += Format::value(chunk, r, e) * qs[32 * b + e];
      acc += static_cast<float>(isum) * (load_f16(chunk, r) * da);
      // x = d q + m: the mins times the block's activation sum.
      if constexpr (Format::kMins != 0)
        acc += load_f16(chunk + Format::kMins, r) * (da * static_cast<float>(-nsum));
    }
    return acc;
  });
}

struct FormatQ8_0 {
  static constexpr size_t kChunk = kQ8_0Chunk;
  static constexpr int kOffset = 128;
  static constexpr size_t kMins = 0;
  static int value(const uint8_t* c, int r, int e) { return c[32 + (e / 4) * 64 + r * 4 + e % 4]; }
};
struct FormatQ4_0 {
  static constexpr size_t kChunk = kQ4_0Chunk;
  static constexpr int kOffset = 8;
  static constexpr size_t kMins = 0;
  static int value(const uint8_t* c, int r, int e) {
    const int l = e % 16;
    const uint8_t byte = c[32 + (l / 4) * 64 + r * 4 + l % 4];
    return e < 16 ? (byte & 15) : (byte >> 4);
  }
};
struct FormatQ5_0 {
  static constexpr size_t kChunk = kQ5_0Chunk;
  static constexpr int kOffset = 16;
  static constexpr size_t kMins = 0;
  static int value(const uint8_t* c, int r, int e) {
    const uint8_t plane = c[kQ5_0Planes + r * 4 + e % 4];
    return FormatQ4_0::value(c, r, e) | (((plane >> (e / 4)) & 1) << 4);
  }
};
struct FormatQ4_1 {
  static constexpr size_t kChunk = kQ4_1Chunk;
  static constexpr int kOffset = 0;
  static constexpr size_t kMins = kQ4_1Mins;
  static int value(const uint8_t* c, int r, int e) { return FormatQ4_0::value(c, r, e); }
};
struct FormatQ5_1 {
  static constexpr size_t kChunk = kQ5_1Chunk;
  static constexpr int kOffset = 0;
  static constexpr size_t kMins = kQ5_1Mins;
  static int value(const uint8_t* c, int r, int e) { return FormatQ5_0::value(c, r, e); }
};

// Q2_K and Q3_K (16-column sub-blocks, 2-bit groups; Q3_K adds its third bits).
template <DType kType>
void gemm_low2_scalar(const GemmArgs& a) {
  constexpr bool kQ3 = kType == DType::Q3_K;
  constexpr size_t kChunk = kQ3 ? kQ3_KChunk : kQ2_KChunk;
  constexpr size_t kQuants = kQ3 ? kQ3_KQuants : kQ2_KQuants;
  const int64_t nsb = a.acts.k / 256;
  for_each_output(a, [&](const uint8_t* w, int64_t t, int r) {
    const int8_t* qs = a.acts.qs + t * a.acts.k;
    float acc = 0.0f;
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = w + sb * kChunk;
      int32_t sumi = 0, summ = 0;
      for (int j = 0; j < 16; ++j) {
        const int32_t nsum = a.acts.nsum16[t * (nsb * 16) + sb * 16 + j];
        int32_t isum = kQ3 ? 4 * nsum : 0;  // Q3_K stores q + 4
        for (int e = 0; e < 16; ++e) {
          const int s = e / 4, i = e % 4;
          int q = (chunk[kQuants + j * 64 + r * 4 + i] >> (2 * s)) & 3;
          if constexpr (kQ3)
            q |= ((chunk[kQ3_KHigh + (j / 2) * 64 + r * 4 + i] >> (s + 4 * (j % 2))) & 1) << 2;
          isum += q * qs[256 * sb + 16 * j + e];
        }
        if constexpr (kQ3) {
          sumi += static_cast<int8_t>(chunk[kQ3_KScales + j * 16 + r]) * isum;
        } else {
          const uint8_t sc = chunk[kQ2_KScales + j * 16 + r];
          sumi += (sc & 15) * isum;
          summ += (sc >> 4) * -nsum;
        }
      }
      const float da = a.acts.d[t * (nsb * 8) + sb * 8];
      if constexpr (kQ3)
        acc += da * load_f16(chunk, r) * static_cast<float>(sumi);
      else
        acc += da * (load_f16(chunk + kQ2_KD, r) * static_cast<float>(sumi) -
                     load_f16(chunk + kQ2_KDmin, r) * static_cast<float>(summ));
    }
    return acc;
  });
}

// Q4_K, and Q5_K (kChunk = kQ5_KChunk) with the fifth bits from its planes.
template <size_t kChunk>
void gemm_k_min_scalar(const GemmArgs& a) {
  const int64_t nsb = a.acts.k / 256;
  for_each_output(a, [&](const uint8_t* w, int64_t t, int r) {
    const int8_t* qs = a.acts.qs + t * a.acts.k;
    float acc = 0.0f;
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = w + sb * kChunk;
      int32_t sumi = 0, summ = 0;
      for (int s = 0; s < 8; ++s) {
        int32_t isum = 0;
        for (int e = 0; e < 32; ++e) {
          const int c = s / 2, l = e;
          const uint8_t byte = chunk[kQ4_KQuants + (c * 8 + l / 4) * 64 + r * 4 + l % 4];
          int q = s % 2 == 0 ? (byte & 15) : (byte >> 4);
          if constexpr (kChunk == kQ5_KChunk)
            q |= ((chunk[kQ5_KPlanes + s * 64 + r * 4 + l % 4] >> (l / 4)) & 1) << 4;
          isum += q * qs[256 * sb + 32 * s + e];
        }
        int16_t m;
        std::memcpy(&m, chunk + kQ4_KMins + ((s / 2) * 16 + r) * 4 + 2 * (s % 2), 2);
        sumi += chunk[kQ4_KScales + s * 16 + r] * isum;
        summ += m * a.acts.sum32[t * (nsb * 8) + sb * 8 + s];
      }
      const float da = a.acts.d[t * (nsb * 8) + sb * 8];
      acc += da * (load_f16(chunk + kQ4_KD, r) * static_cast<float>(sumi) -
                   load_f16(chunk + kQ4_KDmin, r) * static_cast<float>(summ));
    }
    return acc;
  });
}

void gemm_q6_k_scalar(const GemmArgs& a) {
  const int64_t nsb = a.acts.k / 256;
  for_each_output(a, [&](const uint8_t* w, int64_t t, int r) {
    const int8_t* qs = a.acts.qs + t * a.acts.k;
    float acc = 0.0f;
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* chunk = w + sb * kQ6_KChunk;
      int32_t sumi = 0;
      for (int s = 0; s < 16; ++s) {
        const int p = s / 2;
        const uint8_t* base = chunk + kQ6_KQuants + p * kQ6_KPairBytes;
        int32_t isum = 32 * a.acts.nsum16[t * (nsb * 16) + sb * 16 + s];
        for (int e = 0; e < 16; ++e) {
          const int i = e / 4, bi = e % 4;
          const uint8_t nib = base[i * 64 + r * 4 + bi];
          const uint8_t plane = base[256 + (i / 2) * 64 + r * 4 + bi];
          const int low = s % 2 == 0 ? (nib & 15) : (nib >> 4);
          const int high = (plane >> (2 * (i % 2) + 4 * (s % 2))) & 3;
          isum += (low | (high << 4)) * qs[256 * sb + 16 * s + e];
        }
        sumi += static_cast<int8_t>(chunk[kQ6_KScales + s * 16 + r]) * isum;
      }
      const float da = a.acts.d[t * (nsb * 8) + sb * 8];
      acc += static_cast<float>(sumi) * (load_f16(chunk, r) * da);
    }
    return acc;
  });
}

}  // namespace

void register_gemm_scalar(KernelTable& t) {
  t.gemm[static_cast<uint32_t>(DType::F32)] = gemm_float_scalar<ElemF32>;
  t.gemm[static_cast<uint32_t>(DType::F16)] = gemm_float_scalar<ElemF16>;
  t.gemm[static_cast<uint32_t>(DType::BF16)] = gemm_float_scalar<ElemBF16>;
  t.gemm[static_cast<uint32_t>(DType::Q8_0)] = gemm_q32_scalar<FormatQ8_0>;
  t.gemm[static_cast<uint32_t>(DType::Q4_0)] = gemm_q32_scalar<FormatQ4_0>;
  t.gemm[static_cast<uint32_t>(DType::Q4_1)] = gemm_q32_scalar<FormatQ4_1>;
  t.gemm[static_cast<uint32_t>(DType::Q5_0)] = gemm_q32_scalar<FormatQ5_0>;
  t.gemm[static_cast<uint32_t>(DType::Q5_1)] = gemm_q32_scalar<FormatQ5_1>;
  t.gemm[static_cast<uint32_t>(DType::Q2_K)] = gemm_low2_scalar<DType::Q2_K>;
  t.gemm[static_cast<uint32_t>(DType::Q3_K)] = gemm_low2_scalar<DType::Q3_K>;
  t.gemm[static_cast<uint32_t>(DType::Q4_K)] = gemm_k_min_scalar<kQ4_KChunk>;
  t.gemm[static_cast<uint32_t>(DType::Q5_K)] = gemm_k_min_scalar<kQ5_KChunk>;
  t.gemm[static_cast<uint32_t>(DType::Q6_K)] = gemm_q6_k_scalar;
}

}  // namespace muse::kernels
