#include "model/encoder_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "muse/error.h"

namespace muse::enc {
namespace {

void check_vector(const TensorView& v, int64_t n, const char* what) {
  MUSE_CHECK(v.type == DType::F32, what, " must be an F32 vector, got type ", dtype_name(v.type));
  MUSE_CHECK(v.n_elements() == n, what, " has ", v.n_elements(), " values, expected ", n);
}

}  // namespace

void linear(const TensorView& w, const TensorView& bias, const float* x, int64_t n, float* y,
            ThreadPool& pool, EncoderScratch& scratch) {
  if (n == 0) return;
  kernels::matmul(w, x, n, y, pool, scratch.matmul);
  if (bias.data != nullptr) {
    check_vector(bias, w.rows(), "linear bias");
    add_bias_rows(y, static_cast<const float*>(bias.data), n, w.rows());
  }
}

void add_bias_rows(float* y, const float* bias, int64_t n, int64_t dim) {
  for (int64_t r = 0; r < n; ++r) kernels::add_inplace(y + r * dim, bias, dim);
}

void rms_norm_rows(const float* x, const TensorView& w, float* y, int64_t n, int64_t dim,
                   float eps) {
  const float* wd = nullptr;
  if (w.data != nullptr) {
    check_vector(w, dim, "rms_norm weight");
    wd = static_cast<const float*>(w.data);
  }
  for (int64_t r = 0; r < n; ++r) kernels::rms_norm(x + r * dim, wd, y + r * dim, dim, eps);
}

void layer_norm_rows(const float* x, const TensorView& w, const TensorView& b, float* y, int64_t n,
                     int64_t dim, float eps) {
  const float* wd = nullptr;
  const float* bd = nullptr;
  if (w.data != nullptr) {
    check_vector(w, dim, "layer_norm weight");
    wd = static_cast<const float*>(w.data);
  }
  if (b.data != nullptr) {
    check_vector(b, dim, "layer_norm bias");
    bd = static_cast<const float*>(b.data);
  }
  for (int64_t r = 0; r < n; ++r) kernels::layer_norm(x + r * dim, wd, bd, y + r * dim, dim, eps);
}

void gelu_erf_inplace(float* x, int64_t n) {
  constexpr double kInvSqrt2 = 0.70710678118654752440;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    x[i] = static_cast<float>(0.5 * v * (1.0 + std::erf(v * kInvSqrt2)));
  }
}

void gelu_tanh_inplace(float* x, int64_t n) {
  constexpr float kSqrt2OverPi = 0.79788456080286535588f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

void silu_inplace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void swiglu(const float* gate, const float* up, float* y, int64_t n) {
  kernels::silu_mul(gate, up, y, n);
}

void AttentionGroups::add_span(int64_t first, int64_t count) {
  MUSE_CHECK(first >= 0 && count >= 0, "attention group span out of range");
  for (int64_t i = 0; i < count; ++i) order.push_back(static_cast<int32_t>(first + i));
  begin.push_back(static_cast<int64_t>(order.size()));
}

void AttentionGroups::add_group(const std::vector<int32_t>& tokens) {
  order.insert(order.end(), tokens.begin(), tokens.end());
  begin.push_back(static_cast<int64_t>(order.size()));
}

void grouped_attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens,
                       int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale,
                       const AttentionGroups& groups, ThreadPool& pool) {
  MUSE_CHECK(n_head > 0 && n_head_kv > 0 && n_head % n_head_kv == 0 && head_dim > 0,
             "grouped_attention: bad head counts ", n_head, "/", n_head_kv);
  MUSE_CHECK(!groups.begin.empty() && groups.begin.front() == 0 &&
                 groups.begin.back() == static_cast<int64_t>(groups.order.size()),
             "grouped_attention: malformed groups");
  for (int32_t t : groups.order) {
    MUSE_CHECK(t >= 0 && t < n_tokens, "grouped_attention: token ", t, " out of range");
  }
  const int64_t q_stride = n_head * head_dim;
  const int64_t kv_stride = n_head_kv * head_dim;
  const int64_t group_ratio = n_head / n_head_kv;
  std::memset(out, 0, sizeof(float) * static_cast<size_t>(n_tokens * q_stride));

  int64_t max_len = 0;
  for (int64_t g = 0; g < groups.n_groups(); ++g) {
    max_len = std::max(max_len, groups.begin[g + 1] - groups.begin[g]);
  }
  // Per-thread gathered K/V of one (group, head) and the score row.
  struct Buffers {
    std::vector<float> keys, values, scores;
  };
  std::vector<Buffers> buffers(pool.size());
  const int64_t n_tasks = groups.n_groups() * n_head;
  pool.parallel_for(n_tasks, [&](int thread, int64_t task_begin, int64_t task_end) {
    Buffers& b = buffers[thread];
    b.keys.resize(max_len * head_dim);
    b.values.resize(max_len * head_dim);
    b.scores.resize(max_len);
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t g = task / n_head, h = task % n_head;
      const int64_t kvh = h / group_ratio;
      const int32_t* members = groups.order.data() + groups.begin[g];
      const int64_t len = groups.begin[g + 1] - groups.begin[g];
      for (int64_t j = 0; j < len; ++j) {
        std::memcpy(&b.keys[j * head_dim], k + members[j] * kv_stride + kvh * head_dim,
                    sizeof(float) * head_dim);
        std::memcpy(&b.values[j * head_dim], v + members[j] * kv_stride + kvh * head_dim,
                    sizeof(float) * head_dim);
      }
      for (int64_t i = 0; i < len; ++i) {
        const float* qi = q + members[i] * q_stride + h * head_dim;
        for (int64_t j = 0; j < len; ++j) {
          b.scores[j] = kernels::dot(qi, &b.keys[j * head_dim], head_dim) * scale;
        }
        kernels::softmax_inplace(b.scores.data(), len);
        float* oi = out + members[i] * q_stride + h * head_dim;
        for (int64_t j = 0; j < len; ++j)
          kernels::axpy(b.scores[j], &b.values[j * head_dim], oi, head_dim);
      }
    }
  });
}

