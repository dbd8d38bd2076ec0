// Tokenizers against the reference outputs in ../shared/tokenizers: every vocabulary's
// .inp strings must give exactly its .out ids (through the library and through
// `muse tokenize`), and decoding must give the text back.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "model/gguf.h"
#include "model/model.h"
#include "model/random_model.h"
#include "muse/error.h"
#include "text/tokenizer.h"
#include "text/tokenizer_impl.h"
#include "text/tokenizer_vocab_test.h"
#include "text/utf8.h"

namespace muse::text {
namespace {

namespace fs = std::filesystem;

std::string tokenizer_dir() {
  return std::string(MUSE_SHARED_DIR) + "/tokenizers";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const Tokenizer& vocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = load_tokenizer(tokenizer_dir() + "/ggml-vocab-" + name + ".gguf");
  return *t;
}

std::string show(const std::vector<TokenId>& ids) {
  return format_vocab_test_line(ids);
}

const std::vector<std::string> kVocabs = {"gpt-2",     "gpt2-as-qwen2",  "gpt2-as-llama-bpe",
                                          "starcoder", "deepseek-coder", "llama-spm",
                                          "phi-3"};

class VocabFile : public ::testing::TestWithParam<std::string> {
 protected:
  std::string base() const { return tokenizer_dir() + "/ggml-vocab-" + GetParam() + ".gguf"; }
  std::vector<std::string> inputs() const {
    return parse_vocab_test_inputs(read_file(base() + ".inp"));
  }
  std::vector<std::vector<TokenId>> expected() const {
    std::vector<std::vector<TokenId>> out;
    for (const auto& line : split_lines(read_file(base() + ".out")))
      out.push_back(parse_vocab_test_line(line));
    return out;
  }
};

TEST_P(VocabFile, EncodeMatchesReference) {
  const Tokenizer& tok = vocab(GetParam());
  const auto in = inputs();
  const auto want = expected();
  ASSERT_EQ(in.size(), 46u);
  ASSERT_EQ(in.size(), want.size());
  int mismatches = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const auto got = tok.encode(in[i], /*add_special=*/false, /*parse_special=*/false);
    if (got != want[i]) ++mismatches;
    EXPECT_EQ(show(got), show(want[i])) << "string " << i + 1 << ": '" << in[i] << "'";
  }
  EXPECT_EQ(mismatches, 0);
}

// Decoding gives the text back. Every test string is representable in these vocabularies
// (byte-level BPE covers all bytes of valid UTF-8, SPM falls back to <0xNN> tokens) except
// where noted in `unrepresentable`.
TEST_P(VocabFile, DecodeRoundTrips) {
  const Tokenizer& tok = vocab(GetParam());
  for (const std::string& s : inputs()) {
    const auto ids = tok.encode(s, false, false);
    EXPECT_EQ(tok.decode(ids), s) << show(ids);
    // Streaming, one id at a time, gives the same text.
    StreamDecoder stream(tok);
    std::string streamed;
    for (TokenId id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, s);
    // With BOS: render_special=false drops it, and the SPM prefix space is still removed.
    const auto with_bos = tok.encode(s, /*add_special=*/true, false);
    EXPECT_EQ(tok.decode(with_bos, {.render_special = false}), s) << show(with_bos);
  }
}

// The same files through the `muse tokenize` binary.
TEST_P(VocabFile, CliOutputMatchesReference) {
  const std::string bin = std::string(MUSE_BIN_DIR) + "/muse";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " is not built";
  fs::create_directories(MUSE_TEST_TMP);
  const std::string out_path = std::string(MUSE_TEST_TMP) + "/tokenize-" + GetParam() + ".out";
  const std::string cmd =
      bin + " tokenize --model " + base() + " --inp " + base() + ".inp > " + out_path;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto got = split_lines(read_file(out_path));
  const auto want = split_lines(read_file(base() + ".out"));
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    // The llama.cpp-written files (gpt2-as-*) put a lone space on the line of an empty
    // result; the ids are what must agree.
    if (want[i].find_first_not_of(' ') == std::string::npos)
      EXPECT_EQ(got[i], "") << i + 1;
    else
      EXPECT_EQ(got[i], want[i]) << "line " << i + 1;
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, VocabFile, ::testing::ValuesIn(kVocabs), [](const auto& info) {
  std::string n = info.param;
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
});

TEST(Tokenizer, MetadataOfTheSharedVocabularies) {
  const Tokenizer& gpt2 = vocab("gpt-2");
  EXPECT_EQ(gpt2.kind(), TokenizerKind::kBpe);
  EXPECT_EQ(gpt2.vocab_size(), 50257u);
  EXPECT_EQ(gpt2.pre_tokenizer(), "gpt-2");
  EXPECT_EQ(gpt2.bos(), 50256);
  EXPECT_EQ(gpt2.eos(), 50256);
  EXPECT_FALSE(gpt2.add_bos());
  EXPECT_TRUE(gpt2.is_eog(50256));
  EXPECT_FALSE(gpt2.is_eog(0));
  EXPECT_EQ(gpt2.token_text(15496), "Hello");
  EXPECT_EQ(gpt2.token_to_piece(995), " world");  // "Ġworld"
  EXPECT_EQ(gpt2.find_token("Ġworld"), 995);
  EXPECT_EQ(gpt2.encode("Hello", true, false), std::vector<TokenId>({15496}));

  // llama-bpe adds BOS by default (no add_bos_token key in this file).
  const Tokenizer& l3 = vocab("gpt2-as-llama-bpe");
  EXPECT_TRUE(l3.add_bos());
  EXPECT_EQ(l3.encode("Hello", true, false), std::vector<TokenId>({50256, 15496}));

  const Tokenizer& spm = vocab("llama-spm");
  EXPECT_EQ(spm.kind(), TokenizerKind::kSpm);
  EXPECT_EQ(spm.vocab_size(), 32000u);
  EXPECT_EQ(spm.bos(), 1);
  EXPECT_EQ(spm.eos(), 2);
  EXPECT_EQ(spm.unk(), 0);
  EXPECT_TRUE(spm.add_bos());
  EXPECT_FALSE(spm.add_eos());
  EXPECT_TRUE(spm.add_space_prefix());
  EXPECT_EQ(spm.encode("Hello world", true, false), std::vector<TokenId>({1, 15043, 3186}));
  EXPECT_EQ(spm.token_to_piece(15043), " Hello");
  EXPECT_EQ(spm.token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(spm.eog_ids(), std::vector<TokenId>({2}));
  EXPECT_TRUE(spm.chat_template().empty());

  const Tokenizer& phi3 = vocab("phi-3");
  EXPECT_EQ(phi3.eos(), 32000);
  EXPECT_EQ(phi3.eot(), 32007);  // <|end|>
  EXPECT_TRUE(phi3.is_eog(32000));
  EXPECT_TRUE(phi3.is_eog(32007));
  EXPECT_FALSE(phi3.is_eog(32010));  // <|user|>
  EXPECT_NE(phi3.chat_template().find("<|assistant|>"), std::string::npos);

  const Tokenizer& ds = vocab("deepseek-coder");
  EXPECT_EQ(ds.bos(), 32013);
  EXPECT_EQ(ds.encode("a", true, false).front(), 32013);
  EXPECT_TRUE(ds.is_eog(32014));
}

TEST(Tokenizer, SpecialTokensOnlyWhenAllowed) {
  const Tokenizer& gpt2 = vocab("gpt-2");
  const std::string text = "Hi<|endoftext|>";
  EXPECT_EQ(gpt2.encode(text, false, true), std::vector<TokenId>({*gpt2.find_token("Hi"), 50256}));
  const auto plain = gpt2.encode(text, false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0) << show(plain);
  EXPECT_EQ(gpt2.decode(plain), text);
  EXPECT_EQ(gpt2.decode(gpt2.encode(text, false, true)), text);
  EXPECT_EQ(gpt2.decode(gpt2.encode(text, false, true), {.render_special = false}), "Hi");

  // SPM: control text is never formed from plain text, and a fragment after a special
  // token gets its own prefix space.
  const Tokenizer& spm = vocab("llama-spm");
  const auto raw = spm.encode("<s>x</s>", false, false);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), 1), 0) << show(raw);
  EXPECT_EQ(std::count(raw.begin(), raw.end(), 2), 0) << show(raw);
  const auto parsed = spm.encode("<s>x</s>", false, true);
  EXPECT_EQ(parsed, std::vector<TokenId>({1, *spm.find_token("\xE2\x96\x81x"), 2})) << show(parsed);

  // Phi-3's special tokens swallow the whitespace after them (rstrip).
  const Tokenizer& phi3 = vocab("phi-3");
  const auto hello = phi3.encode("Hello", false, false);  // ▁Hello
  std::vector<TokenId> want = {32010};
  want.insert(want.end(), hello.begin(), hello.end());
  want.push_back(32007);
  EXPECT_EQ(phi3.encode("<|user|>\n Hello<|end|>", false, true), want);

  // Starcoder: many control tokens; longest match wins.
  const Tokenizer& sc = vocab("starcoder");
  EXPECT_EQ(sc.encode("<fim_prefix>a<fim_suffix>", false, true).front(), 1);
  EXPECT_EQ(sc.encode("<pr_diff_hunk>", false, true), std::vector<TokenId>({25}));
  EXPECT_EQ(sc.encode("<pr_diff>", false, true), std::vector<TokenId>({24}));
}

