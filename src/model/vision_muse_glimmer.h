// The Muse Glimmer vision tower (docs/muse-glimmer-vision.md): linear patch
// embedding of raster-order patches, a learned pos_emb_height x pos_emb_width
// position table resized bilinearly to the patch grid (zeros outside the table),
// LayerNorm pre-norm blocks with 2-D rotary attention (width angles first) in
// pos_emb_height x pos_emb_width patch windows except on full-attention layers,
// a feature-major 2x2 pixel shuffle, the adapter fc1 -> GELU -> fc2 -> GELU ->
// projection and a weightless RMS norm. The rows returned are the golden's
// `image_embeds`; the decoder takes them as they are (no embedding norm) at the
// placeholder tokens' sequential positions.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/encoder_weights.h"
#include "model/gguf.h"
#include "model/media_encoder.h"

namespace muse {

struct MuseGlimmerVisionConfig {
  int64_t n_embd = 64, n_head = 4, n_layer = 4, n_ff = 128;
  int64_t in_channels = 3;
  int64_t pos_h = 4, pos_w = 4;  // position table size = attention window size (patches)
  float eps = 1e-5f;             // LayerNorm eps of the tower
  float out_eps = 1e-5f;         // weightless RMS norm after the projection
  float rope_theta = 10000.0f;
  std::vector<bool> window_attention;  // per layer: true = windowed, false = full
  ImageProcessorSpec processor;        // kind MuseGlimmer; patch/merge sizes live here
};

// From a Hugging Face config.json of model_type muse_glimmer (vision_config,
// text_config.rms_norm_eps) and its preprocessor_config.json when `preprocessor`
// is an object (max_image_tokens, image_mean, image_std). Throws muse::Error on a
// missing vision_config or bad values.
MuseGlimmerVisionConfig muse_glimmer_vision_config_from_hf(const nlohmann::json& config,
                                                           const nlohmann::json& preprocessor);
// From an mmproj GGUF with clip.projector_type "muse-glimmer" (keys as written by
// write_muse_glimmer_mmproj).
MuseGlimmerVisionConfig muse_glimmer_vision_config_from_gguf(const GgufFile& gguf);

// Builds the encoder; `weights` is an mmproj GGUF or the model's HF directory.
// Throws muse::Error naming a missing or misshapen tensor.
std::unique_ptr<VisionEncoder> load_muse_glimmer_vision(
    std::shared_ptr<const EncoderWeights> weights, const MuseGlimmerVisionConfig& config);

// Writes the mmproj GGUF of a Hugging Face Muse Glimmer directory: general.architecture
// "clip", clip.projector_type "muse-glimmer", clip.vision.* keys and the tensors of
// the name table in vision_muse_glimmer.cpp. weight_type (F32, F16, BF16 or a
// quantized type) applies to matrices whose rows divide into its blocks (others
// F16); vectors, the position table and the patch embedding stay F32.
void write_muse_glimmer_mmproj(const std::string& hf_dir, const std::string& out_gguf,
                               DType weight_type);

}  // namespace muse
