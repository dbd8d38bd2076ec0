// Tool-call format names, recognising a chat template's format, call ids, and the helpers
// shared by the other tool-calling files.
#include "text/tool_calls.h"

#include <algorithm>
#include <random>

#include "muse/error.h"
#include "text/tool_calls_internal.h"

namespace muse::text {

namespace {

struct FormatName {
  ToolCallFormat format;
  const char* name;
};

constexpr FormatName kFormatNames[] = {
    {ToolCallFormat::kHermes, "hermes"},   {ToolCallFormat::kLlama3Json, "llama3_json"},
    {ToolCallFormat::kMistral, "mistral"}, {ToolCallFormat::kAtem, "atem"},
    {ToolCallFormat::kGeneric, "generic"},
};

bool contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

// Python's json.dumps layout (", " and ": " separators), as chat templates' tojson writes.
void dump_python_style(const nlohmann::ordered_json& value, std::string& out) {
  if (value.is_object()) {
    out += '{';
    bool first = true;
    for (const auto& [key, item] : value.items()) {
      if (!first) out += ", ";
      first = false;
      out += nlohmann::ordered_json(key).dump();
      out += ": ";
      dump_python_style(item, out);
    }
    out += '}';
  } else if (value.is_array()) {
    out += '[';
    for (size_t i = 0; i < value.size(); ++i) {
      if (i > 0) out += ", ";
      dump_python_style(value[i], out);
    }
    out += ']';
  } else {
    out += value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  }
}

}  // namespace

const char* tool_call_format_name(ToolCallFormat format) {
  for (const auto& entry : kFormatNames) {
    if (entry.format == format) return entry.name;
  }
  return "unknown";
}

ToolCallFormat parse_tool_call_format(std::string_view name) {
  for (const auto& entry : kFormatNames) {
    if (name == entry.name) return entry.format;
  }
  throw Error(str_cat("unknown tool call format '", name,
                      "' (expected hermes, llama3_json, mistral, atem or generic)"));
}

ToolCallFormat detect_tool_call_format(std::string_view chat_template) {
  // A template that never mentions `tools` cannot render tool definitions itself
  // (DeepSeek-R1-Distill, Gemma, Phi-3.5, SmolLM3, firefunction-v2's `functions`).
  if (!contains(chat_template, "tools")) return ToolCallFormat::kGeneric;
  if (contains(chat_template, "<atem:function_calls>")) return ToolCallFormat::kAtem;
  if (contains(chat_template, "[TOOL_CALLS]")) return ToolCallFormat::kMistral;
  // Granite 3.x: <|tool_call|> followed by a JSON list of calls, Mistral's shape with
  // another marker (the Mistral parser accepts both markers).
  if (contains(chat_template, "<|tool_call|>")) return ToolCallFormat::kMistral;
  // Qwen 2/2.5/3, QwQ, Hermes; Qwen3-Coder / Qwen3.5 also wrap calls in <tool_call>.
  if (contains(chat_template, "<tool_call>")) return ToolCallFormat::kHermes;
  // Llama 3.1/3.3 name <|python_tag|>; 3.2 only the ipython role and "parameters".
  if (contains(chat_template, "<|python_tag|>") ||
      (contains(chat_template, "ipython") && contains(chat_template, "\"parameters\""))) {
    return ToolCallFormat::kLlama3Json;
  }
  return ToolCallFormat::kGeneric;
}

std::string make_tool_call_id() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof(kAlphabet)) - 2);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

namespace tool_calls_internal {

const nlohmann::ordered_json* function_of(const nlohmann::ordered_json& tool) {
  if (!tool.is_object()) return nullptr;
  auto fn = tool.find("function");
  if (fn != tool.end() && fn->is_object()) {
    auto name = fn->find("name");
    if (name != fn->end() && name->is_string()) return &*fn;
    return nullptr;
  }
  auto name = tool.find("name");
  if (name != tool.end() && name->is_string()) return &tool;
  return nullptr;
}

const nlohmann::ordered_json* find_function(const nlohmann::ordered_json& tools,
                                            std::string_view name) {
  if (!tools.is_array()) return nullptr;
  for (const auto& tool : tools) {
    const auto* fn = function_of(tool);
    if (fn && (*fn)["name"].get_ref<const std::string&>() == name) return fn;
  }
  return nullptr;
}

nlohmann::ordered_json parameters_schema(const nlohmann::ordered_json& function) {
  auto params = function.find("parameters");
  if (params == function.end() || params->is_null()) return {{"type", "object"}};
  return *params;
}

std::string json_call_text(std::string_view name, const nlohmann::ordered_json& arguments,
                           std::string_view args_key) {
  std::string out = "{\"name\": ";
  out += nlohmann::ordered_json(std::string(name)).dump();
  out += ", ";
  out += nlohmann::ordered_json(std::string(args_key)).dump();
  out += ": ";
  dump_python_style(arguments, out);
  out += '}';
  return out;
}

std::string python_style_json(const nlohmann::ordered_json& value) {
  std::string out;
  dump_python_style(value, out);
  return out;
}

}  // namespace tool_calls_internal

}  // namespace muse::text

namespace muse::text::tool_calls_internal {

namespace {

// The JSON types a schema declares ("type": "x" or ["x", "y"]); empty when it declares none.
std::vector<std::string> declared_types(const nlohmann::ordered_json& schema) {
  std::vector<std::string> types;
  if (!schema.is_object()) return types;
  auto type = schema.find("type");
  if (type == schema.end()) return types;
  if (type->is_string()) types.push_back(type->get<std::string>());
  if (type->is_array()) {
    for (const auto& t : *type) {
      if (t.is_string()) types.push_back(t.get<std::string>());
    }
  }
  if (schema.value("nullable", false)) types.push_back("null");
  return types;
}

bool value_has_type(const nlohmann::ordered_json& value, const std::string& type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    if (!value.is_number_float()) return false;
    double d = value.get<double>();
    return d == static_cast<double>(static_cast<long long>(d));
  }
  return false;
}

}  // namespace

nlohmann::ordered_json xml_parameter_value(std::string_view text,
                                           const nlohmann::ordered_json& function,
                                           const std::string& param) {
  nlohmann::ordered_json schema = parameters_schema(function);
  nlohmann::ordered_json property;
  if (schema.is_object() && schema.contains("properties") && schema["properties"].is_object() &&
      schema["properties"].contains(param)) {
    property = schema["properties"][param];
  }
  std::vector<std::string> types = declared_types(property);
  auto allows = [&](const std::string& type) {
    return std::find(types.begin(), types.end(), type) != types.end();
  };
  auto parsed = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_discarded() && !parsed.is_string()) {
    if (types.empty()) return parsed;
    for (const auto& type : types) {
      if (value_has_type(parsed, type)) return parsed;
    }
  }
  if (allows("boolean") && (text == "True" || text == "False")) return text == "True";
  if (allows("null") && text == "None") return nullptr;
  return std::string(text);
}

}  // namespace muse::text::tool_calls_internal
