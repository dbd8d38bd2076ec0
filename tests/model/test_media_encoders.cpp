// Qwen2.5-Omni vision and audio encoders against the Hugging Face golden (a tiny
// random model, ../shared/goldens/qwen25omni), from the HF directory and from the
// mmproj GGUF written by write_mmproj; known-answer tests of the building blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "common/compare.h"
#include "model/audio_qwen25omni.h"
#include "model/encoder_ops.h"
#include "model/gguf.h"
#include "model/media_encoder.h"
#include "model/mmproj_writer.h"
#include "model/safetensors.h"
#include "model/vision_qwen25.h"
#include "muse/error.h"

namespace muse {
namespace {

namespace fs = std::filesystem;

const std::string kGolden = std::string(MUSE_SHARED_DIR) + "/goldens/qwen25omni";

std::vector<float> f32_values(const SafetensorsFile& f, const std::string& name) {
  const SafetensorsTensor* t = f.find(name);
  if (t == nullptr || t->view.type != DType::F32) throw Error("golden lacks F32 " + name);
  std::vector<float> v(t->view.n_elements());
  std::memcpy(v.data(), t->view.data, v.size() * sizeof(float));
  return v;
}

std::vector<int32_t> i32_values(const SafetensorsFile& f, const std::string& name) {
  const SafetensorsTensor* t = f.find(name);
  if (t == nullptr || t->view.type != DType::I32) throw Error("golden lacks I32 " + name);
  std::vector<int32_t> v(t->view.n_elements());
  std::memcpy(v.data(), t->view.data, v.size() * sizeof(int32_t));
  return v;
}

struct Golden {
  ImagePatches image;
  AudioFeatures audio;
  std::vector<float> image_embeds, audio_embeds;
};

const Golden& golden() {
  static const Golden g = [] {
    Golden g;
    auto in = SafetensorsFile::open(kGolden + "/inputs.safetensors");
    auto out = SafetensorsFile::open(kGolden + "/outputs.safetensors");
    g.image.pixel_values = f32_values(*in, "pixel_values");
    g.image.patch_dim = 1176;
    const std::vector<int32_t> grid = i32_values(*in, "image_grid_thw");
    g.image.grid_t = grid.at(0);
    g.image.grid_h = grid.at(1);
    g.image.grid_w = grid.at(2);
    const std::vector<float> features = f32_values(*in, "input_features");  // [128][3000]
    int64_t valid = 0;
    for (int32_t m : i32_values(*in, "feature_attention_mask")) valid += m;
    const int64_t total = static_cast<int64_t>(features.size()) / 128;
    g.audio.n_mel = 128;
    g.audio.n_frames = valid;
    for (int64_t i = 0; i < 128; ++i) {
      for (int64_t t = 0; t < valid; ++t) g.audio.features.push_back(features[i * total + t]);
    }
    g.image_embeds = f32_values(*out, "image_embeds");
    g.audio_embeds = f32_values(*out, "audio_embeds");
    return g;
  }();
  return g;
}

using test::max_abs_diff;

// Runs both encoders of `path` on the golden inputs and checks the errors.
void check_encoders(const std::string& path, double bound, const char* label) {
  const Golden& g = golden();
  MediaEncoders enc = load_media_encoders(path);
  ASSERT_TRUE(enc.vision && enc.audio) << label;
  ThreadPool pool(2);
  EXPECT_EQ(enc.vision->n_tokens(g.image), 12);
  EXPECT_EQ(enc.vision->n_embd_out(), 128);
  const std::vector<float> image = enc.vision->encode(g.image, pool);
  const double image_err = max_abs_diff(image, g.image_embeds);
  EXPECT_LE(image_err, bound) << label;
  EXPECT_EQ(enc.audio->n_tokens(g.audio.n_frames), 62);
  EXPECT_EQ(enc.audio->processor().n_mel, 128);
  const std::vector<float> audio = enc.audio->encode(g.audio, pool);
  const double audio_err = max_abs_diff(audio, g.audio_embeds);
  EXPECT_LE(audio_err, bound) << label;
  std::cout << label << ": image_embeds max abs error " << image_err
            << ", audio_embeds max abs error " << audio_err << "\n";
}

fs::path tmp_dir() {
  fs::path p = fs::path(MUSE_TEST_TMP) / "media_encoders";
  fs::create_directories(p);
  return p;
}

TEST(MediaEncoders, HfDirectoryMatchesGolden) {
  check_encoders(kGolden, 1e-3, "hf");
}

TEST(MediaEncoders, HfDirectoryProcessorSpecs) {
  MediaEncoders enc = load_media_encoders(kGolden);
  const ImageProcessorSpec& p = enc.vision->processor();
  EXPECT_EQ(p.kind, ImageProcessorSpec::Kind::Qwen2VL);
  EXPECT_EQ(p.patch_size, 14);
  EXPECT_EQ(p.temporal_patch, 2);
  EXPECT_EQ(p.merge_size, 2);
  EXPECT_EQ(p.min_pixels, 3136);
  EXPECT_EQ(p.max_pixels, 12845056);
  EXPECT_FLOAT_EQ(p.mean[0], 0.48145466f);
  EXPECT_FLOAT_EQ(p.std[2], 0.27577711f);
}

TEST(MediaEncoders, MmprojF32RoundTrip) {
  const std::string path = (tmp_dir() / "mmproj-f32.gguf").string();
  write_mmproj(kGolden, path, DType::F32);
  auto g = GgufFile::open(path);
  EXPECT_EQ(g->get_string("general.architecture"), "clip");
  EXPECT_EQ(g->get_string("clip.projector_type"), "qwen2.5o");
  EXPECT_EQ(g->get_int("clip.vision.n_wa_pattern"), 2);
  EXPECT_EQ(g->get_int("clip.vision.window_size"), 56);
  EXPECT_EQ(g->get_int("clip.audio.num_mel_bins"), 128);
  // 4 blocks x 16 + 2 patch slices + post_ln + mm.0/mm.2; 2 layers x 15 + 9.
  EXPECT_EQ(g->tensors().size(), 71u + 39u);
  const GgufTensorInfo* conv = g->find_tensor("a.conv1d.1.weight");
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ(conv->view.type, DType::F16);
  EXPECT_EQ(shape_string(conv->view), shape_string(TensorView{DType::F16, 3, {3, 128, 64, 1}}));
  const GgufTensorInfo* bias = g->find_tensor("a.conv1d.1.bias");
  ASSERT_NE(bias, nullptr);
  EXPECT_EQ(bias->view.ne[0], 1);
  EXPECT_EQ(bias->view.ne[1], 64);
  const GgufTensorInfo* pe = g->find_tensor("a.position_embd.weight");
  ASSERT_NE(pe, nullptr);
  EXPECT_EQ(pe->view.type, DType::F32);
  EXPECT_EQ(pe->view.ne[0], 64);
  EXPECT_EQ(pe->view.ne[1], 1500);
  const GgufTensorInfo* patch1 = g->find_tensor("v.patch_embd.weight.1");
  ASSERT_NE(patch1, nullptr);
  EXPECT_EQ(patch1->view.ne[0], 14);
  EXPECT_EQ(patch1->view.ne[2], 3);
  EXPECT_EQ(patch1->view.ne[3], 64);
  EXPECT_EQ(g->find_tensor("a.blk.0.attn_k.bias"), nullptr);
  check_encoders(path, 1e-3, "mmproj f32");
}

TEST(MediaEncoders, MmprojF16RoundTrip) {
  const std::string path = (tmp_dir() / "mmproj-f16.gguf").string();
  write_mmproj(kGolden, path, DType::F16);
  auto g = GgufFile::open(path);
  EXPECT_EQ(g->find_tensor("v.blk.0.attn_q.weight")->view.type, DType::F16);
  EXPECT_EQ(g->find_tensor("v.blk.0.attn_q.bias")->view.type, DType::F32);
  EXPECT_EQ(g->find_tensor("v.blk.0.ln1.weight")->view.type, DType::F32);
  EXPECT_EQ(g->find_tensor("v.patch_embd.weight")->view.type, DType::F16);
  // F16 weights keep 11 significant bits; measured error ~1.3e-4, bound 2e-3.
  check_encoders(path, 2e-3, "mmproj f16");
}

// The golden exercises the window schedule: full attention everywhere is far off.
TEST(MediaEncoders, WindowAttentionMatters) {
  auto weights = EncoderWeights::open_hf_dir(kGolden);
  nlohmann::json config = weights->hf_config();
  Qwen25VisionConfig vc = qwen25_vision_config_from_hf(config["vision_config"], nullptr);
  EXPECT_EQ(vc.full_attention, (std::vector<bool>{false, true, false, true}));
  vc.full_attention.assign(vc.n_layer, true);
  auto vision = load_qwen25_vision(std::shared_ptr<EncoderWeights>(std::move(weights)), vc);
  ThreadPool pool(1);
  EXPECT_GT(max_abs_diff(vision->encode(golden().image, pool), golden().image_embeds), 1e-3);
}

// --- Known answers -------------------------------------------------------------

TEST(EncoderOps, SinusoidPositions) {
  const std::vector<float> pe = enc::sinusoid_positions(1500, 1280);
  auto at = [&](int64_t t, int64_t i) { return pe[t * 1280 + i]; };
  EXPECT_NEAR(at(0, 0), 0.0, 1e-7);
  EXPECT_NEAR(at(0, 640), 1.0, 1e-7);
  EXPECT_NEAR(at(1, 0), 0.841470985, 1e-6);
  EXPECT_NEAR(at(1, 1), 0.833653203, 1e-6);
  EXPECT_NEAR(at(1, 639), 0.000100000, 1e-7);
  EXPECT_NEAR(at(1, 640), 0.540302306, 1e-6);
  EXPECT_NEAR(at(1, 1279), 0.999999995, 1e-6);
  EXPECT_NEAR(at(100, 5), -0.932420423, 1e-5);
  EXPECT_NEAR(at(1499, 0), -0.444220699, 1e-4);
  EXPECT_NEAR(at(1499, 700), -0.981878503, 1e-4);
}

TEST(EncoderOps, WindowPartitionOf34x46Grid) {
  const enc::AttentionGroups g = qwen25_window_groups(1, 34, 46, 2, 4);
  ASSERT_EQ(g.n_groups(), 30);
  auto size = [&](int64_t i) { return g.begin[i + 1] - g.begin[i]; };
  for (int i = 0; i < 5; ++i) EXPECT_EQ(size(i), 64) << i;
  EXPECT_EQ(size(5), 48);
  for (int i = 24; i < 29; ++i) EXPECT_EQ(size(i), 16) << i;
  EXPECT_EQ(size(29), 12);
  EXPECT_EQ(g.order.size(), 1564u);
  // Every patch in exactly one window.
  std::vector<int> seen(1564, 0);
  for (int32_t t : g.order) seen.at(t)++;
  for (int s : seen) EXPECT_EQ(s, 1);
  // The first window starts with merged cell (0,0) and then (0,1) (patches 4..7).
  EXPECT_EQ(g.order[4], 4);
  // Its 5th cell is (1,0): merged row 1 starts at cell 23, patch 92.
  EXPECT_EQ(g.order[16], 92);
}

TEST(EncoderOps, AudioTokenCounts) {
  const std::pair<int64_t, int64_t> table[] = {
      {2, 0},      {3, 1},      {50, 12},     {100, 25},     {250, 62}, {1000, 250},
      {2999, 750}, {3000, 750}, {6000, 1500}, {30000, 7500}, {0, 0},    {1, 0}};
  for (auto [frames, tokens] : table) EXPECT_EQ(qwen25_audio_tokens(frames), tokens) << frames;
}

TEST(EncoderOps, GroupedAttentionMatchesDirectComputation) {
  // 5 tokens, 2 heads of 2, groups {0,2,4} and {1,3}: compare with a naive loop.
  const int64_t n = 5, heads = 2, hd = 2;
  std::vector<float> q(n * heads * hd), k(q.size()), v(q.size()), out(q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = std::sin(0.7 * i);
    k[i] = std::cos(0.3 * i);
    v[i] = 0.1f * static_cast<float>(i);
  }
  enc::AttentionGroups groups;
  groups.add_group({0, 2, 4});
  groups.add_group({1, 3});
  ThreadPool pool(2);
  enc::grouped_attention(q.data(), k.data(), v.data(), out.data(), n, heads, heads, hd, 0.5f,
                         groups, pool);
  const std::vector<std::vector<int>> members{{0, 2, 4}, {1, 3}};
  for (const auto& grp : members) {
    for (int i : grp) {
      for (int h = 0; h < heads; ++h) {
        std::vector<double> p;
        double sum = 0;
        for (int j : grp) {
          double s = 0;
          for (int e = 0; e < hd; ++e)
            s += q[(i * heads + h) * hd + e] * k[(j * heads + h) * hd + e];
          p.push_back(std::exp(0.5 * s));
          sum += p.back();
        }
        for (int e = 0; e < hd; ++e) {
          double o = 0;
          for (size_t jj = 0; jj < grp.size(); ++jj) {
            o += p[jj] / sum * v[(grp[jj] * heads + h) * hd + e];
          }
          EXPECT_NEAR(out[(i * heads + h) * hd + e], o, 1e-5);
        }
      }
    }
  }
}

TEST(EncoderOps, Rope2dTables) {
  // head_dim 8: quarter 2, inv_freq = {1, theta^-0.5}; token at (y=2, x=3).
  const int32_t y = 2, x = 3;
  std::vector<float> cos, sin;
  enc::rope_2d_tables(&y, &x, 1, 8, 10000.0f, cos, sin);
  ASSERT_EQ(cos.size(), 4u);
  EXPECT_NEAR(cos[0], std::cos(2.0), 1e-6);
  EXPECT_NEAR(sin[1], std::sin(2.0 * 0.01), 1e-6);
  EXPECT_NEAR(cos[2], std::cos(3.0), 1e-6);
  EXPECT_NEAR(sin[3], std::sin(3.0 * 0.01), 1e-6);
}

// --- Bad input -------------------------------------------------------------------

TEST(MediaEncoders, RejectsBadInput) {
  MediaEncoders enc = load_media_encoders(kGolden);
  ThreadPool pool(1);
  ImagePatches image = golden().image;
  image.patch_dim = 588;
  EXPECT_THROW(enc.vision->encode(image, pool), Error);
  image = golden().image;
  image.grid_w = 7;  // odd: not a multiple of the merge size
  image.grid_h = 6;
  image.pixel_values.resize(6 * 7 * 1176);
  EXPECT_THROW(enc.vision->encode(image, pool), Error);
  image = golden().image;
  image.pixel_values.pop_back();
  EXPECT_THROW(enc.vision->encode(image, pool), Error);

  AudioFeatures audio;
  audio.n_mel = 128;
  audio.n_frames = 2;  // 20 ms: zero tokens
  audio.features.assign(256, 0.0f);
  EXPECT_THROW(enc.audio->encode(audio, pool), Error);
  audio.n_mel = 80;
  audio.n_frames = 10;
  audio.features.assign(800, 0.0f);
  EXPECT_THROW(enc.audio->encode(audio, pool), Error);
}

TEST(MediaEncoders, RejectsBadFiles) {
  EXPECT_THROW(load_media_encoders((tmp_dir() / "missing.gguf").string()), Error);
  // A GGUF that is not an mmproj.
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  const std::string path = (tmp_dir() / "not-mmproj.gguf").string();
  w.write(path);
  EXPECT_THROW(load_media_encoders(path), Error);
  // An mmproj missing a tensor names it.
  GgufWriter m;
  m.set("general.architecture", GgufValue::string("clip"));
  m.set("clip.projector_type", GgufValue::string("qwen2.5o"));
  m.set("clip.has_vision_encoder", GgufValue::boolean(true));
  m.set("clip.vision.embedding_length", GgufValue::u32(64));
  m.set("clip.vision.attention.head_count", GgufValue::u32(4));
  m.set("clip.vision.block_count", GgufValue::u32(1));
  m.set("clip.vision.patch_size", GgufValue::u32(14));
  m.set("clip.vision.image_mean", GgufValue::f32_array({0.5f, 0.5f, 0.5f}));
  m.set("clip.vision.image_std", GgufValue::f32_array({0.5f, 0.5f, 0.5f}));
  const std::string broken = (tmp_dir() / "broken.gguf").string();
  m.write(broken);
  try {
    load_media_encoders(broken);
    FAIL() << "expected muse::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v.patch_embd.weight"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace muse
