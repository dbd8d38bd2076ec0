// Muse Nano's in-file media projections (see media_muse.h, docs/muse-nano.md).
#include "model/media_muse.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "model/encoder_ops.h"
#include "model/encoder_weights.h"
#include "model/gguf.h"
#include "muse/error.h"

namespace muse {
namespace {

constexpr const char* kVisionPrefix = "muse.vision.";
constexpr const char* kAudioPrefix = "muse.audio.";

// Sanity bounds: a hostile file must not make preprocessing allocate without limit.
constexpr int64_t kMaxImageSize = 4096, kMaxStack = 64;

void check_config(const MuseMediaConfig& c, const std::string& where) {
  MUSE_CHECK(c.n_embd > 0, where, ": bad embedding width");
  if (c.has_vision) {
    const auto& im = c.image;
    MUSE_CHECK(im.image_size > 0 && im.image_size <= kMaxImageSize && im.patch_size > 0 &&
                   im.image_size % im.patch_size == 0,
               where, ": vision image_size ", im.image_size, " must be a positive multiple of ",
               "patch_size ", im.patch_size, " (at most ", kMaxImageSize, ")");
    for (float s : im.std) MUSE_CHECK(s != 0.0f, where, ": vision image_std has a zero");
  }
  if (c.has_audio) {
    MUSE_CHECK(c.audio.n_mel > 0 && c.audio.n_mel <= 512, where, ": bad audio n_mel ", c.audio.n_mel);
    MUSE_CHECK(c.stack_frames > 0 && c.stack_frames <= kMaxStack, where,
               ": bad audio stack_frames ", c.stack_frames);
    MUSE_CHECK(c.audio.sample_rate == 16000, where,
               ": audio sample_rate must be 16000 (the log-mel front end's rate)");
  }
}

void fixed_size_defaults(ImageProcessorSpec& im) {
  im.kind = ImageProcessorSpec::Kind::FixedSize;
  im.temporal_patch = 1;
  im.merge_size = 1;
  std::fill(std::begin(im.mean), std::end(im.mean), 0.5f);
  std::fill(std::begin(im.std), std::end(im.std), 0.5f);
}

void read_triple(const std::vector<double>& v, float (&out)[3], const std::string& what) {
  MUSE_CHECK(v.size() == 3, what, " must hold 3 values");
  for (int i = 0; i < 3; ++i) out[i] = static_cast<float>(v[i]);
}

class MuseVision final : public VisionEncoder {
 public:
  MuseVision(std::shared_ptr<EncoderWeights> w, const MuseMediaConfig& c) : w_(std::move(w)), c_(c) {
    grid_ = c.image.image_size / c.image.patch_size;
    patch_dim_ = c.image.patch_size * c.image.patch_size * 3;
    const auto& t = muse_media_tensors();
    proj_ = w_->matrix(t[0].gguf_name, t[0].hf_name, patch_dim_, c.n_embd);
    bias_ = w_->vector(t[1].gguf_name, t[1].hf_name, c.n_embd);
    row_ = w_->tensor(t[2].gguf_name, t[2].hf_name, {c.n_embd, grid_});
    col_ = w_->tensor(t[3].gguf_name, t[3].hf_name, {c.n_embd, grid_});
    MUSE_CHECK(row_.type == DType::F32 && col_.type == DType::F32, w_->path(),
               ": the image position tables must be F32");
  }
  const ImageProcessorSpec& processor() const override { return c_.image; }
  int64_t n_tokens(const ImagePatches& image) const override { return image.n_patches(); }
  int64_t n_embd_out() const override { return c_.n_embd; }

