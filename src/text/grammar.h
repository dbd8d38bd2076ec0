// Grammar-constrained generation: a context-free grammar over Unicode code points, a
// JSON-schema -> grammar converter, and a matcher that masks the vocabulary so that the
// generated text always stays inside the grammar.
//
// Grammar text (GBNF-like):
//   rule-name ::= alternative ( "|" alternative )*
//   an alternative is a sequence of: "literal" (escapes \n \t \r \" \\ \xHH \uHHHH),
//   [a-z0-9_] / [^"\\] character classes (code points, same escapes), rule references,
//   ( grouping ), and the postfix operators * + ? {m} {m,} {m,n}.  `#` starts a comment.
// Rule names are [a-zA-Z0-9-_]+. Every referenced rule must be defined; left recursion is
// rejected. Parse errors throw muse::Error naming the line and the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/token_constraint.h"
#include "text/tokenizer.h"

namespace muse::text {

struct GrammarImpl;  // internal

class Grammar {
 public:
  // Parses grammar text; `root` names the start rule. Throws muse::Error.
  static std::shared_ptr<const Grammar> parse(std::string_view text, std::string_view root = "root");
  ~Grammar();
  const GrammarImpl& impl() const { return *impl_; }

  // True when `text` (UTF-8) is a complete sentence of the grammar (for tests and checks).
  bool matches(std::string_view text) const;

  explicit Grammar(std::unique_ptr<GrammarImpl> impl);

 private:
  std::unique_ptr<GrammarImpl> impl_;
};

// Converts a JSON schema to grammar rules. Supported: type (object, array, string, number,
// integer, boolean, null, and lists of types), properties, required, additionalProperties
// (false/true/schema), items, prefixItems, minItems, maxItems, enum, const, anyOf, oneOf,
// allOf (of objects), $ref to #/$defs/... and #/definitions/..., minLength, maxLength,
// minimum/maximum for integers where cheap, format (date, time, date-time, uuid) and
// nullable. Whitespace between tokens is bounded (no runaway whitespace). An empty schema
// {} means any JSON value. Unsupported keywords that would change what is valid
// (e.g. pattern) throw muse::Error so the caller can answer 400; purely descriptive
// keywords (title, description, examples, default, $schema) are ignored.
//
// The result is grammar text whose start rule is `root_name`; every other rule it defines
// starts with `prefix` so that several converted schemas can be joined in one grammar.
std::string json_schema_to_grammar(const nlohmann::ordered_json& schema,
                                   std::string_view root_name = "root",
                                   std::string_view prefix = "");

// `text` as a grammar string literal ("..." with \" \\ \n \r \t and \xHH escapes;
// other UTF-8 passes through), for building grammar text.
std::string grammar_literal(std::string_view text);

// Grammar for any single JSON value (json_object response format): an object at the top.
std::string json_object_grammar(std::string_view root_name = "root", std::string_view prefix = "");

// The vocabulary prepared for masking: every token's piece (token_to_piece) in a trie so
// that a mask step walks shared prefixes once. Build once per tokenizer and share.
struct ConstraintVocabImpl;
class ConstraintVocab {
 public:
  explicit ConstraintVocab(const Tokenizer& tokenizer);
  ~ConstraintVocab();
  const ConstraintVocabImpl& impl() const { return *impl_; }
  size_t size() const;  // vocabulary size

 private:
  std::unique_ptr<ConstraintVocabImpl> impl_;
};

// Constrains a sequence to the grammar. Tokens whose pieces would leave the grammar are
// masked; end-of-generation tokens (the tokenizer's eog_ids) are allowed only when the text
// so far is complete, and when nothing else can follow they are the only tokens allowed.
// Tokens with empty pieces (other than end of generation) are masked. The generated text is
// always valid UTF-8 (a token may end inside a multi-byte character; the next tokens must
// complete it).
class GrammarMatcher : public TokenConstraint {
 public:
  GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const ConstraintVocab> vocab,
                 std::vector<TokenId> eog_ids);
  ~GrammarMatcher() override;
  void mask(std::span<float> logits) const override;
  void accept(int32_t token) override;
  bool complete() const override;

 private:
  struct State;
  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const ConstraintVocab> vocab_;
  std::vector<TokenId> eog_ids_;
  std::unique_ptr<State> state_;
};

}  // namespace muse::text
