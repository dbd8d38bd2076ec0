// forced_tool_call_grammar: grammar text (text/grammar.h) that makes the model write tool
// calls in a format's own syntax, with arguments that match each function's JSON schema.
#include <algorithm>

#include "muse/error.h"
#include "text/grammar.h"
#include "text/tool_calls.h"
#include "text/tool_calls_internal.h"

namespace muse::text {

namespace {

using json = nlohmann::ordered_json;
using tool_calls_internal::kAtemSyntax;

std::string json_string(std::string_view text) {
  return json(std::string(text)).dump();
}

// True when a parameter's value is written as raw text (a string, or a value whose schema
// admits strings or says nothing): the grammar allows text without '<' there.
bool written_as_text(const json& schema) {
  if (!schema.is_object() || !schema.contains("type")) return true;
  const json& type = schema["type"];
  if (type.is_string()) return type == "string";
  if (type.is_array()) return std::find(type.begin(), type.end(), json("string")) != type.end();
  return true;
}

// String enum values are written raw: alternatives of their literals; empty when the
// property is not such an enum.
std::string string_enum_alternatives(const json& schema) {
  if (!schema.is_object() || !schema.contains("enum") || !schema["enum"].is_array() ||
      schema["enum"].empty()) {
    return {};
  }
  std::string alternatives;
  for (const json& value : schema["enum"]) {
    if (!value.is_string()) return {};
    if (!alternatives.empty()) alternatives += " | ";
    alternatives += grammar_literal(value.get<std::string>());
  }
  return "(" + alternatives + ")";
}

// ATEM: the parameters of one invoke, in the schema's property order, required ones
// mandatory. Appends the value rules to `rules`; returns the rule body of the sequence.
std::string atem_parameters(const json& schema, const std::string& prefix, std::string& rules) {
  auto param = [](std::string_view name, const std::string& value) {
    return grammar_literal(str_cat(kAtemSyntax.param_open, name, kAtemSyntax.name_close)) + " " +
           value + " " + grammar_literal(str_cat(kAtemSyntax.param_close, "\n"));
  };
  const json* properties = nullptr;
  if (schema.is_object() && schema.contains("properties") && schema["properties"].is_object()) {
    properties = &schema["properties"];
  }
  if (properties == nullptr || properties->empty()) {
    // No declared parameters: any named text parameters.
    return "(" + grammar_literal(kAtemSyntax.param_open) + " [a-zA-Z0-9_.-]+ " +
           grammar_literal(kAtemSyntax.name_close) + " [^<]* " +
           grammar_literal(str_cat(kAtemSyntax.param_close, "\n")) + ")*";
  }
  std::vector<std::string> required;
  if (schema.contains("required") && schema["required"].is_array()) {
    for (const json& name : schema["required"]) {
      if (name.is_string()) required.push_back(name.get<std::string>());
    }
  }
  std::string sequence;
  int index = 0;
  for (const auto& [name, property] : properties->items()) {
    std::string value_rule = str_cat(prefix, "p", index);
    // Converting also rejects schemas the converter does not support.
    std::string converted = json_schema_to_grammar(property, value_rule, value_rule + "-");
    std::string enum_values = string_enum_alternatives(property);
    if (!enum_values.empty()) {
      rules += str_cat(value_rule, " ::= ", enum_values, "\n");
    } else if (written_as_text(property)) {
      rules += str_cat(value_rule, " ::= [^<]*\n");
    } else {
      rules += converted + "\n";
    }
    bool is_required = std::find(required.begin(), required.end(), name) != required.end();
    if (!sequence.empty()) sequence += " ";
    sequence += "(" + param(name, value_rule) + ")" + (is_required ? "" : "?");
    ++index;
  }
  return sequence;
}

}  // namespace

std::string forced_tool_call_grammar(ToolCallFormat format, const json& tools,
                                     std::string_view function_name, bool parallel) {
  std::vector<const json*> functions;
  if (function_name.empty()) {
    MUSE_CHECK(tools.is_array() && !tools.empty(), "tool_choice requires a non-empty tools list");
    for (const json& tool : tools) {
      const json* fn = tool_calls_internal::function_of(tool);
      MUSE_CHECK(fn != nullptr, "each tool needs a function with a string name");
      functions.push_back(fn);
    }
  } else {
    const json* fn = tool_calls_internal::find_function(tools, function_name);
    MUSE_CHECK(fn != nullptr, "tool_choice names function '", function_name,
               "', which is not in tools");
    functions.push_back(fn);
  }

  std::string rules;
  std::string call_alternatives;
  for (size_t i = 0; i < functions.size(); ++i) {
    const json& fn = *functions[i];
    const std::string name = fn["name"].get<std::string>();
    const std::string prefix = str_cat("tc", i, "-");
    const json schema = tool_calls_internal::parameters_schema(fn);
    std::string body;
    if (format == ToolCallFormat::kAtem) {
      std::string params = atem_parameters(schema, prefix, rules);
      body = grammar_literal(str_cat(kAtemSyntax.invoke_open, name, kAtemSyntax.name_close, "\n")) +
             " " + params + " " + grammar_literal(str_cat(kAtemSyntax.invoke_close, "\n"));
    } else {
      const std::string args_rule = prefix + "args";
      rules += json_schema_to_grammar(schema, args_rule, prefix) + "\n";
      const char* args_key = format == ToolCallFormat::kLlama3Json ? "parameters" : "arguments";
      std::string head = str_cat("{\"name\": ", json_string(name), ", \"", args_key, "\": ");
      std::string open, close = "}";
      if (format == ToolCallFormat::kHermes) {
        open = "<tool_call>\n";
        close = "}\n</tool_call>";
      } else if (format == ToolCallFormat::kGeneric) {
        open = "<tool_call>";
        close = "}</tool_call>";
      }
      body = grammar_literal(open + head) + " " + args_rule + " " + grammar_literal(close);
    }
    rules += str_cat(prefix, "call ::= ", body, "\n");
    if (!call_alternatives.empty()) call_alternatives += " | ";
    call_alternatives += prefix + "call";
  }

  std::string root;
  switch (format) {
    case ToolCallFormat::kHermes:
    case ToolCallFormat::kGeneric:
    case ToolCallFormat::kLlama3Json:
      root = parallel ? "call (\"\\n\" call)*" : "call";
      break;
    case ToolCallFormat::kMistral:
      root =
          parallel ? "\"[TOOL_CALLS][\" call (\", \" call)* \"]\"" : "\"[TOOL_CALLS][\" call \"]\"";
      break;
    case ToolCallFormat::kAtem:
      root = str_cat(grammar_literal(str_cat(kAtemSyntax.block_open, "\n")), " call",
                     parallel ? "+" : "", " ", grammar_literal(kAtemSyntax.block_close));
      break;
  }
  return str_cat("root ::= ", root, "\ncall ::= ", call_alternatives, "\n", rules);
}

}  // namespace muse::text
