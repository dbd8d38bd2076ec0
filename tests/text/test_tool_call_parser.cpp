// ToolCallParser: every format fed whole, a character at a time and in random chunkings
// must give the same content and the same calls (names, ids' shape, arguments that parse
// to the expected object).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "text/tool_calls.h"

namespace muse::text {
namespace {

using json = nlohmann::ordered_json;

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather",
   "parameters": {"type": "object", "properties": {
     "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
     "options": {"type": "object"}, "tags": {"type": "array", "items": {"type": "string"}},
     "note": {"type": "string"}},
     "required": ["city"]}}},
  {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object",
   "properties": {}}}}
])");

struct Call {
  std::string id;
  std::string name;
  std::string arguments;
};

struct Result {
  std::string content;
  std::vector<Call> calls;
};

// Checks the delta protocol while collecting: a call's first delta has its index (the next
// one), an id and a name and no arguments; later deltas carry arguments only.
void collect(const ParsedDelta& delta, Result& result) {
  result.content += delta.content;
  for (const auto& d : delta.tool_calls) {
    if (!d.name.empty()) {
      EXPECT_EQ(d.index, static_cast<int>(result.calls.size()));
      EXPECT_EQ(d.arguments, "");
      EXPECT_EQ(d.id.size(), 29u);
      EXPECT_EQ(d.id.rfind("call_", 0), 0u);
      result.calls.push_back({d.id, d.name, ""});
    } else {
      EXPECT_TRUE(d.id.empty());
      ASSERT_GE(d.index, 0);
      ASSERT_LT(d.index, static_cast<int>(result.calls.size()));
      result.calls[d.index].arguments += d.arguments;
    }
  }
}

Result parse_in_chunks(ToolCallFormat format, const std::string& text,
                       const std::vector<size_t>& sizes, const json& tools = kTools) {
  ToolCallParser parser(format, tools);
  Result result;
  size_t at = 0;
  for (size_t i = 0; at < text.size(); ++i) {
    size_t n = std::min(sizes[i % sizes.size()], text.size() - at);
    collect(parser.push(std::string_view(text).substr(at, n)), result);
    at += n;
  }
  collect(parser.finish(), result);
  EXPECT_EQ(parser.tool_call_count(), static_cast<int>(result.calls.size()));
  return result;
}

struct Expected {
  std::string content;
  std::vector<std::pair<std::string, json>> calls;  // name, arguments (null: not JSON)
};

// Whole, char by char and seeded random chunkings all give `expected`.
void expect_parse(ToolCallFormat format, const std::string& text, const Expected& expected,
                  const json& tools = kTools) {
  std::vector<std::vector<size_t>> chunkings = {{text.size() + 1}, {1}};
  for (unsigned seed = 1; seed <= 6; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<size_t> size(1, 9);
    std::vector<size_t> sizes(64);
    for (auto& s : sizes) s = size(rng);
    chunkings.push_back(sizes);
  }
  for (size_t c = 0; c < chunkings.size(); ++c) {
    SCOPED_TRACE("chunking " + std::to_string(c) + " of: " + text);
    Result result = parse_in_chunks(format, text, chunkings[c], tools);
    EXPECT_EQ(result.content, expected.content);
    ASSERT_EQ(result.calls.size(), expected.calls.size());
    for (size_t i = 0; i < result.calls.size(); ++i) {
      EXPECT_EQ(result.calls[i].name, expected.calls[i].first);
      json args = json::parse(result.calls[i].arguments, nullptr, false);
      if (expected.calls[i].second.is_null()) {
        EXPECT_TRUE(args.is_discarded()) << result.calls[i].arguments;
      } else {
        EXPECT_EQ(args, expected.calls[i].second) << result.calls[i].arguments;
      }
    }
  }
}

const json kParis = {{"city", "Paris"}};

TEST(ToolCallParserHermes, ContentThenCall) {
  expect_parse(ToolCallFormat::kHermes,
               "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
               "{\"city\": \"Paris\", \"days\": 3}}\n</tool_call>",
               {"Let me check.\n", {{"get_weather", {{"city", "Paris"}, {"days", 3}}}}});
}