void rope_neox_rows(float* x, int64_t n_tokens, int64_t n_head, int64_t head_dim, const float* cos,
                    const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_head; ++h) {
      kernels::rope_apply(x + (t * n_head + h) * head_dim, head_dim, cos + t * half, sin + t * half,
                          false);
    }
  }
}

void rope_2d_tables(const int32_t* pos_a, const int32_t* pos_b, int64_t n_tokens, int64_t head_dim,
                    float theta, std::vector<float>& cos, std::vector<float>& sin) {
  MUSE_CHECK(head_dim > 0 && head_dim % 4 == 0, "2-D rope needs a head size divisible by 4, got ",
             head_dim);
  const int64_t half = head_dim / 2, quarter = head_dim / 4;
  // As the reference computes it: inv_freq = 1 / theta^(2j / half) in f32.
  std::vector<float> inv_freq(quarter);
  for (int64_t j = 0; j < quarter; ++j) {
    inv_freq[j] = static_cast<float>(
        1.0 / std::pow(static_cast<double>(theta), static_cast<double>(2 * j) / half));
  }
  cos.resize(n_tokens * half);
  sin.resize(n_tokens * half);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t j = 0; j < quarter; ++j) {
      const float a = static_cast<float>(pos_a[t]) * inv_freq[j];
      const float b = static_cast<float>(pos_b[t]) * inv_freq[j];
      cos[t * half + j] = std::cos(a);
      sin[t * half + j] = std::sin(a);
      cos[t * half + quarter + j] = std::cos(b);
      sin[t * half + quarter + j] = std::sin(b);
    }
  }
}

std::vector<float> sinusoid_positions(int64_t n_pos, int64_t channels, double max_timescale) {
  MUSE_CHECK(channels >= 4 && channels % 2 == 0, "sinusoid positions need an even channel count",
             " of at least 4, got ", channels);
  const int64_t half = channels / 2;
  const double increment = std::log(max_timescale) / static_cast<double>(half - 1);
  std::vector<float> inv(half);
  for (int64_t i = 0; i < half; ++i) inv[i] = static_cast<float>(std::exp(-increment * i));
  std::vector<float> table(n_pos * channels);
  for (int64_t t = 0; t < n_pos; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const float a = static_cast<float>(t) * inv[i];  // f32 product, as the reference
      table[t * channels + i] = static_cast<float>(std::sin(static_cast<double>(a)));
      table[t * channels + half + i] = static_cast<float>(std::cos(static_cast<double>(a)));
    }
  }
  return table;
}

void run_encoder_block(const EncoderBlock& b, const EncoderBlockShape& shape, float* x, int64_t n,
                       const AttentionGroups& groups, ThreadPool& pool, EncoderScratch& scratch,
                       EncoderBlockBuffers& buf) {
  const int64_t d = shape.dim, head_dim = d / shape.n_head, nd = n * d;
  for (auto* v : {&buf.h, &buf.q, &buf.k, &buf.v, &buf.att}) v->resize(static_cast<size_t>(nd));
  buf.ff_a.resize(static_cast<size_t>(n * shape.n_ff));
  buf.ff_b.resize(static_cast<size_t>(n * shape.n_ff));
  auto norm = [&](const TensorView& w, const TensorView& bias) {
    if (shape.rms_norm) {
      rms_norm_rows(x, w, buf.h.data(), n, d, shape.eps);
    } else {
      layer_norm_rows(x, w, bias, buf.h.data(), n, d, shape.eps);
    }
  };
  auto residual = [&] {
    for (int64_t i = 0; i < nd; ++i) x[i] += buf.h[static_cast<size_t>(i)];
  };
  norm(b.norm1_w, b.norm1_b);
  linear(b.wq, b.bq, buf.h.data(), n, buf.q.data(), pool, scratch);
  linear(b.wk, b.bk, buf.h.data(), n, buf.k.data(), pool, scratch);
  linear(b.wv, b.bv, buf.h.data(), n, buf.v.data(), pool, scratch);
  if (shape.rope_cos) {
    rope_neox_rows(buf.q.data(), n, shape.n_head, head_dim, shape.rope_cos, shape.rope_sin);
    rope_neox_rows(buf.k.data(), n, shape.n_head, head_dim, shape.rope_cos, shape.rope_sin);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  grouped_attention(buf.q.data(), buf.k.data(), buf.v.data(), buf.att.data(), n, shape.n_head,
                    shape.n_head, head_dim, scale, groups, pool);
  linear(b.wo, b.bo, buf.att.data(), n, buf.h.data(), pool, scratch);
  residual();
  norm(b.norm2_w, b.norm2_b);
  linear(b.up, b.bup, buf.h.data(), n, buf.ff_b.data(), pool, scratch);
  if (b.gate.data) {
    linear(b.gate, b.bgate, buf.h.data(), n, buf.ff_a.data(), pool, scratch);
    swiglu(buf.ff_a.data(), buf.ff_b.data(), buf.ff_b.data(), n * shape.n_ff);
  } else {
    gelu_erf_inplace(buf.ff_b.data(), n * shape.n_ff);
  }
  linear(b.down, b.bdown, buf.ff_b.data(), n, buf.h.data(), pool, scratch);
  residual();
}

}  // namespace muse::enc
