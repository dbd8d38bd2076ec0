#include "model/model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/fp16.h"
#include "kernels/kernel_table.h"
#include "core/read_file.h"
#include "muse/error.h"

namespace muse {
namespace fs = std::filesystem;

nlohmann::json read_json_file(const std::string& path) {
  auto j = nlohmann::json::parse(read_file(path), nullptr, /*allow_exceptions=*/false);
  MUSE_CHECK(!j.is_discarded(), path, ": invalid JSON");
  return j;
}

namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

void check_shape(const std::string& name, const TensorView& v, const std::vector<int64_t>& ne) {
  bool ok = v.n_dims == static_cast<int>(ne.size());
  for (size_t i = 0; ok && i < ne.size(); ++i) ok = v.ne[i] == ne[i];
  MUSE_CHECK(ok, "tensor '", name, "' has shape ", shape_string(v), ", expected ", shape_str(ne));
}

// Optional: present only for Llama 3 style rope scaling.
const TensorSpec kRopeFreqsSpec{nullptr, &DecoderWeights::rope_freqs, "rope_freqs.weight", "",
                                [](const ModelConfig&) { return false; }};

}  // namespace

void Model::bind(const TensorSpec& spec, int64_t layer, const TensorView& view) {
  if (spec.layer_member) {
    weights_.layers[static_cast<size_t>(layer)].*spec.layer_member = view;
  } else {
    weights_.*spec.global_member = view;
  }
  tensors_.push_back({layer_name(spec.gguf_name, layer), view});
}

std::shared_ptr<Model> Model::load(const std::string& path) {
  std::shared_ptr<Model> m(new Model());
  m->path_ = path;
  if (fs::is_directory(path)) {
    m->load_hf(path);
  } else {
    m->load_gguf(path);
  }
  m->finish();
  return m;
}

void Model::load_gguf(const std::string& path) {
  gguf_ = GgufFile::open(path);
  const std::string arch = gguf_->get_string("general.architecture");
  arch_ = find_arch_by_gguf(arch);
  MUSE_CHECK(arch_, path, ": architecture '", arch, "' is not supported");
  config_ = arch_->from_gguf(*gguf_);
  config_.validate();
  weights_.layers.resize(static_cast<size_t>(config_.n_layer));
  auto visit = [&](const TensorSpec& spec, int64_t layer) {
    const std::string name = layer_name(spec.gguf_name, layer);
    const GgufTensorInfo* t = gguf_->find_tensor(name);
    const bool required = !spec.required || spec.required(config_);
    if (!t) {
      MUSE_CHECK(!required, path, ": required tensor '", name, "' is missing");
      return;
    }
    MUSE_CHECK(required || &spec == &kRopeFreqsSpec, path, ": tensor '", name,
               "' is present but this ", arch, " configuration does not use it");
    try {
      check_shape(name, t->view, tensor_shape(spec, config_));
    } catch (const Error& e) {
      throw Error(str_cat(path, ": ", e.what()));
    }
    if (is_vector_role(spec))
      MUSE_CHECK(t->view.type == DType::F32, path, ": tensor '", name, "' must be f32, is ",
                 dtype_name(t->view.type));
    bind(spec, layer, t->view);
  };
  for (const auto& spec : arch_->tensors) {
    if (spec.layer_member) {
      for (int64_t l = 0; l < config_.n_layer; ++l) visit(spec, l);
    } else {
      visit(spec, 0);
    }
  }
  visit(kRopeFreqsSpec, 0);
  if (weights_.rope_freqs.data) {
    const float* f = static_cast<const float*>(weights_.rope_freqs.data);
    config_.rope_freq_factors.assign(f, f + weights_.rope_freqs.ne[0]);
  }
}

