#include "model/decoder.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kernels/attention.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/attention_parts.h"
#include "muse/error.h"

namespace muse {

std::optional<DType> kv_type_from_name(std::string_view name) {
  if (name == "f32") return DType::F32;
  if (name == "f16") return DType::F16;
  if (name == "q8_0") return DType::Q8_0;
  return std::nullopt;
}

namespace k = kernels;

namespace {

// After a matrix is repacked its original pages are no longer read by the
// matmuls; drop them from this process's resident set. Only for tensors inside
// the model's read-only file mapping (MADV_DONTNEED there just forgets the
// pages: a later read, e.g. an embedding lookup, faults them back from the file).
void release_source_pages(const Model& model, const TensorView& w, int64_t row0, int64_t row1) {
  const GgufFile* gguf = model.gguf();
  if (gguf == nullptr || gguf->mapping() == nullptr || w.data == nullptr) return;
  const uint8_t* begin = w.row(row0);
  const uint8_t* end = w.row(row1);
  const uint8_t* map_begin = gguf->mapping()->data();
  if (map_begin == nullptr || begin < map_begin || end > map_begin + gguf->mapping()->size())
    return;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
  const uintptr_t last = reinterpret_cast<uintptr_t>(end) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

// Runs fn(begin, end) over [0, n) on the pool when there is enough work, else inline.
template <typename Fn>
void for_tokens(ThreadPool& pool, int64_t n, int64_t min_parallel, Fn&& fn) {
  if (n < min_parallel || pool.size() == 1) {
    fn(int64_t{0}, n);
    return;
  }
  pool.parallel_for(n, [&](int, int64_t b, int64_t e) { fn(b, e); });
}

}  // namespace

Decoder::Decoder(std::shared_ptr<const Model> model, DecoderOptions options)
    : model_(std::move(model)),
      opt_(options),
      pool_(options.n_threads > 0 ? options.n_threads : default_thread_count()) {
  const auto& c = config();
  MUSE_CHECK(opt_.n_ctx > 0 && opt_.n_seq > 0 && opt_.n_batch > 0, "invalid decoder options");
  // Layers with the same rotary frequencies share one cos/sin table per chunk.
  for (const auto& l : c.layers) {
    std::vector<float> inv = rope_inv_freq(c, l);
    auto same = std::find(rope_inv_freq_.begin(), rope_inv_freq_.end(), inv);
    rope_table_of_layer_.push_back(same - rope_inv_freq_.begin());
    if (same == rope_inv_freq_.end()) rope_inv_freq_.push_back(std::move(inv));
  }
  // Repack every matrix once for the GEMM kernels (types without a packed layout
  // keep using the mapped tensor).
  const k::KernelTable& kt = k::best_kernels();
  const auto& W = model_->weights();
  // All packed matrices live in one huge-page arena, in forward-pass order.
  size_t arena = 0;
  auto count = [&](const TensorView& w) {
    if (k::Linear::packs(w, kt)) arena += k::packed_bytes(w);
  };
  for (const auto& L : W.layers)
    for (const TensorView* w :
         {&L.wq, &L.wk, &L.wv, &L.attn_gate, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down})
      count(*w);
  count(W.output);
  weights_arena_ = k::LargeBuffer(arena, false);
  size_t offset = 0;
  auto prepare = [&](const TensorView& w) {
    if (w.data == nullptr) return k::Linear();
    uint8_t* storage = nullptr;
    if (k::Linear::packs(w, kt)) {
      storage = weights_arena_.data() + offset;
      offset += k::packed_bytes(w);
    }
    k::Linear lin(
        w, kt, &pool_, [&](int64_t r0, int64_t r1) { release_source_pages(*model_, w, r0, r1); },
        storage);
    if (lin.packed()) {
      memory_.packed_weights += lin.packed_bytes();
    } else {
      memory_.mapped_weights += static_cast<size_t>(w.rows()) * w.row_stride();
    }
    return lin;
  };
  for (const auto& L : W.layers) {
    LayerLinears lin;
    lin.wq = prepare(L.wq);
    lin.wk = prepare(L.wk);
    lin.wv = prepare(L.wv);
    lin.attn_gate = prepare(L.attn_gate);
    lin.wo = prepare(L.wo);
    lin.ffn_gate = prepare(L.ffn_gate);
    lin.ffn_up = prepare(L.ffn_up);
    lin.ffn_down = prepare(L.ffn_down);
    linears_.push_back(std::move(lin));
  }
  output_ = prepare(W.output);
  embed_from_output_ = W.tok_embd.data == W.output.data && output_.packed() &&
                       W.tok_embd.type == W.output.type && W.tok_embd.ne == W.output.ne;
  embed_dequantize_ = kt.dequantize_fn(W.tok_embd.type);
  MUSE_CHECK(embed_dequantize_ != nullptr, "token embeddings of type ", dtype_name(W.tok_embd.type),
             " cannot be read");

  // KV cache: per layer, sequence and kv head, keys in 16-position transposed
  // (or Q8_0) blocks, float values row by row and Q8_0 values in 16-position
  // blocks (kernels/attention.h).
  k::KvElems elems;
  MUSE_CHECK(k::kv_elems_of(opt_.kv_type, elems), "KV cache type must be ", kKvTypeNames, ", not ",
             dtype_name(opt_.kv_type));
  k_elem_ = elems.k;
  v_elem_ = elems.v;
  MUSE_CHECK(k_elem_ != k::KvElem::Q8_0 || c.head_dim % 32 == 0,
             "a q8_0 KV cache needs a head size that is a multiple of 32, not ", c.head_dim);
  n_ctx_alloc_ = (opt_.n_ctx + 15) / 16 * 16;
  k_head_bytes_ = static_cast<size_t>(k::attention_key_bytes(k_elem_, c.head_dim, n_ctx_alloc_));
  v_head_bytes_ = static_cast<size_t>(k::attention_value_bytes(v_elem_, c.head_dim, n_ctx_alloc_));
  const size_t heads = static_cast<size_t>(opt_.n_seq * c.n_head_kv);
  k_cache_ = k::LargeBuffer(k_head_bytes_ * heads * static_cast<size_t>(c.n_layer));
  v_cache_ = k::LargeBuffer(v_head_bytes_ * heads * static_cast<size_t>(c.n_layer));
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
  const size_t half = static_cast<size_t>(c.rope_dim / 2);
  rope_cos_.resize(rope_inv_freq_.size() * nb * half);
  rope_sin_.resize(rope_cos_.size());
  const auto part_items = static_cast<size_t>(attention_part_items_max(pool_.size()));
  const auto group = static_cast<size_t>(c.n_head / c.n_head_kv);
  attn_rows_.reserve(std::max(nb * static_cast<size_t>(c.n_head), part_items * group));
  attn_part_out_.resize(part_items * group * static_cast<size_t>(c.head_dim));
  attn_part_lse_.resize(part_items * group);
  logits_.reserve(static_cast<size_t>(c.n_vocab));
  const int64_t widest = std::max({c.n_embd, c.n_ff, c.q_dim()});

  // Everything else the forward pass uses is allocated here too.
  memory_.kv_cache = k_cache_.size() + v_cache_.size();
  const size_t floats = x_.size() + xn_.size() + proj_.size() + q_.size() + gate_.size() +
                        attn_.size() + k_.size() + v_.size() + ffn_a_.size() + rope_cos_.size() +
                        rope_sin_.size() + logits_.capacity() + attn_part_out_.size() +
                        attn_part_lse_.size();
  memory_.scratch = floats * sizeof(float) +
                    gemm_scratch_.reserve(opt_.n_batch, widest, pool_.size()) +
                    attn_rows_.capacity() * sizeof(k::AttnRow);
  // Non-matrix tensors (norms, biases) and the rows of the embedding table read
  // per token stay in the mapping.
  for (const auto& L : W.layers)
    for (const TensorView* t : {&L.attn_norm, &L.bq, &L.bk, &L.bv, &L.q_norm, &L.k_norm,
                                &L.post_attn_norm, &L.ffn_norm, &L.post_ffn_norm})
      memory_.mapped_weights += t->data != nullptr ? t->nbytes : 0;
}

void Decoder::clear(int32_t seq) {
  MUSE_CHECK(seq >= 0 && seq < opt_.n_seq, "sequence ", seq, " does not exist");
  seq_len_[static_cast<size_t>(seq)] = 0;
}

void Decoder::truncate(int32_t seq, int64_t length) {
  const int64_t have = seq_length(seq);
  MUSE_CHECK(length >= 0 && length <= have, "cannot truncate sequence ", seq, " to ", length,
             " positions (", have, " cached)");
  seq_len_[static_cast<size_t>(seq)] = length;
}

void Decoder::copy_prefix(int32_t src, int32_t dst, int64_t length) {
  const int64_t have = seq_length(src);
  seq_length(dst);  // validates dst
  MUSE_CHECK(src != dst, "cannot copy sequence ", src, " onto itself");
  MUSE_CHECK(length >= 0 && length <= have, "cannot copy ", length, " positions of sequence ", src,
             " (", have, " cached)");
  const auto& c = config();
  // Keys are stored in 16-position blocks, so whole blocks are copied; positions past
  // `length` in the last block are overwritten when dst appends.
  const int64_t positions = (length + 15) / 16 * 16;
  const auto k_bytes = static_cast<size_t>(k::attention_key_bytes(k_elem_, c.head_dim, positions));
  const auto v_bytes =
      static_cast<size_t>(k::attention_value_bytes(v_elem_, c.head_dim, positions));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    for (int64_t h = 0; h < c.n_head_kv; ++h) {
      std::memcpy(k_base(l, dst, h), k_base(l, src, h), k_bytes);
      std::memcpy(v_base(l, dst, h), v_base(l, src, h), v_bytes);
    }
  }
  seq_len_[static_cast<size_t>(dst)] = length;
}

int64_t Decoder::seq_length(int32_t seq) const {
  MUSE_CHECK(seq >= 0 && seq < opt_.n_seq, "sequence ", seq, " does not exist");
  return seq_len_[static_cast<size_t>(seq)];
}

void Decoder::linear(const k::Linear& w, const float* x, int64_t n, float* y) {
  const k::LinearOut out{&w, y, 0};
  k::linear(std::span<const k::LinearOut>(&out, 1), x, w.cols(), n, pool_, gemm_scratch_);
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
    MUSE_CHECK(it.pos == l, "position ", it.pos, " does not continue sequence ", it.seq, " (", l,
               " positions cached)");
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
  const int64_t half = c.rope_dim / 2;
  const bool interleaved = c.rope_layout == RopeLayout::Interleaved;
  // Per-token row work is cheap; below this many tokens the pool is not woken.
  constexpr int64_t kParallelTokens = 8;

  for_tokens(pool_, n, kParallelTokens, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* row = &x_[static_cast<size_t>(i * E)];
      const BatchItem& it = items[static_cast<size_t>(i)];
      if (it.embedding) {
        std::copy(it.embedding, it.embedding + E, row);
      } else if (embed_from_output_) {
        // Tied embeddings: the row comes from the packed output matrix, so the
        // mapped table is never touched again after packing.
        thread_local std::vector<uint8_t> bytes;
        bytes.resize(W.tok_embd.row_stride());
        output_.packed_matrix().unpack_row(it.token, bytes.data());
        embed_dequantize_(bytes.data(), row, E);
      } else {
        k::dequantize_row(W.tok_embd, it.token, row);
      }
      if (!it.embedding) {
        if (c.embed_scale != 1.0f) k::scale_inplace(row, c.embed_scale, E);
        if (c.embed_norm) k::rms_norm(row, nullptr, row, E, c.norm_eps);
      }
      // Rotary angles of this token, once per distinct frequency table.
      const int32_t p0 = it.rope_explicit ? it.rope_pos[0] : it.pos;
      for (size_t t = 0; t < rope_inv_freq_.size(); ++t) {
        const size_t off = (t * static_cast<size_t>(opt_.n_batch) + static_cast<size_t>(i)) *
                           static_cast<size_t>(half);
        if (c.mrope_sections.empty()) {
          k::rope_cos_sin(static_cast<float>(p0), rope_inv_freq_[t].data(), half, &rope_cos_[off],
                          &rope_sin_[off]);
          continue;
        }
        // M-RoPE: each section of frequency pairs rotates by its own position row
        // (all rows equal `pos` for a text token without explicit positions).
        int64_t begin = 0;
        for (size_t sec = 0; sec < 3; ++sec) {
          const int64_t len = c.mrope_sections[sec];
          const int32_t p = it.rope_explicit ? it.rope_pos[sec] : it.pos;
          k::rope_cos_sin(static_cast<float>(p), rope_inv_freq_[t].data() + begin, len,
                          &rope_cos_[off + static_cast<size_t>(begin)],
                          &rope_sin_[off + static_cast<size_t>(begin)]);
          begin += len;
        }
      }
    }
  });

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const auto& L = W.layers[static_cast<size_t>(l)];
    const auto& LC = c.layers[static_cast<size_t>(l)];
    const LayerLinears& LL = linears_[static_cast<size_t>(l)];
    const float* an = static_cast<const float*>(L.attn_norm.data);
    for_tokens(pool_, n, kParallelTokens, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) k::rms_norm(&x_[i * E], an, &xn_[i * E], E, c.norm_eps);
    });
    {
      const k::LinearOut qkv[] = {{&LL.wq, q_.data(), 0},
                                  {&LL.wk, k_.data(), 0},
                                  {&LL.wv, v_.data(), 0},
                                  {&LL.attn_gate, gate_.data(), 0}};
      k::linear(std::span<const k::LinearOut>(qkv, c.attn_output_gate ? 4 : 3), xn_.data(), E, n,
                pool_, gemm_scratch_);
    }
    const size_t rope_table = static_cast<size_t>(rope_table_of_layer_[static_cast<size_t>(l)]);
    for_tokens(pool_, n, kParallelTokens, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float* q = &q_[i * QD];
        float* kk = &k_[i * KD];
        float* vv = &v_[i * KD];
        if (c.qkv_bias) {
          k::add_inplace(q, static_cast<const float*>(L.bq.data), QD);
          k::add_inplace(kk, static_cast<const float*>(L.bk.data), KD);
          k::add_inplace(vv, static_cast<const float*>(L.bv.data), KD);
        }
        const float* qn = c.qk_norm ? static_cast<const float*>(L.q_norm.data) : nullptr;
        const float* kn = c.qk_norm ? static_cast<const float*>(L.k_norm.data) : nullptr;
        const size_t off =
            (rope_table * static_cast<size_t>(opt_.n_batch) + static_cast<size_t>(i)) *
            static_cast<size_t>(half);
        const float* cs = &rope_cos_[off];
        const float* sn = &rope_sin_[off];
        for (int64_t h = 0; h < c.n_head; ++h) {
          float* qh = q + h * HD;
          if (c.qk_norm) k::rms_norm(qh, qn, qh, HD, c.norm_eps);
          if (c.qk_norm_unweighted) {
            k::rms_norm(qh, nullptr, qh, HD, c.norm_eps);
            k::scale_inplace(qh, c.qk_norm_scale, HD);
          }
          if (LC.use_rope) k::rope_apply(qh, c.rope_dim, cs, sn, interleaved);
        }
        const auto& it = items[static_cast<size_t>(i)];
        for (int64_t h = 0; h < c.n_head_kv; ++h) {
          float* kh = kk + h * HD;
          if (c.qk_norm) k::rms_norm(kh, kn, kh, HD, c.norm_eps);
          if (c.qk_norm_unweighted) k::rms_norm(kh, nullptr, kh, HD, c.norm_eps);
          if (LC.use_rope) k::rope_apply(kh, c.rope_dim, cs, sn, interleaved);
          // Append to the cache.
          k::attention_store_key(k_base(l, it.seq, h), HD, it.pos, kh, k_elem_);
          k::attention_store_value(v_base(l, it.seq, h), HD, it.pos, vv + h * HD, v_elem_);
        }
      }
    });
    attention(l, items);
    if (c.attn_output_gate) k::sigmoid_mul_inplace(attn_.data(), gate_.data(), n * QD);
    linear(LL.wo, attn_.data(), n, proj_.data());
    for_tokens(pool_, n, kParallelTokens, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float* p = &proj_[i * E];
        if (c.post_attn_norm)
          k::rms_norm(p, static_cast<const float*>(L.post_attn_norm.data), p, E, c.post_norm_eps);
        k::add_inplace(&x_[i * E], p, E);
        k::rms_norm(&x_[i * E], static_cast<const float*>(L.ffn_norm.data), &xn_[i * E], E,
                    c.norm_eps);
      }
    });
    const k::GluKind glu = c.ffn_act == FfnActivation::Silu       ? k::GluKind::Silu
                           : c.ffn_act == FfnActivation::GeluTanh ? k::GluKind::GeluTanh
                                                                  : k::GluKind::GeluErf;
    k::linear_glu(LL.ffn_gate, LL.ffn_up, glu, xn_.data(), E, n, ffn_a_.data(), c.n_ff, pool_,
                  gemm_scratch_);
    linear(LL.ffn_down, ffn_a_.data(), n, proj_.data());
    for_tokens(pool_, n, kParallelTokens, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float* p = &proj_[i * E];
        if (c.post_ffn_norm)
          k::rms_norm(p, static_cast<const float*>(L.post_ffn_norm.data), p, E, c.post_norm_eps);
        k::add_inplace(&x_[i * E], p, E);
      }
    });
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
  linear(output_, xn_.data(), n_out, lg);
  if (c.logit_scale != 1.0f) k::scale_inplace(lg, c.logit_scale, n_out * c.n_vocab);
  if (c.final_logit_softcap > 0) k::softcap_inplace(lg, c.final_logit_softcap, n_out * c.n_vocab);
}

