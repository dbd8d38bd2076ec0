// The architecture-independent description of a text decoder. Every supported
// architecture (src/model/arch_*.cpp) fills this from a Hugging Face config.json
// or from GGUF metadata; the forward pass (decoder.cpp) reads only this, so a new
// architecture that is a combination of known features needs no forward-pass code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace muse {

enum class RopeLayout {
  Interleaved,  // pairs (2i, 2i+1): GGUF "llama" after the converter's Q/K permutation
  Neox,         // pairs (i, i + d/2): Hugging Face rotate_half
};

enum class FfnActivation { Silu, GeluTanh, GeluErf };

struct LayerConfig {
  bool sliding = false;   // attends to the last `sliding_window` positions only
  bool use_rope = true;   // false: no positional rotation on this layer (NoPE)
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // linear rope scaling: frequencies multiplied by this
};

// Token ids that mark media in a multimodal prompt (-1: the model has none).
struct MediaTokenIds {
  int32_t image = -1, audio = -1, video = -1;  // placeholders, one per embedding row
  int32_t vision_start = -1, vision_end = -1, audio_start = -1, audio_end = -1;
};

struct ModelConfig {
  std::string arch;  // GGUF architecture name: llama, qwen2, qwen3, gemma3, muse-glimmer
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;

  float norm_eps = 1e-5f;
  float post_norm_eps = 1e-5f;  // eps of the post-attention/post-FFN norms

  RopeLayout rope_layout = RopeLayout::Neox;
  int64_t rope_dim = 0;                    // rotated dims per head (== head_dim here)
  std::vector<float> rope_freq_factors;    // per pair divisor of the frequency (Llama 3); empty = none
  int64_t sliding_window = 0;              // tokens a sliding layer sees, itself included
  std::vector<LayerConfig> layers;
  // Multimodal rotary embedding (Qwen2-VL / Qwen2.5-Omni M-RoPE): frequency pairs
  // [0, s0) rotate by the token's t position, the next s1 pairs by h, the next s2
  // by w. Empty: ordinary 1-D rope.
  std::vector<int64_t> mrope_sections;
  MediaTokenIds media_tokens;

  bool qkv_bias = false;          // q/k/v projections have biases (Qwen2)
  bool qk_norm = false;           // per-head RMSNorm of q and k with weights (Qwen3, Gemma 3)
  bool qk_norm_unweighted = false;  // per-head RMS normalisation without weights (Muse Glimmer)
  float qk_norm_scale = 1.0f;     // multiplies q after the unweighted norm
  bool attn_output_gate = false;  // attention output *= sigmoid(x W_gate) before W_o
  bool post_attn_norm = false;    // norm of the attention output before the residual add
  bool post_ffn_norm = false;     // norm of the FFN output before the residual add
  float attn_scale = 0.0f;        // softmax scale; 0 means 1/sqrt(head_dim)
  float embed_scale = 1.0f;       // token embeddings are multiplied by this
  bool embed_norm = false;        // token embeddings are RMS-normalised (no weight, norm_eps)
  float logit_scale = 1.0f;       // final logits multiplied by this
  float final_logit_softcap = 0;  // logits = cap * tanh(logits / cap) when > 0
  FfnActivation ffn_act = FfnActivation::Silu;
  bool tied_embeddings = false;

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
  float softmax_scale() const;
  // Throws muse::Error if sizes are inconsistent or out of range (bad files).
  void validate() const;
};

// Per-pair inverse frequencies for a layer: base^(-2i/rope_dim) / factor_i.
std::vector<float> rope_inv_freq(const ModelConfig& c, const LayerConfig& layer);

// Llama 3 "llama3" rope scaling factors (per frequency pair), as the reference defines them.
std::vector<float> llama3_rope_factors(int64_t rope_dim, float base, float factor,
                                       float low_freq_factor, float high_freq_factor,
                                       float original_max_positions);

}  // namespace muse
