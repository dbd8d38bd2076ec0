#include "model/convert.h"

#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/thread_pool.h"
#include "kernels/kernel_table.h"
#include "kernels/matmul.h"
#include "model/encoder_weights.h"
#include "model/hf_tokenizer.h"
#include "muse/error.h"

namespace muse {
namespace {

}  // namespace

uint32_t llama_file_type(const QuantTarget& t) {
  switch (t.base) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q4_1: return 3;
    case DType::Q8_0: return 7;
    case DType::Q5_0: return 8;
    case DType::Q5_1: return 9;
    case DType::Q2_K: return 10;
    case DType::Q3_K: return 12;
    case DType::Q4_K: return 15;  // llama.cpp's Q4_K_M (also for plain q4_k)
    case DType::Q5_K: return 17;  // Q5_K_M
    case DType::Q6_K: return 18;
    case DType::BF16: return 32;
    default: throw Error(str_cat("no file type for ", dtype_name(t.base)));
  }
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int64_t layer_index(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  return std::strtoll(name.c_str() + 4, nullptr, 10);
}

// Layers that get more bits in the _M mixtures: the first and last eighth, and
// every third layer in between.
bool use_more_bits(int64_t i, int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

DType fallback_type(DType t, int64_t row_len) {
  // Rows that do not split into 256-blocks take a 32-block type of similar size
  // (the same choices llama.cpp makes, so mixtures of the same name agree).
  const auto fits = [&](DType d) { return row_len % dtype_info(d).block_size == 0; };
  if (fits(t)) return t;
  DType alt = DType::F16;
  switch (t) {
    case DType::Q2_K: case DType::Q3_K: alt = DType::Q4_0; break;
    case DType::Q4_K: alt = DType::Q5_0; break;
    case DType::Q5_K: alt = DType::Q5_1; break;
    case DType::Q6_K: alt = DType::Q8_0; break;
    default: break;
  }
  return fits(alt) ? alt : DType::F16;
}

}  // namespace

QuantTarget parse_quant_target(const std::string& name) {
  QuantTarget t;
  t.name = name;
  struct Mixture {
    const char *lower, *upper;
    DType base;
  };
  for (const Mixture& m : {Mixture{"q4_k_m", "Q4_K_M", DType::Q4_K},
                           Mixture{"q5_k_m", "Q5_K_M", DType::Q5_K}}) {
    if (name == m.lower || name == m.upper) {
      t.base = m.base;
      t.k_m = true;
      return t;
    }
  }
  auto d = dtype_from_name(name);
  MUSE_CHECK(d && (*d == DType::F32 || *d == DType::F16 || *d == DType::BF16 ||
                   kernels::scalar_kernels().quantize_fn(*d)) &&
                 *d != DType::Q8_1 && *d != DType::Q8_K && dtype_info(*d).block_size > 0 &&
                 (*d == DType::F32 || *d == DType::F16 || *d == DType::BF16 || dtype_info(*d).quantized),
             "unknown or unsupported target type '", name,
             "' (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, "
             "q6_k, q4_k_m or q5_k_m)");
  t.base = *d;
  return t;
}

DType tensor_type_for(const QuantTarget& target, const std::string& name, int n_dims,
                      int64_t row_len, int64_t n_layer, bool output_is_tied_embedding) {
  if (n_dims < 2 || !ends_with(name, ".weight") || name == "rope_freqs.weight") return DType::F32;
  DType t = target.base;
  if (target.k_m) {
    const int64_t il = layer_index(name);
    if (name == "output.weight" || (output_is_tied_embedding && name == "token_embd.weight")) {
      t = DType::Q6_K;
    } else if ((ends_with(name, "attn_v.weight") || ends_with(name, "ffn_down.weight")) &&
               il >= 0 && use_more_bits(il, n_layer)) {
      t = DType::Q6_K;
    }
  }
  return fallback_type(t, row_len);
}

std::vector<uint8_t> convert_tensor(const TensorView& src, DType type) {
  const auto& k = kernels::scalar_kernels();
  const int64_t cols = src.cols(), rows = src.rows();
  MUSE_CHECK(cols % dtype_info(type).block_size == 0, "row length ", cols,
             " is not a multiple of the ", dtype_name(type), " block size");
  const size_t out_row = row_bytes(type, cols);
  std::vector<uint8_t> out(out_row * static_cast<size_t>(rows));
  if (src.type == type) {
    std::memcpy(out.data(), src.data, out.size());
    return out;
  }
  auto quant = k.quantize_fn(type);
  MUSE_CHECK(quant, "cannot write tensors of type ", dtype_name(type));
  // Quantizing is the slow part of conversion (k-quants search scales), so rows
  // are spread over the machine's threads.
  static ThreadPool pool(default_thread_count());
  static std::mutex pool_mutex;  // the pool runs one loop at a time
  std::lock_guard<std::mutex> lock(pool_mutex);
  pool.parallel_for(rows, [&](int, int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; ++r) {
      kernels::dequantize_row(src, r, row.data());
      quant(row.data(), out.data() + static_cast<size_t>(r) * out_row, cols);
    }
  });
  return out;
}

