// Tokenizers loaded from Hugging Face tokenizer.json. shared/ has no real tokenizer.json, so
// the tests export the shared GGUF vocabularies into tokenizer.json structures written the
// way Hugging Face writes them for those model families (ByteLevel / Split / Digits
// pre-tokenizers, TemplateProcessing, Llama's Prepend+Replace normalizer with
// byte_fallback) and check that they tokenize exactly like the GGUF path and the
// reference .out files.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/gguf.h"
#include "muse/error.h"
#include "text/tokenizer.h"
#include "text/tokenizer_vocab_test.h"

namespace muse::text {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string base(const std::string& name) {
  return std::string(MUSE_SHARED_DIR) + "/tokenizers/ggml-vocab-" + name + ".gguf";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::vector<TokenId>> expected(const std::string& name) {
  std::vector<std::vector<TokenId>> out;
  std::istringstream in(read_file(base(name) + ".out"));
  for (std::string line; std::getline(in, line);) out.push_back(parse_vocab_test_line(line));
  return out;
}

std::vector<std::string> inputs(const std::string& name) {
  return parse_vocab_test_inputs(read_file(base(name) + ".inp"));
}

// The parts of a GGUF vocabulary a tokenizer.json needs.
struct GgufVocab {
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  std::vector<double> scores;
  std::vector<std::string> merges;
};

GgufVocab read_vocab(const std::string& name) {
  auto f = GgufFile::open(base(name));
  GgufVocab v;
  v.tokens = f->find("tokenizer.ggml.tokens")->as_strings();
  v.types = f->find("tokenizer.ggml.token_type")->as_ints();
  if (const auto* s = f->find("tokenizer.ggml.scores")) v.scores = s->as_floats();
  if (const auto* m = f->find("tokenizer.ggml.merges")) v.merges = m->as_strings();
  return v;
}

// Normal tokens go to model.vocab, control / user-defined ones to added_tokens (as in
// Hugging Face files: added tokens are also listed in the vocab).
json byte_level_bpe_json(const GgufVocab& v, json pre_tokenizer, bool ignore_merges = false) {
  json vocab = json::object(), added = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    vocab[v.tokens[i]] = i;
    if (v.types[i] == 3 || v.types[i] == 4)
      added.push_back({{"id", i},
                       {"content", v.tokens[i]},
                       {"special", v.types[i] == 3},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", false},
                       {"single_word", false}});
  }
  json merges = json::array();
  for (const auto& m : v.merges) merges.push_back(m);
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor",
           {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", ""},
            {"end_of_word_suffix", ""},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", ignore_merges},
            {"vocab", vocab},
            {"merges", merges}}}};
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

json split(const std::string& regex) {
  return {{"type", "Split"},
          {"pattern", {{"Regex", regex}}},
          {"behavior", "Isolated"},
          {"invert", false}};
}

json sequence(json items) {
  return {{"type", "Sequence"}, {"pretokenizers", std::move(items)}};
}

void expect_matches_reference(const Tokenizer& hf, const std::string& name) {
  const auto in = inputs(name);
  const auto want = expected(name);
  ASSERT_EQ(in.size(), want.size());
  const auto gguf = load_tokenizer(base(name));
  for (size_t i = 0; i < in.size(); ++i) {
    const auto got = hf.encode(in[i], false, false);
    EXPECT_EQ(format_vocab_test_line(got), format_vocab_test_line(want[i]))
        << name << " string " << i + 1 << ": '" << in[i] << "'";
    EXPECT_EQ(got, gguf->encode(in[i], false, false));
    EXPECT_EQ(hf.decode(got), in[i]);
  }
}

TEST(HfTokenizer, Gpt2ByteLevel) {
  const auto v = read_vocab("gpt-2");
  const json j = byte_level_bpe_json(v, byte_level(true));
  const auto tok = load_tokenizer_hf_json(j.dump(), R"({"bos_token": "<|endoftext|>",
      "eos_token": "<|endoftext|>", "add_bos_token": false})");
  EXPECT_EQ(tok->vocab_size(), 50257u);
  EXPECT_EQ(tok->eos(), 50256);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->is_eog(50256));
  expect_matches_reference(*tok, "gpt-2");
  EXPECT_EQ(tok->encode("a<|endoftext|>", false, true).back(), 50256);
  EXPECT_NE(tok->encode("a<|endoftext|>", false, false).back(), 50256);
}

