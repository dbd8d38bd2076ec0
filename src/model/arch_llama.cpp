// Llama 2/3 (and Llama-architecture models). GGUF stores Q/K rows permuted to
// interleaved rotary pairs, as llama.cpp's converter does; Llama 3 rope scaling
// is stored as the `rope_freqs.weight` tensor of per-pair frequency divisors.
#include <nlohmann/json.hpp>

#include "model/arch_common.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

ModelConfig llama_from_hf(const nlohmann::json& j) {
  ModelConfig c = hf_common_config(j, "llama");
  c.rope_layout = RopeLayout::Interleaved;  // the HF loader permutes Q/K rows to match
  c.qkv_bias = j.value("attention_bias", false);
  const nlohmann::json* rp = nullptr;
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) rp = &*it;
  if (auto it = j.find("rope_scaling"); !rp && it != j.end() && it->is_object()) rp = &*it;
  if (rp) {
    std::string type = rp->value("rope_type", rp->value("type", std::string("default")));
    if (type == "llama3") {
      c.rope_freq_factors = llama3_rope_factors(
          c.rope_dim, c.layers[0].rope_base, rp->value("factor", 8.0f),
          rp->value("low_freq_factor", 1.0f), rp->value("high_freq_factor", 4.0f),
          rp->value("original_max_position_embeddings", 8192.0f));
    } else if (type == "linear") {
      for (auto& l : c.layers) l.rope_freq_scale = 1.0f / rp->value("factor", 1.0f);
    } else if (type != "default") {
      throw Error(str_cat("llama config.json: rope type '", type, "' is not supported yet"));
    }
  }
  return c;
}

ModelConfig llama_from_gguf(const GgufFile& f) {
  ModelConfig c = gguf_common_config(f, "llama");
  c.rope_layout = RopeLayout::Interleaved;
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  if (f.get_string_or("llama.rope.scaling.type", "none") == "linear")
    for (auto& l : c.layers)
      l.rope_freq_scale = 1.0f / static_cast<float>(f.get_float_or("llama.rope.scaling.factor", 1));
  return c;
}

void llama_to_gguf(const ModelConfig& c, GgufWriter& w) {
  gguf_write_common(c, w);
  if (!c.layers.empty() && c.layers[0].rope_freq_scale != 1.0f) {
    w.set("llama.rope.scaling.type", GgufValue::string("linear"));
    w.set("llama.rope.scaling.factor", GgufValue::f32(1.0f / c.layers[0].rope_freq_scale));
  }
}

std::vector<TensorSpec> llama_tensors() {
  auto t = llama_like_tensors("model.");
  for (auto& s : t) {
    if (s.layer_member == &LayerWeights::wq || s.layer_member == &LayerWeights::bq)
      s.transform = HfTransform::PermuteQ;
    if (s.layer_member == &LayerWeights::wk || s.layer_member == &LayerWeights::bk)
      s.transform = HfTransform::PermuteK;
  }
  return t;
}

}  // namespace

extern const ArchSpec kArchLlama;
const ArchSpec kArchLlama{"llama", {"llama"}, llama_from_hf, llama_from_gguf, llama_to_gguf,
                          llama_tensors()};

}  // namespace muse
