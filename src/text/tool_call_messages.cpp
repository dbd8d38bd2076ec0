// prepare_messages: OpenAI chat messages -> what chat templates expect, per tool format.
#include <cctype>
#include <map>
#include <set>

#include "muse/error.h"
#include "text/tool_calls.h"
#include "text/tool_calls_internal.h"

namespace muse::text {

namespace {

using json = nlohmann::ordered_json;
using tool_calls_internal::function_of;
using tool_calls_internal::json_call_text;
using tool_calls_internal::python_style_json;

// Content given as parts becomes one string when every part is text; anything else is
// left for the multimodal path.
void flatten_text_parts(json& message) {
  auto content = message.find("content");
  if (content == message.end() || !content->is_array()) return;
  std::string text;
  for (size_t i = 0; i < content->size(); ++i) {
    const json& part = (*content)[i];
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      return;
    }
    if (i > 0) text += '\n';
    text += part["text"].get<std::string>();
  }
  *content = text;
}

// tool_calls[].function.arguments given as a JSON object text becomes the object.
void parse_call_arguments(json& message) {
  auto calls = message.find("tool_calls");
  if (calls == message.end() || !calls->is_array()) return;
  for (json& call : *calls) {
    if (!call.is_object()) continue;
    auto fn = call.find("function");
    if (fn == call.end() || !fn->is_object()) continue;
    auto args = fn->find("arguments");
    if (args == fn->end() || !args->is_string()) continue;
    json parsed = json::parse(args->get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) *args = std::move(parsed);
  }
  // Templates concatenate content; a call-only message usually has content null.
  auto content = message.find("content");
  if (!calls->empty() && (content == message.end() || content->is_null())) {
    message["content"] = "";
  }
}

// Mistral's template requires 9-character alphanumeric call ids; OpenAI clients send ids
// like "call_...". Each distinct id is mapped to a stable 9-character one (calls and their
// results keep matching), ids that already fit are kept.
class MistralIdMap {
 public:
  std::string map(const std::string& id) {
    if (is_mistral_id(id)) return id;
    auto it = mapped_.find(id);
    if (it != mapped_.end()) return it->second;
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t hash = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : id) hash = (hash ^ c) * 1099511628211ull;
    std::string out;
    do {
      out.clear();
      uint64_t h = hash;
      for (int i = 0; i < 9; ++i) {
        out += kAlphabet[h % 62];
        h /= 62;
      }
      ++hash;
    } while (used_.count(out) > 0);
    used_.insert(out);
    mapped_[id] = out;
    return out;
  }

 private:
  static bool is_mistral_id(const std::string& id) {
    if (id.size() != 9) return false;
    for (char c : id) {
      if (!std::isalnum(static_cast<unsigned char>(c))) return false;
    }
    return true;
  }
  std::map<std::string, std::string> mapped_;
  std::set<std::string> used_;
};

void remap_mistral_ids(json& messages) {
  MistralIdMap ids;
  for (json& message : messages) {
    if (message.contains("tool_calls") && message["tool_calls"].is_array()) {
      for (json& call : message["tool_calls"]) {
        if (call.is_object() && call.contains("id") && call["id"].is_string()) {
          call["id"] = ids.map(call["id"].get<std::string>());
        }
      }
    }
    if (message.contains("tool_call_id") && message["tool_call_id"].is_string()) {
      message["tool_call_id"] = ids.map(message["tool_call_id"].get<std::string>());
    }
  }
}

// Llama 3.x templates accept one call per assistant message: parallel calls become
// consecutive assistant messages with one call each.
json split_llama_parallel_calls(const json& messages) {
  json out = json::array();
  for (const json& message : messages) {
    auto calls = message.find("tool_calls");
    if (calls == message.end() || !calls->is_array() || calls->size() <= 1) {
      out.push_back(message);
      continue;
    }
    for (const json& call : *calls) {
      json single = message;
      single["tool_calls"] = json::array({call});
      out.push_back(std::move(single));
    }
  }
  return out;
}

std::string text_of_content(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return "";
  return content.dump();
}

