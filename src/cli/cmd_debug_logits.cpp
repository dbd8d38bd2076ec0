// `muse debug logits`: the command-line path the golden tests check. With media
// placeholder ids in the input ids, the processor outputs in --inputs
// (pixel_values + image_grid_thw, input_features + feature_attention_mask) are
// encoded and placed at the placeholders, as the reference model does.
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "cli/commands.h"
#include "engine/generate.h"
#include "model/media_forward.h"
#include "model/safetensors.h"
#include "muse/error.h"

namespace muse::cli {
namespace {

const SafetensorsTensor* find_typed(const SafetensorsFile& f, const std::string& path,
                                    const std::string& name, DType type) {
  const SafetensorsTensor* t = f.find(name);
  if (t)
    MUSE_CHECK(t->view.type == type, path, ": '", name, "' must be ", dtype_name(type), ", is ",
               dtype_name(t->view.type));
  return t;
}

// pixel_values [n_patches, patch_dim] split by image_grid_thw [n_images, 3].
std::vector<ImagePatches> read_images(const SafetensorsFile& f, const std::string& path) {
  const auto* pv = find_typed(f, path, "pixel_values", DType::F32);
  const auto* grid = find_typed(f, path, "image_grid_thw", DType::I32);
  if (!pv) return {};
  MUSE_CHECK(grid && grid->view.n_dims == 2 && grid->view.ne[0] == 3, path,
             ": pixel_values needs image_grid_thw [n_images, 3]");
  MUSE_CHECK(pv->view.n_dims == 2, path, ": pixel_values must be [patches, patch_dim]");
  const int64_t dim = pv->view.ne[0], total = pv->view.ne[1];
  const auto* g = static_cast<const int32_t*>(grid->view.data);
  const auto* px = static_cast<const float*>(pv->view.data);
  std::vector<ImagePatches> images;
  int64_t at = 0;
  for (int64_t i = 0; i < grid->view.ne[1]; ++i) {
    ImagePatches img;
    img.patch_dim = dim;
    img.grid_t = g[3 * i];
    img.grid_h = g[3 * i + 1];
    img.grid_w = g[3 * i + 2];
    const int64_t n = img.n_patches();
    MUSE_CHECK(img.grid_t > 0 && img.grid_h > 0 && img.grid_w > 0 && at + n <= total, path,
               ": image_grid_thw does not match pixel_values");
    img.pixel_values.assign(px + at * dim, px + (at + n) * dim);
    at += n;
    images.push_back(std::move(img));
  }
  MUSE_CHECK(at == total, path, ": pixel_values has ", total, " patches, the grids ", at);
  return images;
}

// input_features [(batch,) n_mel, frames]; feature_attention_mask [(batch,) frames]
// selects each clip's valid frames (all frames without a mask).
std::vector<AudioFeatures> read_audio(const SafetensorsFile& f, const std::string& path) {
  const auto* feat = find_typed(f, path, "input_features", DType::F32);
  if (!feat) return {};
  const auto* mask = find_typed(f, path, "feature_attention_mask", DType::I32);
  const TensorView& v = feat->view;
  MUSE_CHECK(v.n_dims == 2 || v.n_dims == 3, path, ": input_features must be [n_mel, frames]");
  const int64_t frames = v.ne[0], n_mel = v.ne[1], batch = v.n_dims == 3 ? v.ne[2] : 1;
  if (mask)
    MUSE_CHECK(mask->view.ne[0] == frames && mask->view.n_elements() == frames * batch, path,
               ": feature_attention_mask does not match input_features");
  std::vector<AudioFeatures> clips;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t valid = frames;
    if (mask) {
      const auto* m = static_cast<const int32_t*>(mask->view.data) + b * frames;
      valid = 0;
      for (int64_t i = 0; i < frames; ++i) valid += m[i] != 0;
    }
    AudioFeatures a;
    a.n_mel = n_mel;
    a.n_frames = valid;
    const auto* src = static_cast<const float*>(v.data) + b * n_mel * frames;
    a.features.resize(static_cast<size_t>(n_mel * valid));
    for (int64_t m = 0; m < n_mel; ++m)
      std::copy(src + m * frames, src + m * frames + valid, a.features.begin() + m * valid);
    clips.push_back(std::move(a));
  }
  return clips;
}

void add_f32(SafetensorsWriter& w, const std::string& name, const std::vector<float>& rows,
             int64_t width) {
  if (rows.empty()) return;
  w.add(name, DType::F32, {static_cast<int64_t>(rows.size()) / width, width}, rows.data(),
        rows.size() * sizeof(float));
}

}  // namespace

