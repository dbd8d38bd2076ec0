#include "model/audio_qwen25omni.h"

#include <cmath>
#include <iterator>

#include "model/encoder_ops.h"
#include "muse/error.h"

namespace muse {

namespace {

// Indexed by Qwen25AudioTensor / Qwen25AudioBlockTensor.
constexpr EncoderTensorName kAudioNames[] = {
    {"a.conv1d.1.weight", "audio_tower.conv1.weight"},
    {"a.conv1d.1.bias", "audio_tower.conv1.bias"},
    {"a.conv1d.2.weight", "audio_tower.conv2.weight"},
    {"a.conv1d.2.bias", "audio_tower.conv2.bias"},
    {"a.position_embd.weight", "audio_tower.embed_positions.weight"},
    {"a.post_ln.weight", "audio_tower.ln_post.weight"},
    {"a.post_ln.bias", "audio_tower.ln_post.bias"},
    {"mm.a.fc.weight", "audio_tower.proj.weight"},
    {"mm.a.fc.bias", "audio_tower.proj.bias"},
};
// Within "a.blk.N." / "audio_tower.layers.N.".
constexpr EncoderTensorName kAudioBlockNames[] = {
    {"ln1.weight", "self_attn_layer_norm.weight"},
    {"ln1.bias", "self_attn_layer_norm.bias"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_out.weight", "self_attn.out_proj.weight"},
    {"attn_out.bias", "self_attn.out_proj.bias"},
    {"ln2.weight", "final_layer_norm.weight"},
    {"ln2.bias", "final_layer_norm.bias"},
    {"ffn_up.weight", "fc1.weight"},
    {"ffn_up.bias", "fc1.bias"},
    {"ffn_down.weight", "fc2.weight"},
    {"ffn_down.bias", "fc2.bias"},
};
static_assert(std::size(kAudioNames) == static_cast<size_t>(Qwen25AudioTensor::kProjBias) + 1);
static_assert(std::size(kAudioBlockNames) ==
              static_cast<size_t>(Qwen25AudioBlockTensor::kDownBias) + 1);

}  // namespace

EncoderTensorNames qwen25_audio_tensor(Qwen25AudioTensor t) {
  const EncoderTensorName& n = kAudioNames[static_cast<size_t>(t)];
  return {n.gguf, n.hf};
}

EncoderTensorNames qwen25_audio_tensor(int64_t layer, Qwen25AudioBlockTensor t) {
  return block_tensor_names(kAudioBlockNames[static_cast<size_t>(t)], "a.blk.",
                            "audio_tower.layers.", layer);
}

namespace {

constexpr int64_t kConvWidth = 3;

class Qwen25AudioEncoder final : public AudioEncoder {
 public:
  Qwen25AudioEncoder(std::shared_ptr<const EncoderWeights> weights, Qwen25AudioConfig config)
      : weights_(std::move(weights)), cfg_(std::move(config)) {
    const EncoderWeights& w = *weights_;
    const int64_t d = cfg_.n_embd, n_mel = cfg_.processor.n_mel;
    MUSE_CHECK(d > 0 && cfg_.n_head > 0 && d % cfg_.n_head == 0, w.path(), ": audio width ", d,
               " does not split into ", cfg_.n_head, " heads");
    MUSE_CHECK(n_mel > 0 && cfg_.n_window > 0 && cfg_.n_window <= cfg_.max_positions, w.path(),
               ": bad audio mel count / window");
    using T = Qwen25AudioTensor;
    using B = Qwen25AudioBlockTensor;
    const auto vec = [&](const EncoderTensorNames& n, int64_t len) {
      return w.vector(n.gguf, n.hf, len);
    };
    const auto mat = [&](const EncoderTensorNames& n, int64_t cols, int64_t rows) {
      return w.matrix(n.gguf, n.hf, cols, rows);
    };
    const auto conv = [&](const EncoderTensorNames& n, int64_t in, int64_t out) {
      return w.conv1d(n.gguf, n.hf, kConvWidth, in, out);
    };
    conv1_ = conv(qwen25_audio_tensor(T::kConv1), n_mel, d);
    conv1_b_ = vec(qwen25_audio_tensor(T::kConv1Bias), d);
    conv2_ = conv(qwen25_audio_tensor(T::kConv2), d, d);
    conv2_b_ = vec(qwen25_audio_tensor(T::kConv2Bias), d);
    const EncoderTensorNames up0 = qwen25_audio_tensor(0, B::kUp);
    n_ff_ = w.shape(up0.gguf, up0.hf).back();
    for (int64_t il = 0; il < cfg_.n_layer; ++il) {
      const auto n = [&](B t) { return qwen25_audio_tensor(il, t); };
      enc::EncoderBlock l;
      l.norm1_w = vec(n(B::kLn1), d);
      l.norm1_b = vec(n(B::kLn1Bias), d);
      l.norm2_w = vec(n(B::kLn2), d);
      l.norm2_b = vec(n(B::kLn2Bias), d);
      l.wq = mat(n(B::kQ), d, d);
      l.bq = vec(n(B::kQBias), d);
      l.wk = mat(n(B::kK), d, d);
      l.wv = mat(n(B::kV), d, d);
      l.bv = vec(n(B::kVBias), d);
      l.wo = mat(n(B::kOut), d, d);
      l.bo = vec(n(B::kOutBias), d);
      l.up = mat(n(B::kUp), d, n_ff_);
      l.bup = vec(n(B::kUpBias), n_ff_);
      l.down = mat(n(B::kDown), n_ff_, d);
      l.bdown = vec(n(B::kDownBias), d);
      layers_.push_back(l);
    }
    post_w_ = vec(qwen25_audio_tensor(T::kPostLn), d);
    post_b_ = vec(qwen25_audio_tensor(T::kPostLnBias), d);
    const EncoderTensorNames proj = qwen25_audio_tensor(T::kProj);
    const std::vector<int64_t> proj_shape = w.shape(proj.gguf, proj.hf);
    MUSE_CHECK(proj_shape.size() == 2, w.path(), ": audio projection is not a matrix");
    if (cfg_.out_dim == 0) cfg_.out_dim = proj_shape[1];
    proj_ = mat(proj, d, cfg_.out_dim);
    proj_b_ = vec(qwen25_audio_tensor(T::kProjBias), cfg_.out_dim);

    // Positions restart every chunk, so only the first n_window rows are used.
    const EncoderTensorNames pos = qwen25_audio_tensor(T::kPositions);
    if (w.has(pos.gguf, pos.hf)) {
      const std::vector<int64_t> shape = w.shape(pos.gguf, pos.hf);
      MUSE_CHECK(shape.size() == 2 && shape[0] == d && shape[1] >= cfg_.n_window, w.path(),
                 ": audio position table must be [", d, ", >= ", cfg_.n_window, "]");
      const TensorView pe = w.tensor(pos.gguf, pos.hf, shape);
      std::vector<float> all = tensor_to_f32(pe);
      positions_.assign(all.begin(), all.begin() + cfg_.n_window * d);
    } else {
      positions_ = enc::sinusoid_positions(cfg_.n_window, d);
    }
  }

