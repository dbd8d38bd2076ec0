#include "model/encoder_weights.h"

#include <filesystem>

#include "core/read_file.h"
#include "kernels/matmul.h"
#include "muse/error.h"

namespace muse {

EncoderTensorNames block_tensor_names(const EncoderTensorName& entry, const char* gguf_block,
                                      const char* hf_block, int64_t layer) {
  return {str_cat(gguf_block, layer, ".", entry.gguf), str_cat(hf_block, layer, ".", entry.hf)};
}
namespace {

std::string ne_string(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// Drops trailing 1s so that [n] and [n, 1] compare equal.
std::vector<int64_t> trimmed(std::vector<int64_t> ne) {
  while (ne.size() > 1 && ne.back() == 1) ne.pop_back();
  return ne;
}

bool is_weight_type(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || dtype_info(t).quantized;
}

}  // namespace

std::vector<float> tensor_to_f32(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  if (t.n_elements() == 0) return out;
  TensorView rows = t;  // as a matrix of ne[0]-long rows
  for (int64_t r = 0; r < t.rows(); ++r) kernels::dequantize_row(rows, r, &out[r * t.cols()]);
  return out;
}

std::unique_ptr<EncoderWeights> EncoderWeights::open_gguf(const std::string& path) {
  auto w = std::unique_ptr<EncoderWeights>(new EncoderWeights());
  w->path_ = path;
  w->gguf_ = GgufFile::open(path);
  return w;
}

std::unique_ptr<EncoderWeights> EncoderWeights::open_hf_dir(const std::string& dir) {
  auto w = std::unique_ptr<EncoderWeights>(new EncoderWeights());
  w->path_ = dir;
  const std::string config_path = (std::filesystem::path(dir) / "config.json").string();
  try {
    w->config_ = nlohmann::json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat(config_path, ": invalid JSON: ", e.what()));
  }
  MUSE_CHECK(w->config_.is_object(), config_path, ": not a JSON object");
  w->hf_ = SafetensorsModel::open_dir(dir);
  return w;
}

std::string EncoderWeights::describe(const std::string& gguf_name,
                                     const std::string& hf_name) const {
  if (gguf_) return str_cat(path_, ": tensor '", gguf_name, "'");
  return str_cat(path_, ": tensor '", hf_name, "' (or 'thinker.", hf_name, "')");
}

bool EncoderWeights::find(const std::string& gguf_name, const std::string& hf_name,
                          Found* out) const {
  if (gguf_) {
    const GgufTensorInfo* t = gguf_->find_tensor(gguf_name);
    if (t == nullptr) return false;
    if (out) {
      out->name = gguf_name;
      out->view = t->view;
      out->ne.assign(t->view.ne.begin(), t->view.ne.begin() + std::max(1, t->view.n_dims));
    }
    return true;
  }
  for (const std::string& name : {hf_name, "thinker." + hf_name}) {
    const SafetensorsTensor* t = hf_->find(name);
    if (t == nullptr) continue;
    if (out) {
      out->name = name;
      out->view = t->view;
      out->ne.assign(t->shape.rbegin(), t->shape.rend());
      if (out->ne.empty()) out->ne.push_back(1);
    }
    return true;
  }
  return false;
}

EncoderWeights::Found EncoderWeights::require(const std::string& gguf_name,
                                              const std::string& hf_name) const {
  Found f;
  MUSE_CHECK(find(gguf_name, hf_name, &f), describe(gguf_name, hf_name), " is missing");
  return f;
}

bool EncoderWeights::has(const std::string& gguf_name, const std::string& hf_name) const {
  return find(gguf_name, hf_name, nullptr);
}

std::vector<int64_t> EncoderWeights::shape(const std::string& gguf_name,
                                           const std::string& hf_name) const {
  return require(gguf_name, hf_name).ne;
}

TensorView EncoderWeights::own_f32(std::vector<float> values, std::vector<int64_t> ne) const {
  owned_.push_back(std::make_unique<std::vector<float>>(std::move(values)));
  const std::vector<float>& v = *owned_.back();
  TensorView t;
  t.type = DType::F32;
  t.n_dims = static_cast<int>(ne.size());
  for (size_t i = 0; i < ne.size() && i < 4; ++i) t.ne[i] = ne[i];
  t.data = v.data();
  t.nbytes = v.size() * sizeof(float);
  return t;
}

TensorView EncoderWeights::matrix(const std::string& gguf_name, const std::string& hf_name,
                                  int64_t cols, int64_t rows) const {
  Found f = require(gguf_name, hf_name);
  MUSE_CHECK(trimmed(f.ne) == trimmed({cols, rows}), path_, ": tensor '", f.name, "' has shape ",
             ne_string(f.ne), ", expected ", ne_string({cols, rows}));
  MUSE_CHECK(is_weight_type(f.view.type), path_, ": tensor '", f.name, "' has type ",
             dtype_name(f.view.type), ", which is not a weight type");
  TensorView t = f.view;
  t.n_dims = 2;
  t.ne = {cols, rows, 1, 1};
  return t;
}

TensorView EncoderWeights::vector(const std::string& gguf_name, const std::string& hf_name,
                                  int64_t n) const {
  Found f = require(gguf_name, hf_name);
  std::vector<int64_t> ne = f.ne;
  // Leading 1s too: GGUF conv biases are ne = [1, n].
  while (ne.size() > 1 && ne.front() == 1) ne.erase(ne.begin());
  MUSE_CHECK(trimmed(ne) == std::vector<int64_t>{n}, path_, ": tensor '", f.name, "' has shape ",
             ne_string(f.ne), ", expected a vector of ", n);
  MUSE_CHECK(is_weight_type(f.view.type), path_, ": tensor '", f.name, "' has type ",
             dtype_name(f.view.type), ", expected a float type");
  TensorView t = f.view;
  t.n_dims = 1;
  t.ne = {n, 1, 1, 1};
  if (t.type == DType::F32) return t;
  return own_f32(tensor_to_f32(t), {n});
}

TensorView EncoderWeights::optional_vector(const std::string& gguf_name, const std::string& hf_name,
                                           int64_t n) const {
  if (!has(gguf_name, hf_name)) return TensorView{};
  return vector(gguf_name, hf_name, n);
}

TensorView EncoderWeights::tensor(const std::string& gguf_name, const std::string& hf_name,
                                  const std::vector<int64_t>& ne) const {
  Found f = require(gguf_name, hf_name);
  MUSE_CHECK(trimmed(f.ne) == trimmed(ne), path_, ": tensor '", f.name, "' has shape ",
             ne_string(f.ne), ", expected ", ne_string(ne));
  MUSE_CHECK(is_weight_type(f.view.type), path_, ": tensor '", f.name, "' has type ",
             dtype_name(f.view.type), ", expected a float type");
  return f.view;
}

TensorView EncoderWeights::conv1d(const std::string& gguf_name, const std::string& hf_name,
                                  int64_t k, int64_t in, int64_t out) const {
  Found f = require(gguf_name, hf_name);
  MUSE_CHECK(trimmed(f.ne) == trimmed({k, in, out}), path_, ": conv1d kernel '", f.name,
             "' has shape ", ne_string(f.ne), ", expected ", ne_string({k, in, out}));
  MUSE_CHECK(is_weight_type(f.view.type), path_, ": tensor '", f.name, "' has type ",
             dtype_name(f.view.type), ", which is not a weight type");
  TensorView t = f.view;
  t.n_dims = 2;
  t.ne = {k * in, out, 1, 1};
  if (dtype_info(t.type).quantized && (k * in) % dtype_info(t.type).block_size != 0) {
    throw Error(str_cat(path_, ": conv1d kernel '", f.name, "' of type ", dtype_name(t.type),
                        " cannot be used as rows of ", k * in));
  }
  return t;
}

TensorView EncoderWeights::patch_embed_conv3d(const std::string& gguf_name,
                                              const std::string& hf_name, int64_t in,
                                              int64_t t_patch, int64_t patch, int64_t out) const {
  const int64_t plane = patch * patch;
  const int64_t row = in * t_patch * plane;
  std::vector<float> w(static_cast<size_t>(row * out));
  if (!gguf_) {
    Found f = require(gguf_name, hf_name);
    const std::vector<int64_t> want{patch, patch, t_patch, in, out};
    MUSE_CHECK(trimmed(f.ne) == trimmed(want), path_, ": patch embedding '", f.name, "' has shape ",
               ne_string(f.ne), ", expected ", ne_string(want));
    MUSE_CHECK(is_weight_type(f.view.type) && !dtype_info(f.view.type).quantized, path_,
               ": tensor '", f.name, "' has type ", dtype_name(f.view.type),
               ", expected a float type");
    TensorView flat = f.view;  // HF order is already [out][c][t][py][px]
    flat.n_dims = 2;
    flat.ne = {row, out, 1, 1};
    w = tensor_to_f32(flat);
  } else {
    for (int64_t ti = 0; ti < t_patch; ++ti) {
      const std::string name = ti == 0 ? gguf_name : str_cat(gguf_name, ".", ti);
      const GgufTensorInfo* info = gguf_->find_tensor(name);
      MUSE_CHECK(info != nullptr, path_, ": tensor '", name, "' is missing");
      std::vector<int64_t> ne(info->view.ne.begin(), info->view.ne.begin() + info->view.n_dims);
      MUSE_CHECK(trimmed(ne) == trimmed({patch, patch, in, out}), path_, ": patch embedding '",
                 name, "' has shape ", ne_string(ne), ", expected ",
                 ne_string({patch, patch, in, out}));
      MUSE_CHECK(is_weight_type(info->view.type) && !dtype_info(info->view.type).quantized, path_,
                 ": tensor '", name, "' has type ", dtype_name(info->view.type),
                 ", expected a float type");
      TensorView flat = info->view;  // [out][c][py][px] for this temporal slice
      flat.n_dims = 2;
      flat.ne = {plane, in * out, 1, 1};
      const std::vector<float> slice = tensor_to_f32(flat);
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t c = 0; c < in; ++c) {
          const float* src = &slice[(o * in + c) * plane];
          float* dst = &w[o * row + (c * t_patch + ti) * plane];
          std::copy(src, src + plane, dst);
        }
      }
    }
  }
  return own_f32(std::move(w), {row, out});
}

HfConfigs read_hf_configs(const std::string& dir) {
  namespace fs = std::filesystem;
  auto read = [](const fs::path& path) {
    try {
      return nlohmann::json::parse(read_file(path.string()));
    } catch (const nlohmann::json::exception& e) {
      throw Error(str_cat(path.string(), ": invalid JSON: ", e.what()));
    }
  };
  const fs::path config_path = fs::path(dir) / "config.json";
  MUSE_CHECK(fs::exists(config_path), dir, ": no config.json (not a Hugging Face model directory)");
  HfConfigs c;
  c.config = read(config_path);
  MUSE_CHECK(c.config.is_object(), config_path.string(), ": not a JSON object");
  const fs::path pre = fs::path(dir) / "preprocessor_config.json";
  if (fs::exists(pre)) c.preprocessor = read(pre);
  return c;
}

}  // namespace muse
