// Tool-call formats: names, recognising the shared chat templates' formats, preparing
// messages (checked by rendering them with the real templates) and forced-call grammars
// (checked with the grammar matcher and by parsing what they accept).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "muse/error.h"
#include "text/chat_template.h"
#include "text/grammar.h"
#include "text/tool_calls.h"

namespace muse::text {
namespace {

using json = nlohmann::ordered_json;

const std::string kTemplateDir = std::string(MUSE_SHARED_DIR) + "/templates/";

std::string read_template(const std::string& name) {
  std::ifstream in(kTemplateDir + name + ".jinja", std::ios::binary);
  EXPECT_TRUE(in) << "cannot open template " << name;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
   "parameters": {"type": "object", "properties": {
     "city": {"type": "string"}, "days": {"type": "integer"},
     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
     "required": ["city"]}}},
  {"type": "function", "function": {"name": "get_time", "description": "Current time",
   "parameters": {"type": "object", "properties": {}}}}
])");

// user -> assistant call (arguments as a JSON string, as OpenAI clients send them) -> tool
// result -> assistant answer -> user.
json conversation() {
  return json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "Weather in"}, {"type": "text", "text": "Paris?"}]},
    {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abcdefghijklmnopqrstuvwx",
      "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_abcdefghijklmnopqrstuvwx", "content": "22C and sunny"},
    {"role": "assistant", "content": "It is 22C and sunny."},
    {"role": "user", "content": "Thanks!"}
  ])");
}

std::string render(const std::string& name, const json& messages, const json& tools) {
  ChatTemplate tmpl(read_template(name));
  ChatInputs in;
  in.messages = messages;
  in.tools = tools;
  in.add_generation_prompt = true;
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.now = date_from_iso("2025-01-02");
  return tmpl.render(in);
}

TEST(ToolCallFormat, NamesRoundTrip) {
  for (auto format : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json,
                      ToolCallFormat::kMistral, ToolCallFormat::kAtem, ToolCallFormat::kGeneric}) {
    EXPECT_EQ(parse_tool_call_format(tool_call_format_name(format)), format);
  }
  EXPECT_STREQ(tool_call_format_name(ToolCallFormat::kLlama3Json), "llama3_json");
  EXPECT_THROW(parse_tool_call_format("qwen"), Error);
  EXPECT_THROW(parse_tool_call_format(""), Error);
}

TEST(ToolCallFormat, DetectsSharedTemplates) {
  const std::map<std::string, ToolCallFormat> expected = {
      {"HuggingFaceTB-SmolLM3-3B", ToolCallFormat::kGeneric},
      {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", ToolCallFormat::kHermes},
      {"NousResearch-Hermes-3-Llama-3.1-8B-tool_use", ToolCallFormat::kHermes},
      {"Qwen-QwQ-32B", ToolCallFormat::kHermes},
      {"Qwen-Qwen2.5-7B-Instruct", ToolCallFormat::kHermes},
      {"Qwen-Qwen3-0.6B", ToolCallFormat::kHermes},
      {"Qwen3-Coder", ToolCallFormat::kHermes},
      {"Qwen3.5-4B", ToolCallFormat::kHermes},
      {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", ToolCallFormat::kGeneric},
      {"fireworks-ai-llama-3-firefunction-v2", ToolCallFormat::kGeneric},
      {"google-gemma-2-2b-it", ToolCallFormat::kGeneric},
      {"ibm-granite-granite-3.3-2B-Instruct", ToolCallFormat::kMistral},
      {"meta-llama-Llama-3.1-8B-Instruct", ToolCallFormat::kLlama3Json},
      {"meta-llama-Llama-3.2-3B-Instruct", ToolCallFormat::kLlama3Json},
      {"meta-llama-Llama-3.3-70B-Instruct", ToolCallFormat::kLlama3Json},
      {"microsoft-Phi-3.5-mini-instruct", ToolCallFormat::kGeneric},
      {"mistralai-Mistral-Nemo-Instruct-2407", ToolCallFormat::kMistral},
      {"muse-glimmer", ToolCallFormat::kAtem},
      {"openai-gpt-oss-120b", ToolCallFormat::kGeneric},
  };
  for (const auto& [name, format] : expected) {
    EXPECT_EQ(tool_call_format_name(detect_tool_call_format(read_template(name))),
              std::string(tool_call_format_name(format)))
        << name;
  }
  EXPECT_EQ(detect_tool_call_format(""), ToolCallFormat::kGeneric);
}

TEST(ToolCallId, Shape) {
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    std::string id = make_tool_call_id();
    ASSERT_EQ(id.size(), 29u);
    EXPECT_EQ(id.substr(0, 5), "call_");
    for (char c : id.substr(5)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 50u);
}

TEST(PrepareMessages, NormalisesContentAndArguments) {
  json messages = conversation();
  messages[1]["tool_calls"].push_back(
      {{"id", "call_2"},
       {"type", "function"},
       {"function", {{"name", "get_time"}, {"arguments", "not json"}}}});
  json out = prepare_messages(messages, kTools, ToolCallFormat::kHermes);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0]["content"], "Weather in\nParis?");
  EXPECT_EQ(out[1]["tool_calls"][0]["function"]["arguments"], json({{"city", "Paris"}}));
  EXPECT_EQ(out[1]["tool_calls"][1]["function"]["arguments"], "not json");
  EXPECT_EQ(out[1]["content"], "");
  EXPECT_EQ(out[2], messages[2]);
  // Image parts stay parts.
  json image = json::array({{{"role", "user"},
                             {"content",
                              {{{"type", "text"}, {"text", "see"}},
                               {{"type", "image_url"}, {"image_url", {{"url", "x"}}}}}}}});
  EXPECT_EQ(prepare_messages(image, kTools, ToolCallFormat::kHermes), image);
}

