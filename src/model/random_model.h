// Random-weight models at given shapes, written through the project's own GGUF
// writer: for benchmarks at real shapes (speed does not depend on weight values)
// and for `make run` before a trained default model ships.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/convert.h"

namespace muse {

struct RandomModelSpec {
  std::string arch = "qwen2";
  // "tiny" (n_embd 256), "tiny-mm" (n_embd 128, head_dim 32: the width of the golden
  // multimodal checkpoints' encoders, for test models paired with their mmproj),
  // "qwen2.5-0.5b" or "gemma3-1b" (real models' shapes, for benchmarks).
  std::string size = "tiny";
  uint64_t seed = 1;
  // Optional GGUF whose tokenizer.* metadata is copied in, the token list padded
  // with unused "[PADn]" tokens up to the model's vocabulary size (as converters
  // do), so that programs that need a vocabulary (llama.cpp) load the model.
  // The "tiny" sizes grow their vocabulary to hold the whole token list.
  std::string vocab_gguf;
  // Tokens appended to the copied token list as control tokens (token_type 3), so
  // that the tokenizer matches them atomically in rendered chat prompts (and media
  // placeholders such as <|IMAGE|> are found by text). A token the list already has
  // keeps its id; duplicates are added once. Requires vocab_gguf.
  std::vector<std::string> add_special;
  // Token texts (of the final token list) to make the BOS / EOS token; the EOS token
  // is also written as the end-of-turn token. Empty: the copied ids stay.
  // Requires vocab_gguf; a text that is not in the list is an error.
  std::string bos_token, eos_token;
  // Optional chat template (Jinja source) stored as tokenizer.chat_template.
  std::string chat_template;
};

// Fills a ModelConfig for the spec (throws muse::Error for an unknown size/arch).
ModelConfig random_model_config(const RandomModelSpec& spec);
// Writes a GGUF with N(0, 0.02) matrices and unit norms, quantized per `target`.
void write_random_model(const RandomModelSpec& spec, const QuantTarget& target,
                        const std::string& out);

}  // namespace muse
