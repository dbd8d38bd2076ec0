// Qwen2.5-Omni thinker (and Qwen2-VL style) text decoder: Qwen2 layers (q/k/v
// biases, rotate_half rotary) with multimodal rotary positions (M-RoPE: the
// frequency pairs are split into t/h/w sections, each rotated by its own
// position row). GGUF architecture "qwen2vl" as llama.cpp's converter writes it
// (rope.dimension_sections = the pair counts padded to four entries).
#include <nlohmann/json.hpp>

#include "model/arch_common.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

constexpr const char* kArch = "qwen2vl";

// The thinker's own config: the whole model's config.json ("qwen2_5_omni") nests
// it in thinker_config.
const nlohmann::json& thinker_config(const nlohmann::json& root) {
  if (root.value("model_type", std::string()) == "qwen2_5_omni") {
    auto it = root.find("thinker_config");
    MUSE_CHECK(it != root.end() && it->is_object(),
               "qwen2_5_omni config.json: thinker_config is missing");
    return *it;
  }
  return root;
}

ModelConfig qwen2vl_from_hf(const nlohmann::json& root) {
  const nlohmann::json& th = thinker_config(root);
  auto tc = th.find("text_config");
  MUSE_CHECK(tc != th.end() && tc->is_object(), "qwen2.5-omni config.json: text_config is missing");
  ModelConfig c = hf_common_config(*tc, kArch);
  c.qkv_bias = true;
  const nlohmann::json* rope = nullptr;
  for (const char* key : {"rope_parameters", "rope_scaling"})
    if (auto it = tc->find(key); it != tc->end() && it->is_object()) rope = &*it;
  MUSE_CHECK(rope && rope->contains("mrope_section") && (*rope)["mrope_section"].is_array(),
             "qwen2.5-omni config.json: text_config.rope_parameters.mrope_section is missing");
  for (const auto& s : (*rope)["mrope_section"]) {
    MUSE_CHECK(s.is_number_integer(), "qwen2.5-omni config.json: mrope_section must hold integers");
    c.mrope_sections.push_back(s.get<int64_t>());
  }
  using M = MediaTokenIds;
  read_hf_media_tokens(th,
                       {{"image_token_index", &M::image},
                        {"audio_token_index", &M::audio},
                        {"video_token_index", &M::video},
                        {"vision_start_token_id", &M::vision_start},
                        {"vision_end_token_id", &M::vision_end},
                        {"audio_start_token_id", &M::audio_start},
                        {"audio_end_token_id", &M::audio_end}},
                       c.media_tokens);
  auto& m = c.media_tokens;
  // The HF config names no vision end id; the vocabulary puts it right after the start.
  if (m.vision_end < 0 && m.vision_start >= 0) m.vision_end = m.vision_start + 1;
  return c;
}

ModelConfig qwen2vl_from_gguf(const GgufFile& f) {
  ModelConfig c = gguf_common_config(f, kArch);
  c.qkv_bias = true;
  const GgufValue* sections = f.find(std::string(kArch) + ".rope.dimension_sections");
  MUSE_CHECK(sections, f.path(), ": ", kArch, ".rope.dimension_sections is required");
  for (int64_t s : sections->as_ints()) c.mrope_sections.push_back(s);
  // llama.cpp pads the three sections with a fourth (unused) zero.
  while (c.mrope_sections.size() > 3 && c.mrope_sections.back() == 0) c.mrope_sections.pop_back();
  return c;
}

void qwen2vl_to_gguf(const ModelConfig& c, GgufWriter& w) {
  gguf_write_common(c, w);
  std::vector<int64_t> s = c.mrope_sections;
  s.resize(4, 0);
  w.set(std::string(kArch) + ".rope.dimension_sections",
        GgufValue::i32_array(std::vector<int32_t>(s.begin(), s.end())));
}

}  // namespace

// Two Hugging Face layouts of one architecture: the thinker alone (tensors under
// "model.") and the whole Omni model (under "thinker.model.").
extern const ArchSpec kArchQwen2VL, kArchQwen25Omni;
const ArchSpec kArchQwen2VL{kArch, {"qwen2_5_omni_thinker"}, qwen2vl_from_hf, qwen2vl_from_gguf,
                            qwen2vl_to_gguf, llama_like_tensors("model.")};
const ArchSpec kArchQwen25Omni{kArch, {"qwen2_5_omni"}, qwen2vl_from_hf, qwen2vl_from_gguf,
                               qwen2vl_to_gguf,
                               llama_like_tensors("thinker.model.", "thinker.lm_head.weight")};

}  // namespace muse
