#include "model/vision_qwen25.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "muse/error.h"

namespace muse {

namespace {

// Indexed by Qwen25VisionTensor / Qwen25VisionBlockTensor.
constexpr EncoderTensorName kVisionNames[] = {
    {"v.patch_embd.weight", "visual.patch_embed.proj.weight"},
    {"v.post_ln.weight", "visual.merger.ln_q.weight"},
    {"mm.0.weight", "visual.merger.mlp.0.weight"},
    {"mm.0.bias", "visual.merger.mlp.0.bias"},
    {"mm.2.weight", "visual.merger.mlp.2.weight"},
    {"mm.2.bias", "visual.merger.mlp.2.bias"},
};
// Within "v.blk.N." / "visual.blocks.N.".
constexpr EncoderTensorName kVisionBlockNames[] = {
    {"ln1.weight", "norm1.weight"},
    {"attn_q.weight", "attn.q.weight"},
    {"attn_q.bias", "attn.q.bias"},
    {"attn_k.weight", "attn.k.weight"},
    {"attn_k.bias", "attn.k.bias"},
    {"attn_v.weight", "attn.v.weight"},
    {"attn_v.bias", "attn.v.bias"},
    {"attn_out.weight", "attn.proj.weight"},
    {"attn_out.bias", "attn.proj.bias"},
    {"ln2.weight", "norm2.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_gate.bias", "mlp.gate_proj.bias"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_up.bias", "mlp.up_proj.bias"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
    {"ffn_down.bias", "mlp.down_proj.bias"},
};
static_assert(std::size(kVisionNames) == static_cast<size_t>(Qwen25VisionTensor::kMerger2Bias) + 1);
static_assert(std::size(kVisionBlockNames) ==
              static_cast<size_t>(Qwen25VisionBlockTensor::kDownBias) + 1);

}  // namespace

EncoderTensorNames qwen25_vision_tensor(Qwen25VisionTensor t) {
  const EncoderTensorName& n = kVisionNames[static_cast<size_t>(t)];
  return {n.gguf, n.hf};
}

EncoderTensorNames qwen25_vision_tensor(int64_t layer, Qwen25VisionBlockTensor t) {
  return block_tensor_names(kVisionBlockNames[static_cast<size_t>(t)], "v.blk.", "visual.blocks.",
                            layer);
}

namespace {

class Qwen25VisionEncoder final : public VisionEncoder {
 public:
  Qwen25VisionEncoder(std::shared_ptr<const EncoderWeights> weights, Qwen25VisionConfig config)
      : weights_(std::move(weights)), cfg_(std::move(config)) {
    const EncoderWeights& w = *weights_;
    const ImageProcessorSpec& p = cfg_.processor;
    const int64_t d = cfg_.n_embd;
    MUSE_CHECK(d > 0 && cfg_.n_head > 0 && d % cfg_.n_head == 0 && (d / cfg_.n_head) % 4 == 0,
               w.path(), ": vision width ", d, " does not split into ", cfg_.n_head,
               " heads of a size divisible by 4");
    MUSE_CHECK(p.patch_size > 0 && p.temporal_patch > 0 && p.merge_size > 0, w.path(),
               ": bad vision patch/merge sizes");
    MUSE_CHECK(cfg_.window_size > 0 && cfg_.window_size % (p.patch_size * p.merge_size) == 0,
               w.path(), ": vision window size ", cfg_.window_size,
               " is not a multiple of patch * merge");
    MUSE_CHECK(static_cast<int64_t>(cfg_.full_attention.size()) == cfg_.n_layer, w.path(),
               ": full-attention schedule does not cover ", cfg_.n_layer, " blocks");
    patch_dim_ = cfg_.in_channels * p.temporal_patch * p.patch_size * p.patch_size;
    using T = Qwen25VisionTensor;
    using B = Qwen25VisionBlockTensor;
    const auto vec = [&](const EncoderTensorNames& n, int64_t len) {
      return w.vector(n.gguf, n.hf, len);
    };
    const auto mat = [&](const EncoderTensorNames& n, int64_t cols, int64_t rows) {
      return w.matrix(n.gguf, n.hf, cols, rows);
    };
    const EncoderTensorNames patch = qwen25_vision_tensor(T::kPatchEmbd);
    patch_embd_ = w.patch_embed_conv3d(patch.gguf, patch.hf, cfg_.in_channels, p.temporal_patch,
                                       p.patch_size, d);
    const EncoderTensorNames gate0 = qwen25_vision_tensor(0, B::kGate);
    n_ff_ = w.shape(gate0.gguf, gate0.hf).back();
    for (int64_t il = 0; il < cfg_.n_layer; ++il) {
      const auto n = [&](B t) { return qwen25_vision_tensor(il, t); };
      enc::EncoderBlock b;
      b.norm1_w = vec(n(B::kLn1), d);
      b.norm2_w = vec(n(B::kLn2), d);
      b.wq = mat(n(B::kQ), d, d);
      b.bq = vec(n(B::kQBias), d);
      b.wk = mat(n(B::kK), d, d);
      b.bk = vec(n(B::kKBias), d);
      b.wv = mat(n(B::kV), d, d);
      b.bv = vec(n(B::kVBias), d);
      b.wo = mat(n(B::kOut), d, d);
      b.bo = vec(n(B::kOutBias), d);
      b.gate = mat(n(B::kGate), d, n_ff_);
      b.bgate = vec(n(B::kGateBias), n_ff_);
      b.up = mat(n(B::kUp), d, n_ff_);
      b.bup = vec(n(B::kUpBias), n_ff_);
      b.down = mat(n(B::kDown), n_ff_, d);
      b.bdown = vec(n(B::kDownBias), d);
      blocks_.push_back(b);
    }
    const int64_t merged = d * p.merge_size * p.merge_size;
    post_ln_ = vec(qwen25_vision_tensor(T::kPostLn), d);
    mm0_ = mat(qwen25_vision_tensor(T::kMerger0), merged, merged);
    mm0_b_ = vec(qwen25_vision_tensor(T::kMerger0Bias), merged);
    const EncoderTensorNames mm2 = qwen25_vision_tensor(T::kMerger2);
    const std::vector<int64_t> mm2_shape = w.shape(mm2.gguf, mm2.hf);
    MUSE_CHECK(mm2_shape.size() == 2, w.path(), ": merger output weight is not a matrix");
    if (cfg_.out_dim == 0) cfg_.out_dim = mm2_shape[1];
    mm2_ = mat(mm2, merged, cfg_.out_dim);
    mm2_b_ = vec(qwen25_vision_tensor(T::kMerger2Bias), cfg_.out_dim);
  }

