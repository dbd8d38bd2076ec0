// Muse Nano (models/muse-nano.gguf, architecture `muse`) against its training code:
// tests/data/muse-nano holds evaluation inputs (PNG, WAV, the conversation), the
// ids PyTorch's renderer gave and PyTorch's logits (train/eval_nano.py reference).
// The engine must reproduce the logits from the raw files through its own
// decoders, processors and projections, its chat template and tokenizer must give
// the training ids, and conversion must keep the in-file projections.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/compare.h"
#include "core/read_file.h"
#include "engine/engine.h"
#include "media/audio.h"
#include "media/image.h"
#include "model/convert.h"
#include "model/gguf.h"
#include "model/media_forward.h"
#include "model/media_muse.h"
#include "model/safetensors.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace muse {
namespace {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

const std::string kModel = std::string(MUSE_TESTS_DIR) + "/../models/muse-nano.gguf";
const std::string kData = std::string(MUSE_TESTS_DIR) + "/data/muse-nano";

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

template <typename T>
std::vector<T> reference(const std::string& key) {
  auto f = SafetensorsFile::open(kData + "/reference.safetensors");
  const SafetensorsTensor* t = f->find(key);
  if (!t) ADD_FAILURE() << "reference.safetensors has no " << key;
  if (!t) return {};
  const T* p = static_cast<const T*>(t->view.data);
  return std::vector<T>(p, p + t->view.n_elements());
}

ordered_json cases() { return ordered_json::parse(read_file(kData + "/cases.json")); }

// The case's images and audio clips, decoded and preprocessed as the server does.
MultimodalInputs case_inputs(const ordered_json& c, const MediaEncoders& enc) {
  MultimodalInputs in;
  for (const auto& m : c["messages"]) {
    if (!m["content"].is_array()) continue;
    for (const auto& p : m["content"]) {
      const std::string type = p["type"];
      if (type == "text") continue;
      const std::string file = read_file(kData + "/" + p["file"].get<std::string>());
      if (type == "image")
        in.images.push_back(media::preprocess_image(media::decode_image(bytes(file)),
                                                    enc.vision->processor()));
      else
        in.audios.push_back(media::audio_features(bytes(file), enc.audio->processor()));
    }
  }
  return in;
}

using test::max_abs_diff;

double worst_logit_error(const std::string& model_path) {
  auto model = Model::load(model_path);
  const MediaEncoders enc = load_model_media_encoders(model_path);
  EXPECT_TRUE(enc.vision && enc.audio);
  if (!enc.vision || !enc.audio) return INFINITY;
  double worst = 0;
  const ordered_json all = cases();
  for (size_t k = 0; k < all.size(); ++k) {
    const std::string key = "case" + std::to_string(k);
    MultimodalInputs in = case_inputs(all[k], enc);
    in.ids = reference<int32_t>(key + ".ids");
    Decoder dec(model, {int64_t(in.ids.size()) + 1, 1, 512, 2});
    const MultimodalOutputs out = run_multimodal(dec, enc, in);
    const double err = max_abs_diff(out.logits, reference<float>(key + ".logits"));
    std::printf("%-24s %zu ids  max |engine - pytorch| %.3g\n",
                all[k]["task"].get<std::string>().c_str(), in.ids.size(), err);
    worst = std::max(worst, err);
  }
  return worst;
}

TEST(MuseNano, EngineMatchesPyTorchFromRawFiles) {
  ASSERT_GE(cases().size(), 5u);
  EXPECT_LE(worst_logit_error(kModel), 1e-3);
}

// The serving engine (continuous batching, all cases at once) continues each prompt
// exactly as PyTorch's greedy decoding does, media rows included.
TEST(MuseNano, EngineGreedyAnswersMatchPyTorch) {
  auto model = Model::load(kModel);
  const MediaEncoders enc = load_model_media_encoders(kModel);
  ASSERT_TRUE(enc.vision && enc.audio);
  const MediaTokenIds& mt = model->config().media_tokens;
  ThreadPool pool(2);
  EngineOptions eo;
  eo.n_parallel = 4;
  eo.n_ctx = 512;
  eo.n_threads = 2;
  eo.eog_ids = text::load_tokenizer(*model)->eog_ids();
  Engine engine(model, eo);
  const ordered_json all = cases();
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (size_t k = 0; k < all.size(); ++k) {
    GenerationRequest r;
    r.prompt = reference<int32_t>("case" + std::to_string(k) + ".ids");
    const MultimodalInputs in = case_inputs(all[k], enc);
    size_t image = 0, audio = 0;
    for (size_t i = 0; i < r.prompt.size();) {
      const int32_t id = r.prompt[i];
      if (id != mt.image && id != mt.audio) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < r.prompt.size() && r.prompt[j] == id) ++j;
      PromptMedia m;
      m.start = static_cast<int64_t>(i);
      m.n_tokens = static_cast<int64_t>(j - i);
      if (id == mt.image) {
        const ImagePatches& im = in.images.at(image++);
        m.rows = std::make_shared<const std::vector<float>>(enc.vision->encode(im, pool));
        m.grid_h = im.grid_h, m.grid_w = im.grid_w;
      } else {
        m.rows = std::make_shared<const std::vector<float>>(enc.audio->encode(in.audios.at(audio++), pool));
      }
      m.hash = 1000 * k + i;
      r.media.push_back(m);
      i = j;
    }
    r.sampling.temperature = 0;
    r.max_tokens = 24;
    streams.push_back(engine.submit(std::move(r)));
  }
  for (size_t k = 0; k < all.size(); ++k) {
    std::vector<int32_t> got;
    for (;;) {
      auto e = streams[k]->next(std::chrono::seconds(60));
      ASSERT_TRUE(e) << "case " << k << " timed out";
      for (const auto& t : e->tokens) got.push_back(t.token);
      if (e->finish != FinishReason::kNone) break;
    }
    EXPECT_EQ(got, reference<int32_t>("case" + std::to_string(k) + ".greedy")) << all[k]["task"];
  }
}

