// Architecture registry. Each supported text architecture lives in its own file
// (arch_<name>.cpp) and is described declaratively:
//  - how to read its hyper-parameters from a Hugging Face config.json and from
//    GGUF metadata, and how to write them to GGUF (same keys as llama.cpp's converter);
//  - a tensor table mapping each weight role to its GGUF name, its Hugging Face
//    name, whether the config requires it, and the transform the converter applies
//    (e.g. Llama's Q/K row permutation, Gemma's norm weight + 1).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/weights.h"

namespace muse {

class EncoderWeights;
class GgufFile;
class GgufWriter;
struct MediaEncoders;

enum class HfTransform {
  None,
  PermuteQ,       // rows reordered from rotate_half to interleaved pairs (n_head groups)
  PermuteK,       // same with n_head_kv groups
  NormPlusOne,    // Gemma stores w - 1; GGUF stores w
};

struct TensorSpec {
  TensorView LayerWeights::*layer_member = nullptr;    // per-layer role, or
  TensorView DecoderWeights::*global_member = nullptr; // a global role
  std::string gguf_name;  // "blk.{}.attn_q.weight" ("{}" = layer index) or "token_embd.weight"
  std::string hf_name;    // "model.layers.{}.self_attn.q_proj.weight"
  std::function<bool(const ModelConfig&)> required;    // null = always required
  HfTransform transform = HfTransform::None;
};

// A tensor of a media encoder that lives in the model file itself (architectures
// whose decoder reads image/audio rows straight from a projection, like `muse`):
// the converter copies it from the Hugging Face directory under its GGUF name.
struct EmbeddedTensor {
  std::string gguf_name;
  std::string hf_name;
};

struct ArchSpec {
  std::string gguf_name;                 // general.architecture
  std::vector<std::string> hf_model_types;  // config.json model_type values
  std::function<ModelConfig(const nlohmann::json& config)> from_hf;
  std::function<ModelConfig(const GgufFile& file)> from_gguf;
  std::function<void(const ModelConfig& c, GgufWriter& w)> to_gguf;
  std::vector<TensorSpec> tensors;
  // In-file media encoders (empty for text-only models and for those with an
  // mmproj): their tensors, and their metadata written from config.json (keys
  // under "<arch>.vision." / "<arch>.audio.", which GGUF-to-GGUF conversion copies).
  std::vector<EmbeddedTensor> media_tensors = {};
  std::function<void(const nlohmann::json& config, GgufWriter& w)> media_to_gguf = nullptr;
  // Builds those in-file encoders from the model's own weights (a GGUF model file
  // or a Hugging Face directory); null when the architecture embeds none.
  MediaEncoders (*load_media)(std::shared_ptr<EncoderWeights> weights) = nullptr;
};

const std::vector<const ArchSpec*>& all_archs();
const ArchSpec* find_arch_by_gguf(const std::string& name);
const ArchSpec* find_arch_by_hf(const std::string& model_type);

// Shape (GGUF order: ne[0] innermost) a tensor role has under a config.
std::vector<int64_t> tensor_shape(const TensorSpec& spec, const ModelConfig& c);
// Roles that are vectors (norms, biases, rope factors): always stored as f32.
bool is_vector_role(const TensorSpec& spec);

// Substitutes the layer index for "{}".
std::string layer_name(const std::string& pattern, int64_t layer);

}  // namespace muse
