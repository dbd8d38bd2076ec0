#include "engine/generate.h"

#include <algorithm>

#include "muse/error.h"

namespace muse {

std::vector<float> all_logits(Decoder& decoder, std::span<const int32_t> ids, int32_t seq) {
  MUSE_CHECK(!ids.empty(), "no input tokens");
  decoder.clear(seq);
  std::vector<BatchItem> batch(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    batch[i] = {ids[i], static_cast<int32_t>(i), seq, true};
  auto out = decoder.forward(batch);
  return std::vector<float>(out.begin(), out.end());
}

std::vector<int32_t> generate(Decoder& decoder, std::span<const int32_t> prompt, Sampler& sampler,
                              const GenerateOptions& options,
                              const std::function<bool(int32_t)>& on_token) {
  MUSE_CHECK(!prompt.empty(), "the prompt is empty");
  decoder.clear(options.seq);
  std::vector<BatchItem> batch(prompt.size());
  for (size_t i = 0; i < prompt.size(); ++i)
    batch[i] = {prompt[i], static_cast<int32_t>(i), options.seq, i + 1 == prompt.size()};
  auto logits = decoder.forward(batch);
  std::vector<int32_t> out;
  for (int64_t n = 0; n < options.max_tokens; ++n) {
    const int32_t id = sampler.sample(logits, prompt, out);
    out.push_back(id);
    if (on_token && !on_token(id)) break;
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), id) !=
        options.stop_tokens.end())
      break;
    if (n + 1 == options.max_tokens) break;
    BatchItem next{id, static_cast<int32_t>(prompt.size() + out.size() - 1), options.seq, true};
    logits = decoder.forward(std::span<const BatchItem>(&next, 1));
  }
  return out;
}

}  // namespace muse
