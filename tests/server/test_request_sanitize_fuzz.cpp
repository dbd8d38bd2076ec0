// Random damage to request bodies, JSON schemas and tool-call text (run under ASan+UBSan
// by `make test`): every input is either accepted or refused with an error, never a crash.
#include <gtest/gtest.h>

#include <random>

#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/stop_matcher.h"
#include "text/grammar.h"
#include "text/tool_calls.h"

namespace muse::server {
namespace {

using nlohmann::ordered_json;

const char* kSeedBody = R"({"model":"m","messages":[{"role":"system","content":"be brief"},
{"role":"user","content":[{"type":"text","text":"hi"}]},{"role":"assistant","tool_calls":[
{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}]},
{"role":"tool","tool_call_id":"c1","content":"12C"}],"temperature":0.7,"top_p":0.9,"n":2,
"stop":["\n\n","END"],"max_tokens":64,"logprobs":true,"top_logprobs":3,"seed":42,
"logit_bias":{"50256":-100},"response_format":{"type":"json_schema","json_schema":{"name":"x",
"schema":{"type":"object","properties":{"a":{"type":"integer","minimum":0,"maximum":9},
"b":{"type":"string","maxLength":5},"c":{"enum":["x","y"]}},"required":["a"]}}},
"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
"properties":{"city":{"type":"string"}},"required":["city"]}}}],"stream":true,
"stream_options":{"include_usage":true}})";

std::string mutate(std::string s, std::mt19937& rng) {
  const int edits = 1 + int(rng() % 4);
  static const char* kTokens[] = {"{",       "}",    "[",     "]",    "\"",   ":",
                                  ",",       "-1",   "1e400", "null", "true", "\\u0000",
                                  "\\ud800", "\xff", "0",     "[[[[", "\"\""};
  for (int e = 0; e < edits && !s.empty(); ++e) {
    const size_t at = rng() % s.size();
    switch (rng() % 4) {
      case 0:
        s.erase(at, 1 + rng() % 8);
        break;
      case 1:
        s.insert(at, kTokens[rng() % std::size(kTokens)]);
        break;
      case 2:
        s[at] = char(rng() % 256);
        break;
      default:
        s.resize(at);
        break;
    }
  }
  return s;
}

TEST(RequestFuzz, DamagedChatBodiesAreAcceptedOrRefused) {
  std::mt19937 rng(7);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 4000; ++i) {
    const std::string body = mutate(kSeedBody, rng);
    try {
      const ordered_json j = parse_request_body(body, 64);
      const ChatRequest r = parse_chat_request(j, RequestLimits{});
      if (r.response_format.kind == ResponseFormatKind::kJsonSchema) {
        try {
          text::Grammar::parse(text::json_schema_to_grammar(r.response_format.schema));
        } catch (const Error&) {
        }
      }
      ++accepted;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_FALSE(std::string(e.what()).empty());
      ++refused;
    }
  }
  EXPECT_GT(accepted, 50);  // the mutations must not all break the body
  EXPECT_GT(refused, 500);
}

TEST(RequestFuzz, RandomSchemasCompileOrFailCleanly) {
  std::mt19937 rng(11);
  const ordered_json seed =
      ordered_json::parse(kSeedBody)["response_format"]["json_schema"]["schema"];
  for (int i = 0; i < 1500; ++i) {
    const std::string text = mutate(seed.dump(), rng);
    ordered_json schema;
    try {
      schema = ordered_json::parse(text);
    } catch (const ordered_json::exception&) {
      continue;
    }
    try {
      auto g = text::Grammar::parse(text::json_schema_to_grammar(schema));
      g->matches(R"({"a": 3})");
    } catch (const Error&) {
    }
  }
}

TEST(RequestFuzz, ToolCallParsersSurviveRandomText) {
  std::mt19937 rng(13);
  const ordered_json tools = ordered_json::parse(kSeedBody)["tools"];
  const std::string calls[] = {
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
      "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
      "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]",
      "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n<atem:parameter "
      "name=\"city\">Oslo</atem:parameter>\n</atem:invoke>\n</atem:function_calls>"};
  const text::ToolCallFormat formats[] = {
      text::ToolCallFormat::kHermes, text::ToolCallFormat::kLlama3Json,
      text::ToolCallFormat::kMistral, text::ToolCallFormat::kAtem, text::ToolCallFormat::kGeneric};
  for (int i = 0; i < 2000; ++i) {
    const std::string text = mutate(calls[rng() % std::size(calls)], rng);
    text::ToolCallParser parser(formats[rng() % std::size(formats)], tools);
    for (size_t at = 0; at < text.size();) {
      const size_t n = 1 + rng() % 9;
      parser.push(text.substr(at, n));
      at += n;
    }
    parser.finish();
    StopMatcher stops({"</", "\n\n"});
    stops.push(text);
    stops.flush();
  }
}

}  // namespace
}  // namespace muse::server
