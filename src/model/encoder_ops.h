// Row-wise building blocks of media encoders (vision transformers, audio
// transformers, projectors). Activations are row-major f32 matrices: `n` rows of
// `dim` values each. Weights are TensorViews with GGUF semantics (a matrix with
// `rows` outputs and `cols` inputs has ne = {cols, rows}) of any type matmul
// accepts (F32/F16/BF16/Q8_0/...); biases and norm weights are F32 vectors.
//
// Everything here is encoder-agnostic: the Qwen2.5 ViT, the Qwen2.5-Omni audio
// tower and other encoders are written in terms of these functions, which use the
// threaded kernels (kernels/matmul.h, kernels/ops.h) for the heavy work.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"

namespace muse::enc {

// Reusable scratch of one encoder call (matmul activation conversion buffer).
struct EncoderScratch {
  std::vector<uint8_t> matmul;
};

// y[n][w.rows()] = x[n][w.cols()] * W^T (+ bias when bias.data != nullptr).
// bias must be F32 with w.rows() elements. Throws muse::Error on mismatches.
void linear(const TensorView& w, const TensorView& bias, const float* x, int64_t n, float* y,
            ThreadPool& pool, EncoderScratch& scratch);

// Adds an F32 vector of `dim` values to each of n rows.
void add_bias_rows(float* y, const float* bias, int64_t n, int64_t dim);

// Per-row RMSNorm / LayerNorm (y may equal x). w (and b) are F32 vectors of dim
// values; a view with data == nullptr means "no weight" / "no bias".
void rms_norm_rows(const float* x, const TensorView& w, float* y, int64_t n, int64_t dim,
                   float eps);
void layer_norm_rows(const float* x, const TensorView& w, const TensorView& b, float* y, int64_t n,
                     int64_t dim, float eps);

// Activations in place over n values.
void gelu_erf_inplace(float* x, int64_t n);   // x * 0.5 * (1 + erf(x / sqrt 2))
void gelu_tanh_inplace(float* x, int64_t n);  // tanh approximation
void silu_inplace(float* x, int64_t n);       // x * sigmoid(x)
// y = silu(gate) * up over n values (y may alias gate or up).
void swiglu(const float* gate, const float* up, float* y, int64_t n);

// Token groups for bidirectional attention: group g consists of the tokens
// order[begin[g]] .. order[begin[g+1]-1] (begin has n_groups+1 entries, begin[0] =
// 0, begin.back() = order.size()). Every token attends to all tokens of its own
// group and nothing else (full attention over an image = one group; window
// attention = one group per window; block-diagonal audio = one group per chunk).
// Tokens not listed in any group produce zero output.
struct AttentionGroups {
  std::vector<int32_t> order;
  std::vector<int64_t> begin{0};

  int64_t n_groups() const { return static_cast<int64_t>(begin.size()) - 1; }
  // Appends a group made of the contiguous tokens [first, first + count).
  void add_span(int64_t first, int64_t count);
  // Appends a group made of the given tokens.
  void add_group(const std::vector<int32_t>& tokens);
};

// Multi-head attention without masking inside a group. q, k, v and out are
// [n_tokens][n_head * head_dim] (head h occupies columns [h*head_dim,
// (h+1)*head_dim)); k and v may have n_head_kv heads (GQA, n_head % n_head_kv ==
// 0). scores = q.k * scale, softmax over the group, out = sum p * v. Work is split
// over (group, head) pairs; memory is O(largest group), never n_tokens^2.
void grouped_attention(const float* q, const float* k, const float* v, float* out, int64_t n_tokens,
                       int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale,
                       const AttentionGroups& groups, ThreadPool& pool);

// NeoX ("rotate_half") rotary embedding with precomputed per-token angles.
// cos/sin are [n_tokens][head_dim/2]; pair (i, i + head_dim/2) of every head of
// every row of x ([n_tokens][n_head*head_dim]) is rotated by angle i.
void rope_neox_rows(float* x, int64_t n_tokens, int64_t n_head, int64_t head_dim, const float* cos,
                    const float* sin);

// 2-D rotary tables (Qwen2-VL / Qwen2.5-VL ViT, "axial"): for token t at (pos_a,
// pos_b), with quarter = head_dim / 4 and inv_freq[j] = theta^(-j / quarter)
// (= theta^(-2j / (head_dim/2))), angle[j] = pos_a[t] * inv_freq[j] and
// angle[quarter + j] = pos_b[t] * inv_freq[j]. Returns cos and sin, each
// [n_tokens][head_dim/2], for rope_neox_rows. head_dim must be a multiple of 4.
void rope_2d_tables(const int32_t* pos_a, const int32_t* pos_b, int64_t n_tokens, int64_t head_dim,
                    float theta, std::vector<float>& cos, std::vector<float>& sin);

// One pre-norm transformer block of an encoder (ViT / Whisper style):
//   x += O(attention(rope(Q(n1)), rope(K(n1)), V(n1)))   n1 = norm1(x)
//   x += Down(mlp(n2))                                    n2 = norm2(x)
// Any bias may be absent (data == nullptr). The norm is RMSNorm when `rms_norm`
// (weights only) else LayerNorm; the MLP is SwiGLU (silu(Gate) * Up) when `gate`
// is present, else GELU(erf)(Up).
struct EncoderBlock {
  TensorView norm1_w, norm1_b, wq, bq, wk, bk, wv, bv, wo, bo;
  TensorView norm2_w, norm2_b, gate, bgate, up, bup, down, bdown;
};

struct EncoderBlockShape {
  bool rms_norm = false;
  float eps = 1e-6f;
  int64_t dim = 0, n_head = 0, n_ff = 0;
  // Rotary tables ([n][head_dim/2], rope_neox_rows) applied to q and k; null: none.
  const float* rope_cos = nullptr;
  const float* rope_sin = nullptr;
};

// Activation buffers of run_encoder_block, grown on first use and reused by every
// block of one encoder call.
struct EncoderBlockBuffers {
  std::vector<float> h, q, k, v, att, ff_a, ff_b;
};

// Runs `block` over the n rows of x in place; attention within `groups`, scale
// 1/sqrt(head_dim).
void run_encoder_block(const EncoderBlock& block, const EncoderBlockShape& shape, float* x,
                       int64_t n, const AttentionGroups& groups, ThreadPool& pool,
                       EncoderScratch& scratch, EncoderBlockBuffers& buffers);

// Whisper-style sinusoidal position table: [n_pos][channels], row t =
// [sin(t * f_0..f_{c/2-1}), cos(t * f_0..)], f_i = exp(-i * ln(max_timescale) /
// (channels/2 - 1)). channels must be even and >= 4.
std::vector<float> sinusoid_positions(int64_t n_pos, int64_t channels,
                                      double max_timescale = 10000.0);

}  // namespace muse::enc
