#include "server/openai_request.h"

#include <cmath>

#include "server/api_error.h"

namespace muse::server {

using nlohmann::ordered_json;

nlohmann::ordered_json parse_request_body(std::string_view body, int64_t max_depth) {
  // Depth pre-scan outside strings: nlohmann's parser recurses per level.
  int64_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth)
        throw invalid_request("request body nests deeper than " + std::to_string(max_depth) +
                              " levels");
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  ordered_json j;
  try {
    j = ordered_json::parse(body);
  } catch (const ordered_json::exception& e) {
    throw invalid_request(std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw invalid_request("request body must be a JSON object");
  return j;
}

namespace {

bool present(const ordered_json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && !it->is_null();
}

double get_number(const ordered_json& body, const char* key, double lo, double hi,
                  bool lo_open = false) {
  const auto& v = body.at(key);
  if (!v.is_number()) throw invalid_request(std::string(key) + " must be a number", key);
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    throw invalid_request(std::string(key) + " must be " + (lo_open ? "in (" : "in [") +
                              std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump(),
                          key);
  return x;
}

int64_t get_integer(const ordered_json& body, const char* key, int64_t lo, int64_t hi) {
  const auto& v = body.at(key);
  if (!v.is_number_integer()) throw invalid_request(std::string(key) + " must be an integer", key);
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)
                        ? INT64_MAX
                        : v.get<int64_t>();
  if (x < lo || x > hi)
    throw invalid_request(std::string(key) + " must be in [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "], got " + v.dump(),
                          key);
  return x;
}

bool get_bool(const ordered_json& body, const char* key) {
  const auto& v = body.at(key);
  if (!v.is_boolean()) throw invalid_request(std::string(key) + " must be a boolean", key);
  return v.get<bool>();
}

std::string get_model(const ordered_json& body) {
  if (!present(body, "model")) throw invalid_request("model is required", "model");
  if (!body["model"].is_string()) throw invalid_request("model must be a string", "model");
  return body["model"].get<std::string>();
}

void parse_stop(const ordered_json& body, GenerationParams& gen) {
  if (!present(body, "stop")) return;
  const auto& v = body["stop"];
  auto add = [&](const ordered_json& s) {
    if (!s.is_string())
      throw invalid_request("stop must be a string or an array of strings", "stop");
    if (s.get<std::string>().empty())
      throw invalid_request("stop strings must not be empty", "stop");
    gen.stop.push_back(s.get<std::string>());
  };
  if (v.is_array()) {
    if (v.size() > 4) throw invalid_request("stop takes at most 4 sequences", "stop");
    for (const auto& s : v) add(s);
  } else {
    add(v);
  }
}

// Fields shared by both endpoints.
void parse_generation(const ordered_json& body, const RequestLimits& limits,
                      GenerationParams& gen) {
  SamplingParams& s = gen.sampling;
  if (present(body, "temperature")) s.temperature = float(get_number(body, "temperature", 0, 2));
  if (present(body, "top_p")) s.top_p = float(get_number(body, "top_p", 0, 1, /*lo_open=*/true));
  if (present(body, "top_k")) {
    const int64_t k = get_integer(body, "top_k", -1, 1 << 30);
    s.top_k = k < 0 ? 0 : int(k);  // -1 disables, as in vLLM
  }
  if (present(body, "min_p")) s.min_p = float(get_number(body, "min_p", 0, 1));
  if (present(body, "repetition_penalty"))
    s.repetition_penalty = float(get_number(body, "repetition_penalty", 0, 10, true));
  if (present(body, "presence_penalty"))
    s.presence_penalty = float(get_number(body, "presence_penalty", -2, 2));
  if (present(body, "frequency_penalty"))
    s.frequency_penalty = float(get_number(body, "frequency_penalty", -2, 2));
  if (present(body, "seed")) {
    const auto& v = body["seed"];
    if (!v.is_number_integer()) throw invalid_request("seed must be an integer", "seed");
    s.seed = v.is_number_unsigned() ? v.get<uint64_t>() : uint64_t(v.get<int64_t>());
  }
  if (present(body, "logit_bias")) {
    const auto& lb = body["logit_bias"];
    if (!lb.is_object()) throw invalid_request("logit_bias must be an object", "logit_bias");
    for (const auto& [key, value] : lb.items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || id > INT32_MAX)
        throw invalid_request("logit_bias keys must be token ids, got '" + key + "'", "logit_bias");
      if (!value.is_number() || !std::isfinite(value.get<double>()) ||
          std::fabs(value.get<double>()) > 100)
        throw invalid_request("logit_bias values must be numbers in [-100, 100]", "logit_bias");
      s.logit_bias[int32_t(id)] = value.get<float>();
    }
  }
  if (present(body, "n")) gen.n = int(get_integer(body, "n", 1, limits.max_n));
  parse_stop(body, gen);
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    if (present(body, key)) {
      gen.max_tokens = get_integer(body, key, 1, limits.max_tokens);
      break;
    }
  }
  if (present(body, "stream")) gen.stream = get_bool(body, "stream");
  if (present(body, "stream_options")) {
    const auto& so = body["stream_options"];
    if (!so.is_object())
      throw invalid_request("stream_options must be an object", "stream_options");
    if (!gen.stream)
      throw invalid_request("stream_options is only allowed with stream: true", "stream_options");
    if (present(so, "include_usage")) gen.include_usage = get_bool(so, "include_usage");
  }
  if (present(body, "ignore_eos")) gen.ignore_eos = get_bool(body, "ignore_eos");
}

