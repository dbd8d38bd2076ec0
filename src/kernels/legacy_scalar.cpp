// Scalar reference kernels for the legacy block formats Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0 and the activation format Q8_1.
//
// The quantizers follow the reference semantics of the GGUF formats exactly
// (same scale choice, same rounding), so files written with them match those
// written by other GGUF tools bit for bit:
//   Q4_0: d = (signed value of largest magnitude) / -8, q = min(15, trunc(x/d + 8.5))
//   Q4_1: d = (max - min) / 15, m = min,  q = min(15, trunc((x - m)/d + 0.5))
//   Q5_0: like Q4_0 with 5 bits (/-16, + 16.5, max 31), bit 4 of element j in qh bit j
//   Q5_1: like Q4_1 with 5 bits (/31)
//   Q8_0: d = amax / 127, q = round-half-away(x/d);  Q8_1 also s = d * sum(q)
// The 4-bit payload of element j sits in the low nibble of qs[j] and element
// j + 16 in the high nibble.
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/kernel_table.h"
#include "kernels/quant_blocks.h"

namespace muse::kernels {
namespace {

// trunc(v) clamped to [0, hi]; NaN gives 0 (inputs with inf/NaN have no sensible
// quantization, but must not hit an undefined float->int conversion).
inline int trunc_clamped(float v, int hi) {
  if (!(v > 0.0f)) return 0;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(v);
}

// roundf (half away from zero) clamped to [-127, 127]; NaN gives 0.
inline int8_t round_q8(float v) {
  if (!(std::fabs(v) <= 127.0f)) return v > 0.0f ? 127 : (v < 0.0f ? -127 : 0);
  return static_cast<int8_t>(std::round(v));
}

// The value of largest magnitude in x[0..n), the first one on ties.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline void min_max(const float* x, int n, float* min_out, float* max_out) {
  float min = x[0], max = x[0];
  for (int j = 1; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  *min_out = min;
  *max_out = max;
}

inline uint32_t load_qh(const uint8_t qh[4]) {
  uint32_t v;
  std::memcpy(&v, qh, 4);  // little-endian on every supported target
  return v;
}
inline void store_qh(uint8_t qh[4], uint32_t v) {
  std::memcpy(qh, &v, 4);
}

// ---- Q4_0 ------------------------------------------------------------------

void quantize_q4_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(out);
  for (int64_t b = 0; b < n / QK4_0; ++b, x += QK4_0) {
    const float d = signed_absmax(x, QK4_0) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const int lo = trunc_clamped(x[j] * id + 8.5f, 15);
      const int hi = trunc_clamped(x[j + QK4_0 / 2] * id + 8.5f, 15);
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_q4_0(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(in);
  for (int64_t b = 0; b < n / QK4_0; ++b, y += QK4_0) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0x0f) - 8) * d;
      y[j + QK4_0 / 2] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

// ---- Q4_1 ------------------------------------------------------------------

void quantize_q4_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(out);
  for (int64_t b = 0; b < n / QK4_1; ++b, x += QK4_1) {
    float min, max;
    min_max(x, QK4_1, &min, &max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const int lo = trunc_clamped((x[j] - min) * id + 0.5f, 15);
      const int hi = trunc_clamped((x[j + QK4_1 / 2] - min) * id + 0.5f, 15);
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void dequantize_q4_1(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(in);
  for (int64_t b = 0; b < n / QK4_1; ++b, y += QK4_1) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0x0f) * d + m;
      y[j + QK4_1 / 2] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

// ---- Q5_0 ------------------------------------------------------------------

void quantize_q5_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(out);
  for (int64_t b = 0; b < n / QK5_0; ++b, x += QK5_0) {
    const float d = signed_absmax(x, QK5_0) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int lo = trunc_clamped(x[j] * id + 16.5f, 31);
      const int hi = trunc_clamped(x[j + QK5_0 / 2] * id + 16.5f, 31);
      y[b].qs[j] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + QK5_0 / 2);
    }
    store_qh(y[b].qh, qh);
  }
}

void dequantize_q5_0(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(in);
  for (int64_t b = 0; b < n / QK5_0; ++b, y += QK5_0) {
    const float d = f16_to_f32(x[b].d);
    const uint32_t qh = load_qh(x[b].qh);
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int lo = (x[b].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (x[b].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = static_cast<float>(lo - 16) * d;
      y[j + QK5_0 / 2] = static_cast<float>(hi - 16) * d;
    }
  }
}

// ---- Q5_1 ------------------------------------------------------------------

void quantize_q5_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(out);
  for (int64_t b = 0; b < n / QK5_1; ++b, x += QK5_1) {
    float min, max;
    min_max(x, QK5_1, &min, &max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int lo = trunc_clamped((x[j] - min) * id + 0.5f, 31);
      const int hi = trunc_clamped((x[j + QK5_1 / 2] - min) * id + 0.5f, 31);
      y[b].qs[j] = static_cast<uint8_t>((lo & 0x0f) | ((hi & 0x0f) << 4));
      qh |= static_cast<uint32_t>(lo >> 4) << j;
      qh |= static_cast<uint32_t>(hi >> 4) << (j + QK5_1 / 2);
    }
    store_qh(y[b].qh, qh);
  }
}

void dequantize_q5_1(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(in);
  for (int64_t b = 0; b < n / QK5_1; ++b, y += QK5_1) {
    const float d = f16_to_f32(x[b].d);
    const float m = f16_to_f32(x[b].m);
    const uint32_t qh = load_qh(x[b].qh);
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int lo = (x[b].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (x[b].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      y[j] = static_cast<float>(lo) * d + m;
      y[j + QK5_1 / 2] = static_cast<float>(hi) * d + m;
    }
  }
}

// ---- Q8_0 / Q8_1 -----------------------------------------------------------

inline float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  return amax;
}

void quantize_q8_0(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < n / QK8_0; ++b, x += QK8_0) {
    const float d = absmax(x, QK8_0) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < QK8_0; ++j) y[b].qs[j] = round_q8(x[j] * id);
  }
}