TEST(HfTokenizer, Qwen2SplitRegex) {
  // Qwen2's tokenizer.json pattern, case-insensitive contractions as written there.
  const json pre = sequence(
      {split(
           R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
       byte_level(false)});
  const auto tok =
      load_tokenizer_hf_json(byte_level_bpe_json(read_vocab("gpt2-as-qwen2"), pre).dump(), "");
  expect_matches_reference(*tok, "gpt2-as-qwen2");
}

TEST(HfTokenizer, Llama3IgnoreMergesAndTemplateBos) {
  const json pre = sequence(
      {split(
           R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"),
       byte_level(false)});
  json j = byte_level_bpe_json(read_vocab("gpt2-as-llama-bpe"), pre, /*ignore_merges=*/true);
  j["post_processor"] = {{"type", "Sequence"},
                         {"processors",
                          {{{"type", "ByteLevel"}},
                           {{"type", "TemplateProcessing"},
                            {"single",
                             {{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}}}};
  const auto tok = load_tokenizer_hf_json(j.dump(), "{}");
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->bos(), 50256);
  EXPECT_EQ(tok->encode("Hello", true, false), std::vector<TokenId>({50256, 15496}));
  expect_matches_reference(*tok, "gpt2-as-llama-bpe");
}

TEST(HfTokenizer, StarcoderDigits) {
  const json pre = sequence({{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)});
  const auto tok =
      load_tokenizer_hf_json(byte_level_bpe_json(read_vocab("starcoder"), pre).dump(), "");
  expect_matches_reference(*tok, "starcoder");
}

TEST(HfTokenizer, DeepseekCoderSplits) {
  const json pre = sequence({split("[\r\n]"),
                             split("\\s?\\p{L}+"),
                             split("\\s?\\p{P}+"),
                             split("[一-龥ࠀ-一가-퟿]+"),
                             {{"type", "Digits"}, {"individual_digits", true}},
                             byte_level(false)});
  const auto tok =
      load_tokenizer_hf_json(byte_level_bpe_json(read_vocab("deepseek-coder"), pre).dump(), "");
  expect_matches_reference(*tok, "deepseek-coder");
}

// Llama's tokenizer.json: character BPE with byte_fallback, a Prepend("▁") + Replace(" ",
// "▁") normalizer and merges derived from the SentencePiece scores (a token's pairs ranked
// by its score, as Hugging Face's converter does).
TEST(HfTokenizer, LlamaSentencePieceStyle) {
  const auto v = read_vocab("llama-spm");
  json vocab = json::object(), added = json::array();
  std::map<std::string, size_t> id_of;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    vocab[v.tokens[i]] = i;
    id_of[v.tokens[i]] = i;
    if (v.types[i] == 3 || v.types[i] == 2)
      added.push_back({{"id", i}, {"content", v.tokens[i]}, {"special", true}});
  }
  std::vector<std::tuple<double, size_t, std::string, std::string>> pairs;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.types[i] != 1) continue;
    const std::string& t = v.tokens[i];
    for (size_t k = 1; k < t.size(); ++k) {
      if ((static_cast<unsigned char>(t[k]) & 0xC0) == 0x80) continue;  // inside a character
      const auto l = id_of.find(t.substr(0, k)), r = id_of.find(t.substr(k));
      if (l != id_of.end() && r != id_of.end() && v.types[l->second] == 1 &&
          v.types[r->second] == 1)
        pairs.emplace_back(-v.scores[i], l->second, l->first, r->first);
    }
  }
  std::sort(pairs.begin(), pairs.end());
  json merges = json::array();
  for (const auto& p : pairs) merges.push_back(json::array({std::get<2>(p), std::get<3>(p)}));
  const json j = {{"added_tokens", added},
                  {"normalizer",
                   {{"type", "Sequence"},
                    {"normalizers",
                     {{{"type", "Prepend"}, {"prepend", "▁"}},
                      {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
                  {"pre_tokenizer", nullptr},
                  {"decoder",
                   {{"type", "Sequence"},
                    {"decoders",
                     {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                      {{"type", "ByteFallback"}},
                      {{"type", "Fuse"}},
                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
                  {"model",
                   {{"type", "BPE"},
                    {"unk_token", "<unk>"},
                    {"byte_fallback", true},
                    {"fuse_unk", true},
                    {"vocab", vocab},
                    {"merges", merges}}}};
  const auto tok = load_tokenizer_hf_json(
      j.dump(), R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
                    "chat_template": "{{ bos_token }}"})");
  EXPECT_EQ(tok->bos(), 1);
  EXPECT_EQ(tok->eos(), 2);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_EQ(tok->chat_template(), "{{ bos_token }}");
  expect_matches_reference(*tok, "llama-spm");
  const auto ids = tok->encode("Hello world", true, false);
  EXPECT_EQ(ids, std::vector<TokenId>({1, 15043, 3186}));
  EXPECT_EQ(tok->decode(ids, {.render_special = false}), "Hello world");

  // The newer spelling of the same pipeline: no normalizer, a Metaspace pre-tokenizer
  // that prepends the marker to the first fragment only and does not split.
  json j2 = j;
  j2["normalizer"] = nullptr;
  j2["pre_tokenizer"] = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  j2["decoder"] = {
      {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  const auto meta = load_tokenizer_hf_json(j2.dump(), "");
  expect_matches_reference(*meta, "llama-spm");
  // After a special token the marker is not prepended again ("first").
  const auto after = meta->encode("<s>Hello", false, true);
  EXPECT_EQ(after, std::vector<TokenId>({1, *meta->find_token("Hello")}));
  EXPECT_EQ(tok->encode("<s>Hello", false, true), std::vector<TokenId>({1, 15043}));
}

// A directory with tokenizer.json, tokenizer_config.json and generation_config.json, read by
// load_tokenizer(path) and by `muse tokenize --model DIR`.
TEST(HfTokenizer, DirectoryAndCli) {
  const std::string dir = std::string(MUSE_TEST_TMP) + "/hf-gpt2-tokenizer";
  fs::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json")
      << byte_level_bpe_json(read_vocab("gpt-2"), byte_level(true)).dump();
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"eos_token": {"content": "<|endoftext|>"}, "chat_template": [{"name": "default", "template": "T"}]})";
  std::ofstream(dir + "/generation_config.json") << R"({"eos_token_id": [50256, 13]})";
  const auto tok = load_tokenizer(dir);
  EXPECT_EQ(tok->pre_tokenizer(), "hf");
  EXPECT_EQ(tok->chat_template(), "T");
  EXPECT_EQ(tok->eog_ids(), std::vector<TokenId>({13, 50256}));

  const std::string bin = std::string(MUSE_BIN_DIR) + "/muse";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " is not built";
  const std::string out = dir + "/out.txt";
  const std::string cmd =
      bin + " tokenize --model " + dir + " --inp " + base("gpt-2") + ".inp > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(read_file(out), read_file(base("gpt-2") + ".out"));
}

std::string error_of(const std::string& tokenizer_json, const std::string& config = "") {
  try {
    load_tokenizer_hf_json(tokenizer_json, config);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(HfTokenizer, MalformedFilesAreErrors) {
  const json ok = {
      {"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
      {"pre_tokenizer", byte_level(true)}};
  EXPECT_EQ(error_of(ok.dump()), "(no error)");
  auto with = [&](const std::string& path, json value) {
    json j = ok;
    j[json::json_pointer(path)] = std::move(value);
    return j.dump();
  };
  EXPECT_NE(error_of("{").find("invalid JSON"), std::string::npos);
  EXPECT_NE(error_of(with("/model/merges", {"a c"})).find("not in the vocabulary"),
            std::string::npos);
  EXPECT_NE(error_of(with("/model/merges", {"b a"})).find("not in the vocabulary"),
            std::string::npos);
  EXPECT_NE(error_of(with("/model/merges", {"ab"})).find("not two tokens"), std::string::npos);
  EXPECT_NE(error_of(with("/model/type", "Unigram")).find("not supported"), std::string::npos);
  EXPECT_NE(error_of(with("/model/vocab/c", -4)).find("out of range"), std::string::npos);
  EXPECT_NE(error_of(with("/model/vocab/c", 1)).find("used twice"), std::string::npos);
  EXPECT_NE(error_of(with("/model/vocab/c", "x")).find("not an integer"), std::string::npos);
  EXPECT_NE(error_of(with("/pre_tokenizer", split("(unclosed"))).find("invalid"),
            std::string::npos);
  EXPECT_NE(error_of(with("/pre_tokenizer", {{"type", "BertPreTokenizer"}})).find("not supported"),
            std::string::npos);
  EXPECT_NE(error_of(with("/normalizer", {{"type", "Lowercase"}})).find("not supported"),
            std::string::npos);
  EXPECT_NE(
      error_of(with("/added_tokens", {{{"id", 1 << 30}, {"content", "x"}}})).find("out of range"),
      std::string::npos);
  EXPECT_NE(error_of(ok.dump(), R"({"bos_token": "<nope>"})").find("not in the vocabulary"),
            std::string::npos);
  EXPECT_NE(error_of(ok.dump(), R"({"add_bos_token": true})").find("no BOS"), std::string::npos);
  EXPECT_THROW(load_tokenizer(std::string(MUSE_TEST_TMP) + "/no-such-dir-or-file"), Error);
}

}  // namespace
}  // namespace muse::text
