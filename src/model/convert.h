// Writing GGUF files: `muse convert` (Hugging Face directory -> GGUF) and
// `muse quantize` (GGUF -> GGUF of another type), with llama.cpp's names and
// metadata so that llama.cpp loads the result.
#pragma once

#include <string>

#include "core/dtype.h"
#include "model/model.h"

namespace muse {

// Target of a conversion: a single type or a named mixture.
struct QuantTarget {
  DType base = DType::F16;
  // The _M mixture of a k-quant (q4_k_m, q5_k_m): Q6_K for the output and for
  // half of the layers' attn_v and ffn_down, the base type elsewhere.
  bool k_m = false;
  std::string name;  // as given: "q8_0", "q4_k_m", ...
};

// Parses "f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_k|q3_k|q4_k|q5_k|q6_k|q4_k_m|q5_k_m".
QuantTarget parse_quant_target(const std::string& name);

// The type a given tensor gets under a target: vectors stay f32, rows that do not
// divide into the type's blocks fall back to a type that fits.
DType tensor_type_for(const QuantTarget& target, const std::string& gguf_name, int n_dims,
                      int64_t row_len, int64_t n_layer, bool output_is_tied_embedding);

// llama.cpp's llama_ftype value (general.file_type) for a target.
uint32_t llama_file_type(const QuantTarget& target);

// Writes `model` as GGUF to `out`, with tokenizer metadata when the source has it.
void write_gguf(const Model& model, const std::string& out, const QuantTarget& target);

// Re-quantizes every matrix of a GGUF file (metadata copied, file type updated).
void quantize_gguf(const std::string& in, const std::string& out, const QuantTarget& target);

// Converts a tensor of any type to `type` (through f32).
std::vector<uint8_t> convert_tensor(const TensorView& src, DType type);

}  // namespace muse