TEST(Tokenizer, StreamingNeverSplitsCharacters) {
  const std::string text = "🦙 Cửa Việt កាន់ 😶‍🌫️ 我想在apple工作";
  for (const std::string name : {"gpt-2", "llama-spm", "deepseek-coder"}) {
    const Tokenizer& tok = vocab(name);
    const auto ids = tok.encode(text, false, false);
    StreamDecoder stream(tok);
    std::string all;
    size_t held_back = 0;  // pushes that returned less than the token's bytes
    for (TokenId id : ids) {
      const std::string part = stream.push(id);
      EXPECT_TRUE(is_valid_utf8(part)) << name;
      if (part.empty() && !tok.token_to_piece(id).empty()) ++held_back;
      all += part;
    }
    all += stream.flush();
    EXPECT_EQ(all, text) << name;
    EXPECT_GT(held_back, 0u) << name << ": the emoji should span several byte tokens";
  }
  // An incomplete character at the end becomes U+FFFD on flush.
  const Tokenizer& spm = vocab("llama-spm");
  StreamDecoder stream(spm);
  const TokenId e2 = *spm.find_token("<0xE2>");
  EXPECT_EQ(stream.push(e2), "");
  EXPECT_EQ(stream.push(*spm.find_token("<0x41>")),
            "\xEF\xBF\xBD"
            "A");  // E2 then 'A': invalid
  EXPECT_EQ(stream.push(e2), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
}

TEST(Tokenizer, SpmLeadingSpace) {
  const Tokenizer& spm = vocab("llama-spm");
  const auto ids = spm.encode("Hello", true, false);  // <s> ▁Hello
  ASSERT_EQ(ids, std::vector<TokenId>({1, 15043}));
  EXPECT_EQ(spm.decode(ids), "<s> Hello");  // rendered BOS: the space stays (as HF)
  EXPECT_EQ(spm.decode(ids, {.render_special = false}), "Hello");
  EXPECT_EQ(spm.decode(std::vector<TokenId>{15043}), "Hello");
  EXPECT_EQ(spm.decode(std::vector<TokenId>{15043}, {.strip_leading_space = false}), " Hello");
  // A stream continuing a prompt keeps the space when asked to.
  StreamDecoder cont(spm, {.render_special = false, .strip_leading_space = false});
  EXPECT_EQ(cont.push(15043), " Hello");
  StreamDecoder fresh(spm, {.render_special = false});
  EXPECT_EQ(fresh.push(1), "");
  EXPECT_EQ(fresh.push(15043), "Hello");
  EXPECT_EQ(fresh.push(15043), " Hello");
  // BPE never strips.
  const Tokenizer& gpt2 = vocab("gpt-2");
  EXPECT_EQ(gpt2.decode(gpt2.encode(" Hello", false, false)), " Hello");
}

TEST(Tokenizer, BadInputIsAnError) {
  const Tokenizer& gpt2 = vocab("gpt-2");
  EXPECT_THROW(gpt2.encode("abc\xFF", false, false), Error);
  EXPECT_THROW(gpt2.encode("\xE2\x82", false, false), Error);      // truncated €
  EXPECT_THROW(gpt2.encode("\xED\xA0\x80", false, false), Error);  // surrogate
  EXPECT_THROW(gpt2.decode(std::vector<TokenId>{50257}), Error);
  EXPECT_THROW(gpt2.decode(std::vector<TokenId>{-1}), Error);
  EXPECT_THROW(gpt2.token_to_piece(1 << 30), Error);
  StreamDecoder stream(gpt2);
  EXPECT_THROW(stream.push(60000), Error);
  try {
    gpt2.encode("ok\xC0\x80", false, false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
  }
}

std::vector<std::string> split_with(const std::string& pre_name, const std::string& text) {
  PreTokenizer pre;
  for (const auto& re : named_pre_tokenizer(pre_name).regexes)
    pre.steps.push_back({std::make_shared<const Regex>(re), SplitBehavior::kIsolated, false});
  std::vector<std::string_view> pieces;
  pre_tokenize(pre, text, pieces);
  return {pieces.begin(), pieces.end()};
}

using Pieces = std::vector<std::string>;

// Pre-tokenizers without a shared vocabulary: hand-worked splits.
TEST(PreTokenizer, NamedPatterns) {
  EXPECT_EQ(split_with("gpt-2", "Hello world's  x"), Pieces({"Hello", " world", "'s", " ", " x"}));
  EXPECT_EQ(split_with("gpt-2", "I'M 1234"), Pieces({"I", "'", "M", " 1234"}));
  EXPECT_EQ(split_with("llama-bpe", "I'M 12345\n\n  x"),
            Pieces({"I", "'M", " ", "123", "45", "\n\n", " ", " x"}));
  EXPECT_EQ(split_with("qwen2", "a12"), Pieces({"a", "1", "2"}));
  EXPECT_EQ(split_with("deepseek-llm", "Hello 世界!"), Pieces({"Hello", " ", "世界", "!"}));
  EXPECT_EQ(split_with("deepseek-llm", "ab   "), Pieces({"ab", "   "}));
  EXPECT_EQ(split_with("falcon", "a+b 12345"), Pieces({"a", "+", "b", " ", "123", "45"}));
  EXPECT_EQ(split_with("starcoder", "x 42"), Pieces({"x", " ", "4", "2"}));
  EXPECT_EQ(split_with("refact", "x 42"), Pieces({"x", " ", "4", "2"}));
  EXPECT_EQ(split_with("mpt", "x 42"), Pieces({"x", " 42"}));
  EXPECT_EQ(split_with("deepseek-coder", "if(x){\n"), Pieces({"if", "(", "x", "){", "\n"}));
  EXPECT_EQ(split_with("tekken", "HelloWorld"), Pieces({"Hello", "World"}));
  for (const char* name : {"default", "llama3", "dbrx", "smaug-bpe", "chatglm-bpe", "stablelm2",
                           "deepseek-v3", "command-r", "smollm", "olmo", "poro-chat", "bloom",
                           "viking", "tekken", "jais", "codeshell", "exaone", "minerva-7b"})
    EXPECT_FALSE(split_with(name, "Hello, 世界 123!\n").empty()) << name;
  EXPECT_THROW(named_pre_tokenizer("no-such-pre"), Error);
}

// load_tokenizer(const Model&): a model GGUF carrying the tokenizer metadata (a tiny
// random model with the llama-spm vocabulary copied in).
TEST(Tokenizer, FromLoadedModel) {
  fs::create_directories(MUSE_TEST_TMP);
  const std::string plain = std::string(MUSE_TEST_TMP) + "/tok-tiny-plain.gguf";
  const std::string with_vocab = std::string(MUSE_TEST_TMP) + "/tok-tiny-vocab.gguf";
  RandomModelSpec spec;
  spec.arch = "llama";
  write_random_model(spec, parse_quant_target("f32"), plain);
  {
    auto src = GgufFile::open(plain);
    auto voc = GgufFile::open(tokenizer_dir() + "/ggml-vocab-llama-spm.gguf");
    GgufWriter w;
    for (const auto& key : src->key_order()) w.set(key, src->metadata().at(key));
    for (const auto& key : voc->key_order())
      if (key.rfind("tokenizer.", 0) == 0) w.set(key, voc->metadata().at(key));
    for (const auto& t : src->tensors())
      w.add_tensor(t.name, t.view.type,
                   std::vector<int64_t>(t.view.ne.begin(), t.view.ne.begin() + t.view.n_dims),
                   t.view.data, t.view.nbytes);
    w.write(with_vocab);
  }
  const auto model = Model::load(with_vocab);
  const auto tok = load_tokenizer(*model);
  EXPECT_EQ(tok->vocab_size(), 32000u);
  EXPECT_EQ(tok->encode("Hello world", true, false), std::vector<TokenId>({1, 15043, 3186}));
  // A model without tokenizer metadata is a clear error.
  const auto bare = Model::load(plain);
  try {
    load_tokenizer(*bare);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.model"), std::string::npos) << e.what();
  }
}

// Linear time: 1 MB of mixed text tokenizes well under a second on one core (the bench
// reports the exact throughput; the bound here is loose for a shared machine).
TEST(Tokenizer, OneMegabyteIsFast) {
  const auto inputs =
      parse_vocab_test_inputs(read_file(tokenizer_dir() + "/ggml-vocab-gpt-2.gguf.inp"));
  std::string text;
  while (text.size() < (1u << 20))
    for (const auto& s : inputs) text += s + "\n";
  for (const std::string name : {"gpt-2", "gpt2-as-qwen2", "llama-spm", "deepseek-coder"}) {
    const Tokenizer& tok = vocab(name);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok.encode(text, false, false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 3.0) << name;
    EXPECT_GT(ids.size(), text.size() / 8) << name;
    EXPECT_EQ(tok.decode(ids), text) << name;
  }
}

}  // namespace
}  // namespace muse::text