// Validates a message's content. Text parts pass as they are; media parts are checked for
// shape (their URLs and base64 are resolved later by media_parts.cpp) and normalised to
// {"type": "image_url", "image_url": {"url", "detail"?}} (from the string form and from the
// Responses-style input_image) and {"type": "input_audio", "input_audio": {"data",
// "format"}}. Only user messages may carry media.
ordered_json content_to_template_form(const ordered_json& content, size_t i,
                                      const std::string& role) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) throw invalid_request(where + " must be a string or an array", where);
  ordered_json out = ordered_json::array();
  for (size_t j = 0; j < content.size(); ++j) {
    const auto& part = content[j];
    const std::string at = where + "[" + std::to_string(j) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      throw invalid_request(at + " must be an object with a string type", at);
    const std::string type = part["type"];
    if (type == "text" || type == "input_text") {
      if (!part.contains("text") || !part["text"].is_string())
        throw invalid_request(at + " text parts need a string 'text'", at + ".text");
      out.push_back(part);
      continue;
    }
    if (type != "image_url" && type != "input_image" && type != "input_audio")
      throw invalid_request("unknown content part type '" + type + "'", at + ".type");
    if (role != "user")
      throw invalid_request(at + ": only user messages may contain " + type + " parts", at,
                            "invalid_content_part");
    if (type == "input_audio") {
      const auto it = part.find("input_audio");
      if (it == part.end() || !it->is_object())
        throw invalid_request(at + ".input_audio must be an object with data and format",
                              at + ".input_audio");
      for (const char* key : {"data", "format"}) {
        const auto v = it->find(key);
        if (v == it->end() || !v->is_string() || v->get_ref<const std::string&>().empty())
          throw invalid_request(at + ".input_audio." + key + " must be a non-empty string",
                                at + ".input_audio." + key);
      }
      out.push_back(part);
      continue;
    }
    // image_url: {"url", "detail"?} or a bare string; input_image: "image_url" string at
    // the part's top level with an optional top-level "detail".
    const auto it = part.find("image_url");
    if (it == part.end() || !(it->is_string() || it->is_object()))
      throw invalid_request(at + ".image_url must be an object with a url (or a url string)",
                            at + ".image_url");
    ordered_json image = ordered_json::object();
    const ordered_json* detail = nullptr;
    if (it->is_string()) {
      image["url"] = *it;
      const auto d = part.find("detail");
      if (d != part.end() && !d->is_null()) detail = &*d;
    } else {
      const auto url = it->find("url");
      if (url == it->end() || !url->is_string())
        throw invalid_request(at + ".image_url.url must be a string", at + ".image_url.url");
      image["url"] = *url;
      const auto d = it->find("detail");
      if (d != it->end() && !d->is_null()) detail = &*d;
    }
    if (image["url"].get_ref<const std::string&>().empty())
      throw invalid_request(at + ".image_url.url must not be empty", at + ".image_url.url");
    if (detail != nullptr) {
      if (!detail->is_string() || (*detail != "auto" && *detail != "low" && *detail != "high"))
        throw invalid_request(at + ".image_url.detail must be auto, low or high",
                              at + ".image_url.detail");
      image["detail"] = *detail;
    }
    ordered_json normalised = part;
    normalised["type"] = "image_url";
    normalised["image_url"] = std::move(image);
    normalised.erase("detail");
    out.push_back(std::move(normalised));
  }
  return out;
}