  const AudioProcessorSpec& processor() const override { return cfg_.processor; }
  int64_t n_embd_out() const override { return cfg_.out_dim; }
  int64_t n_tokens(int64_t n_frames) const override { return qwen25_audio_tokens(n_frames); }
  std::vector<float> encode(const AudioFeatures& audio, ThreadPool& pool) const override;

 private:
  std::shared_ptr<const EncoderWeights> weights_;
  Qwen25AudioConfig cfg_;
  int64_t n_ff_ = 0;
  TensorView conv1_, conv1_b_, conv2_, conv2_b_, post_w_, post_b_, proj_, proj_b_;
  std::vector<enc::EncoderBlock> layers_;  // keys without bias (Whisper)
  std::vector<float> positions_;           // [n_window][n_embd]
};

std::vector<float> Qwen25AudioEncoder::encode(const AudioFeatures& audio, ThreadPool& pool) const {
  const int64_t n_mel = cfg_.processor.n_mel, d = cfg_.n_embd;
  const int64_t T = audio.n_frames;
  MUSE_CHECK(audio.n_mel == n_mel, "audio features have ", audio.n_mel,
             " mel bins, the audio encoder expects ", n_mel);
  MUSE_CHECK(T >= 0 && static_cast<int64_t>(audio.features.size()) == n_mel * T,
             "audio features hold ", audio.features.size(), " values, expected ", n_mel, " x ", T,
             " frames");
  const int64_t n_out = qwen25_audio_tokens(T);
  MUSE_CHECK(n_out > 0, "audio clip of ", T, " mel frames is too short: at least 3 frames (",
             "30 ms) are needed for one audio token");

  const int64_t chunk = 2 * cfg_.n_window;
  const int64_t n_chunks = (T + chunk - 1) / chunk;
  // Conv stem over all chunks at once: each chunk is zero-padded at its own edges.
  std::vector<float> cols(T * n_mel * kConvWidth, 0.0f);
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t start = c * chunk, len = std::min(chunk, T - start);
    for (int64_t t = 0; t < len; ++t) {
      float* row = &cols[(start + t) * n_mel * kConvWidth];
      for (int64_t j = 0; j < kConvWidth; ++j) {
        const int64_t src = t + j - 1;
        if (src < 0 || src >= len) continue;
        for (int64_t i = 0; i < n_mel; ++i) {
          row[i * kConvWidth + j] = audio.features[i * T + start + src];
        }
      }
    }
  }
  enc::EncoderScratch scratch;
  std::vector<float> a(T * d);
  enc::linear(conv1_, conv1_b_, cols.data(), T, a.data(), pool, scratch);
  enc::gelu_erf_inplace(a.data(), T * d);

