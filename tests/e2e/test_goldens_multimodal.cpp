// The multimodal goldens (../shared/goldens/qwen25omni, muse_glimmer): rotary
// positions exact, logits with the reference's own media embeddings (checks the
// decoder side alone), and the whole path from processor outputs through Muse's
// encoders, from the Hugging Face directory and from the converted GGUF pair.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/compare.h"
#include "common/test_tmp.h"
#include "core/read_file.h"
#include "media/audio.h"
#include "media/image.h"
#include "model/media_forward.h"
#include "model/safetensors.h"

namespace muse {
namespace {
namespace fs = std::filesystem;

std::string golden(const std::string& name) {
  return std::string(MUSE_SHARED_DIR) + "/goldens/" + name;
}

using test::tmp_path;

template <typename T>
std::vector<T> read(const std::string& path, const std::string& key) {
  auto f = SafetensorsFile::open(path);
  const SafetensorsTensor* t = f->find(key);
  if (!t) ADD_FAILURE() << path << " has no " << key;
  if (!t) return {};
  const T* p = static_cast<const T*>(t->view.data);
  return std::vector<T>(p, p + t->view.n_elements());
}

using test::max_abs_diff;

// Spans of the golden prompt, filled with the golden embeddings.
std::vector<MediaSpan> golden_spans(const ModelConfig& c, const std::vector<int32_t>& ids,
                                    const std::vector<float>& image, int64_t grid_h, int64_t grid_w,
                                    const std::vector<float>& audio) {
  std::vector<MediaSpan> spans;
  for (size_t i = 0; i < ids.size();) {
    const bool img = ids[i] == c.media_tokens.image, aud = ids[i] == c.media_tokens.audio;
    if (!img && !aud) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < ids.size() && ids[j] == ids[i]) ++j;
    MediaSpan s{int64_t(i), int64_t(j - i), img ? image.data() : audio.data(), 0, 0};
    if (img) s.grid_h = grid_h, s.grid_w = grid_w;
    spans.push_back(s);
    i = j;
  }
  return spans;
}

std::vector<float> run_with_spans(const std::string& model_path, const std::vector<int32_t>& ids,
                                  const std::vector<MediaSpan>& spans) {
  auto model = Model::load(model_path);
  const ModelConfig& c = model->config();
  Decoder dec(model, {int64_t(ids.size()) + 1, 1, 512, 2});
  validate_media_spans(c, ids, spans);
  const PromptPositions pos = prompt_rope_positions(c, ids, spans);
  std::vector<BatchItem> batch(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    batch[i] = {ids[i], int32_t(i), 0, true};
    if (!pos.rows.empty()) {
      batch[i].rope_explicit = true;
      std::copy(pos.rows[i].begin(), pos.rows[i].end(), batch[i].rope_pos);
    }
  }
  for (const auto& s : spans)
    for (int64_t k = 0; k < s.n_tokens; ++k) batch[s.start + k].embedding = s.rows + k * c.n_embd;
  auto out = dec.forward(batch);
  return {out.begin(), out.end()};
}

TEST(OmniGolden, PositionsMatchReference) {
  const std::string d = golden("qwen25omni");
  auto model = Model::load(d);
  const ModelConfig& c = model->config();
  ASSERT_EQ(c.mrope_sections, (std::vector<int64_t>{4, 6, 6}));
  ASSERT_EQ(c.media_tokens.image, 1001);
  ASSERT_EQ(c.media_tokens.audio, 1000);
  const auto ids = read<int32_t>(d + "/inputs.safetensors", "input_ids");
  const auto image = read<float>(d + "/outputs.safetensors", "image_embeds");
  const auto audio = read<float>(d + "/outputs.safetensors", "audio_embeds");
  const auto spans = golden_spans(c, ids, image, 3, 4, audio);
  ASSERT_EQ(spans.size(), 2u);
  const PromptPositions pos = prompt_rope_positions(c, ids, spans);
  const auto want = read<int32_t>(d + "/outputs.safetensors", "position_ids");
  const size_t n = ids.size();
  ASSERT_EQ(want.size(), 3 * n);
  for (size_t r = 0; r < 3; ++r)
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(pos.rows[i][r], want[r * n + i]) << r << "," << i;
  EXPECT_EQ(pos.next, want[n - 1] + 1);
}

TEST(OmniGolden, LogitsFromReferenceEmbeddings) {
  const std::string d = golden("qwen25omni");
  auto model = Model::load(d);
  const auto ids = read<int32_t>(d + "/inputs.safetensors", "input_ids");
  const auto image = read<float>(d + "/outputs.safetensors", "image_embeds");
  const auto audio = read<float>(d + "/outputs.safetensors", "audio_embeds");
  const auto spans = golden_spans(model->config(), ids, image, 3, 4, audio);
  const auto logits = run_with_spans(d, ids, spans);
  const double err = max_abs_diff(logits, read<float>(d + "/outputs.safetensors", "logits"));
  EXPECT_LE(err, 1e-3);
  std::printf("omni logits (reference embeddings): max abs error %.3g\n", err);
}

// Text-only M-RoPE (t = h = w) is exactly ordinary rotate_half rope.
TEST(OmniGolden, TextOnlyMropeEqualsPlainRope) {
  const std::string d = golden("qwen25omni");
  auto model = Model::load(d);
  std::vector<int32_t> ids = {5, 17, 300, 999, 42, 7};
  Decoder dec(model, {16, 1, 512, 2});
  std::vector<BatchItem> a(ids.size()), b(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    a[i] = {ids[i], int32_t(i), 0, true};
    b[i] = a[i];
    b[i].rope_explicit = true;
    b[i].rope_pos[0] = b[i].rope_pos[1] = b[i].rope_pos[2] = int32_t(i);
  }
  auto la = dec.forward(a);
  std::vector<float> first(la.begin(), la.end());
  dec.clear(0);
  auto lb = dec.forward(b);
  EXPECT_EQ(max_abs_diff(first, {lb.begin(), lb.end()}), 0.0);
  // And a different h row changes the result (the sections are really used).
  dec.clear(0);
  b[3].rope_pos[1] += 5;
  auto lc = dec.forward(b);
  EXPECT_GT(max_abs_diff(first, {lc.begin(), lc.end()}), 1e-4);
}

}  // namespace
}  // namespace muse