ordered_json validate_messages(const ordered_json& body, const RequestLimits& limits) {
  if (!present(body, "messages")) throw invalid_request("messages is required", "messages");
  const auto& messages = body["messages"];
  if (!messages.is_array() || messages.empty())
    throw invalid_request("messages must be a non-empty array", "messages");
  if (int64_t(messages.size()) > limits.max_messages)
    throw invalid_request("too many messages (limit " + std::to_string(limits.max_messages) + ")",
                          "messages");
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw invalid_request(where + " must be an object", where);
    if (!m.contains("role") || !m["role"].is_string())
      throw invalid_request(where + ".role must be a string", where + ".role");
    std::string role = m["role"];
    if (role != "system" && role != "developer" && role != "user" && role != "assistant" &&
        role != "tool")
      throw invalid_request(where + ".role '" + role +
                                "' is not one of system, developer, user, "
                                "assistant, tool",
                            where + ".role");
    ordered_json msg = m;
    if (role == "developer") msg["role"] = "system";
    if (m.contains("content")) {
      msg["content"] = content_to_template_form(m["content"], i, role);
    } else if (role != "assistant") {
      throw invalid_request(where + ".content is required", where + ".content");
    }
    if (role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array())
        throw invalid_request(where + ".tool_calls must be an array", where + ".tool_calls");
      for (const auto& tc : m["tool_calls"])
        if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object() ||
            !tc["function"].contains("name") || !tc["function"]["name"].is_string())
          throw invalid_request(where + ".tool_calls entries need function.name",
                                where + ".tool_calls");
    }
    if ((!msg.contains("content") || msg["content"].is_null()) &&
        !(role == "assistant" && msg.contains("tool_calls")))
      msg["content"] = "";
    out.push_back(std::move(msg));
  }
  return out;
}

void parse_tools(const ordered_json& body, ChatRequest& req) {
  if (present(body, "tools")) {
    const auto& tools = body["tools"];
    if (!tools.is_array()) throw invalid_request("tools must be an array", "tools");
    for (const auto& t : tools) {
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
          !t["function"].is_object() || !t["function"].contains("name") ||
          !t["function"]["name"].is_string())
        throw invalid_request("each tool must be {type: \"function\", function: {name, ...}}",
                              "tools");
      if (t["function"].contains("parameters") && !t["function"]["parameters"].is_object())
        throw invalid_request("tool parameters must be a JSON schema object", "tools");
    }
    if (!tools.empty()) req.tools = tools;
  }
  if (present(body, "tool_choice")) {
    const auto& tc = body["tool_choice"];
    if (tc.is_string()) {
      const std::string s = tc;
      if (s == "auto")
        req.tool_choice.kind = ToolChoiceKind::kAuto;
      else if (s == "none")
        req.tool_choice.kind = ToolChoiceKind::kNone;
      else if (s == "required")
        req.tool_choice.kind = ToolChoiceKind::kRequired;
      else
        throw invalid_request("tool_choice must be auto, none, required or a function",
                              "tool_choice");
    } else if (tc.is_object() && tc.contains("function") && tc["function"].is_object() &&
               tc["function"].contains("name") && tc["function"]["name"].is_string()) {
      req.tool_choice.kind = ToolChoiceKind::kFunction;
      req.tool_choice.function = tc["function"]["name"];
    } else {
      throw invalid_request("tool_choice must be auto, none, required or a function",
                            "tool_choice");
    }
  }
  if (req.tool_choice.kind == ToolChoiceKind::kRequired ||
      req.tool_choice.kind == ToolChoiceKind::kFunction) {
    if (req.tools.is_null()) throw invalid_request("tool_choice requires tools", "tool_choice");
  }
  if (req.tool_choice.kind == ToolChoiceKind::kFunction) {
    bool found = false;
    for (const auto& t : req.tools) found |= t["function"]["name"] == req.tool_choice.function;
    if (!found)
      throw invalid_request(
          "tool_choice names function '" + req.tool_choice.function + "' which is not in tools",
          "tool_choice");
  }
  if (present(body, "parallel_tool_calls"))
    req.parallel_tool_calls = get_bool(body, "parallel_tool_calls");
}