TEST(PrepareMessages, RejectsMalformedMessages) {
  EXPECT_THROW(prepare_messages(json::object(), kTools, ToolCallFormat::kHermes), Error);
  EXPECT_THROW(prepare_messages(json::array({"hi"}), kTools, ToolCallFormat::kHermes), Error);
  EXPECT_THROW(prepare_messages(json::array({{{"content", "hi"}}}), kTools, ToolCallFormat::kAtem),
               Error);
  EXPECT_THROW(prepare_messages(json::array({{{"role", 3}}}), kTools, ToolCallFormat::kGeneric),
               Error);
}

TEST(PrepareMessages, RendersWithHermesStyleTemplates) {
  for (const std::string name : {"Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-0.6B",
                                 "NousResearch-Hermes-3-Llama-3.1-8B-tool_use"}) {
    json messages = prepare_messages(conversation(), kTools, ToolCallFormat::kHermes);
    std::string prompt = render(name, messages, kTools);
    EXPECT_NE(prompt.find("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"),
              std::string::npos)
        << name << "\n"
        << prompt;
    EXPECT_NE(prompt.find("<tool_response>\n22C and sunny\n</tool_response>"), std::string::npos)
        << name;
    EXPECT_NE(prompt.find("Weather in\nParis?"), std::string::npos) << name;
  }
  // Qwen3-Coder writes the arguments as <parameter=...> blocks from the object.
  std::string coder = render(
      "Qwen3-Coder", prepare_messages(conversation(), kTools, ToolCallFormat::kHermes), kTools);
  EXPECT_NE(coder.find("<function=get_weather>\n<parameter=city>\nParis\n</parameter>"),
            std::string::npos)
      << coder;
}

TEST(PrepareMessages, RendersWithLlama) {
  json messages = conversation();
  messages[1]["tool_calls"].push_back({{"id", "call_2"},
                                       {"type", "function"},
                                       {"function", {{"name", "get_time"}, {"arguments", "{}"}}}});
  json out = prepare_messages(messages, kTools, ToolCallFormat::kLlama3Json);
  ASSERT_EQ(out.size(), 6u);  // the two parallel calls became two assistant messages
  std::string prompt = render("meta-llama-Llama-3.1-8B-Instruct", out, kTools);
  EXPECT_NE(
      prompt.find("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|>"),
      std::string::npos)
      << prompt;
  EXPECT_NE(prompt.find("{\"name\": \"get_time\", \"parameters\": {}}<|eot_id|>"),
            std::string::npos);
  EXPECT_NE(prompt.find("<|start_header_id|>ipython<|end_header_id|>\n\n"), std::string::npos);
}

