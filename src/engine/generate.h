// Single-sequence generation on a Decoder: prefill the prompt, then sample one
// token at a time until n tokens, a stop token, or the callback says stop.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "model/decoder.h"

namespace muse {

struct GenerateOptions {
  int64_t max_tokens = 16;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
  int32_t seq = 0;                   // decoder sequence slot to use (cleared first)
};

// Returns the generated ids. on_token(id) is called as each one is produced and
// may return false to stop early. Throws muse::Error for bad input.
std::vector<int32_t> generate(Decoder& decoder, std::span<const int32_t> prompt, Sampler& sampler,
                              const GenerateOptions& options,
                              const std::function<bool(int32_t)>& on_token = nullptr);

// Runs `ids` through a fresh sequence and returns the logits of every position
// ([ids.size()][n_vocab]).
std::vector<float> all_logits(Decoder& decoder, std::span<const int32_t> ids, int32_t seq = 0);

}  // namespace muse
