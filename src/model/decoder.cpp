#include "model/decoder.h"

#include <algorithm>
#include <cmath>

#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "muse/error.h"

namespace muse {

namespace k = kernels;

Decoder::Decoder(std::shared_ptr<const Model> model, DecoderOptions options)
    : model_(std::move(model)),
      opt_(options),
      pool_(options.n_threads > 0 ? options.n_threads : default_thread_count()) {
  const auto& c = config();
  MUSE_CHECK(opt_.n_ctx > 0 && opt_.n_seq > 0 && opt_.n_batch > 0, "invalid decoder options");
  for (const auto& l : c.layers) rope_inv_freq_.push_back(rope_inv_freq(c, l));
  const size_t cache = static_cast<size_t>(opt_.n_seq * opt_.n_ctx * c.kv_dim());
  k_cache_.assign(static_cast<size_t>(c.n_layer), std::vector<float>(cache));
  v_cache_.assign(static_cast<size_t>(c.n_layer), std::vector<float>(cache));
  seq_len_.assign(static_cast<size_t>(opt_.n_seq), 0);
  const size_t nb = static_cast<size_t>(opt_.n_batch);
  x_.resize(nb * c.n_embd);
  xn_.resize(nb * c.n_embd);
  proj_.resize(nb * c.n_embd);
  q_.resize(nb * c.q_dim());
  gate_.resize(c.attn_output_gate ? nb * c.q_dim() : 0);
  attn_.resize(nb * c.q_dim());
  k_.resize(nb * c.kv_dim());
  v_.resize(nb * c.kv_dim());
  ffn_a_.resize(nb * c.n_ff);
  ffn_b_.resize(nb * c.n_ff);
  scores_.resize(static_cast<size_t>(pool_.size()) * static_cast<size_t>(opt_.n_ctx));
}

void Decoder::clear(int32_t seq) {
  MUSE_CHECK(seq >= 0 && seq < opt_.n_seq, "sequence ", seq, " does not exist");
  seq_len_[static_cast<size_t>(seq)] = 0;
}

int64_t Decoder::seq_length(int32_t seq) const {
  MUSE_CHECK(seq >= 0 && seq < opt_.n_seq, "sequence ", seq, " does not exist");
  return seq_len_[static_cast<size_t>(seq)];
}

void Decoder::matmul(const TensorView& w, const float* x, int64_t n, float* y) {
  k::matmul(w, x, n, y, pool_, mm_scratch_);
}

std::span<const float> Decoder::forward(std::span<const BatchItem> items) {
  const auto& c = config();
  // Validate everything before touching the caches.
  std::vector<int64_t> len = seq_len_;
  for (const auto& it : items) {
    MUSE_CHECK(it.token >= 0 && it.token < c.n_vocab, "token id ", it.token,
               " is outside the vocabulary (", c.n_vocab, " tokens)");
    MUSE_CHECK(it.seq >= 0 && it.seq < opt_.n_seq, "sequence ", it.seq, " does not exist");
    auto& l = len[static_cast<size_t>(it.seq)];
    MUSE_CHECK(it.pos == l, "position ", it.pos, " does not continue sequence ", it.seq,
               " (", l, " positions cached)");
    MUSE_CHECK(l < opt_.n_ctx, "sequence ", it.seq, " is full (context size ", opt_.n_ctx, ")");
    ++l;
  }
  logits_.clear();
  for (size_t b = 0; b < items.size(); b += static_cast<size_t>(opt_.n_batch)) {
    const size_t n = std::min(items.size() - b, static_cast<size_t>(opt_.n_batch));
    forward_chunk(items.subspan(b, n), logits_);
  }
  return logits_;
}

void Decoder::forward_chunk(std::span<const BatchItem> items, std::vector<float>& logits_out) {
  const auto& c = config();
  const auto& W = model_->weights();
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t E = c.n_embd, QD = c.q_dim(), KD = c.kv_dim(), HD = c.head_dim;

  for (int64_t i = 0; i < n; ++i) {
    float* row = &x_[static_cast<size_t>(i * E)];
    k::dequantize_row(W.tok_embd, items[static_cast<size_t>(i)].token, row);
    if (c.embed_scale != 1.0f) k::scale_inplace(row, c.embed_scale, E);
    if (c.embed_norm) k::rms_norm(row, nullptr, row, E, c.norm_eps);
  }

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const auto& L = W.layers[static_cast<size_t>(l)];
    const auto& LC = c.layers[static_cast<size_t>(l)];
    const float* an = static_cast<const float*>(L.attn_norm.data);
    for (int64_t i = 0; i < n; ++i)
      k::rms_norm(&x_[i * E], an, &xn_[i * E], E, c.norm_eps);
    matmul(L.wq, xn_.data(), n, q_.data());
    matmul(L.wk, xn_.data(), n, k_.data());
    matmul(L.wv, xn_.data(), n, v_.data());
    if (c.attn_output_gate) matmul(L.attn_gate, xn_.data(), n, gate_.data());
    for (int64_t i = 0; i < n; ++i) {
      float* q = &q_[i * QD];
      float* kk = &k_[i * KD];
      if (c.qkv_bias) {
        k::add_inplace(q, static_cast<const float*>(L.bq.data), QD);
        k::add_inplace(kk, static_cast<const float*>(L.bk.data), KD);
        k::add_inplace(&v_[i * KD], static_cast<const float*>(L.bv.data), KD);
      }
      const float* qn = c.qk_norm ? static_cast<const float*>(L.q_norm.data) : nullptr;
      const float* kn = c.qk_norm ? static_cast<const float*>(L.k_norm.data) : nullptr;
      const float pos = static_cast<float>(items[static_cast<size_t>(i)].pos);
      const bool interleaved = c.rope_layout == RopeLayout::Interleaved;
      for (int64_t h = 0; h < c.n_head; ++h) {
        float* qh = q + h * HD;
        if (c.qk_norm) k::rms_norm(qh, qn, qh, HD, c.norm_eps);
        if (c.qk_norm_unweighted) {
          k::rms_norm(qh, nullptr, qh, HD, c.norm_eps);
          k::scale_inplace(qh, c.qk_norm_scale, HD);
        }
        if (LC.use_rope) k::rope_inplace(qh, c.rope_dim, pos, rope_inv_freq_[l].data(), interleaved);
      }
      for (int64_t h = 0; h < c.n_head_kv; ++h) {
        float* kh = kk + h * HD;
        if (c.qk_norm) k::rms_norm(kh, kn, kh, HD, c.norm_eps);
        if (c.qk_norm_unweighted) k::rms_norm(kh, nullptr, kh, HD, c.norm_eps);
        if (LC.use_rope) k::rope_inplace(kh, c.rope_dim, pos, rope_inv_freq_[l].data(), interleaved);
      }
      // Append to the cache.
      const auto& it = items[static_cast<size_t>(i)];
      const size_t off = static_cast<size_t>((it.seq * opt_.n_ctx + it.pos) * KD);
      std::copy(kk, kk + KD, &k_cache_[static_cast<size_t>(l)][off]);
      std::copy(&v_[i * KD], &v_[i * KD] + KD, &v_cache_[static_cast<size_t>(l)][off]);
    }
    attention(l, items);
    if (c.attn_output_gate) k::sigmoid_mul_inplace(attn_.data(), gate_.data(), n * QD);
    matmul(L.wo, attn_.data(), n, proj_.data());
    for (int64_t i = 0; i < n; ++i) {
      float* p = &proj_[i * E];
      if (c.post_attn_norm)
        k::rms_norm(p, static_cast<const float*>(L.post_attn_norm.data), p, E, c.post_norm_eps);
      k::add_inplace(&x_[i * E], p, E);
      k::rms_norm(&x_[i * E], static_cast<const float*>(L.ffn_norm.data), &xn_[i * E], E,
                  c.norm_eps);
    }
    matmul(L.ffn_gate, xn_.data(), n, ffn_a_.data());
    matmul(L.ffn_up, xn_.data(), n, ffn_b_.data());
    switch (c.ffn_act) {
      case FfnActivation::Silu: k::silu_mul(ffn_a_.data(), ffn_b_.data(), ffn_a_.data(), n * c.n_ff); break;
      case FfnActivation::GeluTanh: k::gelu_tanh_mul(ffn_a_.data(), ffn_b_.data(), ffn_a_.data(), n * c.n_ff); break;
      case FfnActivation::GeluErf: k::gelu_erf_mul(ffn_a_.data(), ffn_b_.data(), ffn_a_.data(), n * c.n_ff); break;
    }
    matmul(L.ffn_down, ffn_a_.data(), n, proj_.data());
    for (int64_t i = 0; i < n; ++i) {
      float* p = &proj_[i * E];
      if (c.post_ffn_norm)
        k::rms_norm(p, static_cast<const float*>(L.post_ffn_norm.data), p, E, c.post_norm_eps);
      k::add_inplace(&x_[i * E], p, E);
    }
  }
  for (const auto& it : items) ++seq_len_[static_cast<size_t>(it.seq)];

