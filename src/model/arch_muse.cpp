// Muse Nano (GGUF architecture "muse", docs/muse-nano.md): a Llama-style decoder
// (RMSNorm, SwiGLU, rotate_half rotary, GQA, tied embeddings) whose input
// sequence interleaves token embeddings with image-patch and audio-frame rows
// projected straight into the embedding space. The projections are stored in the
// same file (media_muse.h); the placeholder and wrapper token ids in
// muse.media.* keys.
#include <nlohmann/json.hpp>

#include "model/arch_common.h"
#include "model/gguf.h"
#include "model/media_muse.h"
#include "muse/error.h"

namespace muse {
namespace {

constexpr const char* kArch = "muse";

ModelConfig muse_from_hf(const nlohmann::json& j) {
  ModelConfig c = hf_common_config(j, kArch);
  using M = MediaTokenIds;
  read_hf_media_tokens(j,
                       {{"image_token_id", &M::image},
                        {"audio_token_id", &M::audio},
                        {"image_start_token_id", &M::vision_start},
                        {"image_end_token_id", &M::vision_end},
                        {"audio_start_token_id", &M::audio_start},
                        {"audio_end_token_id", &M::audio_end}},
                       c.media_tokens);
  return c;
}

ModelConfig muse_from_gguf(const GgufFile& f) { return gguf_common_config(f, kArch); }

}  // namespace

extern const ArchSpec kArchMuse;
const ArchSpec kArchMuse{kArch,
                         {"muse"},
                         muse_from_hf,
                         muse_from_gguf,
                         gguf_write_common,
                         llama_like_tensors("model."),
                         muse_media_tensors(),
                         muse_media_to_gguf,
                         load_muse_media};

}  // namespace muse
