#include "model/vision_muse_glimmer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/read_file.h"
#include "model/convert.h"
#include "model/encoder_ops.h"
#include "model/safetensors.h"
#include "muse/error.h"

namespace muse {
namespace {

// ---------------------------------------------------------------- the name table
// The one place that pairs mmproj GGUF names with Hugging Face names; the loader
// and write_muse_glimmer_mmproj both read it. Block names are relative to
// "v.blk.N." / "model.vision_tower.layers.N.".
enum Global { kPatchEmbd, kPosEmbd, kPreLnW, kPreLnB, kPostLnW, kPostLnB, kFc1, kFc2, kProj };
constexpr EncoderTensorName kGlobalNames[] = {
    {"v.patch_embd.weight", "model.vision_tower.patch_embedder.patch_embedding.weight"},
    {"v.position_embd.weight", "model.vision_tower.patch_embedder.position_embedding_table.weight"},
    {"v.pre_ln.weight", "model.vision_tower.ln_pre.weight"},
    {"v.pre_ln.bias", "model.vision_tower.ln_pre.bias"},
    {"v.post_ln.weight", "model.vision_tower.ln_post.weight"},
    {"v.post_ln.bias", "model.vision_tower.ln_post.bias"},
    {"mm.fc1.weight", "model.vision_adapter.fc1.weight"},
    {"mm.fc2.weight", "model.vision_adapter.fc2.weight"},
    {"mm.proj.weight", "model.vision_projection.weight"},
};

enum Block {
  kLn1W,
  kLn1B,
  kQ,
  kQB,
  kK,
  kKB,
  kV,
  kVB,
  kOut,
  kOutB,
  kLn2W,
  kLn2B,
  kUp,
  kUpB,
  kDown,
  kDownB
};
constexpr EncoderTensorName kBlockNames[] = {
    {"ln1.weight", "norm1.weight"},          {"ln1.bias", "norm1.bias"},
    {"attn_q.weight", "attn.q_proj.weight"}, {"attn_q.bias", "attn.q_proj.bias"},
    {"attn_k.weight", "attn.k_proj.weight"}, {"attn_k.bias", "attn.k_proj.bias"},
    {"attn_v.weight", "attn.v_proj.weight"}, {"attn_v.bias", "attn.v_proj.bias"},
    {"attn_out.weight", "attn.proj.weight"}, {"attn_out.bias", "attn.proj.bias"},
    {"ln2.weight", "norm2.weight"},          {"ln2.bias", "norm2.bias"},
    {"ffn_up.weight", "mlp.fc1.weight"},     {"ffn_up.bias", "mlp.fc1.bias"},
    {"ffn_down.weight", "mlp.fc2.weight"},   {"ffn_down.bias", "mlp.fc2.bias"},
};

EncoderTensorNames block_names(int64_t il, Block b) {
  return block_tensor_names(kBlockNames[b], "v.blk.", "model.vision_tower.layers.", il);
}

// 1-D linear interpolation of an n_in table at n_out half-pixel centres
// (s = (o + 0.5) * n_in / n_out - 0.5); taps outside the table weigh zero and are
// not renormalized (grid_sample with zeros padding), which the golden requires.
struct Taps {
  int64_t i0;
  float w0, w1;  // weights of i0 and i0 + 1 (either may be outside the table: weight 0)
};
std::vector<Taps> interpolation_taps(int64_t n_in, int64_t n_out) {
  std::vector<Taps> taps(n_out);
  for (int64_t o = 0; o < n_out; ++o) {
    const double s = (o + 0.5) * static_cast<double>(n_in) / n_out - 0.5;
    const double i0 = std::floor(s), f = s - i0;
    Taps& t = taps[o];
    t.i0 = static_cast<int64_t>(i0);
    t.w0 = (t.i0 >= 0 && t.i0 < n_in) ? static_cast<float>(1.0 - f) : 0.0f;
    t.w1 = (t.i0 + 1 >= 0 && t.i0 + 1 < n_in) ? static_cast<float>(f) : 0.0f;
  }
  return taps;
}

class MuseGlimmerVisionEncoder final : public VisionEncoder {
 public:
  MuseGlimmerVisionEncoder(std::shared_ptr<const EncoderWeights> weights,
                           MuseGlimmerVisionConfig config)
      : weights_(std::move(weights)), cfg_(std::move(config)) {
    const EncoderWeights& w = *weights_;
    const ImageProcessorSpec& p = cfg_.processor;
    const int64_t d = cfg_.n_embd;
    MUSE_CHECK(d > 0 && cfg_.n_head > 0 && d % cfg_.n_head == 0 && (d / cfg_.n_head) % 4 == 0,
               w.path(), ": vision width ", d, " does not split into ", cfg_.n_head,
               " heads of a size divisible by 4");
    MUSE_CHECK(p.patch_size > 0 && p.temporal_patch > 0 && p.merge_size > 0 &&
                   cfg_.in_channels > 0 && cfg_.pos_h > 0 && cfg_.pos_w > 0 && cfg_.n_ff > 0,
               w.path(), ": bad vision patch/merge/position sizes");
    MUSE_CHECK(static_cast<int64_t>(cfg_.window_attention.size()) == cfg_.n_layer, w.path(),
               ": vision layer types do not cover ", cfg_.n_layer, " layers");
    patch_dim_ = cfg_.in_channels * p.temporal_patch * p.patch_size * p.patch_size;
    auto global = [&](Global g) { return kGlobalNames[g]; };
    patch_embd_ = w.matrix(global(kPatchEmbd).gguf, global(kPatchEmbd).hf, patch_dim_, d);
    pos_table_ = tensor_to_f32(
        w.tensor(global(kPosEmbd).gguf, global(kPosEmbd).hf, {d, cfg_.pos_h * cfg_.pos_w}));
    pre_ln_ = w.vector(global(kPreLnW).gguf, global(kPreLnW).hf, d);
    pre_ln_b_ = w.vector(global(kPreLnB).gguf, global(kPreLnB).hf, d);
    post_ln_ = w.vector(global(kPostLnW).gguf, global(kPostLnW).hf, d);
    post_ln_b_ = w.vector(global(kPostLnB).gguf, global(kPostLnB).hf, d);
    for (int64_t il = 0; il < cfg_.n_layer; ++il) {
      auto vec = [&](Block b, int64_t n) {
        const EncoderTensorNames names = block_names(il, b);
        return w.vector(names.gguf, names.hf, n);
      };
      auto mat = [&](Block b, int64_t cols, int64_t rows) {
        const EncoderTensorNames names = block_names(il, b);
        return w.matrix(names.gguf, names.hf, cols, rows);
      };
      enc::EncoderBlock b;
      b.norm1_w = vec(kLn1W, d), b.norm1_b = vec(kLn1B, d);
      b.norm2_w = vec(kLn2W, d), b.norm2_b = vec(kLn2B, d);
      b.wq = mat(kQ, d, d), b.bq = vec(kQB, d);
      b.wk = mat(kK, d, d), b.bk = vec(kKB, d);
      b.wv = mat(kV, d, d), b.bv = vec(kVB, d);
      b.wo = mat(kOut, d, d), b.bo = vec(kOutB, d);
      b.up = mat(kUp, d, cfg_.n_ff), b.bup = vec(kUpB, cfg_.n_ff);
      b.down = mat(kDown, cfg_.n_ff, d), b.bdown = vec(kDownB, d);
      blocks_.push_back(b);
    }
    merged_dim_ = d * p.merge_size * p.merge_size;
    const std::vector<int64_t> fc1 = w.shape(global(kFc1).gguf, global(kFc1).hf);
    const std::vector<int64_t> proj = w.shape(global(kProj).gguf, global(kProj).hf);
    MUSE_CHECK(fc1.size() == 2 && proj.size() == 2, w.path(),
               ": vision adapter / projection weights are not matrices");
    adapter_dim_ = fc1[1];
    out_dim_ = proj[1];
    fc1_ = w.matrix(global(kFc1).gguf, global(kFc1).hf, merged_dim_, adapter_dim_);
    fc2_ = w.matrix(global(kFc2).gguf, global(kFc2).hf, adapter_dim_, adapter_dim_);
    proj_ = w.matrix(global(kProj).gguf, global(kProj).hf, adapter_dim_, out_dim_);
  }