TEST(ToolCallParserHermes, ParallelCallsAndTrickyStrings) {
  expect_parse(ToolCallFormat::kHermes,
               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a } \\\" { "
               "]\", \"options\": {\"n\": [1, {\"x\": \"}\"}]}}}\n</tool_call>\n<tool_call>\n"
               "{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
               {"",
                {{"get_weather",
                  {{"city", "a } \" { ]"}, {"options", {{"n", json::array({1, {{"x", "}"}}})}}}}},
                 {"get_time", json::object()}}});
}

TEST(ToolCallParserHermes, TextAfterCallAndMarkerLikeText) {
  expect_parse(ToolCallFormat::kHermes,
               "Use <tools> or <tool_cal> wisely <tool_call>\n{\"name\": \"get_time\", "
               "\"arguments\": {}}\n</tool_call>\nDone <tool",
               {"Use <tools> or <tool_cal> wisely \nDone <tool", {{"get_time", json::object()}}});
}

TEST(ToolCallParserHermes, UnknownFunctionIsContent) {
  const std::string text =
      "<tool_call>\n{\"name\": \"launch\", \"arguments\": {\"x\": 1}}\n</tool_call> ok";
  expect_parse(ToolCallFormat::kHermes, text, {text, {}});
  const std::string not_json = "<tool_call> is how I call tools";
  expect_parse(ToolCallFormat::kHermes, not_json, {not_json, {}});
}

TEST(ToolCallParserHermes, UnterminatedCall) {
  // Name not complete: everything is content.
  const std::string text = "Hi <tool_call>\n{\"name\": \"get_wea";
  expect_parse(ToolCallFormat::kHermes, text, {text, {}});
  // Name streamed: the call stays a call (its arguments are cut off).
  expect_parse(ToolCallFormat::kHermes,
               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa",
               {"", {{"get_weather", nullptr}}});
  // Name streamed, arguments not started: {}.
  expect_parse(ToolCallFormat::kHermes, "<tool_call>{\"name\": \"get_time\"",
               {"", {{"get_time", json::object()}}});
}

TEST(ToolCallParserHermes, KeyOrderAndStringArguments) {
  expect_parse(ToolCallFormat::kHermes,
               "<tool_call>{\"arguments\": {\"city\": \"Paris\"}, \"name\": \"get_weather\"}"
               "</tool_call><tool_call>{\"name\": \"get_weather\", \"arguments\": "
               "\"{\\\"city\\\": \\\"Paris\\\"}\"}</tool_call>",
               {"", {{"get_weather", kParis}, {"get_weather", kParis}}});
}

TEST(ToolCallParserHermes, QwenCoderXmlBody) {
  expect_parse(
      ToolCallFormat::kHermes,
      "I'll look.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nNew York\n"
      "</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=metric>\nTrue\n"
      "</parameter>\n</function>\n</tool_call>",
      {"I'll look.\n", {{"get_weather", {{"city", "New York"}, {"days", 3}, {"metric", true}}}}});
}

TEST(ToolCallParserGeneric, TaggedJson) {
  expect_parse(ToolCallFormat::kGeneric,
               "Sure. <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": "
               "\"Paris\"}}</tool_call>",
               {"Sure. ", {{"get_weather", kParis}}});
}

TEST(ToolCallParserLlama, BareJsonAndPythonTag) {
  expect_parse(ToolCallFormat::kLlama3Json,
               "  {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
               {"", {{"get_weather", kParis}}});
  expect_parse(ToolCallFormat::kLlama3Json,
               "<|python_tag|>{\"type\": \"function\", \"name\": \"get_weather\", "
               "\"parameters\": {\"city\": \"Paris\"}}",
               {"", {{"get_weather", kParis}}});
}

TEST(ToolCallParserLlama, SeveralCalls) {
  expect_parse(ToolCallFormat::kLlama3Json,
               "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; "
               "{\"name\": \"get_time\", \"parameters\": {}}\n{\"name\": \"get_weather\", "
               "\"arguments\": {\"days\": 2, \"city\": \"Oslo\"}}\n",
               {"",
                {{"get_weather", kParis},
                 {"get_time", json::object()},
                 {"get_weather", {{"days", 2}, {"city", "Oslo"}}}}});
}

