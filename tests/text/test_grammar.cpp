// Grammar parsing, matching and token masking (text/grammar.h).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "muse/error.h"
#include "text/grammar.h"
#include "text/tokenizer.h"

namespace muse::text {
namespace {

bool grammar_matches(const std::string& grammar, const std::string& text) {
  return Grammar::parse(grammar)->matches(text);
}

TEST(GrammarParse, Literals) {
  auto g = Grammar::parse(R"(root ::= "abc")");
  EXPECT_TRUE(g->matches("abc"));
  EXPECT_FALSE(g->matches("ab"));
  EXPECT_FALSE(g->matches("abcd"));
  EXPECT_FALSE(g->matches(""));
  // Escapes: \n \t \r \" \\ \xHH \uHHHH.
  auto e = Grammar::parse(R"(root ::= "a\n\t\r\"\\\x41\u00e9")");
  EXPECT_TRUE(e->matches("a\n\t\r\"\\A\xC3\xA9"));
  EXPECT_FALSE(e->matches("a\n\t\r\"\\A"));
  // Raw UTF-8 in literals.
  EXPECT_TRUE(
      grammar_matches("root ::= \"h\xC3\xA9llo \xE6\x97\xA5\"", "h\xC3\xA9llo \xE6\x97\xA5"));
  // Empty literal is the empty string.
  EXPECT_TRUE(grammar_matches(R"(root ::= "" "x" "")", "x"));
}

TEST(GrammarParse, CharacterClasses) {
  auto g = Grammar::parse(R"(root ::= [a-c0-9_]+)");
  EXPECT_TRUE(g->matches("abc_09"));
  EXPECT_TRUE(g->matches("_"));
  EXPECT_FALSE(g->matches("abd"));
  EXPECT_FALSE(g->matches(""));
  auto neg = Grammar::parse(R"(root ::= "\"" [^"\\]* "\"")");
  EXPECT_TRUE(neg->matches("\"hello world \xE2\x82\xAC\""));
  EXPECT_TRUE(neg->matches("\"\""));
  EXPECT_FALSE(neg->matches("\"a\"b\""));
  EXPECT_FALSE(neg->matches("\"a\\b\""));
  // Escaped ']' and '-' inside a class, and a range of non-ASCII code points.
  auto esc = Grammar::parse(R"(root ::= [\]\-x]* [α-ω]?)");
  EXPECT_TRUE(esc->matches("]-x]\xCE\xB2"));  // β
  EXPECT_FALSE(esc->matches("a"));
  EXPECT_FALSE(esc->matches("\xCE\x91"));  // capital alpha is outside α-ω
  // '.' is any code point.
  auto any = Grammar::parse(R"(root ::= "<" . ">")");
  EXPECT_TRUE(any->matches("<\xF0\x9F\x98\x80>"));
  EXPECT_FALSE(any->matches("<>"));
  EXPECT_FALSE(any->matches("<ab>"));
}

TEST(GrammarParse, RepetitionBounds) {
  auto g = Grammar::parse(R"(root ::= "a"{2,4} "b"{3} "c"{2,} "d"? "e"*)");
  EXPECT_TRUE(g->matches("aabbbcc"));
  EXPECT_TRUE(g->matches("aaaabbbcccccdeee"));
  EXPECT_FALSE(g->matches("abbbcc"));      // one a
  EXPECT_FALSE(g->matches("aaaaabbbcc"));  // five a
  EXPECT_FALSE(g->matches("aabbcc"));      // two b
  EXPECT_FALSE(g->matches("aabbbbcc"));    // four b
  EXPECT_FALSE(g->matches("aabbbc"));      // one c
  EXPECT_FALSE(g->matches("aabbbccdd"));   // two d
  // A repeated multi-character literal repeats the whole literal.
  auto lit = Grammar::parse(R"(root ::= "ab"{2} ("x" "y")+)");
  EXPECT_TRUE(lit->matches("ababxyxy"));
  EXPECT_FALSE(lit->matches("abbxy"));
  EXPECT_FALSE(lit->matches("ababx"));
  auto zero = Grammar::parse(R"(root ::= "q" "z"{0} "q"{0,1})");
  EXPECT_TRUE(zero->matches("q"));
  EXPECT_TRUE(zero->matches("qq"));
  EXPECT_FALSE(zero->matches("qz"));
}

TEST(GrammarParse, AlternativesAndRecursion) {
  const std::string grammar = R"(
    # nested arrays of digits
    root  ::= array
    array ::= "[" ( item ( "," item )* )? "]"
    item  ::= array
            | [0-9]+
  )";
  auto g = Grammar::parse(grammar);
  EXPECT_TRUE(g->matches("[]"));
  EXPECT_TRUE(g->matches("[1,[2,[]],[[[3]]]]"));
  EXPECT_FALSE(g->matches("[1,[2]"));
  EXPECT_FALSE(g->matches("[1,]"));
  EXPECT_FALSE(g->matches("[[1]]]"));
  // Deep nesting works (right recursion does not grow the stack set).
  std::string deep(200, '[');
  deep += std::string(200, ']');
  EXPECT_TRUE(g->matches(deep));

  auto alt = Grammar::parse(R"(root ::= ("ab" | "cd")+ "!" | "x")");
  EXPECT_TRUE(alt->matches("abcdab!"));
  EXPECT_TRUE(alt->matches("x"));
  EXPECT_FALSE(alt->matches("abx"));
  EXPECT_FALSE(alt->matches("!"));
  // A start rule other than "root".
  auto other = Grammar::parse("a ::= \"1\" b\nb ::= \"2\"", "a");
  EXPECT_TRUE(other->matches("12"));
}

TEST(GrammarParse, Errors) {
  auto fails = [](const std::string& grammar, const std::string& needle) {
    try {
      Grammar::parse(grammar);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "grammar: " << grammar << "\nmessage: " << e.what();
      return;
    }
    ADD_FAILURE() << "no error for: " << grammar;
  };
  fails("", "empty");
  fails("  # only a comment\n", "empty");
  fails("root ::= foo", "'foo' is not defined");
  fails("root ::= \"a\"\nroot ::= \"b\"", "defined twice");
  fails("x ::= \"a\"", "start rule 'root'");
  fails("root ::= root \"a\" | \"b\"", "left-recursive");
  fails("root ::= a\na ::= b \"x\"\nb ::= a | \"y\"", "left-recursive");
  fails("root ::= opt root \"x\" | \"y\"\nopt ::= \"o\"?", "left-recursive");  // nullable prefix
  fails("root ::= (\"a\"?)*", "left-recursive");
  fails("root ::= \"a\" root", "never finish");
  fails("root \"a\"", "::=");
  fails("root ::= \"abc", "unterminated");
  fails("root ::= [abc", "unterminated");
  fails("root ::= (\"a\" | \"b\"", "')'");
  fails("root ::= []", "empty character class");
  fails("root ::= [z-a]", "reversed");
  fails("root ::= \"\\q\"", "bad escape");
  fails("root ::= \"\\x4\"", "hex");
  fails("root ::= \"\\uD800\"", "invalid code point");
  fails("root ::= \"a\"{3,1}", "max < min");
  fails("root ::= \"a\"{1000000}", "larger than");
  fails("root ::= \"a\" ! \"b\"", "unexpected character");
  fails("root ::= \"\xC3\"", "UTF-8");
  // Line numbers in messages.
  fails("root ::= a\n\na ::= undefined-rule", "line 3");
}

TEST(GrammarParse, AmbiguousGrammarStaysBounded) {
  // Every prefix a^n has 2^n possible stacks (b/c choices); the matcher must refuse rather
  // than grow without bound.
  auto g = Grammar::parse("root ::= x\nx ::= \"a\" x \"b\" | \"a\" x \"c\" | \"\"");
  EXPECT_TRUE(g->matches("aacb"));
  EXPECT_FALSE(g->matches("aab"));
  EXPECT_THROW(g->matches(std::string(40, 'a')), Error);
}

// --- Matching with a real vocabulary -------------------------------------------------------

const Tokenizer& tokenizer() {
  static std::unique_ptr<Tokenizer> t =
      load_tokenizer(std::string(MUSE_SHARED_DIR) + "/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf");
  return *t;
}

std::shared_ptr<const ConstraintVocab> vocab() {
  static auto v = std::make_shared<const ConstraintVocab>(tokenizer());
  return v;
}

// The id of the (first) non-special token whose piece is exactly `piece`.
TokenId token_with_piece(const std::string& piece) {
  const Tokenizer& t = tokenizer();
  for (size_t i = 0; i < t.vocab_size(); ++i) {
    const auto id = static_cast<TokenId>(i);
    if (!t.is_special(id) && t.token_to_piece(id) == piece) return id;
  }
  return kNoToken;
}

std::vector<TokenId> allowed_tokens(const GrammarMatcher& m) {
  std::vector<float> logits(tokenizer().vocab_size(), 0.0f);
  m.mask(logits);
  std::vector<TokenId> out;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (!std::isinf(logits[i])) out.push_back(static_cast<TokenId>(i));
  }
  return out;
}

bool is_allowed(const GrammarMatcher& m, TokenId id) {
  const auto ids = allowed_tokens(m);
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

GrammarMatcher make_matcher(const std::string& grammar) {
  return GrammarMatcher(Grammar::parse(grammar), vocab(), tokenizer().eog_ids());
}

TEST(GrammarMatcher, MaskMatchesHandCountedDigits) {
  // root ::= [0-9]+ : the allowed tokens are exactly the non-special tokens made of digits.
  GrammarMatcher m = make_matcher("root ::= [0-9]+");
  const Tokenizer& t = tokenizer();
  std::vector<TokenId> expected;
  for (size_t i = 0; i < t.vocab_size(); ++i) {
    const auto id = static_cast<TokenId>(i);
    const std::string& p = t.token_to_piece(id);
    if (t.is_special(id) || t.is_eog(id) || p.empty()) continue;
    if (std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      expected.push_back(id);
    }
  }
  ASSERT_GT(expected.size(), 10u);
  EXPECT_EQ(allowed_tokens(m), expected);
  EXPECT_FALSE(m.complete());
  m.accept(token_with_piece("1"));
  EXPECT_TRUE(m.complete());
  // Now end of generation is allowed as well.
  auto after = allowed_tokens(m);
  for (TokenId eog : t.eog_ids()) {
    EXPECT_TRUE(std::find(after.begin(), after.end(), eog) != after.end());
  }
  EXPECT_EQ(after.size(), expected.size() + t.eog_ids().size());
}

TEST(GrammarMatcher, MaskAgreesWithAccept) {
  // Every masked token must be refused by accept() (leaving the state unchanged), and
  // every allowed token accepted.
  const std::string grammar = R"(root ::= "{\"a\": " ( [0-9]+ | "\"" [^"]* "\"" ) "}")";
  const std::vector<std::string> history = {"{\"", "a", "\":", " \""};
  GrammarMatcher m = make_matcher(grammar);
  for (const auto& piece : history) {
    const TokenId id = token_with_piece(piece);
    ASSERT_NE(id, kNoToken) << piece;
    m.accept(id);
  }
  const auto allowed = allowed_tokens(m);
  std::vector<bool> is_allowed_flag(tokenizer().vocab_size(), false);
  for (TokenId id : allowed) is_allowed_flag[static_cast<size_t>(id)] = true;
  size_t refused = 0;
  for (size_t i = 0; i < is_allowed_flag.size(); ++i) {
    if (is_allowed_flag[i]) continue;
    EXPECT_THROW(m.accept(static_cast<TokenId>(i)), Error) << "token " << i;
    ++refused;
  }
  EXPECT_GT(refused, 0u);
  EXPECT_EQ(allowed_tokens(m), allowed);  // refusals left the state unchanged
  // A sample of allowed tokens is accepted by fresh matchers with the same history.
  for (size_t k = 0; k < allowed.size(); k += std::max<size_t>(1, allowed.size() / 50)) {
    GrammarMatcher fresh = make_matcher(grammar);
    for (const auto& piece : history) fresh.accept(token_with_piece(piece));
    EXPECT_NO_THROW(fresh.accept(allowed[k])) << "token " << allowed[k];
  }
  // Inside the string, the token '"}' closes it and completes the grammar.
  const TokenId close = token_with_piece("\"}");
  ASSERT_NE(close, kNoToken);
  EXPECT_TRUE(is_allowed_flag[static_cast<size_t>(close)]);
  m.accept(close);
  EXPECT_TRUE(m.complete());
  // Nothing can follow: end-of-generation ids are the only tokens allowed.
  EXPECT_EQ(allowed_tokens(m), tokenizer().eog_ids());
}

TEST(GrammarMatcher, RejectedTokenLeavesStateUnchanged) {
  GrammarMatcher m = make_matcher(R"(root ::= "ab")");
  const TokenId a = token_with_piece("a"), b = token_with_piece("b"), x = token_with_piece("x");
  ASSERT_TRUE(a != kNoToken && b != kNoToken && x != kNoToken);
  const auto before = allowed_tokens(m);
  EXPECT_FALSE(is_allowed(m, x));
  EXPECT_THROW(m.accept(x), Error);
  EXPECT_EQ(allowed_tokens(m), before);
  // End of generation before completion is refused too.
  EXPECT_THROW(m.accept(tokenizer().eog_ids().front()), Error);
  EXPECT_THROW(m.accept(-1), Error);
  EXPECT_THROW(m.accept(static_cast<TokenId>(tokenizer().vocab_size())), Error);
  m.accept(a);
  EXPECT_THROW(m.accept(a), Error);
  m.accept(b);
  EXPECT_TRUE(m.complete());
  m.accept(tokenizer().eog_ids().front());
  EXPECT_TRUE(m.complete());
  EXPECT_THROW(m.accept(a), Error);
}

TEST(GrammarMatcher, MultiByteCharacterSplitAcrossTokens) {
  // 'é' is C3 A9; the byte-level vocabulary has a token for each single byte.
  const TokenId lead = token_with_piece("\xC3");
  const TokenId cont = token_with_piece("\xA9");
  const TokenId bang = token_with_piece("!");
  ASSERT_TRUE(lead != kNoToken && cont != kNoToken && bang != kNoToken);
  GrammarMatcher m = make_matcher("root ::= \"\xC3\xA9!\"");
  EXPECT_TRUE(is_allowed(m, lead));
  EXPECT_FALSE(is_allowed(m, cont));  // a continuation byte cannot start a character
  EXPECT_FALSE(is_allowed(m, bang));
  m.accept(lead);
  EXPECT_FALSE(m.complete());
  EXPECT_TRUE(is_allowed(m, cont));
  EXPECT_FALSE(is_allowed(m, bang));
  EXPECT_FALSE(is_allowed(m, lead));
  EXPECT_THROW(m.accept(bang), Error);
  m.accept(cont);
  EXPECT_TRUE(is_allowed(m, bang));
  m.accept(bang);
  EXPECT_TRUE(m.complete());

  // With "any text", an unfinished character keeps the output incomplete (no EOG), and
  // only bytes that can finish a valid character are allowed.
  GrammarMatcher any = make_matcher("root ::= [^\\x00]*");
  EXPECT_TRUE(any.complete());
  const TokenId f0 = token_with_piece("\xF0");
  const TokenId b9f = token_with_piece("\x9F");
  const TokenId b80 = token_with_piece("\x80");
  ASSERT_TRUE(f0 != kNoToken && b9f != kNoToken && b80 != kNoToken);
  any.accept(f0);
  EXPECT_FALSE(any.complete());
  EXPECT_FALSE(is_allowed(any, tokenizer().eog_ids().front()));
  EXPECT_FALSE(is_allowed(any, bang));
  EXPECT_FALSE(is_allowed(any, b80));  // F0 80: overlong, never valid
  EXPECT_TRUE(is_allowed(any, b9f));
  any.accept(b9f);
  any.accept(token_with_piece("\x98"));
  EXPECT_FALSE(any.complete());
  any.accept(b80);  // U+1F600
  EXPECT_TRUE(any.complete());
  // Invalid lead bytes are never allowed.
  const TokenId c0 = token_with_piece("\xC0");
  ASSERT_NE(c0, kNoToken);
  EXPECT_FALSE(is_allowed(any, c0));
  EXPECT_THROW(any.accept(c0), Error);
}

TEST(GrammarMatcher, PaddedLogitsAreMasked) {
  GrammarMatcher m = make_matcher(R"(root ::= "a")");
  std::vector<float> logits(tokenizer().vocab_size() + 10, 1.0f);
  m.mask(logits);
  for (size_t i = tokenizer().vocab_size(); i < logits.size(); ++i)
    EXPECT_TRUE(std::isinf(logits[i]));
  EXPECT_FALSE(std::isinf(logits[static_cast<size_t>(token_with_piece("a"))]));
}

}  // namespace
}  // namespace muse::text