  const ImageProcessorSpec& processor() const override { return cfg_.processor; }
  int64_t n_embd_out() const override { return out_dim_; }
  int64_t n_tokens(const ImagePatches& image) const override {
    const int64_t m = cfg_.processor.merge_size;
    return image.grid_t * (image.grid_h / m) * (image.grid_w / m);
  }
  std::vector<float> encode(const ImagePatches& image, ThreadPool& pool) const override;

 private:
  void validate(const ImagePatches& image) const;
  void add_positions(float* x, int64_t grid_h, int64_t grid_w) const;

  std::shared_ptr<const EncoderWeights> weights_;
  MuseGlimmerVisionConfig cfg_;
  int64_t patch_dim_ = 0, merged_dim_ = 0, adapter_dim_ = 0, out_dim_ = 0;
  TensorView patch_embd_, pre_ln_, pre_ln_b_, post_ln_, post_ln_b_, fc1_, fc2_, proj_;
  std::vector<float> pos_table_;  // [pos_h * pos_w][n_embd], row-major over (h, w)
  std::vector<enc::EncoderBlock> blocks_;
};

void MuseGlimmerVisionEncoder::validate(const ImagePatches& image) const {
  const int64_t m = cfg_.processor.merge_size;
  MUSE_CHECK(image.patch_dim == patch_dim_, "image patches have ", image.patch_dim,
             " values each, the Muse Glimmer vision encoder expects ", patch_dim_);
  MUSE_CHECK(image.grid_t == 1, "image patch grid has ", image.grid_t,
             " temporal frames; the Muse Glimmer vision encoder takes one still image");
  MUSE_CHECK(image.grid_h >= m && image.grid_w >= m, "image patch grid ", image.grid_h, "x",
             image.grid_w, " is empty or smaller than one merged cell");
  MUSE_CHECK(image.grid_h % m == 0 && image.grid_w % m == 0, "image patch grid ", image.grid_h, "x",
             image.grid_w, " is not a multiple of the merge size ", m);
  MUSE_CHECK(image.grid_h <= (1 << 14) && image.grid_w <= (1 << 14), "image patch grid ",
             image.grid_h, "x", image.grid_w, " is too large");
  MUSE_CHECK(static_cast<int64_t>(image.pixel_values.size()) == image.n_patches() * patch_dim_,
             "image has ", image.pixel_values.size(), " pixel values, expected ", image.n_patches(),
             " patches x ", patch_dim_);
}

// x[r * grid_w + c] += bilinear(table)(r, c), separable over rows and columns.
void MuseGlimmerVisionEncoder::add_positions(float* x, int64_t grid_h, int64_t grid_w) const {
  const int64_t d = cfg_.n_embd;
  const std::vector<Taps> th = interpolation_taps(cfg_.pos_h, grid_h);
  const std::vector<Taps> tw = interpolation_taps(cfg_.pos_w, grid_w);
  for (int64_t r = 0; r < grid_h; ++r) {
    for (int64_t c = 0; c < grid_w; ++c) {
      float* row = x + (r * grid_w + c) * d;
      const int64_t hs[2] = {th[r].i0, th[r].i0 + 1};
      const float hw[2] = {th[r].w0, th[r].w1};
      const int64_t ws[2] = {tw[c].i0, tw[c].i0 + 1};
      const float ww[2] = {tw[c].w0, tw[c].w1};
      for (int a = 0; a < 2; ++a) {
        for (int b = 0; b < 2; ++b) {
          const float wt = hw[a] * ww[b];
          if (wt == 0.0f) continue;  // zero weight: also every tap outside the table
          const float* t = pos_table_.data() + (hs[a] * cfg_.pos_w + ws[b]) * d;
          for (int64_t i = 0; i < d; ++i) row[i] += wt * t[i];
        }
      }
    }
  }
}

std::vector<float> MuseGlimmerVisionEncoder::encode(const ImagePatches& image,
                                                    ThreadPool& pool) const {
  validate(image);
  const int64_t m = cfg_.processor.merge_size;
  const int64_t d = cfg_.n_embd, n_head = cfg_.n_head, head_dim = d / n_head;
  const int64_t gh = image.grid_h, gw = image.grid_w, n = gh * gw;

  // Rotary angles: width position first, then height (rows are raster order).
  std::vector<int32_t> pos_col(n), pos_row(n);
  for (int64_t s = 0; s < n; ++s) {
    pos_row[s] = static_cast<int32_t>(s / gw);
    pos_col[s] = static_cast<int32_t>(s % gw);
  }
  std::vector<float> cos, sin;
  enc::rope_2d_tables(pos_col.data(), pos_row.data(), n, head_dim, cfg_.rope_theta, cos, sin);

  // Windows of pos_h x pos_w patches from the top-left corner (partial at the edges).
  enc::AttentionGroups full, windows;
  full.add_span(0, n);
  std::vector<int32_t> members;
  for (int64_t wy = 0; wy < gh; wy += cfg_.pos_h) {
    for (int64_t wx = 0; wx < gw; wx += cfg_.pos_w) {
      members.clear();
      for (int64_t r = wy; r < std::min(gh, wy + cfg_.pos_h); ++r) {
        for (int64_t c = wx; c < std::min(gw, wx + cfg_.pos_w); ++c) {
          members.push_back(static_cast<int32_t>(r * gw + c));
        }
      }
      windows.add_group(members);
    }
  }

  enc::EncoderScratch scratch;
  std::vector<float> x(n * d);
  enc::linear(patch_embd_, TensorView{}, image.pixel_values.data(), n, x.data(), pool, scratch);
  add_positions(x.data(), gh, gw);
  enc::layer_norm_rows(x.data(), pre_ln_, pre_ln_b_, x.data(), n, d, cfg_.eps);
  const enc::EncoderBlockShape shape{false, cfg_.eps, d, n_head, cfg_.n_ff, cos.data(), sin.data()};
  enc::EncoderBlockBuffers buffers;
  for (int64_t il = 0; il < cfg_.n_layer; ++il)
    enc::run_encoder_block(blocks_[il], shape, x.data(), n,
                           cfg_.window_attention[il] ? windows : full, pool, scratch, buffers);
  enc::layer_norm_rows(x.data(), post_ln_, post_ln_b_, x.data(), n, d, cfg_.eps);

  // Pixel shuffle, feature-major: merged[cell][c * m*m + dy * m + dx].
  const int64_t mh = gh / m, mw = gw / m, n_out = mh * mw;
  std::vector<float> merged(n_out * merged_dim_);
  for (int64_t by = 0; by < mh; ++by) {
    for (int64_t bx = 0; bx < mw; ++bx) {
      float* dst = merged.data() + (by * mw + bx) * merged_dim_;
      for (int64_t dy = 0; dy < m; ++dy) {
        for (int64_t dx = 0; dx < m; ++dx) {
          const float* src = x.data() + ((by * m + dy) * gw + bx * m + dx) * d;
          for (int64_t c = 0; c < d; ++c) dst[c * m * m + dy * m + dx] = src[c];
        }
      }
    }
  }

  std::vector<float> a(n_out * adapter_dim_), b2(n_out * adapter_dim_), out(n_out * out_dim_);
  enc::linear(fc1_, TensorView{}, merged.data(), n_out, a.data(), pool, scratch);
  enc::gelu_erf_inplace(a.data(), n_out * adapter_dim_);
  enc::linear(fc2_, TensorView{}, a.data(), n_out, b2.data(), pool, scratch);
  enc::gelu_erf_inplace(b2.data(), n_out * adapter_dim_);
  enc::linear(proj_, TensorView{}, b2.data(), n_out, out.data(), pool, scratch);
  enc::rms_norm_rows(out.data(), TensorView{}, out.data(), n_out, out_dim_, cfg_.out_eps);
  return out;
}

std::vector<bool> window_layers_from_types(const nlohmann::json& types, int64_t n_layer) {
  MUSE_CHECK(types.is_array() && static_cast<int64_t>(types.size()) == n_layer,
             "muse_glimmer vision_config: layer_types must list ", n_layer, " layers");
  std::vector<bool> out;
  for (const auto& t : types) {
    MUSE_CHECK(t.is_string(), "muse_glimmer vision_config: layer_types entries must be strings");
    const std::string s = t.get<std::string>();
    MUSE_CHECK(s == "window_attention" || s == "full_attention",
               "muse_glimmer vision_config: unknown layer type '", s, "'");
    out.push_back(s == "window_attention");
  }
  return out;
}

}  // namespace

MuseGlimmerVisionConfig muse_glimmer_vision_config_from_hf(const nlohmann::json& config,
                                                           const nlohmann::json& pre) {
  MUSE_CHECK(
      config.is_object() && config.contains("vision_config") && config["vision_config"].is_object(),
      "muse_glimmer config: no vision_config object");
  const nlohmann::json& vc = config["vision_config"];
  MuseGlimmerVisionConfig c;
  c.n_embd = config_value<int64_t>(vc, "hidden_size", c.n_embd, "muse_glimmer config");
  c.n_head = config_value<int64_t>(vc, "num_attention_heads", c.n_head, "muse_glimmer config");
  c.n_layer = config_value<int64_t>(vc, "num_hidden_layers", c.n_layer, "muse_glimmer config");
  c.n_ff = config_value<int64_t>(vc, "intermediate_size", c.n_ff, "muse_glimmer config");
  c.in_channels = config_value<int64_t>(vc, "num_channels", c.in_channels, "muse_glimmer config");
  c.pos_h = config_value<int64_t>(vc, "pos_emb_height", c.pos_h, "muse_glimmer config");
  c.pos_w = config_value<int64_t>(vc, "pos_emb_width", c.pos_w, "muse_glimmer config");
  c.eps = config_value<float>(vc, "layer_norm_eps", c.eps, "muse_glimmer config");
  if (vc.contains("rope_parameters") && vc["rope_parameters"].is_object()) {
    c.rope_theta = config_value<float>(vc["rope_parameters"], "rope_theta", c.rope_theta,
                                       "muse_glimmer config");
  }
  if (config.contains("text_config") && config["text_config"].is_object()) {
    c.out_eps = config_value<float>(config["text_config"], "rms_norm_eps", c.out_eps,
                                    "muse_glimmer config");
  }
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 1024, "muse_glimmer vision_config: bad layer count ",
             c.n_layer);
  if (vc.contains("layer_types")) {
    c.window_attention = window_layers_from_types(vc["layer_types"], c.n_layer);
  } else {
    c.window_attention.assign(c.n_layer, false);
  }
  ImageProcessorSpec& p = c.processor;
  p.kind = ImageProcessorSpec::Kind::MuseGlimmer;
  p.patch_size = config_value<int64_t>(vc, "patch_size", 14, "muse_glimmer config");
  p.temporal_patch = config_value<int64_t>(vc, "patch_temporal", 2, "muse_glimmer config");
  p.merge_size = config_value<int64_t>(vc, "merge_size", 2, "muse_glimmer config");
  p.max_tokens = 64;
  for (int i = 0; i < 3; ++i) p.mean[i] = p.std[i] = 0.5f;
  if (pre.is_object()) {
    p.max_tokens =
        config_value<int64_t>(pre, "max_image_tokens", p.max_tokens, "muse_glimmer config");
    p.patch_size = config_value<int64_t>(pre, "patch_size", p.patch_size, "muse_glimmer config");
    p.temporal_patch =
        config_value<int64_t>(pre, "temporal_patch_size", p.temporal_patch, "muse_glimmer config");
    p.merge_size = config_value<int64_t>(pre, "merge_size", p.merge_size, "muse_glimmer config");
    const auto mean =
        config_value<std::vector<float>>(pre, "image_mean", {}, "muse_glimmer config");
    const auto stdev =
        config_value<std::vector<float>>(pre, "image_std", {}, "muse_glimmer config");
    if (mean.size() == 3) std::copy(mean.begin(), mean.end(), p.mean);
    if (stdev.size() == 3) std::copy(stdev.begin(), stdev.end(), p.std);
  }
  return c;
}

