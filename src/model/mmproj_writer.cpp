#include "model/mmproj_writer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/read_file.h"
#include "model/audio_qwen25omni.h"
#include "model/convert.h"
#include "model/encoder_ops.h"
#include "model/encoder_weights.h"
#include "model/gguf.h"
#include "model/safetensors.h"
#include "model/vision_muse_glimmer.h"
#include "model/vision_qwen25.h"
#include "muse/error.h"

namespace muse {
namespace {

namespace fs = std::filesystem;

// How the converter types a tensor.
enum class Kind { Vector, Matrix, ConvKernel, PatchKernel };

class MmprojBuilder {
 public:
  MmprojBuilder(std::string dir, DType weight_type)
      : dir_(std::move(dir)), weight_type_(weight_type), model_(SafetensorsModel::open_dir(dir_)) {}

  GgufWriter& writer() { return w_; }

  const SafetensorsTensor& source(const std::string& hf_name) const {
    for (const std::string& name : {hf_name, "thinker." + hf_name}) {
      if (const SafetensorsTensor* t = model_->find(name)) return *t;
    }
    throw Error(str_cat(dir_, ": tensor '", hf_name, "' (or 'thinker.", hf_name, "') is missing"));
  }
  bool has(const std::string& hf_name) const {
    return model_->find(hf_name) || model_->find("thinker." + hf_name);
  }

  DType type_for(Kind kind, int64_t row_len) const {
    switch (kind) {
      case Kind::Vector:
        return DType::F32;
      case Kind::ConvKernel:
        return DType::F16;
      case Kind::PatchKernel:
        return weight_type_ == DType::F16 ? DType::F16 : DType::F32;
      case Kind::Matrix:
        break;
    }
    if (row_len % dtype_info(weight_type_).block_size != 0) return DType::F16;
    return weight_type_;
  }

  // Adds `gguf_name` with shape `ne` from f32 values.
  void add_f32(const std::string& gguf_name, const std::vector<int64_t>& ne, Kind kind,
               const std::vector<float>& values) {
    TensorView v;
    v.type = DType::F32;
    v.n_dims = static_cast<int>(ne.size());
    for (size_t i = 0; i < ne.size(); ++i) v.ne[i] = ne[i];
    v.data = values.data();
    v.nbytes = values.size() * sizeof(float);
    add_view(gguf_name, v, ne, kind);
  }

  // Adds an encoder tensor from its HF name to its GGUF name.
  void add(const EncoderTensorNames& n, const std::vector<int64_t>& ne, Kind kind) {
    add(n.gguf, n.hf, ne, kind);
  }
  // Adds an HF tensor, all of it, or (row0 >= 0) the part starting at row row0 of
  // ne[0]-long rows (a third of a fused qkv).
  void add(const std::string& gguf_name, const std::string& hf_name, const std::vector<int64_t>& ne,
           Kind kind, int64_t row0 = -1) {
    const SafetensorsTensor& src = source(hf_name);
    int64_t count = 1;
    for (int64_t n : ne) count *= n;
    MUSE_CHECK(is_float(src.view.type), dir_, ": tensor '", src.name, "' has type ",
               dtype_name(src.view.type), ", expected a float type");
    const int64_t row_len = ne[0];
    const bool whole = row0 < 0;
    if (whole) row0 = 0;
    MUSE_CHECK(
        whole ? src.view.n_elements() == count : src.view.n_elements() >= row0 * row_len + count,
        dir_, ": tensor '", src.name, "' has ", src.view.n_elements(),
        " values, which does not fit the expected shape of '", gguf_name, "'");
    TensorView v = src.view;
    v.n_dims = static_cast<int>(ne.size());
    v.ne = {1, 1, 1, 1};
    for (size_t i = 0; i < ne.size(); ++i) v.ne[i] = ne[i];
    v.data = static_cast<const uint8_t*>(src.view.data) + row0 * row_bytes(v.type, row_len);
    v.nbytes = count * dtype_info(v.type).block_bytes;
    add_view(gguf_name, v, ne, kind);
  }

  std::vector<float> f32(const std::string& hf_name) const {
    return tensor_to_f32(source(hf_name).view);
  }

 private:
  static bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

  void add_view(const std::string& gguf_name, const TensorView& v, const std::vector<int64_t>& ne,
                Kind kind) {
    TensorView rows = v;  // ne[0]-long rows, as convert_tensor expects
    const DType type = type_for(kind, ne[0]);
    const std::vector<uint8_t> data = convert_tensor(rows, type);
    w_.add_tensor(gguf_name, type, ne, data.data(), data.size());
  }

