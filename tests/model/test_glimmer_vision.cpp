// Muse Glimmer vision tower against the golden (../shared/goldens/muse_glimmer):
// processor outputs in, image_embeds out, from the HF directory and from the
// mmproj GGUF written by write_muse_glimmer_mmproj; bad input throws muse::Error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "common/compare.h"
#include "core/thread_pool.h"
#include "model/safetensors.h"
#include "model/vision_muse_glimmer.h"
#include "muse/error.h"

namespace muse {
namespace {

namespace fs = std::filesystem;

const std::string kDir = std::string(MUSE_SHARED_DIR) + "/goldens/muse_glimmer";
// Float32 lands at 6e-7 (AVX2/AVX-512) to 2.4e-6 (MUSE_ISA=scalar). The brief asks
// for 1e-3; 1e-5 still rejects every alternative in docs/muse-glimmer-vision.md
// except the two closest (GELU-tanh in the MLP, 3.6e-6; LayerNorm eps 1e-6, 1.2e-5).
constexpr double kTolerance = 1e-5;

std::vector<float> floats(const SafetensorsFile& f, const std::string& key) {
  const SafetensorsTensor* t = f.find(key);
  if (t == nullptr) throw Error(str_cat("golden has no ", key));
  const float* p = static_cast<const float*>(t->view.data);
  return {p, p + t->view.n_elements()};
}

struct Golden {
  ImagePatches image;
  std::vector<float> embeds;  // [12][128]
};

Golden load_golden() {
  auto inputs = SafetensorsFile::open(kDir + "/inputs.safetensors");
  auto outputs = SafetensorsFile::open(kDir + "/outputs.safetensors");
  Golden g;
  g.image.pixel_values = floats(*inputs, "pixel_values");
  g.image.patch_dim = 1176;
  const SafetensorsTensor* grid = inputs->find("image_grid_thw");
  if (grid == nullptr) throw Error("golden has no image_grid_thw");
  const int32_t* thw = static_cast<const int32_t*>(grid->view.data);
  g.image.grid_t = thw[0], g.image.grid_h = thw[1], g.image.grid_w = thw[2];
  g.embeds = floats(*outputs, "image_embeds");
  return g;
}

MuseGlimmerVisionConfig hf_config() {
  auto weights = EncoderWeights::open_hf_dir(kDir);
  return muse_glimmer_vision_config_from_hf(weights->hf_config(), nlohmann::json());
}

std::unique_ptr<VisionEncoder> load_hf() {
  std::shared_ptr<EncoderWeights> weights = EncoderWeights::open_hf_dir(kDir);
  return load_muse_glimmer_vision(
      weights, muse_glimmer_vision_config_from_hf(weights->hf_config(), nlohmann::json()));
}

using test::max_abs_diff;

TEST(GlimmerVision, ConfigFromHf) {
  const MuseGlimmerVisionConfig c = hf_config();
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_layer, 4);
  EXPECT_EQ(c.n_ff, 128);
  EXPECT_EQ(c.pos_h, 4);
  EXPECT_EQ(c.pos_w, 4);
  EXPECT_FLOAT_EQ(c.eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.out_eps, 1e-5f);
  EXPECT_EQ(c.window_attention, (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(c.processor.kind, ImageProcessorSpec::Kind::MuseGlimmer);
  EXPECT_EQ(c.processor.max_tokens, 64);
  EXPECT_EQ(c.processor.patch_size, 14);
  EXPECT_EQ(c.processor.temporal_patch, 2);
  EXPECT_EQ(c.processor.merge_size, 2);
  EXPECT_FLOAT_EQ(c.processor.mean[1], 0.5f);
  EXPECT_FLOAT_EQ(c.processor.std[2], 0.5f);
}

TEST(GlimmerVision, ImageEmbedsFromHfDir) {
  const Golden g = load_golden();
  auto enc = load_hf();
  EXPECT_EQ(enc->n_tokens(g.image), 12);
  EXPECT_EQ(enc->n_embd_out(), 128);
  ThreadPool pool(2);
  const std::vector<float> got = enc->encode(g.image, pool);
  ASSERT_EQ(got.size(), 12u * 128u);
  const double err = max_abs_diff(got, g.embeds);
  std::printf("glimmer image_embeds (HF dir): max abs error %.3g\n", err);
  EXPECT_LE(err, kTolerance);

  // A different image (first patch negated) gives different rows.
  ImagePatches shifted = g.image;
  for (int64_t i = 0; i < shifted.patch_dim; ++i) shifted.pixel_values[i] *= -1.0f;
  const std::vector<float> other = enc->encode(shifted, pool);
  EXPECT_GT(max_abs_diff(other, g.embeds), 1e-2);
}

TEST(GlimmerVision, ImageEmbedsFromMmprojGguf) {
  const Golden g = load_golden();
  fs::create_directories(MUSE_TEST_TMP);
  const std::string path = std::string(MUSE_TEST_TMP) + "/glimmer-mmproj.gguf";
  write_muse_glimmer_mmproj(kDir, path, DType::F32);
  std::shared_ptr<EncoderWeights> weights = EncoderWeights::open_gguf(path);
  const GgufFile& gguf = *weights->gguf();
  EXPECT_EQ(gguf.get_string("general.architecture"), "clip");
  EXPECT_EQ(gguf.get_string("clip.projector_type"), "muse-glimmer");
  ASSERT_NE(gguf.find_tensor("v.blk.3.ffn_down.weight"), nullptr);
  ASSERT_NE(gguf.find_tensor("mm.proj.weight"), nullptr);
  const MuseGlimmerVisionConfig c = muse_glimmer_vision_config_from_gguf(gguf);
  EXPECT_EQ(c.window_attention, (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(c.processor.max_tokens, 64);
  auto enc = load_muse_glimmer_vision(weights, c);
  ThreadPool pool(2);
  const double err = max_abs_diff(enc->encode(g.image, pool), g.embeds);
  std::printf("glimmer image_embeds (mmproj GGUF, F32): max abs error %.3g\n", err);
  EXPECT_LE(err, kTolerance);
}

TEST(GlimmerVision, BadInputThrows) {
  const Golden g = load_golden();
  auto enc = load_hf();
  ThreadPool pool(1);

  ImagePatches wrong_dim = g.image;  // 3 * 2 * 14 * 14 = 1176 expected
  wrong_dim.patch_dim = 1175;
  wrong_dim.pixel_values.resize(48 * 1175);
  EXPECT_THROW(enc->encode(wrong_dim, pool), Error);

  ImagePatches odd = g.image;  // 5 x 8 is not a multiple of the 2x2 merge
  odd.grid_h = 5;
  odd.pixel_values.resize(5 * 8 * 1176);
  EXPECT_THROW(enc->encode(odd, pool), Error);

  ImagePatches short_values = g.image;
  short_values.pixel_values.pop_back();
  EXPECT_THROW(enc->encode(short_values, pool), Error);

  ImagePatches video = g.image;
  video.grid_t = 2;
  video.pixel_values.resize(2 * 48 * 1176);
  EXPECT_THROW(enc->encode(video, pool), Error);

  ImagePatches empty = g.image;
  empty.grid_h = empty.grid_w = 0;
  empty.pixel_values.clear();
  EXPECT_THROW(enc->encode(empty, pool), Error);

  // The same grid works again after the failures.
  EXPECT_LE(max_abs_diff(enc->encode(g.image, pool), g.embeds), kTolerance);
}

}  // namespace
}  // namespace muse
