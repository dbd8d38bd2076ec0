// A small client for OpenAI-compatible HTTP endpoints (Muse itself, a remote
// provider, a judge model): JSON requests with a bearer key, plain or streamed
// (server-sent events passed through chunk by chunk). Used by the gateway/mirror,
// `muse grade` and `muse eval`. Thread-safe: each call uses its own connection.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace muse::platform {

struct EndpointConfig {
  std::string base_url;  // e.g. "http://127.0.0.1:8080/v1" or "https://api.example.com/v1"
  std::string api_key;   // sent as "Authorization: Bearer <key>" when not empty
  int timeout_ms = 120000;  // connect + whole response
};

struct HttpResult {
  int status = 0;  // 0: no response (connection failed or timed out; see error)
  std::string body;
  std::string content_type;
  std::string retry_after;  // the Retry-After header, if any
  std::string error;        // transport error text when status == 0
  double seconds = 0;       // wall time of the call
};

class OpenAIClient {
 public:
  explicit OpenAIClient(EndpointConfig config);

  // POST {base_url}{path} (path like "/chat/completions") with a JSON body.
  HttpResult post_json(const std::string& path, const nlohmann::json& body) const;
  // The same, delivering the response body as it arrives (for "stream": true
  // requests); on_data returns false to stop. The returned body is empty when
  // on_data received everything.
  HttpResult post_stream(const std::string& path, const nlohmann::json& body,
                         const std::function<bool(const char* data, size_t size)>& on_data) const;

  // Convenience for graders: a non-streaming chat completion; returns the parsed
  // response or throws muse::Error with the status and error message.
  nlohmann::json chat(const nlohmann::json& request) const;

  const EndpointConfig& config() const { return config_; }

 private:
  EndpointConfig config_;
};

}  // namespace muse::platform