TEST(PrepareMessages, RendersWithMistralNemo) {
  json out = prepare_messages(conversation(), kTools, ToolCallFormat::kMistral);
  const std::string id = out[1]["tool_calls"][0]["id"].get<std::string>();
  ASSERT_EQ(id.size(), 9u);
  EXPECT_EQ(out[2]["tool_call_id"], id);
  // Stable, and ids that already fit are kept.
  EXPECT_EQ(prepare_messages(conversation(), kTools, ToolCallFormat::kMistral), out);
  EXPECT_EQ(prepare_messages(out, kTools, ToolCallFormat::kMistral), out);
  std::string prompt = render("mistralai-Mistral-Nemo-Instruct-2407", out, kTools);
  EXPECT_NE(prompt.find("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                        "\"Paris\"}, \"id\": \"" +
                        id + "\"}]</s>"),
            std::string::npos)
      << prompt;
  EXPECT_NE(prompt.find("[TOOL_RESULTS]{\"content\": 22C and sunny, \"call_id\": \"" + id + "\"}"),
            std::string::npos)
      << prompt;
}

TEST(PrepareMessages, RendersWithGlimmer) {
  json messages = conversation();
  messages[1]["tool_calls"][0]["function"]["arguments"] =
      "{\"city\": \"Paris\", \"days\": 2, \"flags\": [\"a\"], \"exact\": true}";
  std::string prompt =
      render("muse-glimmer", prepare_messages(messages, kTools, ToolCallFormat::kAtem), kTools);
  EXPECT_NE(prompt.find("<|start|>assistant to=get_weather<|message|><atem:function_calls>\n"
                        "<atem:invoke name=\"get_weather\">\n"
                        "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
                        "<atem:parameter name=\"days\">2</atem:parameter>\n"
                        "<atem:parameter name=\"flags\">[\"a\"]</atem:parameter>\n"
                        "<atem:parameter name=\"exact\">true</atem:parameter>\n"
                        "</atem:invoke>\n</atem:function_calls>"),
            std::string::npos)
      << prompt;
  EXPECT_NE(prompt.find("<|start|>tool get_weather<|message|><tool_output name=\"get_weather\">\n"
                        "22C and sunny\n</tool_output>"),
            std::string::npos);
}

TEST(PrepareMessages, GenericFormatWithGemma) {
  json out = prepare_messages(conversation(), kTools, ToolCallFormat::kGeneric);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0]["role"], "user");  // no system message created: Gemma rejects it
  const std::string first = out[0]["content"].get<std::string>();
  EXPECT_EQ(first.rfind("# Tools", 0), 0u);
  EXPECT_NE(first.find("{\"name\": \"get_weather\", \"description\": \"Current weather\", "
                       "\"parameters\": {\"type\": \"object\""),
            std::string::npos);
  EXPECT_NE(first.find("\n\nWeather in\nParis?"), std::string::npos);
  EXPECT_EQ(out[1], json({{"role", "assistant"},
                          {"content",
                           "<tool_call>{\"name\": \"get_weather\", \"arguments\": "
                           "{\"city\": \"Paris\"}}</tool_call>"}}));
  EXPECT_EQ(out[2], json({{"role", "user"},
                          {"content", "<tool_response>\n22C and sunny\n</tool_response>"}}));
  std::string prompt = render("google-gemma-2-2b-it", out, kTools);
  EXPECT_NE(prompt.find("<start_of_turn>model\n<tool_call>{\"name\": \"get_weather\""),
            std::string::npos)
      << prompt;
  EXPECT_NE(prompt.find("<start_of_turn>user\n<tool_response>"), std::string::npos);

  // Parallel results share one user turn; an existing system message gets the prompt.
  json messages = json::parse(R"([
    {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
      {"id": "a", "function": {"name": "get_time", "arguments": "{}"}},
      {"id": "b", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "tool_call_id": "a", "content": "noon"},
    {"role": "tool", "tool_call_id": "b", "content": "cold"}])");
  out = prepare_messages(messages, kTools, ToolCallFormat::kGeneric);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0]["content"].get<std::string>().rfind("Be brief.\n\n# Tools", 0), 0u);
  EXPECT_EQ(out[2]["content"],
            "Checking.\n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>\n"
            "<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}"
            "</tool_call>");
  EXPECT_EQ(out[3]["content"],
            "<tool_response>\nnoon\n</tool_response>\n<tool_response>\ncold\n</tool_response>");
  // What the prompt asks the model to write is what the parser reads.
  ToolCallParser parser(ToolCallFormat::kGeneric, kTools);
  ParsedDelta delta = parser.push(out[2]["content"].get<std::string>());
  EXPECT_EQ(delta.content, "Checking.\n");
  EXPECT_EQ(parser.tool_call_count(), 2);
}