  const ImageProcessorSpec& processor() const override { return cfg_.processor; }
  int64_t n_embd_out() const override { return cfg_.out_dim; }

  int64_t n_tokens(const ImagePatches& image) const override {
    const int64_t m = cfg_.processor.merge_size;
    return image.grid_t * (image.grid_h / m) * (image.grid_w / m);
  }

  std::vector<float> encode(const ImagePatches& image, ThreadPool& pool) const override;

 private:
  void validate(const ImagePatches& image) const;

  std::shared_ptr<const EncoderWeights> weights_;
  Qwen25VisionConfig cfg_;
  int64_t patch_dim_ = 0, n_ff_ = 0;
  TensorView patch_embd_, post_ln_, mm0_, mm0_b_, mm2_, mm2_b_;
  std::vector<enc::EncoderBlock> blocks_;
};

void Qwen25VisionEncoder::validate(const ImagePatches& image) const {
  const int64_t m = cfg_.processor.merge_size;
  MUSE_CHECK(image.patch_dim == patch_dim_, "image patches have ", image.patch_dim,
             " values each, the vision encoder expects ", patch_dim_);
  MUSE_CHECK(image.grid_t >= 1 && image.grid_h >= m && image.grid_w >= m, "image patch grid ",
             image.grid_t, "x", image.grid_h, "x", image.grid_w,
             " is empty or smaller than one merged cell");
  MUSE_CHECK(image.grid_h % m == 0 && image.grid_w % m == 0, "image patch grid ", image.grid_h, "x",
             image.grid_w, " is not a multiple of the merge size ", m);
  MUSE_CHECK(image.grid_h <= (1 << 15) && image.grid_w <= (1 << 15) && image.grid_t <= (1 << 15),
             "image patch grid is too large");
  MUSE_CHECK(static_cast<int64_t>(image.pixel_values.size()) == image.n_patches() * patch_dim_,
             "image has ", image.pixel_values.size(), " pixel values, expected ", image.n_patches(),
             " patches x ", patch_dim_);
}

std::vector<float> Qwen25VisionEncoder::encode(const ImagePatches& image, ThreadPool& pool) const {
  validate(image);
  const int64_t m = cfg_.processor.merge_size;
  const int64_t d = cfg_.n_embd, n_head = cfg_.n_head, head_dim = d / n_head;
  const int64_t n = image.n_patches();
  const int64_t frame = image.grid_h * image.grid_w;
  const int64_t mw = image.grid_w / m;

  // Patch positions (y, x) in merge order.
  std::vector<int32_t> pos_y(n), pos_x(n);
  for (int64_t s = 0; s < n; ++s) {
    const int64_t in_frame = s % frame;
    const int64_t cell = in_frame / (m * m), r = in_frame % (m * m);
    pos_y[s] = static_cast<int32_t>((cell / mw) * m + r / m);
    pos_x[s] = static_cast<int32_t>((cell % mw) * m + r % m);
  }
  std::vector<float> cos, sin;
  enc::rope_2d_tables(pos_y.data(), pos_x.data(), n, head_dim, cfg_.rope_theta, cos, sin);

  enc::AttentionGroups full;
  for (int64_t t = 0; t < image.grid_t; ++t) full.add_span(t * frame, frame);
  const int64_t window_cells = cfg_.window_size / (cfg_.processor.patch_size * m);
  const enc::AttentionGroups windows =
      qwen25_window_groups(image.grid_t, image.grid_h, image.grid_w, m, window_cells);

  enc::EncoderScratch scratch;
  std::vector<float> x(n * d), h(n * d);
  enc::linear(patch_embd_, TensorView{}, image.pixel_values.data(), n, x.data(), pool, scratch);
  const enc::EncoderBlockShape shape{true, cfg_.eps, d, n_head, n_ff_, cos.data(), sin.data()};
  enc::EncoderBlockBuffers buffers;
  for (int64_t il = 0; il < cfg_.n_layer; ++il)
    enc::run_encoder_block(blocks_[il], shape, x.data(), n,
                           cfg_.full_attention[il] ? full : windows, pool, scratch, buffers);

  // Merger: RMSNorm per patch, then the m*m consecutive patches of a cell as one row.
  enc::rms_norm_rows(x.data(), post_ln_, h.data(), n, d, cfg_.eps);
  const int64_t n_out = n / (m * m), merged = d * m * m;
  std::vector<float> mid(n_out * merged), out(n_out * cfg_.out_dim);
  enc::linear(mm0_, mm0_b_, h.data(), n_out, mid.data(), pool, scratch);
  enc::gelu_erf_inplace(mid.data(), n_out * merged);
  enc::linear(mm2_, mm2_b_, mid.data(), n_out, out.data(), pool, scratch);
  return out;
}

}  // namespace

enc::AttentionGroups qwen25_window_groups(int64_t grid_t, int64_t grid_h, int64_t grid_w,
                                          int64_t merge, int64_t window_cells) {
  MUSE_CHECK(merge > 0 && window_cells > 0 && grid_h % merge == 0 && grid_w % merge == 0,
             "window partition: grid ", grid_h, "x", grid_w, " does not fit merge size ", merge);
  const int64_t mh = grid_h / merge, mw = grid_w / merge, cell = merge * merge;
  const int64_t frame = grid_h * grid_w;
  enc::AttentionGroups groups;
  std::vector<int32_t> members;
  for (int64_t t = 0; t < grid_t; ++t) {
    for (int64_t wy = 0; wy < mh; wy += window_cells) {
      for (int64_t wx = 0; wx < mw; wx += window_cells) {
        members.clear();
        for (int64_t by = wy; by < std::min(mh, wy + window_cells); ++by) {
          for (int64_t bx = wx; bx < std::min(mw, wx + window_cells); ++bx) {
            for (int64_t r = 0; r < cell; ++r) {
              members.push_back(static_cast<int32_t>(t * frame + (by * mw + bx) * cell + r));
            }
          }
        }
        groups.add_group(members);
      }
    }
  }
  return groups;
}

Qwen25VisionConfig qwen25_vision_config_from_gguf(const GgufFile& g) {
  Qwen25VisionConfig c;
  c.n_embd = g.get_int("clip.vision.embedding_length");
  c.n_head = g.get_int("clip.vision.attention.head_count");
  c.n_layer = g.get_int("clip.vision.block_count");
  c.out_dim = g.get_int_or("clip.vision.projection_dim", 0);
  c.eps = static_cast<float>(g.get_float_or("clip.vision.attention.layer_norm_epsilon", 1e-6));
  c.window_size = g.get_int_or("clip.vision.window_size", 112);
  c.processor.patch_size = g.get_int("clip.vision.patch_size");
  c.processor.merge_size = g.get_int_or("clip.vision.spatial_merge_size", 2);
  c.processor.temporal_patch = 2;
  c.processor.min_pixels = g.get_int_or("clip.vision.image_min_pixels", c.processor.min_pixels);
  c.processor.max_pixels = g.get_int_or("clip.vision.image_max_pixels", c.processor.max_pixels);
  for (const char* key : {"clip.vision.image_mean", "clip.vision.image_std"}) {
    const GgufValue* v = g.find(key);
    MUSE_CHECK(v != nullptr, g.path(), ": key '", key, "' is missing");
    const std::vector<double> vals = v->as_floats();
    MUSE_CHECK(vals.size() == 3, g.path(), ": key '", key, "' must hold 3 values");
    float* dst = std::string(key).ends_with("mean") ? c.processor.mean : c.processor.std;
    for (int i = 0; i < 3; ++i) dst[i] = static_cast<float>(vals[i]);
  }
  const int64_t pattern = g.get_int_or("clip.vision.n_wa_pattern", 0);
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 1024, g.path(), ": bad vision block count ", c.n_layer);
  MUSE_CHECK(pattern >= 0, g.path(), ": bad clip.vision.n_wa_pattern ", pattern);
  for (int64_t il = 0; il < c.n_layer; ++il) {
    c.full_attention.push_back(pattern == 0 || (il + 1) % pattern == 0);
  }
  return c;
}

Qwen25VisionConfig qwen25_vision_config_from_hf(const nlohmann::json& vc,
                                                const nlohmann::json& pre) {
  MUSE_CHECK(vc.is_object(), "vision_config is not an object");
  Qwen25VisionConfig c;
  c.n_embd = config_value<int64_t>(vc, "hidden_size",
                                   config_value<int64_t>(vc, "embed_dim", 1280, "vision config"),
                                   "vision config");
  c.n_head = config_value<int64_t>(vc, "num_heads", 16, "vision config");
  c.n_layer = config_value<int64_t>(vc, "depth", 32, "vision config");
  c.in_channels = config_value<int64_t>(vc, "in_channels",
                                        config_value<int64_t>(vc, "in_chans", 3, "vision config"),
                                        "vision config");
  c.out_dim = config_value<int64_t>(vc, "out_hidden_size", 0, "vision config");
  c.window_size = config_value<int64_t>(vc, "window_size", 112, "vision config");
  c.processor.patch_size = config_value<int64_t>(vc, "patch_size", 14, "vision config");
  c.processor.merge_size = config_value<int64_t>(vc, "spatial_merge_size", 2, "vision config");
  c.processor.temporal_patch = config_value<int64_t>(vc, "temporal_patch_size", 2, "vision config");
  if (vc.contains("rope_parameters") && vc["rope_parameters"].is_object()) {
    c.rope_theta =
        config_value<float>(vc["rope_parameters"], "rope_theta", 10000.0f, "vision config");
  }
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 1024, "vision_config: bad depth ", c.n_layer);
  c.full_attention.assign(c.n_layer, false);
  const auto full =
      config_value<std::vector<int64_t>>(vc, "fullatt_block_indexes", {}, "vision config");
  for (int64_t il : full) {
    MUSE_CHECK(il >= 0 && il < c.n_layer, "vision_config: fullatt_block_indexes entry ", il,
               " out of range");
    c.full_attention[il] = true;
  }
  if (pre.is_object()) {
    c.processor.min_pixels =
        config_value<int64_t>(pre, "min_pixels", c.processor.min_pixels, "vision config");
    c.processor.max_pixels =
        config_value<int64_t>(pre, "max_pixels", c.processor.max_pixels, "vision config");
    const auto mean = config_value<std::vector<float>>(pre, "image_mean", {}, "vision config");
    const auto stdev = config_value<std::vector<float>>(pre, "image_std", {}, "vision config");
    if (mean.size() == 3) std::copy(mean.begin(), mean.end(), c.processor.mean);
    if (stdev.size() == 3) std::copy(stdev.begin(), stdev.end(), c.processor.std);
  }
  return c;
}

std::unique_ptr<VisionEncoder> load_qwen25_vision(std::shared_ptr<const EncoderWeights> weights,
                                                  const Qwen25VisionConfig& config) {
  return std::make_unique<Qwen25VisionEncoder>(std::move(weights), config);
}

}  // namespace muse
