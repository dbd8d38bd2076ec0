#include "kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/kernel_table.h"

namespace muse::kernels {

namespace {
const RowOps& simd() {
  static const RowOps& ops = best_kernels().ops;
  return ops;
}
}  // namespace

// Reductions accumulate in double: these rows are short (hidden size), so the
// cost is negligible and the result tracks the float64 reference closely.

namespace reference {

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  if (w) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv;
  }
}

void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void scale_inplace(float* y, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    y[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void gelu_tanh_mul(const float* gate, const float* up, float* y, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float t = std::tanh(kSqrt2OverPi * (g + 0.044715f * g * g * g));
    y[i] = 0.5f * g * (1.0f + t) * up[i];
  }
}

void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

float max_value(const float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

float exp_sum(float* x, int64_t n, float max) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  return static_cast<float>(sum);
}

}  // namespace reference

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  if (simd().rms_norm) return simd().rms_norm(x, w, y, n, eps);
  reference::rms_norm(x, w, y, n, eps);
}

void layer_norm(const float* x, const float* w, const float* b, float* y, int64_t n, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / static_cast<double>(n);
  double var = 0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const float inv = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(n) + eps));
  const float m = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) {
    float v = (x[i] - m) * inv;
    if (w) v *= w[i];
    if (b) v += b[i];
    y[i] = v;
  }
}

void add(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void add_inplace(float* y, const float* x, int64_t n) {
  if (simd().add_inplace) return simd().add_inplace(y, x, n);
  reference::add_inplace(y, x, n);
}

void scale_inplace(float* y, float s, int64_t n) {
  if (simd().scale_inplace) return simd().scale_inplace(y, s, n);
  reference::scale_inplace(y, s, n);
}

void silu_mul(const float* gate, const float* up, float* y, int64_t n) {
  if (simd().silu_mul) return simd().silu_mul(gate, up, y, n);
  reference::silu_mul(gate, up, y, n);
}

void gelu_tanh_mul(const float* gate, const float* up, float* y, int64_t n) {
  if (simd().gelu_tanh_mul) return simd().gelu_tanh_mul(gate, up, y, n);
  reference::gelu_tanh_mul(gate, up, y, n);
}

void gelu_erf_mul(const float* gate, const float* up, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    y[i] = 0.5f * g * (1.0f + std::erf(g * 0.7071067811865476f)) * up[i];
  }
}

void sigmoid_mul_inplace(float* y, const float* gate, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= 1.0f / (1.0f + std::exp(-gate[i]));
}

void softcap_inplace(float* y, float cap, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = cap * std::tanh(y[i] / cap);
}

float dot(const float* a, const float* b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  if (simd().axpy) return simd().axpy(a, x, y, n);
  reference::axpy(a, x, y, n);
}

float max_value(const float* x, int64_t n) {
  if (simd().max) return simd().max(x, n);
  return reference::max_value(x, n);
}

float exp_sum(float* x, int64_t n, float max) {
  if (simd().exp_sum) return simd().exp_sum(x, n, max);
  return reference::exp_sum(x, n, max);
}

void softmax_inplace(float* x, int64_t n) {
  const float mx = max_value(x, n);
  if (!std::isfinite(mx)) {  // all masked: define as uniform zeros
    for (int64_t i = 0; i < n; ++i) x[i] = 0;
    return;
  }
  const float inv = 1.0f / exp_sum(x, n, mx);
  scale_inplace(x, inv, n);
}

void rope_inplace(float* x, int64_t dim, float pos, const float* inv_freq, bool interleaved) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq[i];
    const float c = static_cast<float>(std::cos(angle));
    const float s = static_cast<float>(std::sin(angle));
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

void rope_cos_sin(float pos, const float* inv_freq, int64_t half, float* cos, float* sin) {
  for (int64_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq[i];
    cos[i] = static_cast<float>(std::cos(angle));
    sin[i] = static_cast<float>(std::sin(angle));
  }
}

void rope_apply(float* x, int64_t dim, const float* cos, const float* sin, bool interleaved) {
  const int64_t half = dim / 2;
  if (interleaved) {
    for (int64_t i = 0; i < half; ++i) {
      const float x0 = x[2 * i], x1 = x[2 * i + 1];
      x[2 * i] = x0 * cos[i] - x1 * sin[i];
      x[2 * i + 1] = x0 * sin[i] + x1 * cos[i];
    }
  } else {
    for (int64_t i = 0; i < half; ++i) {
      const float x0 = x[i], x1 = x[i + half];
      x[i] = x0 * cos[i] - x1 * sin[i];
      x[i + half] = x0 * sin[i] + x1 * cos[i];
    }
  }
}

}  // namespace muse::kernels
