// The engine with media in prompts: embeddings replace placeholder rows, M-RoPE
// positions continue after the prompt, and prefix reuse tells media apart by
// content hash (the placeholder ids of two images are identical).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "engine/engine.h"
#include "model/safetensors.h"

namespace muse {
namespace {
using namespace std::chrono_literals;

const std::string kOmni = std::string(MUSE_SHARED_DIR) + "/goldens/qwen25omni";

std::vector<float> read_f32(const std::string& path, const std::string& key) {
  auto f = SafetensorsFile::open(path);
  const auto* t = f->find(key);
  EXPECT_TRUE(t);
  const auto* p = static_cast<const float*>(t->view.data);
  return {p, p + t->view.n_elements()};
}

struct Outcome {
  std::vector<int32_t> tokens;
  int64_t cached = 0;
  FinishReason finish = FinishReason::kNone;
  std::string error;
};

Outcome run(Engine& engine, GenerationRequest req) {
  auto stream = engine.submit(std::move(req));
  Outcome o;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = stream->next(100ms);
    if (!e) continue;
    for (const auto& t : e->tokens) o.tokens.push_back(t.token);
    o.cached = e->cached_prompt_tokens;
    if (e->finish != FinishReason::kNone) {
      o.finish = e->finish;
      o.error = e->error;
      return o;
    }
  }
  ADD_FAILURE() << "stream did not end";
  return o;
}

struct OmniPrompt {
  std::vector<int32_t> ids;
  std::vector<PromptMedia> media;
};

// The golden prompt with the golden audio and image embeddings.
OmniPrompt golden_prompt(uint64_t image_hash, float image_shift = 0) {
  OmniPrompt p;
  auto f = SafetensorsFile::open(kOmni + "/inputs.safetensors");
  const auto* t = f->find("input_ids");
  const auto* ids = static_cast<const int32_t*>(t->view.data);
  p.ids.assign(ids, ids + t->view.n_elements());
  auto audio = std::make_shared<std::vector<float>>(read_f32(kOmni + "/outputs.safetensors", "audio_embeds"));
  auto image = std::make_shared<std::vector<float>>(read_f32(kOmni + "/outputs.safetensors", "image_embeds"));
  for (float& v : *image) v += image_shift;
  const auto a0 = std::find(p.ids.begin(), p.ids.end(), 1000) - p.ids.begin();
  const auto i0 = std::find(p.ids.begin(), p.ids.end(), 1001) - p.ids.begin();
  p.media.push_back({a0, 62, audio, 0, 0, 7});
  p.media.push_back({i0, 12, image, 3, 4, image_hash});
  return p;
}

GenerationRequest greedy(const OmniPrompt& p, int64_t n) {
  GenerationRequest r;
  r.prompt = p.ids;
  r.media = p.media;
  r.sampling.temperature = 0;
  r.max_tokens = n;
  r.ignore_eos = true;
  return r;
}

EngineOptions options() {
  EngineOptions o;
  o.n_parallel = 2;
  o.n_ctx = 256;
  o.n_threads = 2;
  return o;
}

TEST(EngineMedia, FirstTokenIsTheReferenceArgmax) {
  Engine engine(Model::load(kOmni), options());
  const OmniPrompt p = golden_prompt(11);
  const Outcome o = run(engine, greedy(p, 1));
  ASSERT_EQ(o.finish, FinishReason::kLength) << o.error;
  const auto logits = read_f32(kOmni + "/outputs.safetensors", "logits");
  const size_t V = 1024, last = p.ids.size() - 1;
  const auto row = logits.begin() + static_cast<std::ptrdiff_t>(last * V);
  EXPECT_EQ(o.tokens.at(0), std::max_element(row, row + V) - row);
}

// Generated tokens continue at the prompt's last rotary position + 1 (not at their
// cache index): an independent greedy loop over the decoder gives the same tokens.
TEST(EngineMedia, GenerationContinuesAfterTheLastPosition) {
  auto model = Model::load(kOmni);
  const OmniPrompt p = golden_prompt(11);
  Engine engine(model, options());
  const Outcome o = run(engine, greedy(p, 5));

  Decoder dec(model, {256, 1, 512, 2});
  std::vector<BatchItem> batch;
  int32_t t = 0;  // running rotary position
  for (size_t i = 0; i < p.ids.size(); ++i) {
    BatchItem it{p.ids[i], int32_t(i), 0, i + 1 == p.ids.size()};
    it.rope_explicit = true;
    const PromptMedia& img = p.media[1];
    const auto k = int64_t(i) - img.start;
    if (k >= 0 && k < img.n_tokens) {
      const int32_t st = int32_t(img.start);  // text and audio advance 1:1 before the image
      it.rope_pos[0] = st, it.rope_pos[1] = st + int32_t(k / 4), it.rope_pos[2] = st + int32_t(k % 4);
      it.embedding = img.rows->data() + k * 128;
      t = st + 4;
    } else {
      it.rope_pos[0] = it.rope_pos[1] = it.rope_pos[2] = t++;
      const PromptMedia& a = p.media[0];
      if (int64_t(i) >= a.start && int64_t(i) < a.start + a.n_tokens)
        it.embedding = a.rows->data() + (int64_t(i) - a.start) * 128;
    }
    batch.push_back(it);
  }
  std::vector<int32_t> want;
  auto logits = dec.forward(batch);
  for (int n = 0; n < 5; ++n) {
    const int32_t tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    want.push_back(tok);
    BatchItem it{tok, int32_t(p.ids.size()) + n, 0, true};
    it.rope_explicit = true;
    it.rope_pos[0] = it.rope_pos[1] = it.rope_pos[2] = t++;
    logits = dec.forward(std::span<const BatchItem>(&it, 1));
  }
  EXPECT_EQ(o.tokens, want);
}

TEST(EngineMedia, PrefixReuseComparesMediaContent) {
  Engine engine(Model::load(kOmni), options());
  const OmniPrompt p = golden_prompt(11);
  const Outcome first = run(engine, greedy(p, 6));
  const Outcome again = run(engine, greedy(p, 6));
  EXPECT_EQ(again.tokens, first.tokens);
  EXPECT_GT(again.cached, 80);  // everything but the last prompt position or so

  // Same ids, another image: the cache is reused only up to that image.
  const OmniPrompt q = golden_prompt(12, 0.5f);
  const Outcome other = run(engine, greedy(q, 6));
  EXPECT_LE(other.cached, q.media[1].start);
  EXPECT_GT(other.cached, 0);
  Engine fresh(Model::load(kOmni), options());
  EXPECT_EQ(run(fresh, greedy(q, 6)).tokens, other.tokens);
}

TEST(EngineMedia, BadMediaIsRefused) {
  Engine engine(Model::load(kOmni), options());
  OmniPrompt p = golden_prompt(11);
  p.media[1].start += 1;  // no longer on the image placeholders
  EXPECT_THROW(engine.submit(greedy(p, 2)), Error);
  p = golden_prompt(11);
  p.media[1].grid_w = 5;  // grid does not match the rows
  EXPECT_THROW(engine.submit(greedy(p, 2)), Error);
  p = golden_prompt(11);
  p.media[0].rows = std::make_shared<std::vector<float>>(3);
  EXPECT_THROW(engine.submit(greedy(p, 2)), Error);
}

// A model with 1-D positions (no M-RoPE rows: Muse Glimmer, Muse Nano) still gets
// its media rows in place of the placeholders: the engine's first greedy token is
// the argmax of the reference logits computed with the image.
TEST(EngineMedia, OneDimensionalPositionModelsTakeTheMediaRows) {
  const std::string dir = std::string(MUSE_SHARED_DIR) + "/goldens/muse_glimmer";
  auto model = Model::load(dir);
  ASSERT_TRUE(model->config().mrope_sections.empty());
  auto f = SafetensorsFile::open(dir + "/inputs.safetensors");
  const auto* t = f->find("input_ids");
  ASSERT_TRUE(t);
  const auto* ids = static_cast<const int32_t*>(t->view.data);
  OmniPrompt p;
  p.ids.assign(ids, ids + t->view.n_elements());
  auto image = std::make_shared<std::vector<float>>(read_f32(dir + "/outputs.safetensors", "image_embeds"));
  const int32_t placeholder = model->config().media_tokens.image;
  const auto first = std::find(p.ids.begin(), p.ids.end(), placeholder) - p.ids.begin();
  const auto count = std::count(p.ids.begin(), p.ids.end(), placeholder);
  ASSERT_EQ(static_cast<size_t>(count * model->config().n_embd), image->size());
  p.media.push_back({first, count, image, 0, 0, 5});
  Engine engine(model, options());
  const Outcome o = run(engine, greedy(p, 1));
  ASSERT_EQ(o.finish, FinishReason::kLength) << o.error;
  const auto logits = read_f32(dir + "/outputs.safetensors", "logits");
  const size_t V = static_cast<size_t>(model->config().n_vocab), last = p.ids.size() - 1;
  const auto row = logits.begin() + static_cast<std::ptrdiff_t>(last * V);
  EXPECT_EQ(o.tokens.at(0), std::max_element(row, row + V) - row);
}

}  // namespace
}  // namespace muse
