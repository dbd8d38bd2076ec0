// Helpers shared by the tool-calling files (tool_calls.h is the public contract).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace muse::text::tool_calls_internal {

// The function object of one entry of an OpenAI `tools` list: entry.function for
// {"type": "function", "function": {...}}, else the entry itself when it has a name.
// nullptr when the entry has no function name.
const nlohmann::ordered_json* function_of(const nlohmann::ordered_json& tool);

// The function object named `name` in `tools`; nullptr when there is none.
const nlohmann::ordered_json* find_function(const nlohmann::ordered_json& tools,
                                            std::string_view name);

// The JSON schema of a function's parameters ({"type": "object"} when absent).
nlohmann::ordered_json parameters_schema(const nlohmann::ordered_json& function);

// Text of one call as the JSON formats write it: {"name": "f", "<args_key>": {...}}.
std::string json_call_text(std::string_view name, const nlohmann::ordered_json& arguments,
                           std::string_view args_key = "arguments");

// JSON text with Python json.dumps separators (", ", ": "), as templates' tojson writes it.
std::string python_style_json(const nlohmann::ordered_json& value);

// Tags of an XML-like call syntax: block_open, then invokes
// invoke_open NAME name_close (param_open PARAM name_close VALUE param_close)* invoke_close,
// then block_close. Values are raw text for strings and JSON for other types.
struct XmlCallSyntax {
  std::string_view block_open;
  std::string_view block_close;
  std::string_view invoke_open;
  std::string_view invoke_close;
  std::string_view param_open;
  std::string_view param_close;
  std::string_view name_close;
  bool single_invoke;        // one invoke per block
  bool trim_value_newlines;  // values are written between newlines
};

// Muse Glimmer (see ../shared/templates/muse-glimmer.jinja).
inline constexpr XmlCallSyntax kAtemSyntax{"<atem:function_calls>",
                                           "</atem:function_calls>",
                                           "<atem:invoke name=\"",
                                           "</atem:invoke>",
                                           "<atem:parameter name=\"",
                                           "</atem:parameter>",
                                           "\">",
                                           false,
                                           false};
// Qwen3-Coder / Qwen3.5 bodies inside <tool_call> (parsed as part of kHermes).
inline constexpr XmlCallSyntax kQwenXmlSyntax{
    "<tool_call>", "</tool_call>", "<function=", "</function>", "<parameter=", "</parameter>",
    ">",           true,           true};

// The JSON value of an XML-like parameter written as `text`: raw text is a string unless
// the function's schema for `param` allows a non-string JSON type and `text` parses as a
// value of that type (no declared type: any non-string JSON value). Python's True/False/
// None are accepted for boolean/null parameters (Qwen3-Coder's template writes them so).
nlohmann::ordered_json xml_parameter_value(std::string_view text,
                                           const nlohmann::ordered_json& function,
                                           const std::string& param);

}  // namespace muse::text::tool_calls_internal
