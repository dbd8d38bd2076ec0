// Carries a Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) into
// GGUF metadata under llama.cpp's keys (tokenizer.ggml.*, tokenizer.chat_template).
#pragma once

#include <string>

#include "model/gguf.h"
#include "model/model_config.h"

namespace muse {

// Adds tokenizer metadata from `dir` to `w` when dir/tokenizer.json exists; does
// nothing otherwise. Throws muse::Error for a malformed tokenizer.json.
void add_hf_tokenizer_metadata(const std::string& dir, const ModelConfig& c, GgufWriter& w);

// llama.cpp's name of a BPE pre-tokenizer for a tokenizer.json pre_tokenizer,
// judged from its split pattern, with the architecture's usual one as fallback.
std::string detect_bpe_pre_tokenizer(const std::string& split_pattern, const std::string& arch);

}  // namespace muse
