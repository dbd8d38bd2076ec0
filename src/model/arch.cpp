#include "model/arch.h"

#include "muse/error.h"

namespace muse {

// The one list of supported text architectures.
extern const ArchSpec kArchLlama, kArchQwen2, kArchQwen3, kArchGemma3, kArchMuseGlimmer,
    kArchQwen2VL, kArchQwen25Omni, kArchMuse;

const std::vector<const ArchSpec*>& all_archs() {
  static const std::vector<const ArchSpec*> archs = {
      &kArchLlama,       &kArchQwen2,   &kArchQwen3,     &kArchGemma3,
      &kArchMuseGlimmer, &kArchQwen2VL, &kArchQwen25Omni, &kArchMuse};
  return archs;
}

const ArchSpec* find_arch_by_gguf(const std::string& name) {
  for (const auto* a : all_archs())
    if (a->gguf_name == name) return a;
  return nullptr;
}

const ArchSpec* find_arch_by_hf(const std::string& model_type) {
  for (const auto* a : all_archs())
    for (const auto& t : a->hf_model_types)
      if (t == model_type) return a;
  return nullptr;
}

// Expected shape (GGUF order) of a tensor role.
std::vector<int64_t> tensor_shape(const TensorSpec& s, const ModelConfig& c) {
  using L = LayerWeights;
  using D = DecoderWeights;
  if (s.global_member == &D::tok_embd || s.global_member == &D::output) return {c.n_embd, c.n_vocab};
  if (s.global_member == &D::output_norm) return {c.n_embd};
  if (s.global_member == &D::rope_freqs) return {c.rope_dim / 2};
  auto m = s.layer_member;
  if (m == &L::attn_norm || m == &L::ffn_norm || m == &L::post_attn_norm || m == &L::post_ffn_norm)
    return {c.n_embd};
  if (m == &L::wq || m == &L::attn_gate) return {c.n_embd, c.q_dim()};
  if (m == &L::wk || m == &L::wv) return {c.n_embd, c.kv_dim()};
  if (m == &L::wo) return {c.q_dim(), c.n_embd};
  if (m == &L::bq) return {c.q_dim()};
  if (m == &L::bk || m == &L::bv) return {c.kv_dim()};
  if (m == &L::q_norm || m == &L::k_norm) return {c.head_dim};
  if (m == &L::ffn_gate || m == &L::ffn_up) return {c.n_embd, c.n_ff};
  if (m == &L::ffn_down) return {c.n_ff, c.n_embd};
  throw Error("internal: tensor role without a shape rule: " + s.gguf_name);
}

bool is_vector_role(const TensorSpec& s) {
  using L = LayerWeights;
  auto m = s.layer_member;
  return s.global_member == &DecoderWeights::output_norm ||
         s.global_member == &DecoderWeights::rope_freqs || m == &L::attn_norm ||
         m == &L::ffn_norm || m == &L::post_attn_norm || m == &L::post_ffn_norm || m == &L::bq ||
         m == &L::bk || m == &L::bv || m == &L::q_norm || m == &L::k_norm;
}


std::string layer_name(const std::string& pattern, int64_t layer) {
  std::string out = pattern;
  const auto pos = out.find("{}");
  if (pos != std::string::npos) out.replace(pos, 2, std::to_string(layer));
  return out;
}

}  // namespace muse