  std::string dir_;
  DType weight_type_;
  std::unique_ptr<SafetensorsModel> model_;
  GgufWriter w_;
};

int64_t get_int(const nlohmann::json& j, const char* key, int64_t def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  MUSE_CHECK(j[key].is_number_integer(), "config key '", key, "' is not an integer");
  return j[key].get<int64_t>();
}

void write_vision(MmprojBuilder& b, const nlohmann::json& vc, const nlohmann::json& pre) {
  GgufWriter& w = b.writer();
  const int64_t d = get_int(vc, "hidden_size", get_int(vc, "embed_dim", 1280));
  const int64_t depth = get_int(vc, "depth", 32);
  const int64_t heads = get_int(vc, "num_heads", 16);
  const int64_t patch = get_int(vc, "patch_size", 14);
  const int64_t t_patch = get_int(vc, "temporal_patch_size", 2);
  const int64_t in_ch = get_int(vc, "in_channels", get_int(vc, "in_chans", 3));
  const int64_t merge = get_int(vc, "spatial_merge_size", 2);
  const int64_t out_dim = get_int(vc, "out_hidden_size", 0);
  const int64_t n_ff = get_int(vc, "intermediate_size", 0);
  MUSE_CHECK(depth > 0 && d > 0 && out_dim > 0 && n_ff > 0 && merge > 0 && t_patch > 0,
             "vision_config lacks depth/hidden_size/out_hidden_size/intermediate_size");
  w.set("clip.vision.projection_dim", GgufValue::u32(out_dim));
  w.set("clip.vision.image_size", GgufValue::u32(560));
  w.set("clip.vision.patch_size", GgufValue::u32(patch));
  w.set("clip.vision.embedding_length", GgufValue::u32(d));
  w.set("clip.vision.feed_forward_length", GgufValue::u32(n_ff));
  w.set("clip.vision.block_count", GgufValue::u32(depth));
  w.set("clip.vision.attention.head_count", GgufValue::u32(heads));
  w.set("clip.vision.attention.layer_norm_epsilon", GgufValue::f32(1e-6f));
  std::vector<float> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::vector<float> stdev{0.26862954f, 0.26130258f, 0.27577711f};
  if (pre.is_object() && pre.contains("image_mean"))
    mean = pre["image_mean"].get<std::vector<float>>();
  if (pre.is_object() && pre.contains("image_std"))
    stdev = pre["image_std"].get<std::vector<float>>();
  w.set("clip.vision.image_mean", GgufValue::f32_array(mean));
  w.set("clip.vision.image_std", GgufValue::f32_array(stdev));
  // Full-attention blocks must be evenly spaced: n_wa_pattern = first + 1.
  const auto full = vc.value("fullatt_block_indexes", std::vector<int64_t>{});
  if (!full.empty()) {
    const int64_t pattern = full[0] + 1;
    for (size_t i = 0; i < full.size(); ++i) {
      MUSE_CHECK(full[i] == static_cast<int64_t>(i + 1) * pattern - 1,
                 "vision_config.fullatt_block_indexes are not evenly spaced; GGUF cannot express "
                 "them with clip.vision.n_wa_pattern");
    }
    w.set("clip.vision.n_wa_pattern", GgufValue::u32(pattern));
  }
  w.set("clip.vision.window_size", GgufValue::u32(get_int(vc, "window_size", 112)));
  if (merge != 2) w.set("clip.vision.spatial_merge_size", GgufValue::u32(merge));

  // Patch embedding: one [patch, patch, in, out] slice per temporal index.
  using T = Qwen25VisionTensor;
  using B = Qwen25VisionBlockTensor;
  const EncoderTensorNames patch_names = qwen25_vision_tensor(T::kPatchEmbd);
  const std::vector<float> conv = b.f32(patch_names.hf);
  const int64_t plane = patch * patch;
  MUSE_CHECK(static_cast<int64_t>(conv.size()) == d * in_ch * t_patch * plane, patch_names.hf,
             " does not have shape [", d, ", ", in_ch, ", ", t_patch, ", ", patch, ", ", patch,
             "]");
  for (int64_t t = 0; t < t_patch; ++t) {
    std::vector<float> slice(d * in_ch * plane);
    for (int64_t oc = 0; oc < d * in_ch; ++oc) {
      std::copy_n(&conv[(oc * t_patch + t) * plane], plane, &slice[oc * plane]);
    }
    const std::string name = t == 0 ? patch_names.gguf : str_cat(patch_names.gguf, ".", t);
    b.add_f32(name, {patch, patch, in_ch, d}, Kind::PatchKernel, slice);
  }
  for (int64_t il = 0; il < depth; ++il) {
    const auto n = [&](B t) { return qwen25_vision_tensor(il, t); };
    b.add(n(B::kLn1), {d}, Kind::Vector);
    // Some checkpoints fuse q, k and v into one attn.qkv (rows q, then k, then v).
    const std::string qkv = str_cat("visual.blocks.", il, ".attn.qkv");
    const bool fused = !b.has(n(B::kQ).hf) && b.has(qkv + ".weight");
    const B parts[3][2] = {{B::kQ, B::kQBias}, {B::kK, B::kKBias}, {B::kV, B::kVBias}};
    for (int p = 0; p < 3; ++p) {
      if (fused) {
        b.add(n(parts[p][0]).gguf, qkv + ".weight", {d, d}, Kind::Matrix, p * d);
        b.add(n(parts[p][1]).gguf, qkv + ".bias", {d}, Kind::Vector, p * d);
      } else {
        b.add(n(parts[p][0]), {d, d}, Kind::Matrix);
        b.add(n(parts[p][1]), {d}, Kind::Vector);
      }
    }
    b.add(n(B::kOut), {d, d}, Kind::Matrix);
    b.add(n(B::kOutBias), {d}, Kind::Vector);
    b.add(n(B::kLn2), {d}, Kind::Vector);
    b.add(n(B::kGate), {d, n_ff}, Kind::Matrix);
    b.add(n(B::kGateBias), {n_ff}, Kind::Vector);
    b.add(n(B::kUp), {d, n_ff}, Kind::Matrix);
    b.add(n(B::kUpBias), {n_ff}, Kind::Vector);
    b.add(n(B::kDown), {n_ff, d}, Kind::Matrix);
    b.add(n(B::kDownBias), {d}, Kind::Vector);
  }
  const int64_t merged = d * merge * merge;
  b.add(qwen25_vision_tensor(T::kPostLn), {d}, Kind::Vector);
  b.add(qwen25_vision_tensor(T::kMerger0), {merged, merged}, Kind::Matrix);
  b.add(qwen25_vision_tensor(T::kMerger0Bias), {merged}, Kind::Vector);
  b.add(qwen25_vision_tensor(T::kMerger2), {merged, out_dim}, Kind::Matrix);
  b.add(qwen25_vision_tensor(T::kMerger2Bias), {out_dim}, Kind::Vector);
}

void write_audio(MmprojBuilder& b, const nlohmann::json& ac) {
  GgufWriter& w = b.writer();
  const int64_t d = get_int(ac, "d_model", 1280);
  const int64_t n_layer = get_int(ac, "encoder_layers", 32);
  const int64_t heads = get_int(ac, "encoder_attention_heads", 20);
  const int64_t n_ff = get_int(ac, "encoder_ffn_dim", 5120);
  const int64_t n_mel = get_int(ac, "num_mel_bins", 128);
  const int64_t out_dim = get_int(ac, "output_dim", 0);
  const int64_t n_pos = get_int(ac, "max_source_positions", 1500);
  MUSE_CHECK(d > 0 && n_layer > 0 && out_dim > 0 && n_pos > 0,
             "audio_config lacks d_model/encoder_layers/output_dim");
  w.set("clip.audio.projection_dim", GgufValue::u32(out_dim));
  w.set("clip.audio.embedding_length", GgufValue::u32(d));
  w.set("clip.audio.feed_forward_length", GgufValue::u32(n_ff));
  w.set("clip.audio.block_count", GgufValue::u32(n_layer));
  w.set("clip.audio.attention.head_count", GgufValue::u32(heads));
  w.set("clip.audio.attention.layer_norm_epsilon", GgufValue::f32(1e-5f));
  w.set("clip.audio.num_mel_bins", GgufValue::u32(n_mel));

  using T = Qwen25AudioTensor;
  using B = Qwen25AudioBlockTensor;
  b.add(qwen25_audio_tensor(T::kConv1), {3, n_mel, d}, Kind::ConvKernel);
  b.add(qwen25_audio_tensor(T::kConv1Bias), {1, d}, Kind::Vector);
  b.add(qwen25_audio_tensor(T::kConv2), {3, d, d}, Kind::ConvKernel);
  b.add(qwen25_audio_tensor(T::kConv2Bias), {1, d}, Kind::Vector);
  b.add_f32(qwen25_audio_tensor(T::kPositions).gguf, {d, n_pos}, Kind::Vector,
            enc::sinusoid_positions(n_pos, d));
  for (int64_t il = 0; il < n_layer; ++il) {
    const auto n = [&](B t) { return qwen25_audio_tensor(il, t); };
    b.add(n(B::kLn1), {d}, Kind::Vector);
    b.add(n(B::kLn1Bias), {d}, Kind::Vector);
    b.add(n(B::kQ), {d, d}, Kind::Matrix);
    b.add(n(B::kQBias), {d}, Kind::Vector);
    b.add(n(B::kK), {d, d}, Kind::Matrix);
    b.add(n(B::kV), {d, d}, Kind::Matrix);
    b.add(n(B::kVBias), {d}, Kind::Vector);
    b.add(n(B::kOut), {d, d}, Kind::Matrix);
    b.add(n(B::kOutBias), {d}, Kind::Vector);
    b.add(n(B::kLn2), {d}, Kind::Vector);
    b.add(n(B::kLn2Bias), {d}, Kind::Vector);
    b.add(n(B::kUp), {d, n_ff}, Kind::Matrix);
    b.add(n(B::kUpBias), {n_ff}, Kind::Vector);
    b.add(n(B::kDown), {n_ff, d}, Kind::Matrix);
    b.add(n(B::kDownBias), {d}, Kind::Vector);
  }
  b.add(qwen25_audio_tensor(T::kPostLn), {d}, Kind::Vector);
  b.add(qwen25_audio_tensor(T::kPostLnBias), {d}, Kind::Vector);
  b.add(qwen25_audio_tensor(T::kProj), {d, out_dim}, Kind::Matrix);
  b.add(qwen25_audio_tensor(T::kProjBias), {out_dim}, Kind::Vector);
}

}  // namespace

void write_mmproj(const std::string& hf_dir, const std::string& out_gguf, DType weight_type) {
  HfConfigs configs = read_hf_configs(hf_dir);
  const nlohmann::json& config = configs.config;
  const nlohmann::json& pre = configs.preprocessor;
  if (config.value("model_type", "") == "muse_glimmer")
    return write_muse_glimmer_mmproj(hf_dir, out_gguf, weight_type);
  const nlohmann::json* holder = &config;
  if (config.value("model_type", "") == "qwen2_5_omni" && config.contains("thinker_config")) {
    holder = &config["thinker_config"];
  }
  const bool vision = holder->contains("vision_config");
  const bool audio = holder->contains("audio_config");
  MUSE_CHECK(vision, hf_dir, ": no vision_config; only Qwen2.5-Omni / Qwen2.5-VL style ",
             "checkpoints can be written as an mmproj");
  const DTypeInfo& info = dtype_info(weight_type);
  MUSE_CHECK(weight_type == DType::F32 || weight_type == DType::F16 || weight_type == DType::BF16 ||
                 info.quantized,
             "mmproj weight type ", info.name, " is not supported");

  MmprojBuilder b(hf_dir, weight_type);
  GgufWriter& w = b.writer();
  w.set("general.architecture", GgufValue::string("clip"));
  w.set("general.type", GgufValue::string("mmproj"));
  w.set("general.name", GgufValue::string(fs::path(hf_dir).filename().string()));
  QuantTarget target;
  target.base = weight_type;
  w.set("general.file_type", GgufValue::u32(llama_file_type(target)));
  w.set("clip.projector_type", GgufValue::string(audio ? "qwen2.5o" : "qwen2.5vl_merger"));
  w.set("clip.has_vision_encoder", GgufValue::boolean(true));
  w.set("clip.has_audio_encoder", GgufValue::boolean(audio));
  w.set("clip.use_silu", GgufValue::boolean(true));
  try {
    write_vision(b, (*holder)["vision_config"], pre);
    if (audio) write_audio(b, (*holder)["audio_config"]);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat(hf_dir, "/config.json", ": bad configuration value: ", e.what()));
  }
  w.write(out_gguf);
}

}  // namespace muse