Runner add_debug_logits(CLI::App& app) {
  struct Opts {
    std::string model, mmproj, inputs, out, ids_key = "input_ids";
    int64_t greedy = 0;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF file or Hugging Face directory")->required();
  app.add_option("--mmproj", o->mmproj,
                 "Encoders (mmproj GGUF); default: the model directory's own");
  app.add_option("--inputs", o->inputs, "safetensors file with the input ids")->required();
  app.add_option("--out", o->out, "Output safetensors file")->required();
  app.add_option("--ids-key", o->ids_key, "Name of the int32 ids tensor");
  app.add_option("--greedy", o->greedy, "Also generate this many ids greedily");
  app.add_option("-t,--threads", o->threads, "Threads");
  return [o] {
    auto inputs = SafetensorsFile::open(o->inputs);
    const SafetensorsTensor* t = find_typed(*inputs, o->inputs, o->ids_key, DType::I32);
    MUSE_CHECK(t, o->inputs, ": no tensor named '", o->ids_key, "'");
    const auto* p = static_cast<const int32_t*>(t->view.data);
    std::vector<int32_t> ids(p, p + t->view.n_elements());
    MUSE_CHECK(!ids.empty(), o->inputs, ": '", o->ids_key, "' is empty");

    auto model = Model::load(o->model);
    const ModelConfig& c = model->config();
    const int64_t V = c.n_vocab;
    Decoder decoder(model, {static_cast<int64_t>(ids.size()) + o->greedy + 1, 1, 512, o->threads});
    const bool has_media =
        std::any_of(ids.begin(), ids.end(), [&](int32_t id) {
          return id == c.media_tokens.image || id == c.media_tokens.audio;
        }) && (c.media_tokens.image >= 0 || c.media_tokens.audio >= 0);
    MUSE_CHECK(!(has_media && o->greedy > 0), "--greedy is not supported with media inputs yet");
    SafetensorsWriter w;
    if (has_media) {
      const MediaEncoders enc = o->mmproj.empty() ? load_model_media_encoders(o->model)
                                                  : load_media_encoders(o->mmproj);
      MUSE_CHECK(enc.vision || enc.audio, "the ids hold media placeholders and ",
                 o->mmproj.empty() ? o->model : o->mmproj, " has no encoders: give --mmproj");
      MultimodalInputs in{ids, read_images(*inputs, o->inputs), read_audio(*inputs, o->inputs)};
      const MultimodalOutputs out = run_multimodal(decoder, enc, in);
      add_f32(w, "logits", out.logits, V);
      add_f32(w, "image_embeds", out.image_embeds, c.n_embd);
      add_f32(w, "audio_embeds", out.audio_embeds, c.n_embd);
      const int64_t n = static_cast<int64_t>(ids.size());
      const int64_t rows = static_cast<int64_t>(out.position_ids.size()) / n;
      w.add("position_ids", DType::I32, rows == 1 ? std::vector<int64_t>{n} : std::vector{rows, n},
            out.position_ids.data(), out.position_ids.size() * sizeof(int32_t));
    } else {
      const auto logits = all_logits(decoder, ids);
      w.add("logits", DType::F32, {static_cast<int64_t>(ids.size()), V}, logits.data(),
            logits.size() * sizeof(float));
    }
    if (o->greedy > 0) {
      SamplingParams sp;
      sp.temperature = 0;
      Sampler sampler(sp, static_cast<int32_t>(V));
      GenerateOptions go;
      go.max_tokens = o->greedy;
      const auto gen = generate(decoder, ids, sampler, go);
      w.add("greedy_ids", DType::I32, {static_cast<int64_t>(gen.size())}, gen.data(),
            gen.size() * sizeof(int32_t));
    }
    w.write(o->out);
    return 0;
  };
}

}  // namespace muse::cli