void dequantize_q8_0(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(in);
  for (int64_t b = 0; b < n / QK8_0; ++b, y += QK8_0) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < QK8_0; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

void quantize_q8_1(const float* x, void* out, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(out);
  for (int64_t b = 0; b < n / QK8_1; ++b, x += QK8_1) {
    const float d = absmax(x, QK8_1) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      y[b].qs[j] = round_q8(x[j] * id);
      sum += y[b].qs[j];
    }
    y[b].s = f32_to_f16(static_cast<float>(sum) * d);
  }
}

void dequantize_q8_1(const void* in, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_1*>(in);
  for (int64_t b = 0; b < n / QK8_1; ++b, y += QK8_1) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < QK8_1; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

// ---- dot products ----------------------------------------------------------
// Each block's integer dot product is exact; blocks are summed in float.

void vec_dot_q4_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    int isum = 0;
    for (int j = 0; j < QK4_0 / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0f) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + QK4_0 / 2];
    }
    sum += static_cast<float>(isum) * (f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
  }
  *out = sum;
}

void vec_dot_q4_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ4_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK8_1; ++b) {
    int isum = 0;
    for (int j = 0; j < QK4_1 / 2; ++j) {
      isum += (w[b].qs[j] & 0x0f) * a[b].qs[j];
      isum += (w[b].qs[j] >> 4) * a[b].qs[j + QK4_1 / 2];
    }
    // sum_j (q_j d_w + m)(a_j d_a) = d_w d_a sum q_j a_j + m * (d_a sum a_j), the last is s.
    sum += static_cast<float>(isum) * (f16_to_f32(w[b].d) * f16_to_f32(a[b].d)) +
           f16_to_f32(w[b].m) * f16_to_f32(a[b].s);
  }
  *out = sum;
}

void vec_dot_q5_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    const uint32_t qh = load_qh(w[b].qh);
    int isum = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int lo = (w[b].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (w[b].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      isum += (lo - 16) * a[b].qs[j] + (hi - 16) * a[b].qs[j + QK5_0 / 2];
    }
    sum += static_cast<float>(isum) * (f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
  }
  *out = sum;
}

void vec_dot_q5_1_q8_1(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ5_1*>(w_row);
  const auto* a = static_cast<const BlockQ8_1*>(a_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK8_1; ++b) {
    const uint32_t qh = load_qh(w[b].qh);
    int isum = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int lo = (w[b].qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
      const int hi = (w[b].qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
      isum += lo * a[b].qs[j] + hi * a[b].qs[j + QK5_1 / 2];
    }
    sum += static_cast<float>(isum) * (f16_to_f32(w[b].d) * f16_to_f32(a[b].d)) +
           f16_to_f32(w[b].m) * f16_to_f32(a[b].s);
  }
  *out = sum;
}

void vec_dot_q8_0_q8_0(int64_t n, float* out, const void* w_row, const void* a_row) {
  const auto* w = static_cast<const BlockQ8_0*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / QK8_0; ++b) {
    int isum = 0;
    for (int j = 0; j < QK8_0; ++j) isum += w[b].qs[j] * a[b].qs[j];
    sum += static_cast<float>(isum) * (f16_to_f32(w[b].d) * f16_to_f32(a[b].d));
  }
  *out = sum;
}

void set(KernelTable& t, DType type, QuantizeRowFn q, DequantizeRowFn dq, VecDotFn dot) {
  const auto i = static_cast<uint32_t>(type);
  t.quantize[i] = q;
  t.dequantize[i] = dq;
  t.vec_dot[i] = dot;
}

}  // namespace

void register_legacy_scalar(KernelTable& t) {
  set(t, DType::Q4_0, quantize_q4_0, dequantize_q4_0, vec_dot_q4_0_q8_0);
  set(t, DType::Q4_1, quantize_q4_1, dequantize_q4_1, vec_dot_q4_1_q8_1);
  set(t, DType::Q5_0, quantize_q5_0, dequantize_q5_0, vec_dot_q5_0_q8_0);
  set(t, DType::Q5_1, quantize_q5_1, dequantize_q5_1, vec_dot_q5_1_q8_1);
  set(t, DType::Q8_0, quantize_q8_0, dequantize_q8_0, vec_dot_q8_0_q8_0);
  set(t, DType::Q8_1, quantize_q8_1, dequantize_q8_1, nullptr);  // activation-only
}

}  // namespace muse::kernels
