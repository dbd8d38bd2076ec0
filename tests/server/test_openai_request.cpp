// Request parsing and validation: every invalid value is a 400 naming its field.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/stop_matcher.h"

namespace muse::server {
namespace {

using nlohmann::ordered_json;

ordered_json chat_body(ordered_json extra = ordered_json::object()) {
  ordered_json b = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

// The field named by the 400 a body gets, or "ok" when it parses.
std::string rejected_param(const ordered_json& body) {
  try {
    parse_chat_request(body, RequestLimits{});
    return "ok";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.type, "invalid_request_error");
    return e.param.empty() ? "<none>" : e.param;
  }
}

TEST(OpenAiRequest, ParsesEverySamplingField) {
  const ChatRequest r = parse_chat_request(chat_body({{"temperature", 0.5},
                                                      {"top_p", 0.9},
                                                      {"top_k", 40},
                                                      {"min_p", 0.05},
                                                      {"seed", 7},
                                                      {"n", 3},
                                                      {"stop", {"a", "b"}},
                                                      {"max_completion_tokens", 12},
                                                      {"presence_penalty", 0.5},
                                                      {"frequency_penalty", -0.5},
                                                      {"logit_bias", {{"42", -100}, {"7", 3.5}}},
                                                      {"logprobs", true},
                                                      {"top_logprobs", 4},
                                                      {"stream", true},
                                                      {"stream_options", {{"include_usage", true}}},
                                                      {"user", "u1"},
                                                      {"some_unknown_field", {1, 2}}}),
                                           RequestLimits{});
  EXPECT_FLOAT_EQ(r.gen.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.gen.sampling.top_p, 0.9f);
  EXPECT_EQ(r.gen.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.gen.sampling.min_p, 0.05f);
  EXPECT_EQ(r.gen.sampling.seed, 7u);
  EXPECT_EQ(r.gen.n, 3);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.gen.max_tokens, 12);
  EXPECT_FLOAT_EQ(r.gen.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.gen.sampling.frequency_penalty, -0.5f);
  EXPECT_FLOAT_EQ(r.gen.sampling.logit_bias.at(42), -100.0f);
  EXPECT_FLOAT_EQ(r.gen.sampling.logit_bias.at(7), 3.5f);
  EXPECT_TRUE(r.gen.logprobs);
  EXPECT_EQ(r.gen.top_logprobs, 4);
  EXPECT_TRUE(r.gen.stream);
  EXPECT_TRUE(r.gen.include_usage);
}

TEST(OpenAiRequest, RejectsOutOfRangeValuesNamingTheField) {
  EXPECT_EQ(rejected_param(chat_body({{"temperature", -1}})), "temperature");
  EXPECT_EQ(rejected_param(chat_body({{"temperature", 3.5}})), "temperature");
  EXPECT_EQ(rejected_param(chat_body({{"temperature", "hot"}})), "temperature");
  EXPECT_EQ(rejected_param(chat_body({{"top_p", 0}})), "top_p");
  EXPECT_EQ(rejected_param(chat_body({{"top_p", 1.5}})), "top_p");
  EXPECT_EQ(rejected_param(chat_body({{"n", 0}})), "n");
  EXPECT_EQ(rejected_param(chat_body({{"n", 17}})), "n");
  EXPECT_EQ(rejected_param(chat_body({{"max_tokens", -5}})), "max_tokens");
  EXPECT_EQ(rejected_param(chat_body({{"max_tokens", 1.5}})), "max_tokens");
  EXPECT_EQ(rejected_param(chat_body({{"presence_penalty", 2.5}})), "presence_penalty");
  EXPECT_EQ(rejected_param(chat_body({{"stop", {"a", "b", "c", "d", "e"}}})), "stop");
  EXPECT_EQ(rejected_param(chat_body({{"stop", ""}})), "stop");
  EXPECT_EQ(rejected_param(chat_body({{"logit_bias", {{"x", 1}}}})), "logit_bias");
  EXPECT_EQ(rejected_param(chat_body({{"logit_bias", {{"5", 101}}}})), "logit_bias");
  EXPECT_EQ(rejected_param(chat_body({{"top_logprobs", 3}})), "top_logprobs");  // no logprobs
  EXPECT_EQ(rejected_param(chat_body({{"logprobs", true}, {"top_logprobs", 21}})), "top_logprobs");
  EXPECT_EQ(rejected_param(chat_body({{"stream_options", {{"include_usage", true}}}})),
            "stream_options");
  EXPECT_EQ(rejected_param(chat_body({{"seed", 1.5}})), "seed");
  // 1e400 parses to infinity: rejected, not clamped.
  EXPECT_THROW(parse_chat_request(
                   parse_request_body(R"({"model":"m","messages":[{"role":"user","content":"x"}],)"
                                      R"("temperature":1e400})",
                                      64),
                   RequestLimits{}),
               ApiError);
}

TEST(OpenAiRequest, ValidatesMessages) {
  EXPECT_EQ(rejected_param({{"model", "m"}}), "messages");
  EXPECT_EQ(rejected_param({{"model", "m"}, {"messages", ordered_json::array()}}), "messages");
  EXPECT_EQ(rejected_param({{"messages", {{{"role", "user"}, {"content", "x"}}}}}), "model");
  EXPECT_EQ(
      rejected_param({{"model", "m"}, {"messages", {{{"role", "wizard"}, {"content", "x"}}}}}),
      "messages[0].role");
  EXPECT_EQ(rejected_param({{"model", "m"}, {"messages", {{{"role", "user"}}}}}),
            "messages[0].content");
  EXPECT_EQ(rejected_param({{"model", "m"}, {"messages", {"not an object"}}}), "messages[0]");
  const ChatRequest r =
      parse_chat_request({{"model", "m"},
                          {"messages",
                           {{{"role", "developer"}, {"content", "be brief"}},
                            {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "a"}}}}},
                            {{"role", "assistant"},
                             {"tool_calls",
                              {{{"id", "c1"},
                                {"type", "function"},
                                {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}},
                            {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "42"}}}}},
                         RequestLimits{});
  EXPECT_EQ(r.messages[0]["role"], "system");  // developer is the system role for templates
  EXPECT_EQ(r.messages.size(), 4u);
  RequestLimits small;
  small.max_messages = 1;
  EXPECT_THROW(parse_chat_request(
                   {{"model", "m"},
                    {"messages",
                     {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}}}},
                   small),
               ApiError);
}

