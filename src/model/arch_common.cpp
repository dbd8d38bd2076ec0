#include "model/arch_common.h"

#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

int64_t req_int(const nlohmann::json& j, const char* key, const std::string& arch) {
  auto it = j.find(key);
  MUSE_CHECK(it != j.end() && it->is_number_integer(), arch, " config.json: '", key,
             "' is missing or not an integer");
  return it->get<int64_t>();
}

int64_t opt_int(const nlohmann::json& j, const char* key, int64_t def) {
  auto it = j.find(key);
  return (it != j.end() && it->is_number_integer()) ? it->get<int64_t>() : def;
}

double opt_num(const nlohmann::json& j, const char* key, double def) {
  auto it = j.find(key);
  return (it != j.end() && it->is_number()) ? it->get<double>() : def;
}

}  // namespace

void read_hf_media_tokens(const nlohmann::json& j, std::initializer_list<MediaTokenKey> keys,
                          MediaTokenIds& out) {
  for (const auto& [key, member] : keys)
    if (auto it = j.find(key); it != j.end() && it->is_number_integer())
      out.*member = it->get<int32_t>();
}

float hf_rope_theta(const nlohmann::json& j, float fallback) {
  if (auto rp = j.find("rope_parameters"); rp != j.end() && rp->is_object()) {
    if (auto t = rp->find("rope_theta"); t != rp->end() && t->is_number()) return t->get<float>();
  }
  return static_cast<float>(opt_num(j, "rope_theta", fallback));
}

ModelConfig hf_common_config(const nlohmann::json& j, const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.n_vocab = req_int(j, "vocab_size", arch);
  c.n_embd = req_int(j, "hidden_size", arch);
  c.n_layer = req_int(j, "num_hidden_layers", arch);
  c.n_head = req_int(j, "num_attention_heads", arch);
  c.n_head_kv = opt_int(j, "num_key_value_heads", c.n_head);
  c.n_ff = req_int(j, "intermediate_size", arch);
  c.n_ctx_train = opt_int(j, "max_position_embeddings", 4096);
  MUSE_CHECK(c.n_head > 0, arch, " config.json: num_attention_heads must be positive");
  c.head_dim = opt_int(j, "head_dim", c.n_embd / c.n_head);
  c.rope_dim = c.head_dim;
  c.norm_eps = static_cast<float>(opt_num(j, "rms_norm_eps", 1e-6));
  c.post_norm_eps = c.norm_eps;
  c.tied_embeddings = j.value("tie_word_embeddings", false);
  const float theta = hf_rope_theta(j, 10000.0f);
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 4096, arch, " config.json: bad num_hidden_layers");
  c.layers.assign(static_cast<size_t>(c.n_layer), LayerConfig{false, true, theta});
  return c;
}

const std::vector<std::pair<const char*, int32_t MediaTokenIds::*>>& media_token_keys() {
  using M = MediaTokenIds;
  static const std::vector<std::pair<const char*, int32_t M::*>> keys = {
      {"image_token_id", &M::image},
      {"audio_token_id", &M::audio},
      {"video_token_id", &M::video},
      {"vision_start_token_id", &M::vision_start},
      {"vision_end_token_id", &M::vision_end},
      {"audio_start_token_id", &M::audio_start},
      {"audio_end_token_id", &M::audio_end}};
  return keys;
}

ModelConfig gguf_common_config(const GgufFile& f, const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  const std::string p = arch + ".";
  c.n_embd = f.get_int(p + "embedding_length");
  c.n_layer = f.get_int(p + "block_count");
  c.n_ff = f.get_int(p + "feed_forward_length");
  c.n_head = f.get_int(p + "attention.head_count");
  c.n_head_kv = f.get_int_or(p + "attention.head_count_kv", c.n_head);
  c.n_ctx_train = f.get_int_or(p + "context_length", 4096);
  MUSE_CHECK(c.n_head > 0, f.path(), ": ", p, "attention.head_count must be positive");
  c.head_dim = f.get_int_or(p + "attention.key_length", c.n_embd / c.n_head);
  c.rope_dim = f.get_int_or(p + "rope.dimension_count", c.head_dim);
  c.norm_eps = static_cast<float>(f.get_float_or(p + "attention.layer_norm_rms_epsilon", 1e-5));
  c.post_norm_eps = c.norm_eps;
  c.attn_scale = static_cast<float>(f.get_float_or(p + "attention.scale", 0.0));
  const float base = static_cast<float>(f.get_float_or(p + "rope.freq_base", 10000.0));
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 4096, f.path(), ": bad ", p, "block_count ", c.n_layer);
  c.layers.assign(static_cast<size_t>(c.n_layer), LayerConfig{false, true, base});
  for (const auto& [key, member] : media_token_keys())
    c.media_tokens.*member = static_cast<int32_t>(f.get_int_or(p + "media." + key, -1));
  // Vocabulary size: explicit key, else the tokenizer's token list, else the embedding rows.
  if (const auto* v = f.find(p + "vocab_size")) {
    c.n_vocab = v->as_i64();
  } else if (const auto* t = f.find("tokenizer.ggml.tokens")) {
    c.n_vocab = static_cast<int64_t>(t->array_size());
  } else if (const auto* e = f.find_tensor("token_embd.weight")) {
    c.n_vocab = e->view.ne[1];
  }
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  return c;
}

