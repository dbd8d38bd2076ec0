// Media in a decoder's input: spans of prompt positions whose input rows are
// encoder embeddings instead of token embeddings, and the rotary positions such
// a prompt gets (Qwen2.5-Omni's M-RoPE rule for image grids).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "model/model_config.h"

namespace muse {

// One encoded image or audio clip placed at prompt positions [start, start + n_tokens).
struct MediaSpan {
  int64_t start = 0;
  int64_t n_tokens = 0;
  const float* rows = nullptr;  // [n_tokens][n_embd]
  // Images: the merged grid (rows x cols of embedding rows, raster order), which
  // M-RoPE turns into 2-D positions. 0 for audio (sequential positions).
  int64_t grid_h = 0, grid_w = 0;
};

// Rotary positions of a prompt. `rows` is empty when they are simply the
// sequence indices; otherwise one (t, h, w) per prompt token. `next` is the
// position of the token that follows the prompt (generated token n of the
// sequence then gets next + n, in all rows).
struct PromptPositions {
  std::vector<std::array<int32_t, 3>> rows;
  int32_t next = 0;
};

// Throws muse::Error when spans overlap, are out of order, leave the prompt, have
// a grid that does not match their length, or (when the config names the
// placeholder ids) cover tokens other than the image/audio placeholder.
void validate_media_spans(const ModelConfig& config, std::span<const int32_t> tokens,
                          std::span<const MediaSpan> media);

// Positions per the reference (Hugging Face get_rope_index for Qwen2.5-Omni,
// images and audio without video): text and audio tokens advance by one; image
// token (r, c) of a grid starting at st gets (st, st + r, st + c), and the
// position after the image is st + max(grid_h, grid_w). Models without M-RoPE
// get sequential positions (rows empty).
PromptPositions prompt_rope_positions(const ModelConfig& config, std::span<const int32_t> tokens,
                                      std::span<const MediaSpan> media);

}  // namespace muse
