// Chat prompts with images and audio: the model's chat template places its own
// media markers (e.g. Qwen2.5-Omni's <|vision_bos|><|IMAGE|><|vision_eos|>,
// Muse Glimmer's <|patch|>), and each placeholder expands to as many positions as
// its encoder gives rows. Templates that do not render media parts get a unique
// marker in a text part instead, which becomes the model's wrapper tokens around
// the placeholder run (llama.cpp's approach).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/media_service.h"
#include "text/tokenizer.h"

namespace muse::server {

struct MultimodalPrompt {
  std::vector<int32_t> tokens;
  std::vector<PromptMedia> media;
};

// Renders `messages` (media parts still in them, in the order of `media`) with
// `render` and tokenizes the result. Throws ApiError(400) when the template drops
// media or the placeholders cannot be placed.
MultimodalPrompt build_multimodal_prompt(
    const nlohmann::ordered_json& messages, const std::vector<EncodedMedia>& media,
    const text::Tokenizer& tokenizer, const MediaTokenIds& ids,
    const std::function<std::string(const nlohmann::ordered_json&)>& render);

}  // namespace muse::server
