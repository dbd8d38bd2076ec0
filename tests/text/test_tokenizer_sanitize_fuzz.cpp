// Fuzz-style robustness of the tokenizers (also built and run under ASan + UBSan by
// `make test`): random byte strings and random mixtures of special-token text, multi-byte
// UTF-8 and invalid sequences go through every shared vocabulary; the stream decoder gets
// random ids; and randomly corrupted tokenizer metadata (GGUF and tokenizer.json) must load
// or throw muse::Error, never crash. Fixed seeds, bounded iterations.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "core/mapped_file.h"
#include "model/gguf.h"
#include "muse/error.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace muse::text {
namespace {

std::string vocab_path(const std::string& name) {
  return std::string(MUSE_SHARED_DIR) + "/tokenizers/ggml-vocab-" + name + ".gguf";
}

const std::vector<std::string> kVocabs = {"gpt-2",     "gpt2-as-qwen2",  "gpt2-as-llama-bpe",
                                          "starcoder", "deepseek-coder", "llama-spm",
                                          "phi-3"};

const std::vector<std::string> kPieces = {"é",     "🦙",   "😶\u200d🌫️",
                                          "ក",     "ាន់",     "我想",
                                          "Ва",    "\u00a0", "\u3000",
                                          "½",     "３",     "'s",
                                          "'LL",   " ",      "  ",
                                          "\t",    "\n",     "\r\n",
                                          "\n\n ", "123",    "4567",
                                          "...",   "!!",     "<",
                                          "|>",    "<|",     "\xEF\xBF\xBD",
                                          "▁",     "Ġ",      "ſ"};
const std::vector<std::string> kInvalid = {"\xFF",     "\xC0\x80",     "\x80",
                                           "\xE2\x82", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                           "\xC3",     "\xF0\x9F\xA6"};

class Fuzzer {
 public:
  explicit Fuzzer(uint32_t seed) : rng_(seed) {}
  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool coin() { return below(2) == 0; }

  std::string random_bytes(size_t max_len) {
    std::string s(below(max_len + 1), '\0');
    for (char& c : s) c = static_cast<char>(below(256));
    return s;
  }

  // A string mixing words, whitespace, multi-byte characters, special-token text and (when
  // `invalid`) broken UTF-8. Sets `has_special` when it inserted a token's text.
  std::string random_text(const Tokenizer& tok, bool invalid, bool* has_special) {
    std::string s;
    *has_special = false;
    const size_t parts = below(24);
    for (size_t p = 0; p < parts; ++p) {
      switch (below(invalid ? 6 : 5)) {
        case 0:
          for (size_t k = below(8); k-- > 0;) s += static_cast<char>('a' + below(26));
          break;
        case 1:
          for (size_t k = below(4); k-- > 0;) s += static_cast<char>(0x20 + below(95));
          break;
        case 2:
        case 3:
          s += kPieces[below(kPieces.size())];
          break;
        case 4: {
          const TokenId id = static_cast<TokenId>(below(tok.vocab_size()));
          if (tok.is_special(id) || tok.token_type(id) == TokenType::kUserDefined) {
            s += tok.token_text(id);
            *has_special = true;
          } else {
            s += tok.token_to_piece(id);  // a normal token's bytes (valid UTF-8 or not)
          }
          break;
        }
        default:
          s += kInvalid[below(kInvalid.size())];
      }
    }
    return s;
  }

