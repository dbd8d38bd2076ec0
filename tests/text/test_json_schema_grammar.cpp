// JSON schema -> grammar conversion, and grammar-constrained random generation with a real
// vocabulary (text/grammar.h).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "muse/error.h"
#include "text/grammar.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace muse::text {
namespace {

using Json = nlohmann::ordered_json;

std::shared_ptr<const Grammar> schema_grammar(const char* schema_text) {
  const std::string text = json_schema_to_grammar(Json::parse(schema_text));
  try {
    return Grammar::parse(text);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what() << "\n" << text;
    throw;
  }
}

void expect_accepts(const Grammar& g, const std::vector<std::string>& docs) {
  for (const auto& d : docs) EXPECT_TRUE(g.matches(d)) << "should accept: " << d;
}
void expect_rejects(const Grammar& g, const std::vector<std::string>& docs) {
  for (const auto& d : docs) EXPECT_FALSE(g.matches(d)) << "should reject: " << d;
}

TEST(JsonSchemaGrammar, ObjectPropertiesRequiredAndExtra) {
  auto g = schema_grammar(R"({
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                   "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "age"]})");
  expect_accepts(*g, {
                         R"({"name":"Ann","age":31})",
                         R"({"name": "Ann", "age": -4, "tags": ["a", "b"]})",
                         "{\n  \"name\": \"A\\\"n\\u00e9\\n\",\n  \"age\": 0\n}",
                         R"({"name":"","age":7,"tags":[]})",
                     });
  expect_rejects(*g, {
                         R"({"name":"Ann"})",                     // missing required
                         R"({"age":31,"name":"Ann"})",            // out of schema order
                         R"({"name":"Ann","age":"31"})",          // wrong type
                         R"({"name":"Ann","age":31,"extra":1})",  // extra property
                         R"({"name":"Ann","age":31.5})",          // integer with a fraction
                         R"({"name":"Ann","age":031})",           // leading zero
                         R"({"name":"Ann","age":31,})",           // trailing comma
                         R"({"name":"A)"
                         "\x01"
                         R"(","age":1})",                       // raw control character in a string
                         R"({"name":"\q","age":1})",            // bad escape
                         R"({"name":"\ud800","age":1})",        // lone surrogate escape
                         R"({"name":"Ann","age":31}   )",       // trailing whitespace
                         "{\"name\":\"Ann\",     \"age\":31}",  // runaway whitespace
                     });
  EXPECT_TRUE(g->matches(R"({"name":"\ud83d\ude00","age":1})"));  // surrogate pair
}

TEST(JsonSchemaGrammar, OptionalPropertiesAndAdditional) {
  auto g = schema_grammar(R"({"type": "object", "properties": {
      "a": {"type": "boolean"}, "b": {"type": "null"}, "c": {"type": "number"}}})");
  expect_accepts(*g, {"{}", R"({"a":true})", R"({"b":null,"c":1e5})",
                      R"({"a":false,"b":null,"c":-0.5E-3})", R"({"c":2})"});
  expect_rejects(
      *g, {R"({,"a":true})", R"({"a":true,})", R"({"c":1,"a":true})", R"({"a":1})", R"({"c":.5})",
           R"({"c":1.})", R"({"c":01})", R"({"c":+1})", R"({"c":1e})", R"({"d":1})"});
  auto extra = schema_grammar(R"({"type": "object", "properties": {"a": {"type": "integer"}},
      "required": ["a"], "additionalProperties": {"type": "string"}})");
  expect_accepts(*extra, {R"({"a":1})", R"({"a":1,"x":"y","z":""})"});
  expect_rejects(*extra, {R"({"a":1,"x":2})", R"({"x":"y","a":1})"});
  auto free_form = schema_grammar(R"({"type": "object"})");
  expect_accepts(*free_form, {"{}", R"({"k":[1,{"x":null}],"z":"w"})"});
  expect_rejects(*free_form, {"[]", R"({"k"})"});
}

