// The multimodal test models the build writes for the server tests
// (tests/e2e/CMakeLists-models.cmake): each text model loads with its mmproj, the
// media placeholder ids resolve from the vocabulary, the added special tokens are
// matched atomically, the decoder width matches the encoders' output, the Omni
// template renders media parts exactly, and encoder rows run through the decoder.
//
// Expected ids: the GPT-2 vocabulary has 50257 tokens (<|endoftext|> = 50256 already
// there); the added specials follow in the order the build passes them, and the
// vocabulary is padded to a multiple of 64 (50304).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/decoder.h"
#include "model/media_encoder.h"
#include "model/model.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace muse {
namespace {

using nlohmann::ordered_json;

constexpr int32_t kFirstAdded = 50257;
constexpr int64_t kPaddedVocab = 50304;

std::string model_path(const std::string& file) {
  const std::string path = std::string(MUSE_TEST_MODELS_DIR) + "/" + file;
  EXPECT_TRUE(std::filesystem::exists(path))
      << path << " is missing (built by the muse_test_models target)";
  return path;
}

std::vector<text::TokenId> concat(std::initializer_list<std::vector<text::TokenId>> parts) {
  std::vector<text::TokenId> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

int64_t count(const std::vector<text::TokenId>& ids, text::TokenId id) {
  return std::count(ids.begin(), ids.end(), id);
}

TEST(MultimodalTestModels, OmniConfigAndVocabulary) {
  auto model = Model::load(model_path("omni-test.gguf"));
  const ModelConfig& c = model->config();
  EXPECT_EQ(c.arch, "qwen2vl");
  EXPECT_EQ(c.n_embd, 128);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, 2);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.n_ff, 256);
  EXPECT_EQ(c.n_vocab, kPaddedVocab);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_EQ(c.mrope_sections, (std::vector<int64_t>{4, 6, 6}));

  // <|im_start|> <|im_end|> (<|endoftext|> exists) <|AUDIO|> <|audio_bos|> <|audio_eos|>
  // <|vision_bos|> <|vision_eos|> <|IMAGE|> <|VIDEO|>
  const MediaTokenIds& m = c.media_tokens;
  EXPECT_EQ(m.audio, kFirstAdded + 2);
  EXPECT_EQ(m.audio_start, kFirstAdded + 3);
  EXPECT_EQ(m.audio_end, kFirstAdded + 4);
  EXPECT_EQ(m.vision_start, kFirstAdded + 5);
  EXPECT_EQ(m.vision_end, kFirstAdded + 6);
  EXPECT_EQ(m.image, kFirstAdded + 7);
  EXPECT_EQ(m.video, kFirstAdded + 8);

  auto tok = text::load_tokenizer(*model);
  EXPECT_EQ(tok->vocab_size(), static_cast<size_t>(kPaddedVocab));
  EXPECT_EQ(tok->find_token("<|im_start|>"), kFirstAdded);
  EXPECT_EQ(tok->find_token("<|endoftext|>"), 50256);  // kept, not added twice
  EXPECT_EQ(tok->eos(), kFirstAdded + 1);              // <|im_end|>
  EXPECT_EQ(tok->eot(), kFirstAdded + 1);
  EXPECT_TRUE(tok->is_eog(kFirstAdded + 1));
  EXPECT_EQ(tok->token_type(m.image), text::TokenType::kControl);
  EXPECT_EQ(tok->token_type(kFirstAdded + 9), text::TokenType::kUnused);  // first padding
  EXPECT_EQ(tok->token_text(kPaddedVocab - 1), "[PAD50303]");

  // Specials are single tokens with parse_special, and only then.
  const std::string prompt = "<|im_start|>user\n<|vision_bos|><|IMAGE|><|vision_eos|>hi";
  const auto ids = tok->encode(prompt, false, true);
  const auto expected = concat({{kFirstAdded},
                                tok->encode("user\n", false, false),
                                {m.vision_start, m.image, m.vision_end},
                                tok->encode("hi", false, false)});
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(tok->encode("user\n", false, false).size(), 2u);  // "user", "\n"
  const auto plain = tok->encode(prompt, false, false);
  EXPECT_EQ(count(plain, m.image), 0);
  EXPECT_GT(plain.size(), ids.size());
}

TEST(MultimodalTestModels, OmniEncodersMatchTheDecoderWidth) {
  auto model = Model::load(model_path("omni-test.gguf"));
  MediaEncoders enc = load_media_encoders(model_path("omni-test-mmproj.gguf"));
  ASSERT_TRUE(enc.vision);
  ASSERT_TRUE(enc.audio);
  EXPECT_EQ(enc.vision->n_embd_out(), 128);
  EXPECT_EQ(enc.audio->n_embd_out(), 128);
  EXPECT_EQ(enc.vision->n_embd_out(), model->config().n_embd);
}