// The generic format's instructions (kGeneric): the tool definitions and the call syntax
// the ToolCallParser recognises.
std::string generic_tool_prompt(const json& tools) {
  std::string prompt =
      "# Tools\n\n"
      "You can call functions to help answer the user. These are the available functions, "
      "one JSON definition per line:\n<tools>\n";
  for (const json& tool : tools) {
    const json* fn = function_of(tool);
    if (fn == nullptr) continue;
    json definition = json::object();
    definition["name"] = (*fn)["name"];
    if (fn->contains("description")) definition["description"] = (*fn)["description"];
    definition["parameters"] = tool_calls_internal::parameters_schema(*fn);
    prompt += python_style_json(definition);
    prompt += '\n';
  }
  prompt +=
      "</tools>\n\n"
      "To call a function, write a JSON object with its name and arguments between "
      "<tool_call> and </tool_call>, like this:\n"
      "<tool_call>{\"name\": \"function_name\", \"arguments\": {\"argument_name\": "
      "\"value\"}}</tool_call>\n"
      "Write one such block per call; you may call several functions at once. The results "
      "are given back to you between <tool_response> and </tool_response>. When no "
      "function is needed, answer directly.";
  return prompt;
}

// kGeneric: assistant calls become the tagged text the model would emit; tool results
// become user messages (consecutive results share one message, so templates that require
// alternating roles still accept the conversation); the tool prompt goes into the system
// message, or at the start of the first user message when there is no system message
// (some templates, e.g. Gemma's, reject the system role).
json apply_generic_format(const json& messages, const json& tools) {
  json out = json::array();
  for (const json& message : messages) {
    const std::string& role = message["role"].get_ref<const std::string&>();
    if (role == "tool") {
      std::string block = "<tool_response>\n" + text_of_content(message.value("content", json())) +
                          "\n</tool_response>";
      if (!out.empty() && out.back().value("_muse_tool_results", false)) {
        out.back()["content"] = out.back()["content"].get<std::string>() + "\n" + block;
      } else {
        out.push_back({{"role", "user"}, {"content", block}, {"_muse_tool_results", true}});
      }
      continue;
    }
    json copy = message;
    auto calls = copy.find("tool_calls");
    if (role == "assistant" && calls != copy.end() && calls->is_array()) {
      std::string text = text_of_content(copy.value("content", json()));
      for (const json& call : *calls) {
        const json fn = call.value("function", json::object());
        if (!text.empty()) text += '\n';
        text += "<tool_call>" +
                json_call_text(fn.value("name", ""), fn.value("arguments", json::object())) +
                "</tool_call>";
      }
      copy.erase("tool_calls");
      copy["content"] = text;
    }
    out.push_back(std::move(copy));
  }
  for (json& message : out) message.erase("_muse_tool_results");

  if (!tools.is_array() || tools.empty()) return out;
  const std::string prompt = generic_tool_prompt(tools);
  for (json& message : out) {
    if (message["role"] == "system") {
      std::string text = text_of_content(message.value("content", json()));
      message["content"] = text.empty() ? prompt : text + "\n\n" + prompt;
      return out;
    }
  }
  for (json& message : out) {
    if (message["role"] != "user") continue;
    json& content = message["content"];
    if (content.is_array()) {
      content.insert(content.begin(), json{{"type", "text"}, {"text", prompt + "\n\n"}});
    } else {
      std::string text = text_of_content(content);
      content = text.empty() ? prompt : prompt + "\n\n" + text;
    }
    return out;
  }
  out.insert(out.begin(), json{{"role", "system"}, {"content", prompt}});
  return out;
}

}  // namespace

json prepare_messages(const json& messages, const json& tools, ToolCallFormat format) {
  MUSE_CHECK(messages.is_array(), "messages must be an array");
  json out = json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& message = messages[i];
    MUSE_CHECK(message.is_object(), "messages[", i, "] must be an object");
    auto role = message.find("role");
    MUSE_CHECK(role != message.end() && role->is_string(), "messages[", i,
               "] must have a string role");
    json copy = message;
    flatten_text_parts(copy);
    parse_call_arguments(copy);
    out.push_back(std::move(copy));
  }
  switch (format) {
    case ToolCallFormat::kMistral:
      remap_mistral_ids(out);
      break;
    case ToolCallFormat::kLlama3Json:
      out = split_llama_parallel_calls(out);
      break;
    case ToolCallFormat::kGeneric:
      out = apply_generic_format(out, tools);
      break;
    case ToolCallFormat::kHermes:
    case ToolCallFormat::kAtem:
      break;
  }
  return out;
}

}  // namespace muse::text