TEST(JsonSchemaGrammar, ArraysEnumsConstAndUnions) {
  auto g = schema_grammar(R"({"type": "array", "items": {"type": "integer"}, "minItems": 1,
                              "maxItems": 3})");
  expect_accepts(*g, {"[1]", "[1, 2,3]", "[ 0 ]"});
  expect_rejects(*g, {"[]", "[1,2,3,4]", "[1,]", "[\"1\"]"});
  auto tuple = schema_grammar(R"({"type": "array", "prefixItems": [{"type": "string"},
                                  {"type": "boolean"}]})");
  expect_accepts(*tuple, {R"(["x",true])"});
  expect_rejects(*tuple, {R"(["x"])", R"(["x",true,1])", R"([true,"x"])"});
  auto e = schema_grammar(R"({"enum": ["red", 1, null, {"a": [true]}, "q\"u"]})");
  expect_accepts(*e, {R"("red")", "1", "null", R"({"a":[true]})", R"("q\"u")"});
  expect_rejects(*e, {R"("blue")", "2", R"("Red")", R"({"a": [true]})"});
  auto c = schema_grammar(R"({"const": "fixed"})");
  expect_accepts(*c, {R"("fixed")"});
  expect_rejects(*c, {R"("fixe")", "\"fixed\" "});
  auto u = schema_grammar(
      R"({"anyOf": [{"type": "string", "maxLength": 2}, {"type": ["integer", "null"]}]})");
  expect_accepts(*u, {R"("ab")", R"("\n")", "12", "null"});
  expect_rejects(*u, {R"("abc")", "1.5", "true"});
  auto n = schema_grammar(R"({"type": "string", "minLength": 2, "nullable": true})");
  expect_accepts(*n, {R"("ab")", "null"});
  expect_rejects(*n, {R"("a")"});
}

TEST(JsonSchemaGrammar, RefsAllOfFormatsAndIntegerRanges) {
  auto g = schema_grammar(R"({
    "$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"},
              "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}},
    "$ref": "#/$defs/node"})");
  expect_accepts(*g, {R"({"v":1})", R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]})"});
  expect_rejects(*g, {R"({"v":1,"kids":[{}]})"});
  auto all = schema_grammar(
      R"({"definitions": {"base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
      "allOf": [{"$ref": "#/definitions/base"}, {"properties": {"name": {"type": "string"}}}]})");
  expect_accepts(*all, {R"({"id":1})", R"({"id":1,"name":"x"})"});
  expect_rejects(*all, {R"({"name":"x"})"});
  auto fmt =
      schema_grammar(R"({"type": "array", "prefixItems": [{"type": "string", "format": "date"},
      {"type": "string", "format": "date-time"}, {"type": "string", "format": "uuid"},
      {"type": "string", "format": "time"}]})");
  expect_accepts(
      *fmt,
      {R"(["2024-02-29","2024-01-01T10:20:30Z","123e4567-e89b-12d3-a456-426614174000","23:59:59.5+02:00"])"});
  expect_rejects(
      *fmt,
      {R"(["2024-13-01","2024-01-01T10:20:30Z","123e4567-e89b-12d3-a456-426614174000","23:59:59Z"])",
       R"(["2024-01-01","2024-01-01 10:20:30Z","123e4567-e89b-12d3-a456-426614174000","23:59:59Z"])",
       R"(["2024-01-01","2024-01-01T10:20:30Z","123e4567e89b12d3a456426614174000","23:59:59Z"])",
       R"(["2024-01-01","2024-01-01T10:20:30Z","123e4567-e89b-12d3-a456-426614174000","24:00:00Z"])"});
  auto range = schema_grammar(R"({"type": "integer", "minimum": -15, "maximum": 230})");
  for (int v = -40; v <= 300; ++v) {
    EXPECT_EQ(range->matches(std::to_string(v)), v >= -15 && v <= 230) << v;
  }
  EXPECT_FALSE(range->matches("-0"));
  EXPECT_FALSE(range->matches("007"));
  auto positive = schema_grammar(R"({"type": "integer", "exclusiveMinimum": 0})");
  expect_accepts(*positive, {"1", "9", "10", "123456789012"});
  expect_rejects(*positive, {"0", "-1", "01"});
  auto big = schema_grammar(R"({"type": "integer", "minimum": 1000, "maximum": 123456})");
  for (int v : {999, 1000, 1001, 9999, 10000, 99999, 100000, 123455, 123456, 123457, 200000}) {
    EXPECT_EQ(big->matches(std::to_string(v)), v >= 1000 && v <= 123456) << v;
  }
}

TEST(JsonSchemaGrammar, EmptySchemaAndJsonObjectGrammar) {
  auto any = schema_grammar("{}");
  expect_accepts(*any, {"1", R"("s")", "[1,[2,{}]]", R"({"a":{"b":[null,true,false]}})"});
  expect_rejects(*any, {"", "nul", "[1 2]", "{'a':1}"});
  auto obj = Grammar::parse(json_object_grammar());
  expect_accepts(*obj, {"{}", R"({"a":[1,2.5,"x"]})"});
  expect_rejects(*obj, {"[]", "1", R"("x")"});
  // Prefixed rules can be joined with other grammars.
  const std::string joined =
      json_schema_to_grammar(Json::parse(R"({"type":"integer"})"), "num", "p1-") +
      json_schema_to_grammar(Json::parse(R"({"type":"boolean"})"), "flag", "p2-") +
      "root ::= num \" \" flag\n";
  auto both = Grammar::parse(joined);
  EXPECT_TRUE(both->matches("12 true"));
  EXPECT_FALSE(both->matches("true 12"));
}

