// `muse debug media`: runs the media front end on one file and writes the processor
// outputs (the tensors the Hugging Face processors produce) to a safetensors file.
//   --image FILE --processor qwen2vl|muse-glimmer -> pixel_values F32 [n, patch_dim],
//                                                    image_grid_thw I32 [1, 3]
//   --audio FILE --mel-bins 80|128 [--pad-30s]   -> input_features F32 [mel, frames],
//                                                    mask I32 [frames] (with --pad-30s)
#include <fstream>
#include <iterator>

#include "cli/commands.h"
#include "media/audio.h"
#include "media/image.h"
#include "model/safetensors.h"
#include "muse/error.h"

namespace muse::cli {
namespace {

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MUSE_CHECK(f, path, ": cannot open");
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string extension(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  return dot == std::string::npos ? "" : path.substr(dot + 1);
}

}  // namespace

// `app` is the `debug media` subcommand (main.cpp creates it, as for `debug logits`).
Runner add_debug_media(CLI::App& app) {
  struct Opts {
    std::string image, audio, processor = "qwen2vl", out;
    int64_t mel_bins = 128;
    bool pad_30s = false;
  };
  auto o = std::make_shared<Opts>();
  auto* image = app.add_option("--image", o->image, "Image file (PNG, JPEG, WebP, GIF)");
  auto* audio = app.add_option("--audio", o->audio, "Audio file (WAV, FLAC, OGG, MP3)");
  image->excludes(audio);
  app.add_option("--processor", o->processor, "Image processor")
      ->check(CLI::IsMember({"qwen2vl", "muse-glimmer"}));
  app.add_option("--mel-bins", o->mel_bins, "Mel bins for audio")->check(CLI::IsMember({80, 128}));
  app.add_flag("--pad-30s", o->pad_30s, "Pad audio to Whisper's 30 s window and write the mask");
  app.add_option("--out", o->out, "Output safetensors file")->required();
  return [o] {
    MUSE_CHECK(!o->image.empty() || !o->audio.empty(), "debug media: give --image or --audio");
    SafetensorsWriter w;
    if (!o->image.empty()) {
      ImageProcessorSpec spec;  // Qwen2-VL defaults
      if (o->processor == "muse-glimmer") {
        spec.kind = ImageProcessorSpec::Kind::MuseGlimmer;
        spec.max_tokens = 64;
        for (int c = 0; c < 3; ++c) spec.mean[c] = spec.std[c] = 0.5f;
      }
      const auto bytes = read_file_bytes(o->image);
      const ImagePatches p = media::preprocess_image(media::decode_image(bytes), spec);
      w.add("pixel_values", DType::F32, {p.n_patches(), p.patch_dim}, p.pixel_values.data(),
            p.pixel_values.size() * sizeof(float));
      const int32_t grid[3] = {static_cast<int32_t>(p.grid_t), static_cast<int32_t>(p.grid_h),
                               static_cast<int32_t>(p.grid_w)};
      w.add("image_grid_thw", DType::I32, {1, 3}, grid, sizeof grid);
    } else {
      const auto bytes = read_file_bytes(o->audio);
      AudioProcessorSpec spec;
      const media::PcmAudio pcm =
          media::resample(media::decode_audio(bytes, {}, extension(o->audio)), spec.sample_rate);
      std::vector<int32_t> mask;
      const int64_t pad = o->pad_30s ? 30 * spec.sample_rate : 0;
      const AudioFeatures f =
          media::whisper_log_mel(pcm.samples, o->mel_bins, pad, o->pad_30s ? &mask : nullptr);
      w.add("input_features", DType::F32, {f.n_mel, f.n_frames}, f.features.data(),
            f.features.size() * sizeof(float));
      if (o->pad_30s) {
        w.add("mask", DType::I32, {static_cast<int64_t>(mask.size())}, mask.data(),
              mask.size() * sizeof(int32_t));
      }
    }
    w.write(o->out);
    return 0;
  };
}

}  // namespace muse::cli
