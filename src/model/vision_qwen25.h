// The Qwen2.5-VL / Qwen2.5-Omni vision transformer (reference §2): patch
// embedding (Conv3d as a linear over each processor patch row), 2-D rotary
// positions (y, x) per patch, window attention on all blocks except the full ones,
// RMSNorm + SwiGLU blocks, and the 2x2 patch merger. Output rows are the merged
// cells in raster order, one per image placeholder token.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/encoder_ops.h"
#include "model/encoder_weights.h"
#include "model/media_encoder.h"

namespace muse {

struct Qwen25VisionConfig {
  int64_t n_embd = 1280, n_head = 16, n_layer = 32;
  int64_t in_channels = 3;
  int64_t out_dim = 0;        // text embedding width (merger output)
  int64_t window_size = 112;  // pixels; windows are window/patch/merge merged cells
  float eps = 1e-6f;
  float rope_theta = 10000.0f;
  std::vector<bool> full_attention;  // per block: true = whole-frame attention
  ImageProcessorSpec processor;      // patch/merge sizes live here
};

// Hyper-parameters from an mmproj GGUF (clip.vision.* keys; full blocks are
// those with (il + 1) % n_wa_pattern == 0).
Qwen25VisionConfig qwen25_vision_config_from_gguf(const GgufFile& gguf);
// From an HF vision_config object (fullatt_block_indexes), with the processor's
// min/max pixels and mean/std from `preprocessor` when it is an object.
Qwen25VisionConfig qwen25_vision_config_from_hf(const nlohmann::json& vision_config,
                                                const nlohmann::json& preprocessor);

// The vision tower's tensors (names in vision_qwen25.cpp).
enum class Qwen25VisionTensor {
  kPatchEmbd,
  kPostLn,
  kMerger0,
  kMerger0Bias,
  kMerger2,
  kMerger2Bias
};
enum class Qwen25VisionBlockTensor {
  kLn1,
  kQ,
  kQBias,
  kK,
  kKBias,
  kV,
  kVBias,
  kOut,
  kOutBias,
  kLn2,
  kGate,
  kGateBias,
  kUp,
  kUpBias,
  kDown,
  kDownBias
};
EncoderTensorNames qwen25_vision_tensor(Qwen25VisionTensor t);
EncoderTensorNames qwen25_vision_tensor(int64_t layer, Qwen25VisionBlockTensor t);

std::unique_ptr<VisionEncoder> load_qwen25_vision(std::shared_ptr<const EncoderWeights> weights,
                                                  const Qwen25VisionConfig& config);

// The window partition of one image: merged cell (by, bx) belongs to window
// (by / window_cells, bx / window_cells); each group lists the patches (sequence
// indices in merge order) of one window, windows in raster order per frame.
enc::AttentionGroups qwen25_window_groups(int64_t grid_t, int64_t grid_h, int64_t grid_w,
                                          int64_t merge, int64_t window_cells);

}  // namespace muse