TEST(JsonSchemaGrammar, UnsupportedKeywordsThrow) {
  for (const char* kw : {"pattern", "patternProperties", "not", "if", "dependentSchemas",
                         "uniqueItems", "multipleOf"}) {
    Json schema = Json::parse(R"({"type": "object", "properties": {"a": {"type": "string"}}})");
    schema["properties"]["a"][kw] = Json::object();
    try {
      json_schema_to_grammar(schema);
      ADD_FAILURE() << "no error for " << kw;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(kw), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(json_schema_to_grammar(Json::parse(R"({"$ref": "#/$defs/missing"})")), Error);
  EXPECT_THROW(json_schema_to_grammar(Json::parse(R"({"$ref": "http://x/y"})")), Error);
  EXPECT_THROW(json_schema_to_grammar(Json::parse(R"({"type": "strange"})")), Error);
  EXPECT_THROW(json_schema_to_grammar(Json::parse("false")), Error);
  EXPECT_THROW(
      json_schema_to_grammar(Json::parse(R"({"type": "integer", "minimum": 5, "maximum": 1})")),
      Error);
  EXPECT_THROW(json_schema_to_grammar(Json::parse(R"({"type": "array", "maxItems": 100000000})")),
               Error);
  // Descriptive keywords are ignored.
  auto g = schema_grammar(R"({"title": "t", "description": "d", "$schema": "x", "examples": [1],
                              "default": 2, "type": "integer"})");
  EXPECT_TRUE(g->matches("5"));
}

// --- Random constrained generation with a real vocabulary -----------------------------------

const Tokenizer& tokenizer() {
  static std::unique_ptr<Tokenizer> t =
      load_tokenizer(std::string(MUSE_SHARED_DIR) + "/tokenizers/ggml-vocab-gpt2-as-qwen2.gguf");
  return *t;
}

struct GenerationStats {
  double mask_seconds = 0;
  size_t masks = 0;
};

// Samples tokens at random among the allowed ones until end of generation; returns the text.
// Tokens containing a quote are favoured so that strings end quickly; EOG is favoured once
// the output is complete.
std::string generate(GrammarMatcher& m, uint32_t seed, GenerationStats& stats) {
  const Tokenizer& tok = tokenizer();
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> logits(tok.vocab_size());
  std::vector<TokenId> ids;
  for (int step = 0; step < 1500; ++step) {
    for (auto& l : logits) l = normal(rng);
    const auto t0 = std::chrono::steady_clock::now();
    m.mask(logits);
    stats.mask_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++stats.masks;
    std::vector<TokenId> allowed, quoted, eog;
    for (size_t i = 0; i < logits.size(); ++i) {
      if (std::isinf(logits[i])) continue;
      const auto id = static_cast<TokenId>(i);
      allowed.push_back(id);
      if (tok.is_eog(id)) eog.push_back(id);
      if (tok.token_to_piece(id).find_first_of("\"]}") != std::string::npos) quoted.push_back(id);
    }
    if (allowed.empty()) {
      ADD_FAILURE() << "no token allowed after: " << tok.decode(ids);
      return "";
    }
    EXPECT_EQ(!eog.empty(), m.complete());
    TokenId pick;
    if (!eog.empty() && rng() % 2 == 0) {
      pick = eog[rng() % eog.size()];
    } else if (!quoted.empty() && rng() % 2 == 0) {
      pick = quoted[rng() % quoted.size()];
    } else {
      pick = allowed[rng() % allowed.size()];
    }
    m.accept(pick);
    if (tok.is_eog(pick)) return tok.decode(ids);
    ids.push_back(pick);
  }
  ADD_FAILURE() << "generation did not end: " << tok.decode(ids);
  return "";
}

struct RandomCase {
  const char* schema;
  std::function<void(const Json&)> check;
};

void check_person(const Json& j) {
  ASSERT_TRUE(j.is_object());
  ASSERT_TRUE(j.contains("name") && j["name"].is_string());
  ASSERT_TRUE(j.contains("age") && j["age"].is_number_integer());
  EXPECT_GE(j["age"].get<int64_t>(), 0);
  EXPECT_LE(j["age"].get<int64_t>(), 150);
  std::vector<std::string> order = {"name", "age", "tags", "active"};
  size_t at = 0;
  for (const auto& [key, value] : j.items()) {
    while (at < order.size() && order[at] != key) ++at;
    ASSERT_LT(at, order.size()) << "unexpected or out-of-order key " << key;
    if (key == "tags") {
      ASSERT_TRUE(value.is_array());
      EXPECT_LE(value.size(), 3u);
      for (const auto& t : value) EXPECT_TRUE(t.is_string());
    }
    if (key == "active") {
      EXPECT_TRUE(value.is_boolean());
    }
  }
}

void check_mixed_array(const Json& j) {
  ASSERT_TRUE(j.is_array());
  EXPECT_GE(j.size(), 1u);
  EXPECT_LE(j.size(), 4u);
  for (const auto& v : j) {
    const bool ok = v.is_number() || v.is_null() || v == Json("red") || v == Json("green\u00e9") ||
                    v == Json(1) || v == Json(true);
    EXPECT_TRUE(ok) << v.dump();
  }
}

void check_record(const Json& j) {
  ASSERT_TRUE(j.is_object());
  ASSERT_EQ(j.size() >= 4, true) << j.dump();
  ASSERT_TRUE(j["id"].is_string());
  EXPECT_EQ(j["id"].get<std::string>().size(), 36u);
  ASSERT_TRUE(j["when"].is_string());
  EXPECT_EQ(j["when"].get<std::string>().size(), 10u);
  EXPECT_TRUE(j["score"].is_number());
  EXPECT_EQ(j["kind"], Json("x\"y"));
  if (j.contains("ratio")) {
    EXPECT_TRUE(j["ratio"].is_number() || j["ratio"].is_null());
  }
  if (j.contains("note")) {
    ASSERT_TRUE(j["note"].is_string());
    EXPECT_LE(j["note"].get<std::string>().size(), 4u * 5);  // <= 5 code points
  }
  EXPECT_LE(j.size(), 6u);
}

TEST(JsonSchemaGrammarMatcher, RandomGenerationProducesValidDocuments) {
  const std::vector<RandomCase> cases = {
      {R"({"type": "object", "properties": {"name": {"type": "string"},
          "age": {"type": "integer", "minimum": 0, "maximum": 150},
          "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
          "active": {"type": "boolean"}}, "required": ["name", "age"]})",
       check_person},
      {R"({"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "null"},
          {"enum": ["red", "green\u00e9", 1, true]}]}, "minItems": 1, "maxItems": 4})",
       check_mixed_array},
      {R"({"type": "object", "properties": {"id": {"type": "string", "format": "uuid"},
          "when": {"type": "string", "format": "date"}, "score": {"type": "number"},
          "kind": {"const": "x\"y"}, "ratio": {"type": ["number", "null"]},
          "note": {"type": "string", "maxLength": 5}},
          "required": ["id", "when", "score", "kind"], "additionalProperties": false})",
       check_record},
  };
  auto vocab = std::make_shared<const ConstraintVocab>(tokenizer());
  EXPECT_EQ(vocab->size(), tokenizer().vocab_size());
  GenerationStats stats;
  for (const auto& c : cases) {
    auto grammar = Grammar::parse(json_schema_to_grammar(Json::parse(c.schema)));
    for (uint32_t seed = 0; seed < 12; ++seed) {
      GrammarMatcher m(grammar, vocab, tokenizer().eog_ids());
      const std::string text = generate(m, seed * 7919 + 1, stats);
      SCOPED_TRACE(text);
      ASSERT_TRUE(is_valid_utf8(text));
      EXPECT_TRUE(grammar->matches(text));
      Json parsed;
      ASSERT_NO_THROW(parsed = Json::parse(text));
      c.check(parsed);
      if (seed == 0) std::printf("[info] sample: %s\n", text.c_str());
    }
  }
  std::printf("[info] %zu masks over a %zu-token vocabulary: %.3f ms per mask\n", stats.masks,
              vocab->size(), 1e3 * stats.mask_seconds / static_cast<double>(stats.masks));
}

