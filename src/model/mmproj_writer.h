// Writes the mmproj GGUF of a Hugging Face Qwen2.5-Omni (or Qwen2.5-VL-style)
// checkpoint — or of Muse Glimmer (write_muse_glimmer_mmproj) — the way llama.cpp's converter does (reference §4.2): metadata keys
// clip.*, tensors v.* / a.* / mm.* with their ne and types (vectors and norms F32,
// audio conv kernels F16, the audio position table F32 generated here, the patch
// embedding split into one slice per temporal index).
#pragma once

#include <string>

#include "core/dtype.h"

namespace muse {

// weight_type: F32, F16, BF16 or a quantized type for the matrices (rows that do
// not divide into its blocks fall back to F16). Throws muse::Error on a directory
// without vision/audio encoders, missing tensors or a bad configuration.
void write_mmproj(const std::string& hf_dir, const std::string& out_gguf, DType weight_type);

}  // namespace muse
