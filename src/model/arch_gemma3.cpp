// Gemma 3 text decoder: embeddings scaled by sqrt(hidden), four norms per layer
// (stored as w - 1 by Hugging Face, as w in GGUF), per-head q/k norms, GELU (tanh)
// MLP, interleaved sliding-window (local rope base) and global layers.
#include <cmath>
#include <nlohmann/json.hpp>

#include "model/arch_common.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

constexpr int64_t kDefaultPattern = 6;  // every 6th layer is global (llama.cpp's default)
constexpr float kDefaultLocalBase = 10000.0f;

float rope_base_of(const nlohmann::json& rp, const char* layer_type, float def, float* scale) {
  auto it = rp.find(layer_type);
  if (it == rp.end() || !it->is_object()) return def;
  const std::string type = it->value("rope_type", std::string("default"));
  if (type == "linear") {
    *scale = 1.0f / it->value("factor", 1.0f);
  } else {
    MUSE_CHECK(type == "default", "gemma3 config.json: rope type '", type,
               "' is not supported yet");
  }
  return it->value("rope_theta", def);
}

void finish_common(ModelConfig& c) {
  c.rope_layout = RopeLayout::Neox;
  c.qk_norm = true;
  c.post_attn_norm = true;
  c.post_ffn_norm = true;
  c.ffn_act = FfnActivation::GeluTanh;
  c.embed_scale = std::sqrt(static_cast<float>(c.n_embd));
}

ModelConfig gemma3_from_hf(const nlohmann::json& j) {
  ModelConfig c = hf_common_config(j, "gemma3");
  finish_common(c);
  c.tied_embeddings = j.value("tie_word_embeddings", true);
  c.sliding_window = j.value("sliding_window", int64_t{0});
  c.attn_scale = 1.0f / std::sqrt(j.value("query_pre_attn_scalar", static_cast<float>(c.head_dim)));
  if (auto sc = j.find("final_logit_softcapping"); sc != j.end() && sc->is_number())
    c.final_logit_softcap = sc->get<float>();
  if (auto sc = j.find("attn_logit_softcapping"); sc != j.end() && sc->is_number())
    throw Error("gemma3 config.json: attn_logit_softcapping is not supported");
  float global_base = hf_rope_theta(j, 1000000.0f), local_base = kDefaultLocalBase;
  float global_scale = 1.0f, local_scale = 1.0f;
  if (auto rp = j.find("rope_parameters"); rp != j.end() && rp->is_object()) {
    global_base = rope_base_of(*rp, "full_attention", global_base, &global_scale);
    local_base = rope_base_of(*rp, "sliding_attention", local_base, &local_scale);
  }
  local_base = j.value("rope_local_base_freq", local_base);
  auto types = j.find("layer_types");
  const int64_t pattern = j.value("sliding_window_pattern", j.value("_sliding_window_pattern", kDefaultPattern));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    bool sliding;
    if (types != j.end() && types->is_array()) {
      MUSE_CHECK(static_cast<int64_t>(types->size()) == c.n_layer,
                 "gemma3 config.json: layer_types has ", types->size(), " entries");
      sliding = (*types)[static_cast<size_t>(i)] == "sliding_attention";
    } else {
      sliding = pattern > 0 && (i + 1) % pattern != 0;
    }
    auto& l = c.layers[static_cast<size_t>(i)];
    l.sliding = sliding;
    l.rope_base = sliding ? local_base : global_base;
    l.rope_freq_scale = sliding ? local_scale : global_scale;
  }
  return c;
}

ModelConfig gemma3_from_gguf(const GgufFile& f) {
  ModelConfig c = gguf_common_config(f, "gemma3");
  finish_common(c);
  c.sliding_window = f.get_int_or("gemma3.attention.sliding_window", 0);
  c.final_logit_softcap = static_cast<float>(f.get_float_or("gemma3.final_logit_softcapping", 0));
  const int64_t pattern = f.get_int_or("gemma3.attention.sliding_window_pattern", kDefaultPattern);
  const float local = static_cast<float>(f.get_float_or("gemma3.rope.freq_base_swa", kDefaultLocalBase));
  float global_scale = 1.0f;
  if (f.get_string_or("gemma3.rope.scaling.type", "none") == "linear")
    global_scale = 1.0f / static_cast<float>(f.get_float_or("gemma3.rope.scaling.factor", 1));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    auto& l = c.layers[static_cast<size_t>(i)];
    l.sliding = pattern > 0 && (i + 1) % pattern != 0;
    if (l.sliding) {
      l.rope_base = local;
    } else {
      l.rope_freq_scale = global_scale;
    }
  }
  return c;
}

void gemma3_to_gguf(const ModelConfig& c, GgufWriter& w) {
  ModelConfig g = c;
  // rope.freq_base holds the global layers' base; the local base has its own key.
  float local = kDefaultLocalBase;
  int64_t pattern = 0;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const auto& l = c.layers[static_cast<size_t>(i)];
    if (l.sliding) local = l.rope_base; else g.layers[0].rope_base = l.rope_base;
    if (!l.sliding && pattern == 0) pattern = i + 1;
  }
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const bool expect_sliding = pattern > 0 ? (i + 1) % pattern != 0 : true;
    MUSE_CHECK(c.layers[static_cast<size_t>(i)].sliding == expect_sliding,
               "gemma3: layer pattern is not periodic and cannot be written to GGUF");
  }
  gguf_write_common(g, w);
  w.set("gemma3.attention.sliding_window", GgufValue::u32(static_cast<uint32_t>(c.sliding_window)));
  w.set("gemma3.rope.freq_base_swa", GgufValue::f32(local));
  w.set("gemma3.attention.scale", GgufValue::f32(c.softmax_scale()));
  if (pattern != kDefaultPattern && pattern > 0)
    w.set("gemma3.attention.sliding_window_pattern", GgufValue::u32(static_cast<uint32_t>(pattern)));
  if (c.final_logit_softcap > 0)
    w.set("gemma3.final_logit_softcapping", GgufValue::f32(c.final_logit_softcap));
  for (const auto& l : c.layers)
    if (!l.sliding && l.rope_freq_scale != 1.0f) {
      w.set("gemma3.rope.scaling.type", GgufValue::string("linear"));
      w.set("gemma3.rope.scaling.factor", GgufValue::f32(1.0f / l.rope_freq_scale));
      break;
    }
}

std::vector<TensorSpec> gemma3_tensors() {
  auto t = post_norm_tensors("model.", HfTransform::NormPlusOne);
  const std::string b = "model.layers.{}.";
  t.push_back({&LayerWeights::q_norm, nullptr, "blk.{}.attn_q_norm.weight",
               b + "self_attn.q_norm.weight", nullptr, HfTransform::NormPlusOne});
  t.push_back({&LayerWeights::k_norm, nullptr, "blk.{}.attn_k_norm.weight",
               b + "self_attn.k_norm.weight", nullptr, HfTransform::NormPlusOne});
  return t;
}

}  // namespace

extern const ArchSpec kArchGemma3;
const ArchSpec kArchGemma3{"gemma3", {"gemma3_text"}, gemma3_from_hf, gemma3_from_gguf,
                           gemma3_to_gguf, gemma3_tensors()};

}  // namespace muse
