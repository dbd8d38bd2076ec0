// The Qwen2.5-Omni audio tower as the Hugging Face reference runs it (reference
// §3.3): the valid mel frames are cut into chunks of 2 * n_window frames (2 s),
// each chunk goes through the conv stem on its own (zero padding at its edges) and
// gets sinusoidal positions restarting at 0; the transformer attends only within
// a chunk (block-diagonal); then average pooling by 2, ln_post and the projection
// to the text width. Tokens: ((T - 1) // 2 + 1 - 2) // 2 + 1 for T frames.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "model/encoder_weights.h"
#include "model/media_encoder.h"

namespace muse {

struct Qwen25AudioConfig {
  int64_t n_embd = 1280, n_head = 20, n_layer = 32;
  int64_t out_dim = 0;     // 0: taken from the projection's shape
  int64_t n_window = 100;  // chunks of 2 * n_window mel frames
  int64_t max_positions = 1500;
  float eps = 1e-5f;
  AudioProcessorSpec processor;  // n_mel lives here
};

Qwen25AudioConfig qwen25_audio_config_from_gguf(const GgufFile& gguf);
Qwen25AudioConfig qwen25_audio_config_from_hf(const nlohmann::json& audio_config);

// The audio tower's tensors (names in audio_qwen25omni.cpp).
enum class Qwen25AudioTensor {
  kConv1,
  kConv1Bias,
  kConv2,
  kConv2Bias,
  kPositions,
  kPostLn,
  kPostLnBias,
  kProj,
  kProjBias
};
enum class Qwen25AudioBlockTensor {
  kLn1,
  kLn1Bias,
  kQ,
  kQBias,
  kK,
  kV,
  kVBias,
  kOut,
  kOutBias,
  kLn2,
  kLn2Bias,
  kUp,
  kUpBias,
  kDown,
  kDownBias
};
EncoderTensorNames qwen25_audio_tensor(Qwen25AudioTensor t);
EncoderTensorNames qwen25_audio_tensor(int64_t layer, Qwen25AudioBlockTensor t);

std::unique_ptr<AudioEncoder> load_qwen25_audio(std::shared_ptr<const EncoderWeights> weights,
                                                const Qwen25AudioConfig& config);

// Output tokens for n_frames valid mel frames (0 when too short).
int64_t qwen25_audio_tokens(int64_t n_frames);

}  // namespace muse