// The chat template and the GGUF's tokenizer give exactly the ids training used
// (so served requests look like training data), once each placeholder is expanded
// to its encoder's row count as the server does.
TEST(MuseNano, ChatTemplateAndTokenizerGiveTrainingIds) {
  auto model = Model::load(kModel);
  const auto tok = text::load_tokenizer(*model);
  const MediaEncoders enc = load_model_media_encoders(kModel);
  const text::ChatTemplate tmpl(tok->chat_template());
  const MediaTokenIds& mt = model->config().media_tokens;
  const ordered_json all = cases();
  for (size_t k = 0; k < all.size(); ++k) {
    const ordered_json& c = all[k];
    text::ChatInputs in;
    in.messages = c["messages"];
    for (auto& m : in.messages)
      if (m["content"].is_array())
        for (auto& p : m["content"])
          if (p["type"] != "text") p = ordered_json{{"type", p["type"]}};
    if (!c["tools"].is_null()) in.tools = c["tools"];
    in.add_generation_prompt = true;
    const std::vector<text::TokenId> raw = tok->encode(tmpl.render(in), false, true);
    const MultimodalInputs media = case_inputs(c, enc);
    std::vector<int32_t> ids;
    size_t image = 0, audio = 0;
    for (text::TokenId id : raw) {
      int64_t rows = 1;
      if (id == mt.image && image < media.images.size())
        rows = enc.vision->n_tokens(media.images[image++]);
      else if (id == mt.audio && audio < media.audios.size())
        rows = enc.audio->n_tokens(media.audios[audio++].n_frames);
      ids.insert(ids.end(), rows, static_cast<int32_t>(id));
    }
    EXPECT_EQ(ids, reference<int32_t>("case" + std::to_string(k) + ".ids")) << c["task"];
  }
}

