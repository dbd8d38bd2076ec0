// Encoders that turn an image or an audio clip into rows of the text decoder's
// embedding space (the "mmproj" part of a multimodal model). They are loaded from
// an mmproj GGUF (llama.cpp naming: v.*, a.*, mm.*, clip.* keys) or from the
// Hugging Face directory of the whole model, and consume the processor outputs
// (media/ produces them from files; tests feed the goldens' tensors directly).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"

namespace muse {

// One image after its model's processor: patches in the order the reference
// processor emits them (for Qwen2-VL style models the 2x2 "merge order").
struct ImagePatches {
  std::vector<float> pixel_values;  // [n_patches][patch_dim]
  int64_t patch_dim = 0;            // channels * temporal_patch * patch * patch
  int64_t grid_t = 1, grid_h = 0, grid_w = 0;  // grid in patches; n_patches = t*h*w
  int64_t n_patches() const { return grid_t * grid_h * grid_w; }
};

// Log-mel features of one audio clip, valid frames only (no padding).
struct AudioFeatures {
  std::vector<float> features;  // [n_mel][n_frames], mel-major as Hugging Face stores it
  int64_t n_mel = 0, n_frames = 0;
};

// How the model's image processor prepares an image (media/ implements the kinds).
struct ImageProcessorSpec {
  enum class Kind {
    Qwen2VL,      // smart_resize to multiples of patch*merge within [min,max] pixels, bicubic
    MuseGlimmer,  // aspect-preserving grid under max_tokens merged tokens
    FixedSize,    // resized to image_size x image_size (aspect not kept), raster
                  // patches laid out [py][px][channel] (Muse Nano)
  } kind = Kind::Qwen2VL;
  int64_t image_size = 0;                            // FixedSize
  int64_t patch_size = 14, temporal_patch = 2, merge_size = 2;
  int64_t min_pixels = 3136, max_pixels = 12845056;  // Qwen2VL
  int64_t max_tokens = 0;                            // MuseGlimmer: cap on merged tokens
  float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
};

// How the model's audio front end computes features.
struct AudioProcessorSpec {
  int64_t sample_rate = 16000;
  int64_t n_mel = 128;
  int64_t n_fft = 400, hop = 160;
};

class VisionEncoder {
 public:
  virtual ~VisionEncoder() = default;
  virtual const ImageProcessorSpec& processor() const = 0;
  // Embedding rows the image becomes (after merging), given its patch grid.
  virtual int64_t n_tokens(const ImagePatches& image) const = 0;
  // Returns [n_tokens][n_embd_out()] in the order the decoder consumes them.
  // Throws muse::Error if the patches do not fit the encoder (patch_dim, grid).
  virtual std::vector<float> encode(const ImagePatches& image, ThreadPool& pool) const = 0;
  virtual int64_t n_embd_out() const = 0;
};

class AudioEncoder {
 public:
  virtual ~AudioEncoder() = default;
  virtual const AudioProcessorSpec& processor() const = 0;
  virtual int64_t n_tokens(int64_t n_frames) const = 0;
  // Returns [n_tokens][n_embd_out()]. Throws muse::Error on a wrong mel count or
  // too few frames to give one token.
  virtual std::vector<float> encode(const AudioFeatures& audio, ThreadPool& pool) const = 0;
  virtual int64_t n_embd_out() const = 0;
};

struct MediaEncoders {
  std::unique_ptr<VisionEncoder> vision;  // null when the model has none
  std::unique_ptr<AudioEncoder> audio;
};

// `path` is an mmproj GGUF or a Hugging Face model directory (config.json with a
// vision_config / audio_config). Throws muse::Error naming what is missing or
// malformed; a directory without any encoder gives empty MediaEncoders.
MediaEncoders load_media_encoders(const std::string& path);

// The encoders a model carries itself, without an mmproj: a Hugging Face
// directory's (as load_media_encoders), or those inside a GGUF model file of an
// architecture that embeds them (`muse`). Any other model gives empty MediaEncoders.
MediaEncoders load_model_media_encoders(const std::string& model_path);

}  // namespace muse