TEST(MultimodalTestModels, OmniTemplateRendersMediaParts) {
  auto model = Model::load(model_path("omni-test.gguf"));
  auto tok = text::load_tokenizer(*model);
  ASSERT_FALSE(tok->chat_template().empty());
  text::ChatTemplate tmpl(tok->chat_template());
  text::ChatInputs in;
  in.messages = ordered_json::parse(R"([{"role": "user", "content": [
      {"type": "image"}, {"type": "audio"}, {"type": "text", "text": "What is this?"}]}])");
  in.add_generation_prompt = true;
  const std::string rendered = tmpl.render(in);
  EXPECT_EQ(rendered,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n<|vision_bos|><|IMAGE|><|vision_eos|>"
            "<|audio_bos|><|AUDIO|><|audio_eos|>What is this?<|im_end|>\n"
            "<|im_start|>assistant\n");

  // A given system message replaces the default one; image_url / audio_url keys count
  // as media items too (the Hugging Face processor's message forms).
  in.messages = ordered_json::parse(R"([{"role": "system", "content": "S"},
      {"role": "user", "content": [{"image_url": "x"}, {"text": "a"}, {"audio_url": "y"}]},
      {"role": "assistant", "content": "b"}])");
  in.add_generation_prompt = false;
  EXPECT_EQ(tmpl.render(in),
            "<|im_start|>system\nS<|im_end|>\n"
            "<|im_start|>user\n<|vision_bos|><|IMAGE|><|vision_eos|>a"
            "<|audio_bos|><|AUDIO|><|audio_eos|><|im_end|>\n"
            "<|im_start|>assistant\nb<|im_end|>\n");

  const auto ids = tok->encode(rendered, false, true);
  const MediaTokenIds& m = model->config().media_tokens;
  EXPECT_EQ(count(ids, m.image), 1);
  EXPECT_EQ(count(ids, m.audio), 1);
  EXPECT_EQ(count(ids, kFirstAdded), 3);      // <|im_start|>
  EXPECT_EQ(count(ids, kFirstAdded + 1), 2);  // <|im_end|>
}

TEST(MultimodalTestModels, GlimmerConfigVocabularyAndTemplate) {
  auto model = Model::load(model_path("glimmer-test.gguf"));
  const ModelConfig& c = model->config();
  EXPECT_EQ(c.arch, "muse-glimmer");
  EXPECT_EQ(c.n_embd, 128);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.n_vocab, kPaddedVocab);
  ASSERT_EQ(c.layers.size(), 2u);
  EXPECT_TRUE(c.layers[0].sliding && c.layers[0].use_rope);
  EXPECT_FALSE(c.layers[1].sliding || c.layers[1].use_rope);  // global NoPE layer

  // <|begin_of_text|> <|start|> <|message|> <|eot|> <|eom|> <|patch|> <|video|>
  EXPECT_EQ(c.media_tokens.image, kFirstAdded + 5);
  MediaEncoders enc = load_media_encoders(model_path("glimmer-test-mmproj.gguf"));
  ASSERT_TRUE(enc.vision);
  EXPECT_FALSE(enc.audio);
  EXPECT_EQ(enc.vision->n_embd_out(), c.n_embd);

  auto tok = text::load_tokenizer(*model);
  EXPECT_EQ(tok->bos(), kFirstAdded);
  EXPECT_EQ(tok->eos(), kFirstAdded + 3);
  EXPECT_EQ(tok->eot(), kFirstAdded + 3);
  EXPECT_TRUE(tok->is_eog(kFirstAdded + 3));

  text::ChatTemplate tmpl(tok->chat_template());
  text::ChatInputs in;
  in.messages = ordered_json::parse(R"([{"role": "system", "content": "S"},
      {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}])");
  in.add_generation_prompt = true;
  in.bos_token = tok->token_text(tok->bos());
  const std::string rendered = tmpl.render(in);
  EXPECT_EQ(rendered,
            "<|begin_of_text|><|start|>system<|message|>S\n\nReasoning strength: high.\n\n"
            "# Valid recipients: \"self\", \"user\".<|eot|>"
            "<|start|>user<|message|><|patch|>hi<|eot|><|start|>assistant");
  const auto ids = tok->encode(rendered, false, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), kFirstAdded);
  EXPECT_EQ(count(ids, c.media_tokens.image), 1);
  EXPECT_EQ(count(ids, kFirstAdded + 1), 3);  // <|start|>
  EXPECT_EQ(count(ids, kFirstAdded + 3), 2);  // <|eot|>
}

// Encoder rows enter the decoder in place of the placeholder's embedding: the logits
// after them are finite and differ from the plain placeholder token's.
TEST(MultimodalTestModels, OmniImageRowsRunThroughTheDecoder) {
  std::shared_ptr<const Model> model = Model::load(model_path("omni-test.gguf"));
  MediaEncoders enc = load_media_encoders(model_path("omni-test-mmproj.gguf"));
  ASSERT_TRUE(enc.vision);
  ImagePatches image;
  image.patch_dim = 3 * 2 * 14 * 14;
  image.grid_h = image.grid_w = 2;  // one merged row
  image.pixel_values.resize(static_cast<size_t>(image.n_patches() * image.patch_dim));
  for (size_t i = 0; i < image.pixel_values.size(); ++i)
    image.pixel_values[i] = std::sin(0.01f * static_cast<float>(i));
  ThreadPool pool(1);
  ASSERT_EQ(enc.vision->n_tokens(image), 1);
  const std::vector<float> rows = enc.vision->encode(image, pool);
  ASSERT_EQ(rows.size(), 128u);

  const int32_t image_id = model->config().media_tokens.image;
  auto run = [&](const float* embedding) {
    Decoder dec(model, DecoderOptions{.n_ctx = 8, .n_seq = 1, .n_batch = 8, .n_threads = 1});
    BatchItem item;
    item.token = image_id;
    item.logits = true;
    item.embedding = embedding;
    auto logits = dec.forward(std::span<const BatchItem>(&item, 1));
    return std::vector<float>(logits.begin(), logits.end());
  };
  const auto with_image = run(rows.data());
  const auto with_token = run(nullptr);
  ASSERT_EQ(with_image.size(), static_cast<size_t>(kPaddedVocab));
  double diff = 0;
  for (size_t i = 0; i < with_image.size(); ++i) {
    ASSERT_TRUE(std::isfinite(with_image[i])) << i;
    diff = std::max(diff, static_cast<double>(std::fabs(with_image[i] - with_token[i])));
  }
  EXPECT_GT(diff, 1e-4);
}

}  // namespace
}  // namespace muse