  // Final norm and output head for the rows that want logits.
  int64_t n_out = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!items[static_cast<size_t>(i)].logits) continue;
    k::rms_norm(&x_[i * E], static_cast<const float*>(W.output_norm.data), &xn_[n_out * E], E,
                c.norm_eps);
    ++n_out;
  }
  if (n_out == 0) return;
  const size_t base = logits_out.size();
  logits_out.resize(base + static_cast<size_t>(n_out * c.n_vocab));
  float* lg = logits_out.data() + base;
  matmul(W.output, xn_.data(), n_out, lg);
  if (c.logit_scale != 1.0f) k::scale_inplace(lg, c.logit_scale, n_out * c.n_vocab);
  if (c.final_logit_softcap > 0) k::softcap_inplace(lg, c.final_logit_softcap, n_out * c.n_vocab);
}

void Decoder::attention(int64_t layer, std::span<const BatchItem> items) {
  const auto& c = config();
  const auto& LC = c.layers[static_cast<size_t>(layer)];
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t QD = c.q_dim(), KD = c.kv_dim(), HD = c.head_dim;
  const int64_t group = c.n_head / c.n_head_kv;
  const float scale = c.softmax_scale();
  const float* kc = k_cache_[static_cast<size_t>(layer)].data();
  const float* vc = v_cache_[static_cast<size_t>(layer)].data();
  // q.k uses the run-time selected SIMD f32 dot product.
  const kernels::VecDotFn dot_f32 = kernels::best_kernels().vec_dot_fn(DType::F32);
  pool_.parallel_for(n * c.n_head, [&](int t, int64_t begin, int64_t end) {
    float* scores = &scores_[static_cast<size_t>(t) * static_cast<size_t>(opt_.n_ctx)];
    for (int64_t w = begin; w < end; ++w) {
      const int64_t i = w / c.n_head, h = w % c.n_head, kvh = h / group;
      const auto& it = items[static_cast<size_t>(i)];
      const int64_t lo = LC.sliding ? std::max<int64_t>(0, it.pos - c.sliding_window + 1) : 0;
      const int64_t hi = it.pos;  // inclusive
      const float* q = &q_[i * QD + h * HD];
      const float* kbase = kc + static_cast<size_t>(it.seq * opt_.n_ctx) * KD + kvh * HD;
      const float* vbase = vc + static_cast<size_t>(it.seq * opt_.n_ctx) * KD + kvh * HD;
      const int64_t m = hi - lo + 1;
      for (int64_t p = 0; p < m; ++p) {
        dot_f32(HD, &scores[p], kbase + (lo + p) * KD, q);
        scores[p] *= scale;
      }
      k::softmax_inplace(scores, m);
      float* out = &attn_[i * QD + h * HD];
      std::fill(out, out + HD, 0.0f);
      for (int64_t p = 0; p < m; ++p) k::axpy(scores[p], vbase + (lo + p) * KD, out, HD);
    }
  });
}

}  // namespace muse