uint8_t* Decoder::kv_slice(const kernels::LargeBuffer& cache, size_t head_bytes, int64_t layer,
                           int64_t seq, int64_t kv_head) const {
  const auto& c = config();
  return cache.data() +
         static_cast<size_t>((layer * opt_.n_seq + seq) * c.n_head_kv + kv_head) * head_bytes;
}

void Decoder::attention(int64_t layer, std::span<const BatchItem> items) {
  const auto& c = config();
  const auto& LC = c.layers[static_cast<size_t>(layer)];
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t QD = c.q_dim(), HD = c.head_dim;
  const int64_t group = c.n_head / c.n_head_kv;
  const float scale = c.softmax_scale();
  // One job per (kv head, token): the query heads of that kv head, all seeing the
  // same positions [lo, hi]; with few jobs and a long context each job is cut into
  // position parts (attention_parts.h). Item (job, part) is job * parts + part.
  const int64_t n_jobs = c.n_head_kv * n;
  auto visible = [&](int64_t i) {
    const int32_t hi = items[static_cast<size_t>(i)].pos;
    const int32_t lo =
        LC.sliding ? static_cast<int32_t>(std::max<int64_t>(0, hi - c.sliding_window + 1)) : 0;
    return std::pair<int32_t, int32_t>{lo, hi};
  };
  int64_t positions = 0, cost = 0;  // cost: rows x positions, to skip threads for tiny work
  for (int64_t i = 0; i < n; ++i) {
    const auto [lo, hi] = visible(i);
    positions = std::max<int64_t>(positions, hi + 1);
    cost += (hi - lo + 16) * c.n_head_kv;
  }
  const AttentionParts split = attention_parts(n_jobs, positions, pool_.size());
  const int64_t n_items = n_jobs * split.parts;
  attn_rows_.resize(static_cast<size_t>(n_items * group));
  for (int64_t h = 0; h < c.n_head_kv; ++h) {
    for (int64_t i = 0; i < n; ++i) {
      const auto [lo, hi] = visible(i);
      const int64_t job = h * n + i;
      for (int64_t part = 0; part < split.parts; ++part) {
        const int64_t item = job * split.parts + part;
        for (int64_t g = 0; g < group; ++g) {
          const int64_t head = h * group + g, row = item * group + g;
          k::AttnRow& r = attn_rows_[static_cast<size_t>(row)];
          r = {&q_[i * QD + head * HD], &attn_[i * QD + head * HD], lo, hi};
          if (split.parts > 1) {
            r.lo = std::max<int32_t>(lo, static_cast<int32_t>(part * split.span));
            r.hi = std::min<int32_t>(hi, static_cast<int32_t>((part + 1) * split.span - 1));
            r.out = &attn_part_out_[static_cast<size_t>(row * HD)];
            r.lse = &attn_part_lse_[static_cast<size_t>(row)];
          }
        }
      }
    }
  }
  const k::KernelTable& kt = k::best_kernels();
  auto run = [&](int64_t item) {
    const int64_t job = item / split.parts, h = job / n, i = job % n;
    const auto& it = items[static_cast<size_t>(i)];
    const k::AttnKv kv{k_base(layer, it.seq, h), v_base(layer, it.seq, h), HD, k_elem_, v_elem_};
    k::attention(kt, kv, &attn_rows_[static_cast<size_t>(item * group)], static_cast<int>(group),
                 scale);
  };
  if (pool_.size() == 1 || cost * group * HD < 64 * 1024) {
    for (int64_t item = 0; item < n_items; ++item) run(item);
  } else {
    // Contiguous shares walked in order (a job's parts are adjacent in the
    // cache), the tails taken over by whichever thread is done first.
    attn_items_.reset(n_items, pool_.size());
    pool_.run_on_all([&](int t) {
      for (int64_t item = attn_items_.next(t); item >= 0; item = attn_items_.next(t)) run(item);
    });
  }
  if (split.parts == 1) return;
  // Merge the parts of each (job, query head), on the threads: a very long context
  // on many threads has hundreds of parts per row (one more parallel region costs
  // a few us; the split only happens where attention takes far longer).
  pool_.parallel_for(n_jobs * group, [&](int, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t job = r / group, g = r % group, h = job / n, i = job % n;
      const int64_t row = job * split.parts * group + g;
      k::attention_merge(&attn_part_out_[static_cast<size_t>(row * HD)], group * HD,
                         &attn_part_lse_[static_cast<size_t>(row)], group,
                         static_cast<int>(split.parts), HD, &attn_[i * QD + (h * group + g) * HD]);
    }
  });
}

}  // namespace muse
