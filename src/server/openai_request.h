// OpenAI request bodies, parsed and validated into Muse's terms. Every invalid value is
// rejected with a 400 ApiError naming the field (never clamped silently); unknown fields
// are ignored, as OpenAI's API does.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sampler.h"

namespace muse::server {

struct RequestLimits {
  int64_t max_messages = 1024;
  int64_t max_n = 16;
  int64_t max_tokens = 32768;
  int64_t max_json_depth = 64;
};

// Parses a request body. Rejects nesting deeper than max_depth before the JSON parser
// sees it (a deeply nested body must not exhaust the stack), invalid UTF-8 and invalid
// JSON, with 400. The body must be an object.
nlohmann::ordered_json parse_request_body(std::string_view body, int64_t max_depth);

// What both endpoints share.
struct GenerationParams {
  SamplingParams sampling;
  int n = 1;
  std::vector<std::string> stop;      // at most 4 non-empty strings
  std::optional<int64_t> max_tokens;  // absent: up to the context's end
  bool logprobs = false;
  int top_logprobs = 0;  // 0..20; only with logprobs
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool ignore_eos = false;     // extension (vLLM/llama.cpp name)
  int priority = 0;  // not a request field: set by the server from the caller's tier
};

enum class ResponseFormatKind { kText, kJsonObject, kJsonSchema };
struct ResponseFormat {
  ResponseFormatKind kind = ResponseFormatKind::kText;
  nlohmann::ordered_json schema;  // kJsonSchema
  std::string name;
  bool strict = false;
};

enum class ToolChoiceKind { kAuto, kNone, kRequired, kFunction };
struct ToolChoice {
  ToolChoiceKind kind = ToolChoiceKind::kAuto;
  std::string function;  // kFunction
};

struct ChatRequest {
  std::string model;
  nlohmann::ordered_json messages;  // validated; developer role mapped to system
  nlohmann::ordered_json tools;     // null when none; else [{type:function, function:{...}}]
  ToolChoice tool_choice;
  bool parallel_tool_calls = true;
  ResponseFormat response_format;
  GenerationParams gen;
};

// A prompt of the completions endpoint: text or token ids.
struct CompletionPrompt {
  std::string text;
  std::vector<int32_t> tokens;
  bool is_tokens = false;
};

struct CompletionRequest {
  std::string model;
  std::vector<CompletionPrompt> prompts;
  bool echo = false;
  GenerationParams gen;  // logprobs: the legacy integer (0..5) sets top_logprobs
};

ChatRequest parse_chat_request(const nlohmann::ordered_json& body, const RequestLimits& limits);
CompletionRequest parse_completion_request(const nlohmann::ordered_json& body,
                                           const RequestLimits& limits);

}  // namespace muse::server
