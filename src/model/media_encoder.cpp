// load_media_encoders: decides which encoders a file or directory holds and
// builds them. The encoders themselves live in vision_*.cpp / audio_*.cpp.
#include "model/media_encoder.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/read_file.h"
#include "model/arch.h"
#include "model/audio_qwen25omni.h"
#include "model/encoder_weights.h"
#include "model/vision_muse_glimmer.h"  // HOOK (Muse Glimmer): encoder by another engineer
#include "model/vision_qwen25.h"
#include "muse/error.h"

namespace muse {
namespace {

namespace fs = std::filesystem;

MediaEncoders load_from_gguf(const std::string& path) {
  std::shared_ptr<EncoderWeights> weights = EncoderWeights::open_gguf(path);
  const GgufFile& g = *weights->gguf();
  const std::string arch = g.get_string_or("general.architecture", "");
  MUSE_CHECK(arch == "clip", path, ": general.architecture is '", arch,
             "', expected 'clip' (an mmproj file)");
  const std::string projector = g.get_string_or("clip.projector_type", "");
  MediaEncoders out;
  if (projector == "qwen2.5o" || projector == "qwen2.5vl_merger") {
    if (g.get_bool_or("clip.has_vision_encoder", false)) {
      out.vision = load_qwen25_vision(weights, qwen25_vision_config_from_gguf(g));
    }
    if (projector == "qwen2.5o" && g.get_bool_or("clip.has_audio_encoder", false)) {
      out.audio = load_qwen25_audio(weights, qwen25_audio_config_from_gguf(g));
    }
    return out;
  }
  if (projector == "muse-glimmer") {  // HOOK (Muse Glimmer)
    out.vision = load_muse_glimmer_vision(weights, muse_glimmer_vision_config_from_gguf(g));
    return out;
  }
  throw Error(str_cat(path, ": unsupported clip.projector_type '", projector, "'"));
}

MediaEncoders load_from_hf_dir(const std::string& dir) {
  const fs::path config_path = fs::path(dir) / "config.json";
  const auto [config, preprocessor] = read_hf_configs(dir);
  const std::string model_type = config.value("model_type", "");

  const nlohmann::json* holder = nullptr;  // the object holding vision_config / audio_config
  if (model_type == "qwen2_5_omni_thinker") {
    holder = &config;
  } else if (model_type == "qwen2_5_omni") {
    MUSE_CHECK(config.contains("thinker_config") && config["thinker_config"].is_object(),
               config_path.string(), ": model_type qwen2_5_omni without a thinker_config");
    holder = &config["thinker_config"];
  } else if (const ArchSpec* arch = find_arch_by_hf(model_type); arch && arch->load_media) {
    return arch->load_media(EncoderWeights::open_hf_dir(dir));  // projections in the model
  } else if (model_type == "muse_glimmer") {  // HOOK (Muse Glimmer)
    MediaEncoders out;
    if (!config.contains("vision_config")) return out;
    out.vision = load_muse_glimmer_vision(EncoderWeights::open_hf_dir(dir),
                                          muse_glimmer_vision_config_from_hf(config, preprocessor));
    return out;
  } else {
    MUSE_CHECK(!config.contains("vision_config") && !config.contains("audio_config"),
               config_path.string(), ": media encoders of model_type '", model_type,
               "' are not supported");
    return {};
  }

  MediaEncoders out;
  const bool has_vision = holder->contains("vision_config");
  const bool has_audio = holder->contains("audio_config");
  if (!has_vision && !has_audio) return out;
  std::shared_ptr<EncoderWeights> weights = EncoderWeights::open_hf_dir(dir);
  if (has_vision) {
    out.vision = load_qwen25_vision(
        weights, qwen25_vision_config_from_hf((*holder)["vision_config"], preprocessor));
  }
  if (has_audio) {
    Qwen25AudioConfig audio = qwen25_audio_config_from_hf((*holder)["audio_config"]);
    if (preprocessor.is_object()) {
      audio.processor.sample_rate =
          preprocessor.value("sampling_rate", audio.processor.sample_rate);
      audio.processor.n_fft = preprocessor.value("n_fft", audio.processor.n_fft);
      audio.processor.hop = preprocessor.value("hop_length", audio.processor.hop);
    }
    out.audio = load_qwen25_audio(weights, audio);
  }
  return out;
}

}  // namespace

MediaEncoders load_media_encoders(const std::string& path) {
  std::error_code ec;
  try {
    if (fs::is_directory(path, ec)) return load_from_hf_dir(path);
    MUSE_CHECK(fs::exists(path, ec), path, ": no such file or directory");
    return load_from_gguf(path);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat(path, ": bad configuration value: ", e.what()));
  }
}

MediaEncoders load_model_media_encoders(const std::string& model_path) {
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) return load_media_encoders(model_path);
  std::shared_ptr<EncoderWeights> weights = EncoderWeights::open_gguf(model_path);
  const ArchSpec* arch =
      find_arch_by_gguf(weights->gguf()->get_string_or("general.architecture", ""));
  if (!arch || !arch->load_media) return {};
  return arch->load_media(std::move(weights));
}

}  // namespace muse
