// Tool calling: how each model family writes tool calls, how to prepare OpenAI-style
// messages for its chat template, a streaming parser that turns generated text into
// structured tool-call deltas, and grammars that force a call.
//
// Formats (what the model emits):
//   kHermes     <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>   (Qwen 2/2.5/3,
//               Hermes 2/3, SmolLM3, ...); several blocks for parallel calls. The parser also
//               reads Qwen3-Coder/Qwen3.5 bodies <function=f><parameter=p>v</parameter>...
//               </function> inside <tool_call>.
//   kLlama3Json {"name": "f", "parameters": {...}}  (Llama 3.1/3.2/3.3; optionally after
//               <|python_tag|>; several calls separated by ';' or newlines).
//   kMistral    [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]  (the parser also takes
//               Granite's <|tool_call|> marker, and a bare list at the start of the output)
//   kAtem       Muse Glimmer's <atem:function_calls><atem:invoke name="f">
//               <atem:parameter name="p">value</atem:parameter>...</atem:invoke>
//               </atem:function_calls> (see ../shared/templates/muse-glimmer.jinja).
//   kGeneric    for templates without tool syntax of their own: the tool definitions are
//               put into the system prompt and the model answers with
//               <tool_call>{"name": "f", "arguments": {...}}</tool_call>.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace muse::text {

enum class ToolCallFormat { kHermes, kLlama3Json, kMistral, kAtem, kGeneric };

const char* tool_call_format_name(ToolCallFormat format);
// Parses "hermes", "llama3_json", "mistral", "atem", "generic"; throws muse::Error otherwise.
ToolCallFormat parse_tool_call_format(std::string_view name);

// The format a chat template uses (recognised from its tool syntax); kGeneric when the
// template does not render `tools` itself.
ToolCallFormat detect_tool_call_format(std::string_view chat_template);

// Turns OpenAI chat messages into what chat templates expect, without changing meaning:
//  - content given as an array of parts becomes one string (text parts joined) when every
//    part is text (other part types are left for the multimodal path);
//  - assistant tool_calls[].function.arguments given as a JSON string is parsed into an
//    object (templates render it with tojson); a string that is not JSON stays a string;
//  - kMistral: call ids are mapped to the 9-character alphanumeric ids Mistral's template
//    requires (consistently in tool_calls and tool_call_id);
//  - kLlama3Json: an assistant message with several tool_calls becomes consecutive
//    assistant messages with one call each (Llama's templates accept one per message);
//  - kGeneric: the tool definitions and the call syntax are added to the system message,
//    or, when there is none, at the start of the first user message (templates such as
//    Gemma's reject a system role; a system message is created only when there is no user
//    message); assistant tool calls are written back as the tagged JSON the model would
//    emit, and tool-role messages become user messages wrapping the result in
//    <tool_response>...</tool_response> (consecutive results share one user message).
// Throws muse::Error for messages that are not objects with a string role.
nlohmann::ordered_json prepare_messages(const nlohmann::ordered_json& messages,
                                        const nlohmann::ordered_json& tools, ToolCallFormat format);

// Grammar text (text/grammar.h syntax, start rule "root") that forces the model to emit
// tool calls in `format`: one call (or, with parallel, one or more) of the function named
// `function_name`, or of any of `tools` when it is empty, with arguments matching that
// function's JSON schema (`parameters`). Throws muse::Error for an unknown function name
// or a schema the grammar converter does not support.
std::string forced_tool_call_grammar(ToolCallFormat format, const nlohmann::ordered_json& tools,
                                     std::string_view function_name, bool parallel);

// One piece of a streamed tool call. The first delta of a call carries its index, id and
// name with arguments == ""; later deltas of the same index carry only argument text
// fragments (id and name empty). The concatenated fragments are the call's arguments as a
// JSON object text.
struct ToolCallDelta {
  int index = 0;
  std::string id;
  std::string name;
  std::string arguments;
};

struct ParsedDelta {
  std::string content;  // ordinary text to show the user
  std::vector<ToolCallDelta> tool_calls;
  bool empty() const { return content.empty() && tool_calls.empty(); }
};

// Incremental parser over the generated text. Text that may be the start of a tool call is
// held back until it is known; everything else is passed through as content as soon as
// possible. Calls are numbered from 0 in order.
class ToolCallParser {
 public:
  // tools: the request's tool list (names are used to recognise calls); parsing is only
  // active when it is non-empty, else everything is content.
  ToolCallParser(ToolCallFormat format, const nlohmann::ordered_json& tools);
  ~ToolCallParser();
  ToolCallParser(ToolCallParser&&) noexcept;
  ToolCallParser& operator=(ToolCallParser&&) noexcept;

  ParsedDelta push(std::string_view text);
  // End of generation: returns whatever was held back. An unfinished or malformed call is
  // returned as content, unless its name and arguments were already streamed.
  ParsedDelta finish();
  int tool_call_count() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// A fresh tool-call id: "call_" followed by 24 random alphanumeric characters.
std::string make_tool_call_id();

}  // namespace muse::text