 private:
  std::mt19937 rng_;
};

TEST(TokenizerFuzz, RandomTextThroughEveryVocabulary) {
  Fuzzer fz(1234);
  for (const std::string& name : kVocabs) {
    const auto tok = load_tokenizer(vocab_path(name));
    int encoded = 0, rejected = 0;
    for (int iter = 0; iter < 1500; ++iter) {
      bool has_special = false;
      const bool invalid = iter % 3 == 0;
      const std::string s =
          iter % 5 == 4 ? fz.random_bytes(64) : fz.random_text(*tok, invalid, &has_special);
      const bool add_special = fz.coin(), parse_special = fz.coin();
      try {
        const auto ids = tok->encode(s, add_special, parse_special);
        ++encoded;
        EXPECT_TRUE(is_valid_utf8(s)) << name << ": accepted invalid UTF-8";
        for (TokenId id : ids) ASSERT_TRUE(id >= 0 && static_cast<size_t>(id) < tok->vocab_size());
        const std::string back = tok->decode(ids, {.render_special = true});
        // Plain text comes back exactly (special-token text may be stripped around or
        // re-spaced by the vocabulary's rules, so only text without it is compared; SPM
        // vocabularies cannot represent a literal U+2581, their space marker).
        const bool spm_marker =
            tok->kind() == TokenizerKind::kSpm && s.find("\xE2\x96\x81") != std::string::npos;
        if (!has_special && !parse_special && !add_special && !spm_marker) {
          EXPECT_EQ(back, s) << name;
        }
      } catch (const Error&) {
        ++rejected;
        EXPECT_FALSE(is_valid_utf8(s)) << name << ": rejected valid text";
      }
    }
    EXPECT_GT(encoded, 0) << name;
    EXPECT_GT(rejected, 0) << name;
  }
}

TEST(TokenizerFuzz, StreamDecoderWithRandomIds) {
  Fuzzer fz(99);
  for (const std::string& name : kVocabs) {
    const auto tok = load_tokenizer(vocab_path(name));
    // Byte tokens make incomplete characters likely.
    std::vector<TokenId> bytes;
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
      if (auto id = tok->find_token(hex)) bytes.push_back(*id);
    }
    for (int iter = 0; iter < 400; ++iter) {
      StreamDecoder stream(*tok, {.render_special = fz.coin(), .strip_leading_space = fz.coin()});
      std::vector<TokenId> ids;
      std::string streamed;
      for (size_t k = fz.below(40); k-- > 0;) {
        TokenId id;
        const size_t pick = fz.below(10);
        if (pick == 0)
          id = static_cast<TokenId>(tok->vocab_size() + fz.below(100));
        else if (pick == 1)
          id = -1 - static_cast<TokenId>(fz.below(5));
        else if (pick < 5 && !bytes.empty())
          id = bytes[fz.below(bytes.size())];
        else
          id = static_cast<TokenId>(fz.below(tok->vocab_size()));
        try {
          const std::string part = stream.push(id);
          EXPECT_TRUE(is_valid_utf8(part));
          streamed += part;
          ids.push_back(id);
        } catch (const Error&) {
          EXPECT_TRUE(id < 0 || static_cast<size_t>(id) >= tok->vocab_size());
        }
      }
      const std::string tail = stream.flush();
      EXPECT_TRUE(is_valid_utf8(tail));
      streamed += tail;
      (void)tok->decode(ids);
    }
  }
}