namespace {

// Media encoders stored in the model file (ArchSpec::media_tensors): copied from
// the source (a Hugging Face directory or a GGUF) with their metadata.
void add_embedded_media(const Model& model, const QuantTarget& target, GgufWriter& w) {
  const ArchSpec& arch = model.arch();
  if (arch.media_tensors.empty()) return;
  const auto& c = model.config();
  std::unique_ptr<EncoderWeights> src;
  if (const GgufFile* g = model.gguf()) {
    for (const std::string& group : {std::string(".vision."), std::string(".audio.")}) {
      const std::string prefix = arch.gguf_name + group;
      for (const auto& key : g->key_order())
        if (key.rfind(prefix, 0) == 0) w.set(key, g->metadata().at(key));
    }
    src = EncoderWeights::open_gguf(model.path());
  } else {
    src = EncoderWeights::open_hf_dir(model.hf_dir());
    if (arch.media_to_gguf) arch.media_to_gguf(src->hf_config(), w);
  }
  for (const auto& t : arch.media_tensors) {
    if (!src->has(t.gguf_name, t.hf_name)) continue;  // a model without that modality
    const std::vector<int64_t> ne = src->shape(t.gguf_name, t.hf_name);
    const TensorView view = src->tensor(t.gguf_name, t.hf_name, ne);
    const DType type = tensor_type_for(target, t.gguf_name, view.n_dims, view.cols(), c.n_layer,
                                       false);
    auto data = convert_tensor(view, type);
    w.add_tensor(t.gguf_name, type, ne, data.data(), data.size());
  }
}

}  // namespace

void write_gguf(const Model& model, const std::string& out, const QuantTarget& target) {
  const auto& c = model.config();
  GgufWriter w;
  model.arch().to_gguf(c, w);
  std::string name = std::filesystem::path(model.path()).filename().string();
  w.set("general.name", GgufValue::string(name));
  w.set("general.file_type", GgufValue::u32(llama_file_type(target)));
  w.set("general.quantization_version", GgufValue::u32(2));
  if (const GgufFile* src = model.gguf()) {
    for (const auto& key : src->key_order())
      if (key.rfind("tokenizer.", 0) == 0) w.set(key, src->metadata().at(key));
  } else if (!model.hf_dir().empty()) {
    add_hf_tokenizer_metadata(model.hf_dir(), c, w);
  }
  for (const auto& t : model.tensors()) {
    const DType type = tensor_type_for(target, t.name, t.view.n_dims, t.view.cols(), c.n_layer,
                                       c.tied_embeddings);
    auto data = convert_tensor(t.view, type);
    std::vector<int64_t> ne(t.view.ne.begin(), t.view.ne.begin() + t.view.n_dims);
    w.add_tensor(t.name, type, ne, data.data(), data.size());
  }
  add_embedded_media(model, target, w);
  w.write(out);
}

void quantize_gguf(const std::string& in, const std::string& out, const QuantTarget& target) {
  auto src = GgufFile::open(in);
  GgufWriter w;
  for (const auto& key : src->key_order()) w.set(key, src->metadata().at(key));
  w.set("general.file_type", GgufValue::u32(llama_file_type(target)));
  w.set("general.quantization_version", GgufValue::u32(2));
  const std::string arch = src->get_string_or("general.architecture", "");
  const int64_t n_layer = src->get_int_or(arch + ".block_count", 0);
  const bool tied = src->find_tensor("output.weight") == nullptr;
  for (const auto& t : src->tensors()) {
    const DType type = tensor_type_for(target, t.name, t.view.n_dims, t.view.cols(), n_layer, tied);
    std::vector<int64_t> ne(t.view.ne.begin(), t.view.ne.begin() + t.view.n_dims);
    if (t.view.n_dims < 2 && !kernels::scalar_kernels().dequantize_fn(t.view.type)) {
      // A non-float vector (e.g. integer data): copied as it is.
      w.add_tensor(t.name, t.view.type, ne, t.view.data, t.view.nbytes);
      continue;
    }
    MUSE_CHECK(kernels::scalar_kernels().dequantize_fn(t.view.type), in, ": tensor '", t.name,
               "' has type ", dtype_name(t.view.type), " which cannot be read");
    auto data = convert_tensor(t.view, type);
    w.add_tensor(t.name, type, ne, data.data(), data.size());
  }
  w.write(out);
}

}  // namespace muse