// Converting the GGUF again (here to f32) carries the projections and their
// metadata along; the logits do not move (f16 -> f32 is exact).
TEST(MuseNano, ConversionKeepsTheInFileProjections) {
  fs::create_directories(MUSE_TEST_TMP);
  const std::string out = std::string(MUSE_TEST_TMP) + "/muse-nano-f32.gguf";
  write_gguf(*Model::load(kModel), out, parse_quant_target("f32"));
  auto g = GgufFile::open(out);
  for (const char* key : {"muse.vision.image_size", "muse.vision.patch_size", "muse.audio.n_mel",
                          "muse.audio.stack_frames", "muse.media.image_token_id"})
    EXPECT_NE(g->find(key), nullptr) << key;
  EXPECT_LE(worst_logit_error(out), 1e-3);
}

TEST(MuseNano, TextOnlyModelsHaveNoInFileEncoders) {
  // A GGUF of another architecture carries no projections (its encoders come from
  // an mmproj), so the model's own encoders are empty rather than an error.
  const std::string tiny = std::string(MUSE_TEST_TMP) + "/muse-nano-not-muse.gguf";
  fs::create_directories(MUSE_TEST_TMP);
  GgufWriter w;
  w.set("general.architecture", GgufValue::string("llama"));
  w.write(tiny);
  const MediaEncoders enc = load_model_media_encoders(tiny);
  EXPECT_FALSE(enc.vision || enc.audio);
}

// Bad projection metadata or missing projection tensors are clear errors.
TEST(MuseNano, MalformedInFileProjectionsAreErrors) {
  fs::create_directories(MUSE_TEST_TMP);
  const auto attempt = [](const std::string& name, auto&& fill) -> std::string {
    const std::string path = std::string(MUSE_TEST_TMP) + "/" + name;
    GgufWriter w;
    w.set("general.architecture", GgufValue::string("muse"));
    w.set("muse.embedding_length", GgufValue::u32(16));
    fill(w);
    w.write(path);
    try {
      load_model_media_encoders(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string size = attempt("bad-size.gguf", [](GgufWriter& w) {
    w.set("muse.vision.image_size", GgufValue::u32(60));
    w.set("muse.vision.patch_size", GgufValue::u32(8));
  });
  EXPECT_NE(size.find("image_size"), std::string::npos) << size;
  const std::string stack = attempt("bad-stack.gguf", [](GgufWriter& w) {
    w.set("muse.audio.n_mel", GgufValue::u32(80));
    w.set("muse.audio.stack_frames", GgufValue::u32(0));
  });
  EXPECT_NE(stack.find("stack_frames"), std::string::npos) << stack;
  const std::string missing = attempt("no-tensors.gguf", [](GgufWriter& w) {
    w.set("muse.vision.image_size", GgufValue::u32(64));
    w.set("muse.vision.patch_size", GgufValue::u32(8));
  });
  EXPECT_NE(missing.find("v.patch_embd.weight"), std::string::npos) << missing;
}

// A config.json value of the wrong type is a Muse error naming the key, not a
// library exception text.
TEST(MuseNano, MalformedHfMediaConfigNamesTheKey) {
  const nlohmann::json base = {{"hidden_size", 16},
                               {"vision_config", {{"image_size", 64}, {"patch_size", 8}}},
                               {"audio_config", {{"num_mel_bins", 80}, {"stack_frames", 4}}}};
  EXPECT_NO_THROW(muse_media_config_from_hf(base));
  const std::pair<const char*, const char*> cases[] = {{"vision_config", "image_mean"},
                                                       {"vision_config", "image_size"},
                                                       {"audio_config", "stack_frames"}};
  for (const auto& [section, key] : cases) {
    nlohmann::json bad = base;
    bad[section][key] = "not a number";
    try {
      muse_media_config_from_hf(bad);
      ADD_FAILURE() << key << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace muse
