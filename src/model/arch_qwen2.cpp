// Qwen2 / Qwen2.5: Llama layout with q/k/v biases and rotate_half rotary.
#include <nlohmann/json.hpp>

#include "model/arch_common.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

void reject_rope_scaling(const nlohmann::json& j, const char* arch) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_object()) continue;
    const std::string type = it->value("rope_type", it->value("type", std::string("default")));
    MUSE_CHECK(type == "default", arch, " config.json: rope type '", type,
               "' is not supported yet");
  }
}

ModelConfig qwen2_from_hf(const nlohmann::json& j) {
  reject_rope_scaling(j, "qwen2");
  ModelConfig c = hf_common_config(j, "qwen2");
  c.qkv_bias = true;
  return c;
}

ModelConfig qwen2_from_gguf(const GgufFile& f) {
  ModelConfig c = gguf_common_config(f, "qwen2");
  c.qkv_bias = true;
  return c;
}

ModelConfig qwen3_from_hf(const nlohmann::json& j) {
  reject_rope_scaling(j, "qwen3");
  ModelConfig c = hf_common_config(j, "qwen3");
  c.qkv_bias = j.value("attention_bias", false);
  c.qk_norm = true;
  return c;
}

ModelConfig qwen3_from_gguf(const GgufFile& f) {
  ModelConfig c = gguf_common_config(f, "qwen3");
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = true;
  return c;
}

std::vector<TensorSpec> qwen3_tensors() {
  auto t = llama_like_tensors("model.");
  t.push_back({&LayerWeights::q_norm, nullptr, "blk.{}.attn_q_norm.weight",
               "model.layers.{}.self_attn.q_norm.weight", nullptr});
  t.push_back({&LayerWeights::k_norm, nullptr, "blk.{}.attn_k_norm.weight",
               "model.layers.{}.self_attn.k_norm.weight", nullptr});
  return t;
}

}  // namespace

extern const ArchSpec kArchQwen2, kArchQwen3;
const ArchSpec kArchQwen2{"qwen2", {"qwen2"}, qwen2_from_hf, qwen2_from_gguf, gguf_write_common,
                          llama_like_tensors("model.")};
const ArchSpec kArchQwen3{"qwen3", {"qwen3"}, qwen3_from_hf, qwen3_from_gguf, gguf_write_common,
                          qwen3_tensors()};

}  // namespace muse