TEST(ToolCallParserLlama, TextIsContent) {
  for (const std::string text :
       {"The set {1, 2} has two elements.", "{\"result\": 5}", "{not json at all",
        "{\"name\": \"nope\", \"parameters\": {}}", "Answer: {\"name\": \"get_time\"}"}) {
    expect_parse(ToolCallFormat::kLlama3Json, text, {text, {}});
  }
}

TEST(ToolCallParserMistral, ArrayOfCalls) {
  expect_parse(ToolCallFormat::kMistral,
               "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, "
               "\"id\": \"abc123def\"}, {\"name\": \"get_time\", \"arguments\": {}}]",
               {"", {{"get_weather", kParis}, {"get_time", json::object()}}});
  // Granite's marker, same shape.
  expect_parse(ToolCallFormat::kMistral,
               "<|tool_call|>[{\"arguments\": {\"city\": \"Paris\"}, \"name\": \"get_weather\"}]",
               {"", {{"get_weather", kParis}}});
}

TEST(ToolCallParserMistral, BareListAtOutputStart) {
  expect_parse(ToolCallFormat::kMistral, " [{\"name\": \"get_time\", \"arguments\": {}}] Done.",
               {" Done.", {{"get_time", json::object()}}});
  for (const std::string text :
       {"[1, 2] are numbers", "[TOOL", "Text [{\"name\": \"get_time\"}]"}) {
    expect_parse(ToolCallFormat::kMistral, text, {text, {}});
  }
}

TEST(ToolCallParserMistral, NotACall) {
  for (const std::string text : {"[TOOL_CALLS] none needed", "Brackets [TOOL", "[TOOL_CALLS][1]",
                                 "[TOOL_CALLS][{\"name\": \"nope\", \"arguments\": {}}]"}) {
    expect_parse(ToolCallFormat::kMistral, text, {text, {}});
  }
}

const std::string kAtemCall =
    "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
    "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
    "<atem:parameter name=\"days\">3</atem:parameter>\n"
    "<atem:parameter name=\"metric\">false</atem:parameter>\n"
    "<atem:parameter name=\"options\">{\"a\": [1, 2]}</atem:parameter>\n"
    "<atem:parameter name=\"note\">line \"one\"\n  12\n</atem:parameter>\n"
    "</atem:invoke>\n</atem:function_calls>";

TEST(ToolCallParserAtem, ParametersBecomeTypedJson) {
  json args = {{"city", "Paris"},
               {"days", 3},
               {"metric", false},
               {"options", {{"a", {1, 2}}}},
               {"note", "line \"one\"\n  12\n"}};
  expect_parse(ToolCallFormat::kAtem, "Checking. " + kAtemCall,
               {"Checking. ", {{"get_weather", args}}});
}

TEST(ToolCallParserAtem, StringTypedNumbersStayStrings) {
  expect_parse(
      ToolCallFormat::kAtem,
      "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
      "<atem:parameter name=\"city\">123</atem:parameter>\n"
      "<atem:parameter name=\"note\">\"quoted\"</atem:parameter>\n"
      "<atem:parameter name=\"days\">three</atem:parameter>\n"
      "</atem:invoke>\n</atem:function_calls>",
      {"", {{"get_weather", {{"city", "123"}, {"note", "\"quoted\""}, {"days", "three"}}}}});
}

TEST(ToolCallParserAtem, ParallelInvokesAndBlocks) {
  expect_parse(
      ToolCallFormat::kAtem,
      "<atem:function_calls>\n<atem:invoke name=\"get_time\">\n</atem:invoke>\n"
      "<atem:invoke name=\"get_weather\">\n<atem:parameter name=\"city\">Paris"
      "</atem:parameter>\n</atem:invoke>\n</atem:function_calls>\n"
      "<atem:function_calls>\n<atem:invoke name=\"get_time\">\n</atem:invoke>\n"
      "</atem:function_calls> done",
      {" done",
       {{"get_time", json::object()}, {"get_weather", kParis}, {"get_time", json::object()}}});
}