// Small GGUF vocabularies with random defects: each either loads (and then tokenizes) or
// throws muse::Error.
TEST(TokenizerFuzz, CorruptGgufMetadata) {
  Fuzzer fz(7);
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    const bool spm = fz.coin();
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<float> scores;
    if (spm) {
      tokens = {"<unk>", "<s>", "</s>"};
      types = {2, 3, 3};
      for (int b = 0; b < 256; ++b) {
        char hex[8];
        std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
        tokens.push_back(hex);
        types.push_back(6);
      }
      for (const char* t : {"▁", "a", "b", "▁a", "ab", "▁ab", "é", "▁é"}) {
        tokens.push_back(t);
        types.push_back(1);
      }
    } else {
      for (int b = 0; b < 256; ++b) {
        std::string ch;
        append_utf8(ch, static_cast<char32_t>(b < 33 ? 256 + b : b));  // not the real map
        tokens.push_back(ch);
        types.push_back(1);
      }
      for (const char* t : {"ab", "abc", "Ġa", "<|end|>"}) {
        tokens.push_back(t);
        types.push_back(1);
      }
      types.back() = 3;
    }
    for (size_t i = 0; i < tokens.size(); ++i) scores.push_back(-static_cast<float>(i));
    std::vector<std::string> merges = {"a b", "ab c", "Ġ a"};

    // Defects.
    for (size_t k = fz.below(4); k-- > 0;) {
      switch (fz.below(9)) {
        case 0:
          types[fz.below(types.size())] = static_cast<int32_t>(fz.below(12)) - 2;
          break;
        case 1:
          types.pop_back();
          break;
        case 2:
          scores.push_back(1.0f);
          break;
        case 3:
          merges.push_back(fz.coin() ? "a" : "q z");
          break;
        case 4:
          tokens[fz.below(tokens.size())] = fz.random_bytes(6);
          break;
        case 5:
          tokens[fz.below(tokens.size())] = "";
          break;
        case 6:
          merges.push_back(" ");
          break;
        case 7:
          tokens.push_back(tokens[fz.below(tokens.size())]);
          break;  // duplicate text
        default:
          break;
      }
    }
    GgufWriter w;
    w.set("tokenizer.ggml.model",
          GgufValue::string(spm ? "llama" : (fz.below(20) ? "gpt2" : "bert")));
    if (fz.below(10)) w.set("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
    w.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
    if (spm) w.set("tokenizer.ggml.scores", GgufValue::f32_array(scores));
    if (!spm) {
      const char* pres[] = {"gpt-2",  "qwen2",     "llama-bpe", "deepseek-llm", "deepseek-coder",
                            "falcon", "starcoder", "refact",    "mpt",          "tekken",
                            "nope"};
      w.set("tokenizer.ggml.pre", GgufValue::string(pres[fz.below(11)]));
      w.set("tokenizer.ggml.merges", GgufValue::string_array(merges));
    }
    if (fz.coin())
      w.set("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(fz.below(300))));
    if (fz.coin())
      w.set("tokenizer.ggml.eos_token_id", GgufValue::i32(static_cast<int32_t>(fz.below(300)) - 5));
    if (fz.coin()) w.set("tokenizer.ggml.add_bos_token", GgufValue::boolean(fz.coin()));
    if (fz.coin()) w.set("tokenizer.ggml.eot_token_id", GgufValue::string("x"));  // wrong type
    std::unique_ptr<Tokenizer> tok;
    try {
      const auto bytes = w.serialize();
      auto gguf = GgufFile::parse(MappedFile::from_bytes(bytes, "fuzz.gguf"));
      tok = load_tokenizer_gguf(*gguf);
      ++loaded;
    } catch (const Error&) {
      ++rejected;
      continue;
    }
    for (int k = 0; k < 5; ++k) {
      bool has_special = false;
      const std::string s = fz.random_text(*tok, k == 0, &has_special);
      try {
        const auto ids = tok->encode(s, fz.coin(), fz.coin());
        (void)tok->decode(ids);
      } catch (const Error&) {
        EXPECT_FALSE(is_valid_utf8(s));
      }
    }
  }
  EXPECT_GT(loaded, 20);
  EXPECT_GT(rejected, 20);
}

TEST(TokenizerFuzz, CorruptTokenizerJson) {
  using nlohmann::json;
  Fuzzer fz(5);
  const std::vector<json> pre = {
      nullptr,
      {{"type", "ByteLevel"}, {"add_prefix_space", true}},
      {{"type", "Split"}, {"pattern", {{"Regex", "\\s+"}}}, {"behavior", "MergedWithNext"}},
      {{"type", "Split"},
       {"pattern", {{"Regex", "(a|b)*c"}}},
       {"behavior", "Contiguous"},
       {"invert", true}},
      {{"type", "Split"}, {"pattern", {{"String", "."}}}, {"behavior", "MergedWithPrevious"}},
      {{"type", "Split"}, {"pattern", {{"Regex", "(("}}}, {"behavior", "Removed"}},
      {{"type", "Split"}, {"pattern", {{"Regex", "x?"}}}, {"behavior", "Isolated"}},
      {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}},
      {{"type", "Digits"}, {"individual_digits", false}},
      {{"type", "Whitespace"}},
      "ByteLevel",
  };
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 800; ++iter) {
    json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}, {"c", 3}, {"▁", 4}, {"<0x41>", 5}};
    json merges = {"a b"};
    if (fz.below(4) == 0) merges.push_back(fz.coin() ? json("ab c") : json({"a", 1}));
    if (fz.below(5) == 0) vocab["d"] = fz.coin() ? json(-1) : json(3);
    json added = json::array();
    if (fz.coin())
      added.push_back({{"id", fz.below(10)},
                       {"content", fz.coin() ? "<x>" : "a"},
                       {"special", fz.coin()},
                       {"lstrip", fz.coin()},
                       {"rstrip", fz.coin()}});
    const json j = {{"added_tokens", added},
                    {"pre_tokenizer", pre[fz.below(pre.size())]},
                    {"model",
                     {{"type", fz.below(10) ? "BPE" : "WordPiece"},
                      {"vocab", vocab},
                      {"merges", merges},
                      {"byte_fallback", fz.coin()},
                      {"ignore_merges", fz.coin()},
                      {"unk_token", fz.coin() ? json("c") : json(nullptr)}}}};
    std::string text = j.dump();
    if (fz.below(8) == 0) text.resize(fz.below(text.size()));  // truncated file
    std::unique_ptr<Tokenizer> tok;
    try {
      tok = load_tokenizer_hf_json(text, fz.coin() ? R"({"bos_token": "a"})" : "");
      ++loaded;
    } catch (const Error&) {
      ++rejected;
      continue;
    }
    for (int k = 0; k < 5; ++k) {
      bool has_special = false;
      const std::string s = fz.random_text(*tok, k == 0, &has_special);
      try {
        (void)tok->decode(tok->encode(s, fz.coin(), fz.coin()));
      } catch (const Error&) {
        EXPECT_FALSE(is_valid_utf8(s));
      }
    }
  }
  EXPECT_GT(loaded, 20);
  EXPECT_GT(rejected, 20);
}

}  // namespace
}  // namespace muse::text