TEST(PrepareMessages, EveryTemplateRendersItsFormat) {
  for (const std::string name :
       {"HuggingFaceTB-SmolLM3-3B", "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use", "Qwen-QwQ-32B", "Qwen-Qwen2.5-7B-Instruct",
        "Qwen-Qwen3-0.6B", "Qwen3-Coder", "Qwen3.5-4B", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
        "google-gemma-2-2b-it", "ibm-granite-granite-3.3-2B-Instruct",
        "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct",
        "meta-llama-Llama-3.3-70B-Instruct", "microsoft-Phi-3.5-mini-instruct",
        "mistralai-Mistral-Nemo-Instruct-2407", "muse-glimmer", "openai-gpt-oss-120b"}) {
    std::string source = read_template(name);
    ToolCallFormat format = detect_tool_call_format(source);
    json messages = prepare_messages(conversation(), kTools, format);
    std::string prompt;
    EXPECT_NO_THROW(prompt = render(name, messages, kTools)) << name;
    EXPECT_NE(prompt.find("get_weather"), std::string::npos) << name;
  }
}

// ---- Forced-call grammars ----

std::shared_ptr<const Grammar> grammar_for(ToolCallFormat format, std::string_view function,
                                           bool parallel) {
  std::string text = forced_tool_call_grammar(format, kTools, function, parallel);
  try {
    return Grammar::parse(text);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what() << "\n" << text;
    throw;
  }
}

// The text is accepted by the grammar and parses back into the expected calls.
void expect_accepted_call(ToolCallFormat format, const Grammar& grammar, const std::string& text,
                          const std::vector<std::string>& names) {
  EXPECT_TRUE(grammar.matches(text)) << text;
  ToolCallParser parser(format, kTools);
  ParsedDelta delta = parser.push(text);
  ParsedDelta tail = parser.finish();
  EXPECT_EQ(delta.content + tail.content, "") << text;
  EXPECT_EQ(parser.tool_call_count(), static_cast<int>(names.size())) << text;
}

