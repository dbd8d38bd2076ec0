// Building blocks shared by the architecture files: the hyper-parameter keys
// that llama.cpp uses for every decoder ("<arch>.embedding_length", ...) and the
// standard Llama-style tensor table.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <utility>

#include "model/arch.h"

namespace muse {

// Reads the keys common to Llama-style configs (hidden_size, num_attention_heads,
// rope_theta / rope_parameters, ...). Missing required keys throw muse::Error.
ModelConfig hf_common_config(const nlohmann::json& j, const std::string& arch);
// Reads "<arch>.*" keys common to all decoders.
ModelConfig gguf_common_config(const GgufFile& f, const std::string& arch);
void gguf_write_common(const ModelConfig& c, GgufWriter& w);
// GGUF key suffixes ("<arch>.media.<key>") of the media placeholder ids.
const std::vector<std::pair<const char*, int32_t MediaTokenIds::*>>& media_token_keys();

// Media placeholder/wrapper ids from config.json: each key of `keys` that holds an
// integer sets its member of `out`; absent keys leave the member as it is (-1).
using MediaTokenKey = std::pair<const char*, int32_t MediaTokenIds::*>;
void read_hf_media_tokens(const nlohmann::json& j, std::initializer_list<MediaTokenKey> keys,
                          MediaTokenIds& out);

// The rope base of an HF config: rope_parameters.rope_theta, or the legacy
// top-level rope_theta, or `fallback`.
float hf_rope_theta(const nlohmann::json& params_or_config, float fallback);

// Tensor specs of a Llama-style decoder with the given HF name prefix of the text
// model ("model." for most, "model.language_model." for multimodal wrappers) and
// HF name of the output head ("lm_head.weight").
std::vector<TensorSpec> llama_like_tensors(const std::string& hf_prefix,
                                           const std::string& lm_head = "lm_head.weight");

// Tensor specs of a Gemma-style decoder (norms before and after attention and
// FFN, stored by Hugging Face as w - 1); `final_norm` is the transform of the
// final norm (Gemma: NormPlusOne; Muse Glimmer: None).
std::vector<TensorSpec> post_norm_tensors(const std::string& hf_prefix, HfTransform final_norm);

bool config_untied(const ModelConfig& c);

}  // namespace muse