void Model::load_hf(const std::string& dir) {
  hf_dir_ = dir;
  const nlohmann::json cfg = read_json_file((fs::path(dir) / "config.json").string());
  MUSE_CHECK(cfg.is_object(), dir, "/config.json: not a JSON object");
  const std::string type = cfg.value("model_type", std::string());
  arch_ = find_arch_by_hf(type);
  MUSE_CHECK(arch_, dir, "/config.json: model_type '", type, "' is not supported");
  config_ = arch_->from_hf(cfg);
  config_.validate();
  safetensors_ = SafetensorsModel::open_dir(dir);
  weights_.layers.resize(static_cast<size_t>(config_.n_layer));

  for (const auto& spec : arch_->tensors) {
    const int64_t n_layers = spec.layer_member ? config_.n_layer : 1;
    for (int64_t l = 0; l < n_layers; ++l) {
      const std::string hf_name = layer_name(spec.hf_name, l);
      const bool required = !spec.required || spec.required(config_);
      const SafetensorsTensor* t = safetensors_->find(hf_name);
      if (!required) continue;  // e.g. lm_head of a tied model: not used even if present
      MUSE_CHECK(t, dir, ": required tensor '", hf_name, "' is missing");
      TensorView v = t->view;
      MUSE_CHECK(v.type == DType::F32 || v.type == DType::F16 || v.type == DType::BF16, dir,
                 ": tensor '", hf_name, "' has unsupported type ", dtype_name(v.type));
      try {
        check_shape(hf_name, v, tensor_shape(spec, config_));
      } catch (const Error& e) {
        throw Error(str_cat(dir, ": ", e.what()));
      }
      const bool needs_f32 = is_vector_role(spec) || spec.transform != HfTransform::None;
      if (needs_f32) {
        const int64_t n = v.n_elements();
        auto buf = std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(n) * 4);
        float* out = reinterpret_cast<float*>(buf->data());
        kernels::scalar_kernels().dequantize_fn(v.type)(v.data, out, n);
        if (spec.transform == HfTransform::NormPlusOne) {
          for (int64_t i = 0; i < n; ++i) out[i] += 1.0f;
        } else if (spec.transform == HfTransform::PermuteQ || spec.transform == HfTransform::PermuteK) {
          // Rows of each head go from rotate_half order (i, i + d/2) to interleaved
          // pairs (2i, 2i + 1), so the interleaved rotary computes the same thing.
          const int64_t heads = spec.transform == HfTransform::PermuteQ ? config_.n_head : config_.n_head_kv;
          const int64_t rows = v.n_dims == 2 ? v.ne[1] : v.ne[0];
          const int64_t cols = v.n_dims == 2 ? v.ne[0] : 1;
          const int64_t hd = rows / heads, half = hd / 2;
          std::vector<float> src(out, out + n);
          for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < half; ++i)
              for (int64_t k = 0; k < 2; ++k) {
                const float* s = &src[static_cast<size_t>((h * hd + i + k * half) * cols)];
                std::copy(s, s + cols, out + (h * hd + 2 * i + k) * cols);
              }
        }
        v.type = DType::F32;
        v.data = buf->data();
        v.nbytes = buf->size();
        owned_.push_back(std::move(buf));
      }
      bind(spec, l, v);
    }
  }
  if (!config_.rope_freq_factors.empty()) {
    auto buf = std::make_unique<std::vector<uint8_t>>(config_.rope_freq_factors.size() * 4);
    std::memcpy(buf->data(), config_.rope_freq_factors.data(), buf->size());
    TensorView v;
    v.type = DType::F32;
    v.n_dims = 1;
    v.ne = {static_cast<int64_t>(config_.rope_freq_factors.size()), 1, 1, 1};
    v.data = buf->data();
    v.nbytes = buf->size();
    owned_.push_back(std::move(buf));
    bind(kRopeFreqsSpec, 0, v);
  }
}

namespace {

// llama.cpp finds a GGUF model's media markers by their token text; so do we, for
// ids that neither the config nor Muse's own keys named.
void media_tokens_from_vocabulary(const GgufFile& f, MediaTokenIds& m) {
  const GgufValue* tokens = f.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->array_type() != GgufType::STRING) return;
  using M = MediaTokenIds;
  static const std::vector<std::pair<int32_t M::*, std::vector<std::string>>> names = {
      {&M::image, {"<|IMAGE|>", "<|image_pad|>", "<|patch|>"}},
      {&M::audio, {"<|AUDIO|>"}},
      {&M::video, {"<|VIDEO|>", "<|video_pad|>", "<|video|>"}},
      {&M::vision_start, {"<|vision_bos|>", "<|vision_start|>"}},
      {&M::vision_end, {"<|vision_eos|>", "<|vision_end|>"}},
      {&M::audio_start, {"<|audio_bos|>"}},
      {&M::audio_end, {"<|audio_eos|>"}}};
  const auto& vocab = tokens->as_strings();
  for (const auto& [member, texts] : names) {
    if (m.*member >= 0) continue;
    for (const auto& text : texts) {
      auto it = std::find(vocab.begin(), vocab.end(), text);
      if (it != vocab.end()) {
        m.*member = static_cast<int32_t>(it - vocab.begin());
        break;
      }
    }
  }
}

}  // namespace

void Model::finish() {
  if (gguf_) media_tokens_from_vocabulary(*gguf_, config_.media_tokens);
  if (config_.tied_embeddings) weights_.output = weights_.tok_embd;
  const auto& k = kernels::best_kernels();
  for (const auto& t : tensors_) {
    if (t.view.n_dims == 2)
      MUSE_CHECK(k.vec_dot_fn(t.view.type) && k.dequantize_fn(t.view.type), path_, ": tensor '",
                 t.name, "' has type ", dtype_name(t.view.type),
                 " which has no matrix kernel");
  }
}

}  // namespace muse