TEST(ForcedToolCallGrammar, Hermes) {
  auto g = grammar_for(ToolCallFormat::kHermes, "get_weather", false);
  expect_accepted_call(ToolCallFormat::kHermes, *g,
                       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                       "\"Paris\", \"days\": 3}}\n</tool_call>",
                       {"get_weather"});
  EXPECT_FALSE(
      g->matches("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(
      g->matches("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 3}}"
                 "\n</tool_call>"));  // city is required
  EXPECT_FALSE(
      g->matches("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                 "\"Paris\", \"days\": \"3\"}}\n</tool_call>"));
  EXPECT_FALSE(
      g->matches("Sure <tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                 "{\"city\": \"Paris\"}}\n</tool_call>"));
  const std::string two =
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n"
      "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>";
  auto any = grammar_for(ToolCallFormat::kHermes, "", false);
  EXPECT_FALSE(any->matches(two));
  auto any_parallel = grammar_for(ToolCallFormat::kHermes, "", true);
  expect_accepted_call(ToolCallFormat::kHermes, *any_parallel, two, {"get_time", "get_weather"});
}

TEST(ForcedToolCallGrammar, LlamaMistralGeneric) {
  auto llama = grammar_for(ToolCallFormat::kLlama3Json, "get_weather", false);
  expect_accepted_call(ToolCallFormat::kLlama3Json, *llama,
                       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
                       {"get_weather"});
  EXPECT_FALSE(llama->matches("{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"));

  auto mistral = grammar_for(ToolCallFormat::kMistral, "", true);
  expect_accepted_call(ToolCallFormat::kMistral, *mistral,
                       "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                       "\"Paris\", \"unit\": \"celsius\"}}, {\"name\": \"get_time\", "
                       "\"arguments\": {}}]",
                       {"get_weather", "get_time"});
  EXPECT_FALSE(
      mistral->matches("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": "
                       "{\"city\": \"Paris\", \"unit\": \"kelvin\"}}]"));
  EXPECT_FALSE(mistral->matches("[TOOL_CALLS][]"));

  auto generic = grammar_for(ToolCallFormat::kGeneric, "get_time", false);
  expect_accepted_call(ToolCallFormat::kGeneric, *generic,
                       "<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
                       {"get_time"});
  EXPECT_FALSE(generic->matches("<tool_call>{\"name\": \"get_time\", \"arguments\": {}}"));
}

TEST(ForcedToolCallGrammar, Atem) {
  auto g = grammar_for(ToolCallFormat::kAtem, "get_weather", false);
  const std::string call =
      "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
      "<atem:parameter name=\"city\">New York</atem:parameter>\n"
      "<atem:parameter name=\"days\">3</atem:parameter>\n"
      "<atem:parameter name=\"unit\">celsius</atem:parameter>\n"
      "</atem:invoke>\n</atem:function_calls>";
  expect_accepted_call(ToolCallFormat::kAtem, *g, call, {"get_weather"});
  expect_accepted_call(ToolCallFormat::kAtem, *g,
                       "<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
                       "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
                       "</atem:invoke>\n</atem:function_calls>",
                       {"get_weather"});
  // Missing required city; a non-integer day; a unit outside the enum; '<' in a string.
  EXPECT_FALSE(
      g->matches("<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
                 "<atem:parameter name=\"days\">3</atem:parameter>\n"
                 "</atem:invoke>\n</atem:function_calls>"));
  EXPECT_FALSE(
      g->matches("<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
                 "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
                 "<atem:parameter name=\"days\">three</atem:parameter>\n"
                 "</atem:invoke>\n</atem:function_calls>"));
  EXPECT_FALSE(
      g->matches("<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
                 "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
                 "<atem:parameter name=\"unit\">kelvin</atem:parameter>\n"
                 "</atem:invoke>\n</atem:function_calls>"));
  EXPECT_FALSE(
      g->matches("<atem:function_calls>\n<atem:invoke name=\"get_weather\">\n"
                 "<atem:parameter name=\"city\">a<b</atem:parameter>\n"
                 "</atem:invoke>\n</atem:function_calls>"));
  auto parallel = grammar_for(ToolCallFormat::kAtem, "", true);
  expect_accepted_call(ToolCallFormat::kAtem, *parallel,
                       "<atem:function_calls>\n<atem:invoke name=\"get_time\">\n</atem:invoke>\n"
                       "<atem:invoke name=\"get_weather\">\n"
                       "<atem:parameter name=\"city\">Paris</atem:parameter>\n"
                       "</atem:invoke>\n</atem:function_calls>",
                       {"get_time", "get_weather"});
}

TEST(ForcedToolCallGrammar, Errors) {
  EXPECT_THROW(forced_tool_call_grammar(ToolCallFormat::kHermes, kTools, "nope", false), Error);
  EXPECT_THROW(forced_tool_call_grammar(ToolCallFormat::kHermes, json::array(), "", false), Error);
  json pattern_tools = json::parse(R"([{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {"s": {"type": "string", "pattern": "a+"}}}}}])");
  for (auto format : {ToolCallFormat::kHermes, ToolCallFormat::kAtem}) {
    EXPECT_THROW(forced_tool_call_grammar(format, pattern_tools, "f", false), Error);
  }
}

}  // namespace
}  // namespace muse::text