TEST(OpenAiRequest, ToolsToolChoiceAndResponseFormat) {
  const ordered_json tools = {
      {{"type", "function"},
       {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}};
  ChatRequest r = parse_chat_request(
      chat_body({{"tools", tools},
                 {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}},
                 {"parallel_tool_calls", false}}),
      RequestLimits{});
  EXPECT_EQ(r.tool_choice.kind, ToolChoiceKind::kFunction);
  EXPECT_EQ(r.tool_choice.function, "get_weather");
  EXPECT_FALSE(r.parallel_tool_calls);
  EXPECT_EQ(rejected_param(chat_body(
                {{"tools", tools},
                 {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}})),
            "tool_choice");
  EXPECT_EQ(rejected_param(chat_body({{"tool_choice", "required"}})), "tool_choice");
  EXPECT_EQ(rejected_param(chat_body({{"tools", {{{"type", "function"}}}}})), "tools");
  EXPECT_EQ(rejected_param(chat_body({{"tool_choice", "sometimes"}})), "tool_choice");

  r = parse_chat_request(
      chat_body({{"response_format",
                  {{"type", "json_schema"},
                   {"json_schema",
                    {{"name", "x"}, {"strict", true}, {"schema", {{"type", "object"}}}}}}}}),
      RequestLimits{});
  EXPECT_EQ(r.response_format.kind, ResponseFormatKind::kJsonSchema);
  EXPECT_TRUE(r.response_format.strict);
  EXPECT_EQ(r.response_format.schema["type"], "object");
  EXPECT_EQ(rejected_param(chat_body({{"response_format", {{"type", "xml"}}}})), "response_format");
  EXPECT_EQ(rejected_param(chat_body({{"response_format", {{"type", "json_schema"}}}})),
            "response_format");
}

