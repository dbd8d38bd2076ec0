// Where media-encoder tensors come from: an mmproj GGUF (llama.cpp names `v.*`,
// `a.*`, `mm.*`, metadata `clip.*`) or a Hugging Face model directory (tensor
// names with or without the `thinker.` prefix, config.json).
//
// Encoders ask for a tensor once, by its canonical GGUF name with the Hugging Face
// name beside it, and the expected shape in GGUF order (ne[0] innermost). The
// result always has GGUF semantics: vectors are F32 (converted and owned here
// when the file stores them otherwise), matrices keep their stored type, and
// convolution kernels are re-laid-out to plain matrices (see conv1d and
// patch_embed_conv3d). A missing tensor or a wrong shape throws muse::Error naming
// the tensor and the file.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/gguf.h"
#include "model/safetensors.h"
#include "muse/error.h"

namespace muse {

// One encoder tensor under its two names: in an mmproj GGUF and in a Hugging Face
// directory. Each encoder keeps a table of these that its loader and the mmproj
// writer (model/mmproj_writer.cpp) both read, so the names live in one place.
struct EncoderTensorNames {
  std::string gguf, hf;
};
// A table entry: the names of a tower-level tensor, or of a block tensor relative
// to the block's prefixes (see block_tensor_names).
struct EncoderTensorName {
  const char* gguf;
  const char* hf;
};
// The names of block tensor `entry` of block `layer`: gguf_block + layer + "." +
// entry.gguf, and the same for the HF name (e.g. "v.blk." / "visual.blocks.").
EncoderTensorNames block_tensor_names(const EncoderTensorName& entry, const char* gguf_block,
                                      const char* hf_block, int64_t layer);

class EncoderWeights {
 public:
  // An mmproj GGUF (general.architecture "clip").
  static std::unique_ptr<EncoderWeights> open_gguf(const std::string& path);
  // A Hugging Face directory: config.json plus its safetensors.
  static std::unique_ptr<EncoderWeights> open_hf_dir(const std::string& dir);

  bool is_gguf() const { return gguf_ != nullptr; }
  const GgufFile* gguf() const { return gguf_.get(); }         // null for HF
  const nlohmann::json& hf_config() const { return config_; }  // empty for GGUF
  const std::string& path() const { return path_; }

  // Whether the tensor exists (GGUF name in a GGUF, HF name - with or without
  // `thinker.` - in a directory).
  bool has(const std::string& gguf_name, const std::string& hf_name) const;
  // The stored shape in GGUF order (any rank; HF shapes reversed). Throws if missing.
  std::vector<int64_t> shape(const std::string& gguf_name, const std::string& hf_name) const;

  // A weight matrix of `rows` outputs by `cols` inputs (ne = {cols, rows}), any
  // type matmul accepts (F32/F16/BF16/quantized; F64 and integers are rejected).
  TensorView matrix(const std::string& gguf_name, const std::string& hf_name, int64_t cols,
                    int64_t rows) const;
  // An F32 vector of n values. Stored shapes [n], [1, n] or [n, 1] are accepted
  // (GGUF conv biases are ne = [1, n]).
  TensorView vector(const std::string& gguf_name, const std::string& hf_name, int64_t n) const;
  // A vector that may be absent (returns a view with data == nullptr).
  TensorView optional_vector(const std::string& gguf_name, const std::string& hf_name,
                             int64_t n) const;
  // A tensor of exactly the shape `ne` (GGUF order) in whatever type it is stored.
  TensorView tensor(const std::string& gguf_name, const std::string& hf_name,
                    const std::vector<int64_t>& ne) const;

  // A 1-D convolution kernel with `out` filters over `in` channels and width k,
  // as a matrix {k * in, out} whose row o holds w[o][i][j] at i * k + j (HF
  // [out, in, k] and GGUF ne = [k, in, out] are both stored this way). So
  // output frame t = W * im2col where im2col[i * k + j] = x[i][t * stride + j - pad].
  TensorView conv1d(const std::string& gguf_name, const std::string& hf_name, int64_t k, int64_t in,
                    int64_t out) const;

  // The Qwen2-VL patch embedding (Conv3d, kernel = stride = (t_patch, patch,
  // patch), no bias) as an F32 matrix {in * t_patch * patch * patch, out}: row o
  // holds w[o][c][t][py][px], the layout of one processor patch row. HF stores one
  // tensor [out, in, t_patch, patch, patch]; GGUF stores one slice per temporal
  // index, `gguf_name` (t = 0) and `gguf_name`.1, .2, ... each ne = [patch, patch,
  // in, out].
  TensorView patch_embed_conv3d(const std::string& gguf_name, const std::string& hf_name,
                                int64_t in, int64_t t_patch, int64_t patch, int64_t out) const;

 private:
  struct Found {
    std::string name;         // as stored in the file
    TensorView view;          // ne in GGUF order (HF ranks > 4 folded into ne[3])
    std::vector<int64_t> ne;  // full shape, GGUF order, any rank
  };
  bool find(const std::string& gguf_name, const std::string& hf_name, Found* out) const;
  Found require(const std::string& gguf_name, const std::string& hf_name) const;
  std::string describe(const std::string& gguf_name, const std::string& hf_name) const;
  TensorView own_f32(std::vector<float> values, std::vector<int64_t> ne) const;

  std::string path_;
  std::unique_ptr<GgufFile> gguf_;
  std::unique_ptr<SafetensorsModel> hf_;
  nlohmann::json config_;
  // Converted copies (F32 vectors, re-laid-out kernels); stable addresses.
  mutable std::vector<std::unique_ptr<std::vector<float>>> owned_;
};

// Reads a tensor of any float type (or quantized type) into f32 values.
std::vector<float> tensor_to_f32(const TensorView& t);

// The JSON configuration files of a Hugging Face model directory: config.json
// (required, an object) and preprocessor_config.json (null when absent). Throws
// muse::Error naming the file that is missing or not valid JSON.
struct HfConfigs {
  nlohmann::json config, preprocessor;
};
HfConfigs read_hf_configs(const std::string& dir);

// j[key] as T, or `fallback` when the key is absent or null; a value of the wrong
// type throws muse::Error naming `what` (e.g. "vision config") and the key.
template <typename T>
T config_value(const nlohmann::json& j, const char* key, T fallback, const char* what) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(str_cat(what, ": key '", key, "' has the wrong type"));
  }
}

}  // namespace muse