TEST(JsonSchemaGrammarMatcher, MaskInsideAnOpenString) {
  // Worst case for the trie walk: inside a free string almost every token is allowed.
  auto vocab = std::make_shared<const ConstraintVocab>(tokenizer());
  auto grammar = Grammar::parse(json_schema_to_grammar(Json::parse(
      R"({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})")));
  GrammarMatcher m(grammar, vocab, tokenizer().eog_ids());
  for (TokenId id : tokenizer().encode(R"({"name": "abc)", false, false)) m.accept(id);
  std::vector<float> logits(vocab->size());
  size_t allowed = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const int kSteps = 100;
  for (int i = 0; i < kSteps; ++i) {
    std::fill(logits.begin(), logits.end(), 0.0f);
    m.mask(logits);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (float l : logits) allowed += std::isinf(l) ? 0 : 1;
  // Most of the vocabulary may continue a string; quotes only where they close it validly.
  EXPECT_GT(allowed, vocab->size() * 8 / 10);
  EXPECT_LT(allowed, vocab->size());
  EXPECT_FALSE(m.complete());
  std::printf("[info] inside a string: %zu of %zu tokens allowed, %.3f ms per mask\n", allowed,
              vocab->size(), 1e3 * seconds / kSteps);
}

}  // namespace
}  // namespace muse::text