  std::vector<float> encode(const ImagePatches& im, ThreadPool& pool) const override {
    MUSE_CHECK(im.patch_dim == patch_dim_ && im.grid_t == 1 && im.grid_h == grid_ &&
                   im.grid_w == grid_ &&
                   im.pixel_values.size() == static_cast<size_t>(im.n_patches() * patch_dim_),
               "muse image encoder: expected a ", grid_, "x", grid_, " grid of ", patch_dim_,
               "-value patches, got ", im.grid_h, "x", im.grid_w, " of ", im.patch_dim);
    const int64_t n = im.n_patches(), d = c_.n_embd;
    std::vector<float> out(static_cast<size_t>(n * d));
    enc::EncoderScratch scratch;
    enc::linear(proj_, bias_, im.pixel_values.data(), n, out.data(), pool, scratch);
    const auto* row = static_cast<const float*>(row_.data);
    const auto* col = static_cast<const float*>(col_.data);
    for (int64_t p = 0; p < n; ++p) {
      float* y = out.data() + p * d;
      const float* r = row + (p / grid_) * d;
      const float* c = col + (p % grid_) * d;
      for (int64_t i = 0; i < d; ++i) y[i] += r[i] + c[i];
    }
    return out;
  }

 private:
  std::shared_ptr<EncoderWeights> w_;
  MuseMediaConfig c_;
  int64_t grid_ = 0, patch_dim_ = 0;
  TensorView proj_, bias_, row_, col_;
};

class MuseAudio final : public AudioEncoder {
 public:
  MuseAudio(std::shared_ptr<EncoderWeights> w, const MuseMediaConfig& c) : w_(std::move(w)), c_(c) {
    const auto& t = muse_media_tensors();
    proj_ = w_->matrix(t[4].gguf_name, t[4].hf_name, c.stack_frames * c.audio.n_mel, c.n_embd);
    bias_ = w_->vector(t[5].gguf_name, t[5].hf_name, c.n_embd);
  }
  const AudioProcessorSpec& processor() const override { return c_.audio; }
  int64_t n_tokens(int64_t n_frames) const override { return n_frames / c_.stack_frames; }
  int64_t n_embd_out() const override { return c_.n_embd; }

  std::vector<float> encode(const AudioFeatures& a, ThreadPool& pool) const override {
    const int64_t n_mel = c_.audio.n_mel, k = c_.stack_frames;
    MUSE_CHECK(a.n_mel == n_mel && a.n_frames >= 0 &&
                   a.features.size() == static_cast<size_t>(a.n_mel * a.n_frames),
               "muse audio encoder: expected ", n_mel, " mel bins, got ", a.n_mel);
    const int64_t n = n_tokens(a.n_frames);
    MUSE_CHECK(n > 0, "muse audio encoder: the clip is too short (", a.n_frames,
               " frames; one row needs ", k, ")");
    // Row j holds frames j*k .. j*k+k-1, each frame's mel values contiguous.
    std::vector<float> stacked(static_cast<size_t>(n * k * n_mel));
    for (int64_t m = 0; m < n_mel; ++m)
      for (int64_t t = 0; t < n * k; ++t) stacked[t * n_mel + m] = a.features[m * a.n_frames + t];
    std::vector<float> out(static_cast<size_t>(n * c_.n_embd));
    enc::EncoderScratch scratch;
    enc::linear(proj_, bias_, stacked.data(), n, out.data(), pool, scratch);
    return out;
  }