  int64_t n = 0;  // frames after the stride-2 conv
  for (int64_t c = 0; c < n_chunks; ++c) n += (std::min(chunk, T - c * chunk) - 1) / 2 + 1;
  cols.assign(n * d * kConvWidth, 0.0f);
  enc::AttentionGroups groups;
  std::vector<int64_t> pos(n);
  for (int64_t c = 0, out = 0; c < n_chunks; ++c) {
    const int64_t start = c * chunk, len = std::min(chunk, T - start);
    const int64_t n_c = (len - 1) / 2 + 1;
    groups.add_span(out, n_c);
    for (int64_t t = 0; t < n_c; ++t, ++out) {
      pos[out] = t;
      float* row = &cols[out * d * kConvWidth];
      for (int64_t j = 0; j < kConvWidth; ++j) {
        const int64_t src = 2 * t + j - 1;
        if (src < 0 || src >= len) continue;
        const float* in = &a[(start + src) * d];
        for (int64_t i = 0; i < d; ++i) row[i * kConvWidth + j] = in[i];
      }
    }
  }
  std::vector<float> x(n * d);
  enc::linear(conv2_, conv2_b_, cols.data(), n, x.data(), pool, scratch);
  enc::gelu_erf_inplace(x.data(), n * d);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < d; ++i) x[t * d + i] += positions_[pos[t] * d + i];
  }

  const enc::EncoderBlockShape shape{false, cfg_.eps, d, cfg_.n_head, n_ff_};
  enc::EncoderBlockBuffers buffers;
  for (const enc::EncoderBlock& l : layers_)
    enc::run_encoder_block(l, shape, x.data(), n, groups, pool, scratch, buffers);

  // Average pairs of frames (a trailing odd frame is dropped), ln_post, projection.
  std::vector<float> pooled(n_out * d);
  for (int64_t p = 0; p < n_out; ++p) {
    for (int64_t i = 0; i < d; ++i) {
      pooled[p * d + i] = 0.5f * (x[(2 * p) * d + i] + x[(2 * p + 1) * d + i]);
    }
  }
  enc::layer_norm_rows(pooled.data(), post_w_, post_b_, pooled.data(), n_out, d, cfg_.eps);
  std::vector<float> out(n_out * cfg_.out_dim);
  enc::linear(proj_, proj_b_, pooled.data(), n_out, out.data(), pool, scratch);
  return out;
}

}  // namespace

int64_t qwen25_audio_tokens(int64_t n_frames) {
  if (n_frames <= 0) return 0;
  const int64_t after_cnn = (n_frames - 1) / 2 + 1;
  return after_cnn / 2;  // == ((after_cnn - 2) // 2) + 1 with floor division
}

Qwen25AudioConfig qwen25_audio_config_from_gguf(const GgufFile& g) {
  Qwen25AudioConfig c;
  c.n_embd = g.get_int("clip.audio.embedding_length");
  c.n_head = g.get_int("clip.audio.attention.head_count");
  c.n_layer = g.get_int("clip.audio.block_count");
  c.out_dim = g.get_int_or("clip.audio.projection_dim", 0);
  c.eps = static_cast<float>(g.get_float_or("clip.audio.attention.layer_norm_epsilon", 1e-5));
  c.processor.n_mel = g.get_int("clip.audio.num_mel_bins");
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 1024, g.path(), ": bad audio block count ", c.n_layer);
  return c;
}

Qwen25AudioConfig qwen25_audio_config_from_hf(const nlohmann::json& ac) {
  MUSE_CHECK(ac.is_object(), "audio_config is not an object");
  Qwen25AudioConfig c;
  c.n_embd = config_value<int64_t>(ac, "d_model", 1280, "audio config");
  c.n_head = config_value<int64_t>(ac, "encoder_attention_heads", 20, "audio config");
  c.n_layer = config_value<int64_t>(ac, "encoder_layers", 32, "audio config");
  c.out_dim = config_value<int64_t>(ac, "output_dim", 0, "audio config");
  c.n_window = config_value<int64_t>(ac, "n_window", 100, "audio config");
  c.max_positions = config_value<int64_t>(ac, "max_source_positions", 1500, "audio config");
  c.processor.n_mel = config_value<int64_t>(ac, "num_mel_bins", 128, "audio config");
  MUSE_CHECK(c.n_layer > 0 && c.n_layer <= 1024, "audio_config: bad encoder_layers ", c.n_layer);
  return c;
}

std::unique_ptr<AudioEncoder> load_qwen25_audio(std::shared_ptr<const EncoderWeights> weights,
                                                const Qwen25AudioConfig& config) {
  return std::make_unique<Qwen25AudioEncoder>(std::move(weights), config);
}

}  // namespace muse
