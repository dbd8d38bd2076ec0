// Muse Glimmer text decoder (Meta's open Muse model), text part of
// MuseGlimmerForConditionalGeneration. See docs/muse-glimmer.md for the math:
// weightless RMS norm of the embeddings, gated attention output, weightless QK
// RMS-norm with the attention scale multiplied by qk_scale_factor, NoPE on global
// layers (layer_rope_theta 0), sliding-window local layers, Gemma-style post-norms
// (eps post_norm_eps), and a logit multiplier inside a tanh soft cap.
#include <nlohmann/json.hpp>

#include "model/arch_common.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

const char* kArch = "muse-glimmer";

void finish_common(ModelConfig& c) {
  c.rope_layout = RopeLayout::Neox;
  c.qk_norm_unweighted = true;
  c.attn_output_gate = true;
  c.post_attn_norm = true;
  c.post_ffn_norm = true;
  c.ffn_act = FfnActivation::Silu;
  c.embed_norm = true;
}

ModelConfig glimmer_from_hf(const nlohmann::json& root) {
  MUSE_CHECK(root.contains("text_config") && root["text_config"].is_object(),
             "muse_glimmer config.json: text_config is missing");
  const auto& j = root["text_config"];
  ModelConfig c = hf_common_config(j, kArch);
  read_hf_media_tokens(root,
                       {{"image_token_id", &MediaTokenIds::image},
                        {"video_token_id", &MediaTokenIds::video}},
                       c.media_tokens);
  finish_common(c);
  c.post_norm_eps = j.value("post_norm_eps", c.norm_eps);
  c.sliding_window = j.value("sliding_window", int64_t{0});
  c.qk_norm_scale = j.value("qk_scale_factor", 1.0f);
  c.logit_scale = j.value("output_multiplier", 1.0f);
  if (auto sc = j.find("final_logit_softcapping"); sc != j.end() && sc->is_number())
    c.final_logit_softcap = sc->get<float>();
  auto types = j.find("layer_types");
  auto thetas = j.find("layer_rope_theta");
  MUSE_CHECK(types != j.end() && types->is_array() &&
                 static_cast<int64_t>(types->size()) == c.n_layer,
             "muse_glimmer config.json: layer_types must list every layer");
  for (int64_t i = 0; i < c.n_layer; ++i) {
    auto& l = c.layers[static_cast<size_t>(i)];
    l.sliding = (*types)[static_cast<size_t>(i)] == "sliding_attention";
    if (thetas != j.end() && thetas->is_array()) {
      MUSE_CHECK(static_cast<int64_t>(thetas->size()) == c.n_layer,
                 "muse_glimmer config.json: layer_rope_theta must list every layer");
      const float t = (*thetas)[static_cast<size_t>(i)].get<float>();
      l.use_rope = t > 0;
      if (l.use_rope) l.rope_base = t;
    }
  }
  return c;
}

ModelConfig glimmer_from_gguf(const GgufFile& f) {
  const std::string p = std::string(kArch) + ".";
  ModelConfig c = gguf_common_config(f, kArch);
  finish_common(c);
  c.post_norm_eps = static_cast<float>(f.get_float(p + "attention.post_norm_epsilon"));
  c.sliding_window = f.get_int(p + "attention.sliding_window");
  c.qk_norm_scale = static_cast<float>(f.get_float(p + "attention.qk_norm_scale"));
  c.logit_scale = static_cast<float>(f.get_float_or(p + "logit_scale", 1.0));
  c.final_logit_softcap = static_cast<float>(f.get_float_or(p + "final_logit_softcapping", 0.0));
  const GgufValue* sliding = f.find(p + "attention.layer_sliding");
  const GgufValue* bases = f.find(p + "rope.layer_freq_base");
  MUSE_CHECK(sliding && bases, f.path(), ": ", p,
             "attention.layer_sliding and rope.layer_freq_base are required");
  const auto s = sliding->as_ints();
  const auto b = bases->as_floats();
  MUSE_CHECK(static_cast<int64_t>(s.size()) == c.n_layer && static_cast<int64_t>(b.size()) == c.n_layer,
             f.path(), ": per-layer arrays must have ", c.n_layer, " entries");
  for (int64_t i = 0; i < c.n_layer; ++i) {
    auto& l = c.layers[static_cast<size_t>(i)];
    l.sliding = s[static_cast<size_t>(i)] != 0;
    l.use_rope = b[static_cast<size_t>(i)] > 0;
    if (l.use_rope) l.rope_base = static_cast<float>(b[static_cast<size_t>(i)]);
  }
  return c;
}

void glimmer_to_gguf(const ModelConfig& c, GgufWriter& w) {
  const std::string p = std::string(kArch) + ".";
  gguf_write_common(c, w);
  w.set(p + "attention.post_norm_epsilon", GgufValue::f32(c.post_norm_eps));
  w.set(p + "attention.sliding_window", GgufValue::u32(static_cast<uint32_t>(c.sliding_window)));
  w.set(p + "attention.qk_norm_scale", GgufValue::f32(c.qk_norm_scale));
  w.set(p + "logit_scale", GgufValue::f32(c.logit_scale));
  if (c.final_logit_softcap > 0)
    w.set(p + "final_logit_softcapping", GgufValue::f32(c.final_logit_softcap));
  std::vector<GgufValue> sliding;
  std::vector<float> bases;
  for (const auto& l : c.layers) {
    sliding.push_back(GgufValue::boolean(l.sliding));
    bases.push_back(l.use_rope ? l.rope_base : 0.0f);
  }
  w.set(p + "attention.layer_sliding", GgufValue::array(GgufType::BOOL, std::move(sliding)));
  w.set(p + "rope.layer_freq_base", GgufValue::f32_array(bases));
}

std::vector<TensorSpec> glimmer_tensors() {
  // Layer norms are stored as w - 1 by Hugging Face (x * (1 + w)); the final norm is plain.
  auto t = post_norm_tensors("model.language_model.", HfTransform::None);
  t.push_back({&LayerWeights::attn_gate, nullptr, "blk.{}.attn_gate.weight",
               "model.language_model.layers.{}.self_attn.gate_proj.weight", nullptr});
  return t;
}

}  // namespace

extern const ArchSpec kArchMuseGlimmer;
const ArchSpec kArchMuseGlimmer{"muse-glimmer", {"muse_glimmer"}, glimmer_from_hf, glimmer_from_gguf,
                                glimmer_to_gguf, glimmer_tensors()};

}  // namespace muse