 private:
  std::shared_ptr<EncoderWeights> w_;
  MuseMediaConfig c_;
  TensorView proj_, bias_;
};

}  // namespace

const std::vector<EmbeddedTensor>& muse_media_tensors() {
  // Order matters: the encoders above index this table. The position tables have
  // no ".weight" suffix so that conversion keeps them F32 (added, not multiplied).
  static const std::vector<EmbeddedTensor> t = {
      {"v.patch_embd.weight", "model.vision_embed.proj.weight"},
      {"v.patch_embd.bias", "model.vision_embed.proj.bias"},
      {"v.pos_row", "model.vision_embed.row_embed"},
      {"v.pos_col", "model.vision_embed.col_embed"},
      {"a.frame_embd.weight", "model.audio_embed.proj.weight"},
      {"a.frame_embd.bias", "model.audio_embed.proj.bias"},
  };
  return t;
}

MuseMediaConfig muse_media_config_from_gguf(const GgufFile& f) {
  MuseMediaConfig c;
  c.n_embd = f.get_int("muse.embedding_length");
  const std::string v = kVisionPrefix, a = kAudioPrefix;
  if (f.find(v + "image_size")) {
    c.has_vision = true;
    fixed_size_defaults(c.image);
    c.image.image_size = f.get_int(v + "image_size");
    c.image.patch_size = f.get_int(v + "patch_size");
    if (const GgufValue* m = f.find(v + "image_mean")) read_triple(m->as_floats(), c.image.mean, v + "image_mean");
    if (const GgufValue* s = f.find(v + "image_std")) read_triple(s->as_floats(), c.image.std, v + "image_std");
  }
  if (f.find(a + "n_mel")) {
    c.has_audio = true;
    c.audio.n_mel = f.get_int(a + "n_mel");
    c.audio.sample_rate = f.get_int_or(a + "sample_rate", 16000);
    c.stack_frames = f.get_int(a + "stack_frames");
  }
  check_config(c, f.path());
  return c;
}

MuseMediaConfig muse_media_config_from_hf(const nlohmann::json& j) {
  MuseMediaConfig c;
  c.n_embd = config_value(j, "hidden_size", int64_t{0}, "muse config.json");
  if (auto vc = j.find("vision_config"); vc != j.end() && vc->is_object()) {
    const char* what = "muse vision_config";
    c.has_vision = true;
    fixed_size_defaults(c.image);
    c.image.image_size = config_value(*vc, "image_size", int64_t{0}, what);
    c.image.patch_size = config_value(*vc, "patch_size", int64_t{0}, what);
    if (vc->contains("image_mean"))
      read_triple(config_value(*vc, "image_mean", std::vector<double>{}, what), c.image.mean, "image_mean");
    if (vc->contains("image_std"))
      read_triple(config_value(*vc, "image_std", std::vector<double>{}, what), c.image.std, "image_std");
  }
  if (auto ac = j.find("audio_config"); ac != j.end() && ac->is_object()) {
    const char* what = "muse audio_config";
    c.has_audio = true;
    c.audio.n_mel = config_value(*ac, "num_mel_bins", int64_t{80}, what);
    c.audio.sample_rate = config_value(*ac, "sampling_rate", int64_t{16000}, what);
    c.stack_frames = config_value(*ac, "stack_frames", int64_t{4}, what);
  }
  check_config(c, "muse config.json");
  return c;
}

void muse_media_to_gguf(const nlohmann::json& j, GgufWriter& w) {
  const MuseMediaConfig c = muse_media_config_from_hf(j);
  const std::string v = kVisionPrefix, a = kAudioPrefix;
  if (c.has_vision) {
    w.set(v + "image_size", GgufValue::u32(static_cast<uint32_t>(c.image.image_size)));
    w.set(v + "patch_size", GgufValue::u32(static_cast<uint32_t>(c.image.patch_size)));
    w.set(v + "image_mean", GgufValue::f32_array({c.image.mean[0], c.image.mean[1], c.image.mean[2]}));
    w.set(v + "image_std", GgufValue::f32_array({c.image.std[0], c.image.std[1], c.image.std[2]}));
  }
  if (c.has_audio) {
    w.set(a + "n_mel", GgufValue::u32(static_cast<uint32_t>(c.audio.n_mel)));
    w.set(a + "sample_rate", GgufValue::u32(static_cast<uint32_t>(c.audio.sample_rate)));
    w.set(a + "stack_frames", GgufValue::u32(static_cast<uint32_t>(c.stack_frames)));
  }
}

MediaEncoders load_muse_media(std::shared_ptr<EncoderWeights> weights, const MuseMediaConfig& c) {
  MediaEncoders out;
  if (c.has_vision) out.vision = std::make_unique<MuseVision>(weights, c);
  if (c.has_audio) out.audio = std::make_unique<MuseAudio>(weights, c);
  return out;
}

MediaEncoders load_muse_media(std::shared_ptr<EncoderWeights> weights) {
  const MuseMediaConfig c = weights->gguf() ? muse_media_config_from_gguf(*weights->gguf())
                                            : muse_media_config_from_hf(weights->hf_config());
  return load_muse_media(std::move(weights), c);
}

}  // namespace muse