TEST(ToolCallParserAtem, NotCalls) {
  for (const std::string text :
       {"<atem:function_calls>\n<atem:invoke name=\"rm_rf\">\n</atem:invoke>\n"
        "</atem:function_calls>",
        "Talk about <atem:function_calls> tags", "Partial <atem:func",
        "<atem:function_calls>\n<atem:invoke name=\"get_wea"}) {
    expect_parse(ToolCallFormat::kAtem, text, {text, {}});
  }
}

TEST(ToolCallParserAtem, UnterminatedAfterHeader) {
  expect_parse(ToolCallFormat::kAtem,
               "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
               "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
               "<atem:parameter name=\"days\">1",
               {"", {{"get_weather", kParis}}});
}

// Random text built from pieces of every format's syntax: whatever it means, the result
// must not depend on how the text is split, and nothing may be lost when there is no call.
TEST(ToolCallParser, RandomTextIsChunkingIndependent) {
  const std::vector<std::string> pieces = {
      "<tool_call>", "</tool_call>", "<tool", "{", "}", "[", "]", "\"", "\\", ",", ":", " ",
      "\n", ";", "\"name\"", "\"arguments\"", "\"parameters\"", "\"get_time\"",
      "\"get_weather\"", "\"x\"", "1", "[TOOL_CALLS]", "<|python_tag|>", "<|tool_call|>",
      "<atem:function_calls>", "</atem:function_calls>", "<atem:invoke name=\"",
      "</atem:invoke>", "<atem:parameter name=\"", "</atem:parameter>", "\">", "city", "get_time",
      "<function=", "</function>", "<parameter=", "</parameter>", ">", "\xC3\xA9", "text"};
  std::mt19937 rng(42);
  for (auto format : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json,
                      ToolCallFormat::kMistral, ToolCallFormat::kAtem, ToolCallFormat::kGeneric}) {
    for (int trial = 0; trial < 300; ++trial) {
      std::string text;
      int n = std::uniform_int_distribution<int>(1, 30)(rng);
      for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
      Result whole = parse_in_chunks(format, text, {text.size() + 1});
      Result single = parse_in_chunks(format, text, {1});
      Result random = parse_in_chunks(format, text, {3, 1, 7, 2, 5});
      for (const Result* other : {&single, &random}) {
        ASSERT_EQ(other->content, whole.content) << text;
        ASSERT_EQ(other->calls.size(), whole.calls.size()) << text;
        for (size_t i = 0; i < whole.calls.size(); ++i) {
          EXPECT_EQ(other->calls[i].name, whole.calls[i].name) << text;
          EXPECT_EQ(other->calls[i].arguments, whole.calls[i].arguments) << text;
        }
      }
      if (whole.calls.empty()) {
        EXPECT_EQ(whole.content, text);
      }
    }
  }
}

TEST(ToolCallParser, NoToolsMeansAllContent) {
  const std::string text = "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  expect_parse(ToolCallFormat::kHermes, text, {text, {}}, json::array());
  expect_parse(ToolCallFormat::kHermes, text, {text, {}}, json());
}

TEST(ToolCallParser, ContentStreamsEarlyAndUtf8IsKept) {
  ToolCallParser parser(ToolCallFormat::kHermes, kTools);
  EXPECT_EQ(parser.push("Hello <to").content, "Hello ");
  EXPECT_EQ(parser.push("p").content, "<top");
  // "é" split across pushes is not cut.
  EXPECT_EQ(parser.push("caf\xC3").content, "caf");
  EXPECT_EQ(parser.push("\xA9!").content, "\xC3\xA9!");
  ParsedDelta delta = parser.push("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"ci");
  EXPECT_TRUE(delta.content.empty());
  ASSERT_EQ(delta.tool_calls.size(), 2u);
  EXPECT_EQ(delta.tool_calls[0].name, "get_weather");
  EXPECT_EQ(delta.tool_calls[1].arguments, "{\"ci");
  delta = parser.push("ty\": \"X\"}}");
  ASSERT_EQ(delta.tool_calls.size(), 1u);
  EXPECT_EQ(delta.tool_calls[0].arguments, "ty\": \"X\"}");
  EXPECT_TRUE(parser.finish().empty());
  EXPECT_EQ(parser.tool_call_count(), 1);
}

}  // namespace
}  // namespace muse::text