TEST(OpenAiRequest, BodyParsingRejectsDeepNestingBadJsonAndBadUtf8) {
  std::string deep = R"({"model":"m","x":)" + std::string(200, '[') + std::string(200, ']') + "}";
  EXPECT_THROW(parse_request_body(deep, 64), ApiError);
  // Brackets inside strings do not count.
  std::string in_string = R"({"model":")" + std::string(200, '[') + R"("})";
  EXPECT_NO_THROW(parse_request_body(in_string, 64));
  EXPECT_THROW(parse_request_body("{\"model\": \"m\xff\"}", 64), ApiError);
  EXPECT_THROW(parse_request_body("{\"model\": ", 64), ApiError);
  EXPECT_THROW(parse_request_body("[1, 2]", 64), ApiError);
}

TEST(OpenAiRequest, CompletionPrompts) {
  CompletionRequest r = parse_completion_request(
      {{"model", "m"}, {"prompt", "hello"}, {"logprobs", 2}, {"echo", true}}, RequestLimits{});
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "hello");
  EXPECT_EQ(r.gen.max_tokens, 16);  // the endpoint's default
  EXPECT_TRUE(r.gen.logprobs);
  EXPECT_EQ(r.gen.top_logprobs, 2);
  EXPECT_TRUE(r.echo);
  r = parse_completion_request({{"model", "m"}, {"prompt", {1, 2, 3}}}, RequestLimits{});
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_TRUE(r.prompts[0].is_tokens);
  EXPECT_EQ(r.prompts[0].tokens, (std::vector<int32_t>{1, 2, 3}));
  r = parse_completion_request({{"model", "m"}, {"prompt", {"a", "b"}}}, RequestLimits{});
  EXPECT_EQ(r.prompts.size(), 2u);
  EXPECT_THROW(parse_completion_request({{"model", "m"}, {"prompt", {1, -2}}}, RequestLimits{}),
               ApiError);
  EXPECT_THROW(parse_completion_request({{"model", "m"}}, RequestLimits{}), ApiError);
  EXPECT_THROW(
      parse_completion_request({{"model", "m"}, {"prompt", "x"}, {"logprobs", 6}}, RequestLimits{}),
      ApiError);
}

// Feeds `pieces` through a StopMatcher; returns everything emitted.
std::string run_stops(std::vector<std::string> stops, const std::vector<std::string>& pieces,
                      bool* stopped = nullptr) {
  StopMatcher m(std::move(stops));
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  out += m.flush();
  if (stopped) *stopped = m.stopped();
  return out;
}

TEST(StopMatcher, CutsAtTheFirstStopStringAcrossPieces) {
  bool stopped = false;
  EXPECT_EQ(run_stops({"END"}, {"abc E", "N", "D more"}, &stopped), "abc ");
  EXPECT_TRUE(stopped);
  EXPECT_EQ(run_stops({"xyz", "b"}, {"aaab", "xyz"}, &stopped), "aaa");
  EXPECT_EQ(run_stops({"END"}, {"abc EN"}, &stopped), "abc EN");  // never completed
  EXPECT_FALSE(stopped);
}

TEST(StopMatcher, HoldsBackOnlyWhatCouldStartAStop) {
  StopMatcher m({"\n\nUser:"});
  EXPECT_EQ(m.push("hello"), "hello");
  EXPECT_EQ(m.push("\n"), "");
  EXPECT_EQ(m.push("\nUs"), "");
  EXPECT_EQ(m.push("x"), "\n\nUsx");
  EXPECT_FALSE(m.stopped());
}

}  // namespace
}  // namespace muse::server
