// Random-weight models at given shapes, written through the project's own GGUF
// writer: for benchmarks at real shapes (speed does not depend on weight values)
// and for `make run` before a trained default model ships.
#pragma once

#include <cstdint>
#include <string>

#include "model/convert.h"

namespace muse {

struct RandomModelSpec {
  std::string arch = "qwen2";
  std::string size = "tiny";  // "tiny" or "qwen2.5-0.5b"
  uint64_t seed = 1;
  // Optional GGUF whose tokenizer.* metadata is copied in, the token list padded
  // with unused "[PADn]" tokens up to the model's vocabulary size (as converters
  // do), so that programs that need a vocabulary (llama.cpp) load the model.
  // The "tiny" size grows its vocabulary to hold the whole token list.
  std::string vocab_gguf;
  // Optional chat template (Jinja source) stored as tokenizer.chat_template.
  std::string chat_template;
};

// Fills a ModelConfig for the spec (throws muse::Error for an unknown size/arch).
ModelConfig random_model_config(const RandomModelSpec& spec);
// Writes a GGUF with N(0, 0.02) matrices and unit norms, quantized per `target`.
void write_random_model(const RandomModelSpec& spec, const QuantTarget& target,
                        const std::string& out);

}  // namespace muse