MuseGlimmerVisionConfig muse_glimmer_vision_config_from_gguf(const GgufFile& g) {
  MuseGlimmerVisionConfig c;
  c.n_embd = g.get_int("clip.vision.embedding_length");
  c.n_head = g.get_int("clip.vision.attention.head_count");
  c.n_layer = g.get_int("clip.vision.block_count");
  c.n_ff = g.get_int("clip.vision.feed_forward_length");
  c.pos_h = g.get_int("clip.vision.pos_emb_height");
  c.pos_w = g.get_int("clip.vision.pos_emb_width");
  c.eps = static_cast<float>(g.get_float("clip.vision.attention.layer_norm_epsilon"));
  c.out_eps = static_cast<float>(g.get_float("clip.vision.projector.rms_norm_epsilon"));
  c.rope_theta = static_cast<float>(g.get_float_or("clip.vision.rope_theta", 10000.0));
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 1024, g.path(), ": bad vision block count ", c.n_layer);
  c.window_attention.assign(c.n_layer, false);
  if (const GgufValue* wa = g.find("clip.vision.wa_layer_indexes")) {
    for (int64_t il : wa->as_ints()) {
      MUSE_CHECK(il >= 0 && il < c.n_layer, g.path(), ": clip.vision.wa_layer_indexes entry ", il,
                 " out of range");
      c.window_attention[il] = true;
    }
  }
  ImageProcessorSpec& p = c.processor;
  p.kind = ImageProcessorSpec::Kind::MuseGlimmer;
  p.patch_size = g.get_int("clip.vision.patch_size");
  p.temporal_patch = g.get_int_or("clip.vision.temporal_patch_size", 2);
  p.merge_size = g.get_int_or("clip.vision.spatial_merge_size", 2);
  p.max_tokens = g.get_int_or("clip.vision.image_max_tokens", 64);
  for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    const GgufValue* v = g.find(key);
    MUSE_CHECK(v != nullptr, g.path(), ": key '", key, "' is missing");
    const std::vector<double> vals = v->as_floats();
    MUSE_CHECK(vals.size() == 3, g.path(), ": key '", key, "' must hold 3 values");
    float* dst = std::string(key).ends_with("mean") ? p.mean : p.std;
    for (int i = 0; i < 3; ++i) dst[i] = static_cast<float>(vals[i]);
  }
  return c;
}