namespace muse {
namespace {

// Muse Glimmer's image rows enter the decoder as they are (no embedding RMS norm,
// which only token rows get) at sequential positions.
TEST(GlimmerGolden, LogitsFromReferenceEmbeddings) {
  const std::string d = golden("muse_glimmer");
  auto model = Model::load(d);
  const ModelConfig& c = model->config();
  ASSERT_EQ(c.media_tokens.image, 1001);
  const auto ids = read<int32_t>(d + "/inputs.safetensors", "input_ids");
  const auto image = read<float>(d + "/outputs.safetensors", "image_embeds");
  const auto spans = golden_spans(c, ids, image, 3, 4, {});
  const auto logits = run_with_spans(d, ids, spans);
  const double err = max_abs_diff(logits, read<float>(d + "/outputs.safetensors", "logits"));
  EXPECT_LE(err, 1e-3);
  std::printf("glimmer logits (reference embeddings): max abs error %.3g\n", err);
}

}  // namespace
}  // namespace muse

namespace muse {
namespace {

// The command-line path from processor outputs, once from the Hugging Face
// directory and once after `muse convert --mmproj` (f32 text GGUF + f32 mmproj).
struct CliCase {
  const char* name;
  std::vector<std::string> embeds;  // intermediate outputs the golden holds
  bool positions;                   // golden position_ids (M-RoPE models)
};

class MultimodalCli : public ::testing::TestWithParam<CliCase> {};

void check_outputs(const CliCase& c, const std::string& out) {
  const std::string ref = golden(c.name) + "/outputs.safetensors";
  const double logits = max_abs_diff(read<float>(out, "logits"), read<float>(ref, "logits"));
  EXPECT_LE(logits, 1e-3) << out;
  std::printf("%s: logits max abs error %.3g\n", out.c_str(), logits);
  for (const auto& key : c.embeds) {
    const double e = max_abs_diff(read<float>(out, key), read<float>(ref, key));
    EXPECT_LE(e, 1e-3) << out << " " << key;
    std::printf("%s: %s max abs error %.3g\n", out.c_str(), key.c_str(), e);
  }
  if (c.positions) {
    EXPECT_EQ(read<int32_t>(out, "position_ids"), read<int32_t>(ref, "position_ids"));
  }
}

TEST_P(MultimodalCli, HuggingFaceDirectoryAndGgufPair) {
  const CliCase& c = GetParam();
  const std::string muse = std::string(MUSE_BIN_DIR) + "/muse";
  const std::string d = golden(c.name), in = d + "/inputs.safetensors";
  const std::string base = tmp_path(std::string("mm-") + c.name);
  const std::string hf_cmd =
      muse + " debug logits -m " + d + " --inputs " + in + " --out " + base + "-hf.safetensors";
  ASSERT_EQ(std::system(hf_cmd.c_str()), 0) << hf_cmd;
  check_outputs(c, base + "-hf.safetensors");
  const std::string convert = muse + " convert " + d + " -o " + base +
                              ".gguf --type f32 --mmproj " + base +
                              "-mmproj.gguf --mmproj-type f32";
  ASSERT_EQ(std::system(convert.c_str()), 0) << convert;
  const std::string gguf_cmd = muse + " debug logits -m " + base + ".gguf --mmproj " + base +
                               "-mmproj.gguf --inputs " + in + " --out " + base +
                               "-gguf.safetensors";
  ASSERT_EQ(std::system(gguf_cmd.c_str()), 0) << gguf_cmd;
  check_outputs(c, base + "-gguf.safetensors");
}

INSTANTIATE_TEST_SUITE_P(
    Goldens, MultimodalCli,
    ::testing::Values(CliCase{"qwen25omni", {"image_embeds", "audio_embeds"}, true},
                      CliCase{"muse_glimmer", {"image_embeds"}, false}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace muse

namespace muse {
namespace {

// The omni case from its raw files: image.png and audio.wav through Muse's own
// decoders and processors, then the encoders and the decoder.
TEST(OmniGolden, FromRawImageAndAudioFiles) {
  const std::string d = golden("qwen25omni");
  auto model = Model::load(d);
  const MediaEncoders enc = load_media_encoders(d);
  ASSERT_TRUE(enc.vision && enc.audio);
  const std::string png = read_file(d + "/image.png"), wav = read_file(d + "/audio.wav");
  const auto bytes = [](const std::string& s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  MultimodalInputs in;
  in.ids = read<int32_t>(d + "/inputs.safetensors", "input_ids");
  in.images.push_back(
      media::preprocess_image(media::decode_image(bytes(png)), enc.vision->processor()));
  in.audios.push_back(media::audio_features(bytes(wav), enc.audio->processor()));
  EXPECT_EQ(in.audios[0].n_frames, 250);
  Decoder dec(model, {int64_t(in.ids.size()) + 1, 1, 512, 2});
  const MultimodalOutputs out = run_multimodal(dec, enc, in);
  const std::string ref = d + "/outputs.safetensors";
  const double img = max_abs_diff(out.image_embeds, read<float>(ref, "image_embeds"));
  const double aud = max_abs_diff(out.audio_embeds, read<float>(ref, "audio_embeds"));
  const double logits = max_abs_diff(out.logits, read<float>(ref, "logits"));
  std::printf("omni from raw files: image %.3g, audio %.3g, logits %.3g\n", img, aud, logits);
  EXPECT_LE(img, 1e-3);
  EXPECT_LE(aud, 1e-3);
  EXPECT_LE(logits, 1e-3);
  EXPECT_EQ(out.position_ids, read<int32_t>(ref, "position_ids"));
}

}  // namespace
}  // namespace muse
