// A loaded text decoder: configuration plus weights, from a GGUF file or a
// Hugging Face model directory. Weights are canonical (GGUF semantics): the
// loader of a Hugging Face directory applies the same transforms as the converter,
// so one forward pass serves both sources and a converted file computes the same.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/gguf.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace muse {

struct NamedTensor {
  std::string name;  // GGUF name
  TensorView view;
};

class Model {
 public:
  // `path` is a .gguf file or a directory with config.json + safetensors.
  // Throws muse::Error naming the problem for anything missing or malformed.
  static std::shared_ptr<Model> load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const DecoderWeights& weights() const { return weights_; }
  const ArchSpec& arch() const { return *arch_; }
  // All weights in canonical GGUF naming and table order (for conversion).
  const std::vector<NamedTensor>& tensors() const { return tensors_; }
  // Source metadata: the GGUF file (tokenizer etc.) or the HF directory.
  const GgufFile* gguf() const { return gguf_.get(); }
  const std::string& hf_dir() const { return hf_dir_; }
  const std::string& path() const { return path_; }

 private:
  Model() = default;
  void load_gguf(const std::string& path);
  void load_hf(const std::string& dir);
  void bind(const TensorSpec& spec, int64_t layer, const TensorView& view);
  void finish();

  std::string path_, hf_dir_;
  ModelConfig config_;
  const ArchSpec* arch_ = nullptr;
  DecoderWeights weights_;
  std::vector<NamedTensor> tensors_;
  std::unique_ptr<GgufFile> gguf_;
  std::unique_ptr<SafetensorsModel> safetensors_;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> owned_;  // transformed tensors
};

// Reads and parses a JSON file; errors name the file.
nlohmann::json read_json_file(const std::string& path);

}  // namespace muse
