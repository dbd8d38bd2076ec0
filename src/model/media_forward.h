// One full forward pass over a prompt that mixes text tokens with images and
// audio given as processor outputs (the golden tests and `muse debug logits`):
// encode each item, place its rows at its placeholder run, compute the rotary
// positions, run the decoder over every position.
#pragma once

#include <cstdint>
#include <vector>

#include "model/decoder.h"
#include "model/media_encoder.h"
#include "model/media_prompt.h"

namespace muse {

struct MultimodalInputs {
  std::vector<int32_t> ids;  // with each item's placeholder run already expanded
  std::vector<ImagePatches> images;  // in order of their runs in ids
  std::vector<AudioFeatures> audios;
};

struct MultimodalOutputs {
  std::vector<float> logits;        // [n_ids][n_vocab]
  std::vector<float> image_embeds;  // all images' rows, concatenated
  std::vector<float> audio_embeds;
  std::vector<int32_t> position_ids;  // [3][n_ids] for M-RoPE models, else [n_ids]
};

// Finds the runs of image / audio placeholder ids in `ids` and pairs them, in
// order, with the given items (whose token counts must match the runs). Throws
// muse::Error on any mismatch or when the model has no such encoder.
MultimodalOutputs run_multimodal(Decoder& decoder, const MediaEncoders& encoders,
                                 const MultimodalInputs& inputs, int32_t seq = 0);

}  // namespace muse