void gguf_write_common(const ModelConfig& c, GgufWriter& w) {
  const std::string p = c.arch + ".";
  w.set("general.architecture", GgufValue::string(c.arch));
  w.set(p + "context_length", GgufValue::u32(static_cast<uint32_t>(c.n_ctx_train)));
  w.set(p + "embedding_length", GgufValue::u32(static_cast<uint32_t>(c.n_embd)));
  w.set(p + "block_count", GgufValue::u32(static_cast<uint32_t>(c.n_layer)));
  w.set(p + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(c.n_ff)));
  w.set(p + "attention.head_count", GgufValue::u32(static_cast<uint32_t>(c.n_head)));
  w.set(p + "attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(c.n_head_kv)));
  w.set(p + "rope.freq_base", GgufValue::f32(c.layers.empty() ? 10000.0f : c.layers[0].rope_base));
  w.set(p + "attention.layer_norm_rms_epsilon", GgufValue::f32(c.norm_eps));
  w.set(p + "attention.key_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
  w.set(p + "attention.value_length", GgufValue::u32(static_cast<uint32_t>(c.head_dim)));
  w.set(p + "vocab_size", GgufValue::u32(static_cast<uint32_t>(c.n_vocab)));
  w.set(p + "rope.dimension_count", GgufValue::u32(static_cast<uint32_t>(c.rope_dim)));
  // Media placeholder ids (Muse's own keys: llama.cpp finds them by token text,
  // which a file without a vocabulary cannot offer).
  for (const auto& [key, member] : media_token_keys())
    if (c.media_tokens.*member >= 0)
      w.set(p + "media." + key, GgufValue::i32(c.media_tokens.*member));
}

bool config_untied(const ModelConfig& c) { return !c.tied_embeddings; }

std::vector<TensorSpec> llama_like_tensors(const std::string& hf, const std::string& lm_head) {
  using L = LayerWeights;
  using D = DecoderWeights;
  const std::string b = hf + "layers.{}.";
  auto bias = [](const ModelConfig& c) { return c.qkv_bias; };
  return {
      {nullptr, &D::tok_embd, "token_embd.weight", hf + "embed_tokens.weight", nullptr},
      {nullptr, &D::output_norm, "output_norm.weight", hf + "norm.weight", nullptr},
      {nullptr, &D::output, "output.weight", lm_head, config_untied},
      {&L::attn_norm, nullptr, "blk.{}.attn_norm.weight", b + "input_layernorm.weight", nullptr},
      {&L::wq, nullptr, "blk.{}.attn_q.weight", b + "self_attn.q_proj.weight", nullptr},
      {&L::wk, nullptr, "blk.{}.attn_k.weight", b + "self_attn.k_proj.weight", nullptr},
      {&L::wv, nullptr, "blk.{}.attn_v.weight", b + "self_attn.v_proj.weight", nullptr},
      {&L::wo, nullptr, "blk.{}.attn_output.weight", b + "self_attn.o_proj.weight", nullptr},
      {&L::bq, nullptr, "blk.{}.attn_q.bias", b + "self_attn.q_proj.bias", bias},
      {&L::bk, nullptr, "blk.{}.attn_k.bias", b + "self_attn.k_proj.bias", bias},
      {&L::bv, nullptr, "blk.{}.attn_v.bias", b + "self_attn.v_proj.bias", bias},
      {&L::ffn_norm, nullptr, "blk.{}.ffn_norm.weight", b + "post_attention_layernorm.weight",
       nullptr},
      {&L::ffn_gate, nullptr, "blk.{}.ffn_gate.weight", b + "mlp.gate_proj.weight", nullptr},
      {&L::ffn_up, nullptr, "blk.{}.ffn_up.weight", b + "mlp.up_proj.weight", nullptr},
      {&L::ffn_down, nullptr, "blk.{}.ffn_down.weight", b + "mlp.down_proj.weight", nullptr},
  };
}

std::vector<TensorSpec> post_norm_tensors(const std::string& hf, HfTransform final_norm) {
  using L = LayerWeights;
  using D = DecoderWeights;
  const std::string b = hf + "layers.{}.";
  const auto plus1 = HfTransform::NormPlusOne;
  return {
      {nullptr, &D::tok_embd, "token_embd.weight", hf + "embed_tokens.weight", nullptr},
      {nullptr, &D::output_norm, "output_norm.weight", hf + "norm.weight", nullptr, final_norm},
      {nullptr, &D::output, "output.weight", "lm_head.weight", config_untied},
      {&L::attn_norm, nullptr, "blk.{}.attn_norm.weight", b + "input_layernorm.weight", nullptr, plus1},
      {&L::wq, nullptr, "blk.{}.attn_q.weight", b + "self_attn.q_proj.weight", nullptr},
      {&L::wk, nullptr, "blk.{}.attn_k.weight", b + "self_attn.k_proj.weight", nullptr},
      {&L::wv, nullptr, "blk.{}.attn_v.weight", b + "self_attn.v_proj.weight", nullptr},
      {&L::wo, nullptr, "blk.{}.attn_output.weight", b + "self_attn.o_proj.weight", nullptr},
      {&L::post_attn_norm, nullptr, "blk.{}.post_attention_norm.weight",
       b + "post_attention_layernorm.weight", nullptr, plus1},
      {&L::ffn_norm, nullptr, "blk.{}.ffn_norm.weight", b + "pre_feedforward_layernorm.weight",
       nullptr, plus1},
      {&L::ffn_gate, nullptr, "blk.{}.ffn_gate.weight", b + "mlp.gate_proj.weight", nullptr},
      {&L::ffn_up, nullptr, "blk.{}.ffn_up.weight", b + "mlp.up_proj.weight", nullptr},
      {&L::ffn_down, nullptr, "blk.{}.ffn_down.weight", b + "mlp.down_proj.weight", nullptr},
      {&L::post_ffn_norm, nullptr, "blk.{}.post_ffw_norm.weight",
       b + "post_feedforward_layernorm.weight", nullptr, plus1},
  };
}

}  // namespace muse
