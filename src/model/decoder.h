// The forward pass of a text decoder with a KV cache, over a batch that may mix
// several sequences (continuous batching): each matrix multiplication reads the
// weights once for all tokens of the batch.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "core/stealing_ranges.h"
#include "core/thread_pool.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/kernel_table.h"
#include "model/model.h"

namespace muse {

struct DecoderOptions {
  int64_t n_ctx = 4096;   // positions per sequence held in the KV cache
  int64_t n_seq = 1;      // sequences that can be cached at once
  int64_t n_batch = 512;  // tokens per forward chunk (scratch is sized for this)
  int n_threads = 0;      // 0 = default_thread_count()
  // Element type of the KV cache: F32 (exact), F16 (half the memory and the
  // attention bandwidth at long context; keys and values rounded to f16), or
  // Q8_0 (llama.cpp's `-ctk q8_0 -ctv q8_0`: keys and values in Q8_0 blocks,
  // 0.56x the bytes of f16; keys scored with 8-bit integer dot products against
  // a Q8_0 copy of the query, values weighted by 16-bit rounded probabilities;
  // kernels/attention.h).
  DType kv_type = DType::F32;
};

// The KV cache types by name ("f32", "f16", "q8_0"); nullopt for any other name.
std::optional<DType> kv_type_from_name(std::string_view name);
inline constexpr const char* kKvTypeNames = "f32, f16 or q8_0";

struct BatchItem {
  int32_t token = 0;
  int32_t pos = 0;  // must equal the sequence's cached length when processed
  int32_t seq = 0;
  bool logits = false;  // return logits for this item
  // Multimodal input: when set, this row (n_embd floats, alive until forward()
  // returns) is the item's input embedding instead of the token's; `token` is then
  // the media placeholder id. Embedding scale/normalisation are not applied to it.
  const float* embedding = nullptr;
  // Rotary position rows: with rope_explicit, the rotation uses rope_pos (t, h, w
  // for M-RoPE models; rope_pos[0] for 1-D rope) instead of `pos`. Positions of
  // media spans advance differently from cache slots (Qwen2.5-Omni images).
  bool rope_explicit = false;
  int32_t rope_pos[3] = {0, 0, 0};
};

// What a Decoder holds in memory, in bytes (all allocated by its constructor).
struct DecoderMemory {
  size_t packed_weights = 0;  // matrices repacked for the GEMM kernels
  size_t mapped_weights = 0;  // tensors still read from the model file mapping
  size_t kv_cache = 0;
  size_t scratch = 0;  // activations, GEMM buffers, logits of one chunk
  size_t total() const { return packed_weights + mapped_weights + kv_cache + scratch; }
};

class Decoder {
 public:
  Decoder(std::shared_ptr<const Model> model, DecoderOptions options);

  // Runs the items in order (in chunks of n_batch) and returns the logits of the
  // items with logits=true, row after row ([n_out][n_vocab]); valid until the next
  // call. Bad input (token out of vocabulary, unknown sequence, a position that
  // does not continue its sequence, context full) throws muse::Error and leaves
  // the caches as they were before the call.
  std::span<const float> forward(std::span<const BatchItem> items);

  void clear(int32_t seq);  // forget a sequence's cache
  // Keeps only the first `length` cached positions of a sequence (prefix reuse);
  // throws muse::Error if length is negative or more than seq_length(seq).
  void truncate(int32_t seq, int64_t length);
  // Makes dst's cache the first `length` positions of src's (prefix sharing between
  // sequences); throws muse::Error if src == dst or length is outside [0, seq_length(src)].
  void copy_prefix(int32_t src, int32_t dst, int64_t length);
  int64_t seq_length(int32_t seq) const;  // positions cached for a sequence
  const Model& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config(); }
  ThreadPool& pool() { return pool_; }
  DecoderMemory memory() const { return memory_; }

 private:
  void forward_chunk(std::span<const BatchItem> items, std::vector<float>& logits_out);
  void attention(int64_t layer, std::span<const BatchItem> items);
  void linear(const kernels::Linear& w, const float* x, int64_t n, float* y);
  // Start of one (layer, sequence, kv head) slice of a cache of head_bytes slices.
  uint8_t* kv_slice(const kernels::LargeBuffer& cache, size_t head_bytes, int64_t layer,
                    int64_t seq, int64_t kv_head) const;
  uint8_t* k_base(int64_t layer, int64_t seq, int64_t kv_head) const {
    return kv_slice(k_cache_, k_head_bytes_, layer, seq, kv_head);
  }
  uint8_t* v_base(int64_t layer, int64_t seq, int64_t kv_head) const {
    return kv_slice(v_cache_, v_head_bytes_, layer, seq, kv_head);
  }

  // The matrices of one layer, repacked for the GEMM kernels where possible.
  struct LayerLinears {
    kernels::Linear wq, wk, wv, attn_gate, wo, ffn_gate, ffn_up, ffn_down;
  };

  std::shared_ptr<const Model> model_;
  DecoderOptions opt_;
  ThreadPool pool_;
  kernels::LargeBuffer weights_arena_;  // every packed matrix (huge pages)
  std::vector<LayerLinears> linears_;
  kernels::Linear output_;
  bool embed_from_output_ = false;  // tied embeddings read from the packed output
  kernels::DequantizeRowFn embed_dequantize_ = nullptr;
  kernels::GemmScratch gemm_scratch_;
  std::vector<std::vector<float>> rope_inv_freq_;  // distinct frequency tables
  std::vector<int64_t> rope_table_of_layer_;       // index into rope_inv_freq_
  // KV cache: per layer, [n_seq][n_head_kv] slices of n_ctx_alloc_ positions
  // (n_ctx rounded up to 16) in the layouts of kernels/attention.h: float values
  // row by row, keys and Q8_0 values in 16-position blocks.
  int64_t n_ctx_alloc_ = 0;
  kernels::KvElem k_elem_ = kernels::KvElem::F32, v_elem_ = kernels::KvElem::F32;
  size_t k_head_bytes_ = 0, v_head_bytes_ = 0;  // one (layer, sequence, kv head)
  kernels::LargeBuffer k_cache_, v_cache_;
  std::vector<int64_t> seq_len_;
  // Scratch, sized once for n_batch tokens.
  std::vector<float> x_, xn_, q_, k_, v_, gate_, attn_, proj_, ffn_a_;
  std::vector<float> rope_cos_, rope_sin_;  // [table][n_batch][rope_dim / 2]
  std::vector<kernels::AttnRow> attn_rows_;
  // A long context's attention cut into position parts (attention_parts.h):
  // each part's outputs [item][query head in group][head_dim] and log-sum-exps
  // [item][query head in group], merged into attn_ after the parallel region.
  std::vector<float> attn_part_out_, attn_part_lse_;
  StealingRanges attn_items_;
  DecoderMemory memory_;
  std::vector<float> logits_;
};

}  // namespace muse
