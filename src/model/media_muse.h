// Muse Nano's media front end (architecture `muse`, docs/muse-nano.md): no
// separate encoder network. An image is resized to a fixed square, cut into
// raster patches, and each patch row becomes W_patch * pixels + b + row_embed[r] +
// col_embed[c]; an audio clip's log-mel frames are stacked `stack_frames` at a
// time and each group becomes W_audio * frames + b. The tensors live in the model
// GGUF itself (or the Hugging Face directory), next to the decoder.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/encoder_weights.h"
#include "model/media_encoder.h"

namespace muse {

struct MuseMediaConfig {
  int64_t n_embd = 0;
  bool has_vision = false, has_audio = false;
  ImageProcessorSpec image;  // Kind::FixedSize: image_size, patch_size, mean, std
  AudioProcessorSpec audio;  // sample_rate, n_mel
  int64_t stack_frames = 4;  // log-mel frames per audio row
};

// The embedded tensors (GGUF and Hugging Face names), for the architecture table.
const std::vector<EmbeddedTensor>& muse_media_tensors();

// From the GGUF keys muse.vision.* / muse.audio.* (absent keys: no such encoder),
// or from config.json's vision_config / audio_config. Throw muse::Error on bad values.
MuseMediaConfig muse_media_config_from_gguf(const GgufFile& f);
MuseMediaConfig muse_media_config_from_hf(const nlohmann::json& config);
// Writes the muse.vision.* / muse.audio.* keys from config.json (the converter).
void muse_media_to_gguf(const nlohmann::json& config, GgufWriter& w);

MediaEncoders load_muse_media(std::shared_ptr<EncoderWeights> weights, const MuseMediaConfig& c);
// The same, with the configuration read from the weights' own GGUF metadata or
// config.json (ArchSpec::load_media of `muse`).
MediaEncoders load_muse_media(std::shared_ptr<EncoderWeights> weights);

}  // namespace muse