std::unique_ptr<VisionEncoder> load_muse_glimmer_vision(
    std::shared_ptr<const EncoderWeights> weights, const MuseGlimmerVisionConfig& config) {
  MUSE_CHECK(weights != nullptr, "load_muse_glimmer_vision: no weights");
  return std::make_unique<MuseGlimmerVisionEncoder>(std::move(weights), config);
}

void write_muse_glimmer_mmproj(const std::string& hf_dir, const std::string& out_gguf,
                               DType weight_type) {
  const auto [config, pre] = read_hf_configs(hf_dir);
  MUSE_CHECK(config.value("model_type", "") == "muse_glimmer", hf_dir,
             "/config.json: not a muse_glimmer configuration");
  const MuseGlimmerVisionConfig c = muse_glimmer_vision_config_from_hf(config, pre);
  const DTypeInfo& info = dtype_info(weight_type);
  MUSE_CHECK(weight_type == DType::F32 || weight_type == DType::F16 || weight_type == DType::BF16 ||
                 info.quantized,
             "mmproj weight type ", info.name, " is not supported");

  GgufWriter w;
  w.set("general.architecture", GgufValue::string("clip"));
  w.set("general.type", GgufValue::string("mmproj"));
  w.set("general.name", GgufValue::string(std::filesystem::path(hf_dir).filename().string()));
  w.set("clip.projector_type", GgufValue::string("muse-glimmer"));
  w.set("clip.has_vision_encoder", GgufValue::boolean(true));
  w.set("clip.has_audio_encoder", GgufValue::boolean(false));
  w.set("clip.vision.embedding_length", GgufValue::u32(c.n_embd));
  w.set("clip.vision.feed_forward_length", GgufValue::u32(c.n_ff));
  w.set("clip.vision.block_count", GgufValue::u32(c.n_layer));
  w.set("clip.vision.attention.head_count", GgufValue::u32(c.n_head));
  w.set("clip.vision.attention.layer_norm_epsilon", GgufValue::f32(c.eps));
  w.set("clip.vision.projector.rms_norm_epsilon", GgufValue::f32(c.out_eps));
  w.set("clip.vision.rope_theta", GgufValue::f32(c.rope_theta));
  w.set("clip.vision.patch_size", GgufValue::u32(c.processor.patch_size));
  w.set("clip.vision.temporal_patch_size", GgufValue::u32(c.processor.temporal_patch));
  w.set("clip.vision.spatial_merge_size", GgufValue::u32(c.processor.merge_size));
  w.set("clip.vision.pos_emb_height", GgufValue::u32(c.pos_h));
  w.set("clip.vision.pos_emb_width", GgufValue::u32(c.pos_w));
  w.set("clip.vision.image_max_tokens", GgufValue::u32(c.processor.max_tokens));
  std::vector<int32_t> wa;
  for (int64_t il = 0; il < c.n_layer; ++il) {
    if (c.window_attention[il]) wa.push_back(static_cast<int32_t>(il));
  }
  w.set("clip.vision.wa_layer_indexes", GgufValue::i32_array(wa));
  w.set("clip.vision.image_mean", GgufValue::f32_array({c.processor.mean, c.processor.mean + 3}));
  w.set("clip.vision.image_std", GgufValue::f32_array({c.processor.std, c.processor.std + 3}));

  auto model = SafetensorsModel::open_dir(hf_dir);
  auto add = [&](const std::string& gguf_name, const std::string& hf_name, bool keep_f32) {
    const SafetensorsTensor* t = model->find(hf_name);
    MUSE_CHECK(t != nullptr, hf_dir, ": tensor '", hf_name, "' is missing");
    const TensorView& src = t->view;
    MUSE_CHECK(src.type == DType::F32 || src.type == DType::F16 || src.type == DType::BF16, hf_dir,
               ": tensor '", hf_name, "' has type ", dtype_name(src.type),
               ", expected a float type");
    std::vector<int64_t> ne(src.ne.begin(), src.ne.begin() + src.n_dims);
    DType type = DType::F32;
    if (!keep_f32 && src.n_dims == 2) {
      type = ne[0] % dtype_info(weight_type).block_size == 0 ? weight_type : DType::F16;
    }
    const std::vector<uint8_t> data = convert_tensor(src, type);
    w.add_tensor(gguf_name, type, ne, data.data(), data.size());
  };
  for (int g = kPatchEmbd; g <= kProj; ++g) {
    add(kGlobalNames[g].gguf, kGlobalNames[g].hf, g == kPatchEmbd || g == kPosEmbd);
  }
  for (int64_t il = 0; il < c.n_layer; ++il) {
    for (int b = kLn1W; b <= kDownB; ++b) {
      const EncoderTensorNames names = block_names(il, static_cast<Block>(b));
      add(names.gguf, names.hf, false);
    }
  }
  w.write(out_gguf);
}

}  // namespace muse
