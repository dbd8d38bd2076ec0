// Muse as a gateway in front of a remote OpenAI-compatible provider (the [mirror] primary
// with a url): the client's request is forwarded with the provider's model name and Muse's
// own credentials for it (never the client's key), and the answer is passed through as it
// arrives: status, content type and body bytes unchanged, event streams chunk by chunk.
// When the provider cannot be reached the client gets OpenAI's error shape with 502 (or
// 504 after the timeout).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/mirror_config.h"

namespace httplib {
struct Response;
}  // namespace httplib

namespace muse::server {

// The assistant's answer as read back from an OpenAI chat/text completion (JSON or
// server-sent events): choice 0's text and the usage counts (0 when not reported).
struct ChatOutput {
  std::string model;
  std::string output;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// choices[0].message.content (or .text; tool calls as their JSON when there is no content).
ChatOutput chat_output_from_json(const nlohmann::json& response);
// The same from an event stream's bytes: deltas of choice 0 concatenated, the usage chunk.
ChatOutput chat_output_from_sse(std::string_view events);

// What forwarding produced (for metrics and the mirror).
struct UpstreamAnswer {
  int status = 0;            // the provider's status, or 502/504 when it gave none
  std::string content_type;  // as sent to the client
  bool streamed = false;     // text/event-stream
  bool client_gone = false;  // the sink refused a write; the upstream call was abandoned
  std::string error;         // transport error ("" when the provider answered)
  double latency_ms = 0;     // request sent to last byte received
  ChatOutput output;         // parsed when status is 2xx (model "" = not reported)
};

// Where a forwarded answer goes. begin is called exactly once, before any write.
struct GatewaySink {
  using Headers = std::vector<std::pair<std::string, std::string>>;
  std::function<void(int status, const std::string& content_type, const Headers& headers)> begin;
  // Body bytes in arrival order; returns false when the client is gone (stops the upstream).
  std::function<bool(const char* data, size_t size)> write;
};

class Gateway {
 public:
  // `remote` must have a url and model (validate_mirror_config checks); its key is read
  // from remote.api_key_env now. timeout_ms bounds connecting and each wait for bytes.
  Gateway(MirrorEndpoint remote, int64_t timeout_ms);

  // Whether a request naming `model` goes to the remote primary: its alias (client_model()).
  bool handles(const std::string& model) const { return model == remote_.client_model(); }

  // The body sent upstream: the client's request with "model" replaced.
  nlohmann::json upstream_request(const nlohmann::json& request) const;

  // Forwards `request` to {url}{path} ("/chat/completions" or "/completions") and passes
  // the answer to `sink`. Blocks until the answer is complete, the sink refuses, or the
  // timeout. Never throws for upstream failures (they go to the sink as OpenAI errors).
  UpstreamAnswer forward(const nlohmann::json& request, const GatewaySink& sink,
                         const std::string& path = "/chat/completions") const;

  const MirrorEndpoint& remote() const { return remote_; }

 private:
  MirrorEndpoint remote_;
  std::string api_key_;
  std::string scheme_host_port_;  // "https://api.x.com:443"
  std::string base_path_;         // "/v1"
  int64_t timeout_ms_;
};

// The cpp-httplib adapter: answers `res` from the gateway. The upstream call runs on its
// own thread so the status is known before the handler returns; an event stream is then
// relayed through a chunked content provider as bytes arrive. on_complete (optional) runs
// once the answer is complete (on that thread), e.g. to offer it to the Mirror.
void respond_via_gateway(const Gateway& gateway, nlohmann::json request, httplib::Response& res,
                         std::function<void(const UpstreamAnswer&)> on_complete = {},
                         const std::string& path = "/chat/completions");

}  // namespace muse::server
