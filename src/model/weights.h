// The tensors of a text decoder, by role. Which roles an architecture has is
// decided by its tensor table and its config (arch.h), never by which tensors
// happen to be present in a file.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace muse {

struct LayerWeights {
  TensorView attn_norm, wq, wk, wv, wo, bq, bk, bv, q_norm, k_norm, attn_gate, post_attn_norm;
  TensorView ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffn_norm;
};

struct DecoderWeights {
  TensorView tok_embd;     // [n_embd, n_vocab]
  TensorView output_norm;  // [n_embd]
  TensorView output;       // [n_embd, n_vocab]; == tok_embd when embeddings are tied
  TensorView rope_freqs;   // optional [rope_dim/2] frequency factors (Llama 3, GGUF)
  std::vector<LayerWeights> layers;
};

}  // namespace muse