void parse_response_format(const ordered_json& body, ChatRequest& req) {
  if (!present(body, "response_format")) return;
  const auto& rf = body["response_format"];
  if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
    throw invalid_request("response_format must be an object with a type", "response_format");
  const std::string type = rf["type"];
  if (type == "text") return;
  if (type == "json_object") {
    req.response_format.kind = ResponseFormatKind::kJsonObject;
  } else if (type == "json_schema") {
    const auto it = rf.find("json_schema");
    if (it == rf.end() || !it->is_object() || !it->contains("schema") ||
        !(*it)["schema"].is_object())
      throw invalid_request("response_format.json_schema.schema must be an object",
                            "response_format");
    req.response_format.kind = ResponseFormatKind::kJsonSchema;
    req.response_format.schema = (*it)["schema"];
    req.response_format.name = it->value("name", "");
    req.response_format.strict = it->value("strict", false);
  } else {
    throw invalid_request("response_format type must be text, json_object or json_schema",
                          "response_format");
  }
}

}  // namespace

ChatRequest parse_chat_request(const ordered_json& body, const RequestLimits& limits) {
  ChatRequest req;
  req.model = get_model(body);
  req.messages = validate_messages(body, limits);
  parse_generation(body, limits, req.gen);
  if (present(body, "logprobs")) req.gen.logprobs = get_bool(body, "logprobs");
  if (present(body, "top_logprobs")) {
    req.gen.top_logprobs = int(get_integer(body, "top_logprobs", 0, 20));
    if (!req.gen.logprobs)
      throw invalid_request("top_logprobs requires logprobs: true", "top_logprobs");
  }
  parse_tools(body, req);
  parse_response_format(body, req);
  if (req.response_format.kind != ResponseFormatKind::kText &&
      (req.tool_choice.kind == ToolChoiceKind::kRequired ||
       req.tool_choice.kind == ToolChoiceKind::kFunction))
    throw invalid_request("response_format cannot be combined with a forced tool_choice",
                          "response_format");
  return req;
}

CompletionRequest parse_completion_request(const ordered_json& body, const RequestLimits& limits) {
  CompletionRequest req;
  req.model = get_model(body);
  if (!present(body, "prompt")) throw invalid_request("prompt is required", "prompt");
  const auto& p = body["prompt"];
  auto token_list = [](const ordered_json& a) {
    CompletionPrompt cp;
    cp.is_tokens = true;
    for (const auto& t : a) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
        throw invalid_request("prompt token ids must be non-negative integers", "prompt");
      cp.tokens.push_back(int32_t(t.get<int64_t>()));
    }
    return cp;
  };
  if (p.is_string()) {
    req.prompts.push_back({p.get<std::string>(), {}, false});
  } else if (p.is_array() && !p.empty() && p[0].is_number()) {
    req.prompts.push_back(token_list(p));
  } else if (p.is_array() && !p.empty()) {
    for (const auto& e : p) {
      if (e.is_string())
        req.prompts.push_back({e.get<std::string>(), {}, false});
      else if (e.is_array())
        req.prompts.push_back(token_list(e));
      else
        throw invalid_request("prompt must be a string, token ids, or a list of those", "prompt");
    }
  } else {
    throw invalid_request("prompt must be a non-empty string, token ids, or a list of those",
                          "prompt");
  }
  if (int64_t(req.prompts.size()) > limits.max_n)
    throw invalid_request("too many prompts (limit " + std::to_string(limits.max_n) + ")",
                          "prompt");
  parse_generation(body, limits, req.gen);
  if (!req.gen.max_tokens) req.gen.max_tokens = 16;  // the endpoint's documented default
  if (int64_t(req.prompts.size()) * req.gen.n > limits.max_n)
    throw invalid_request("prompts x n exceeds the limit of " + std::to_string(limits.max_n), "n");
  if (present(body, "logprobs")) {
    req.gen.logprobs = true;
    req.gen.top_logprobs = int(get_integer(body, "logprobs", 0, 5));
  }
  if (present(body, "echo")) req.echo = get_bool(body, "echo");
  if (present(body, "suffix") &&
      !(body["suffix"].is_string() && body["suffix"].get<std::string>().empty()))
    throw invalid_request("suffix is not supported", "suffix");
  if (present(body, "best_of") &&
      !(body["best_of"].is_number_integer() && body["best_of"].get<int64_t>() == req.gen.n))
    throw invalid_request("best_of other than n is not supported", "best_of");
  return req;
}

}  // namespace muse::server
