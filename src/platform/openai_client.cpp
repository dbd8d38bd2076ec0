// OpenAIClient over cpp-httplib (see openai_client.h). Each call builds its own
// httplib::Client, so calls from several threads never share a connection.
//
// Timeouts: timeout_ms bounds the connect and every read/write, and the content
// receivers stop the transfer once the whole call has run longer than timeout_ms.
// post_stream hands only successful (2xx) bodies to on_data; an error response's body is
// collected into HttpResult::body so that callers can pass it on in OpenAI's form.
#include "platform/openai_client.h"

#include <httplib.h>

#include <chrono>
#include <utility>

#include "muse/error.h"

namespace muse::platform {
namespace {

using Clock = std::chrono::steady_clock;

struct SplitUrl {
  std::string scheme_host_port;  // "http://host:port"
  std::string path_prefix;       // "/v1" (no trailing slash), may be empty
};

SplitUrl split_base_url(const std::string& base_url) {
  const size_t scheme_end = base_url.find("://");
  MUSE_CHECK(scheme_end != std::string::npos, "endpoint URL '", base_url,
             "' must start with http:// or https://");
  const std::string scheme = base_url.substr(0, scheme_end);
  MUSE_CHECK(scheme == "http" || scheme == "https", "endpoint URL '", base_url,
             "': unsupported scheme '", scheme, "' (use http or https)");
  const size_t path_start = base_url.find('/', scheme_end + 3);
  SplitUrl out;
  out.scheme_host_port = base_url.substr(0, path_start);
  MUSE_CHECK(out.scheme_host_port.size() > scheme_end + 3, "endpoint URL '", base_url,
             "' has no host");
  if (path_start != std::string::npos) out.path_prefix = base_url.substr(path_start);
  while (!out.path_prefix.empty() && out.path_prefix.back() == '/') out.path_prefix.pop_back();
  return out;
}

std::string transport_error_text(httplib::Error error, bool timed_out, int timeout_ms) {
  if (timed_out) return str_cat("timed out after ", timeout_ms, " ms");
  switch (error) {
    case httplib::Error::Connection:
      return "connection failed (refused or unreachable)";
    case httplib::Error::ConnectionTimeout:
      return str_cat("connect timed out after ", timeout_ms, " ms");
    case httplib::Error::Read:
      return "read failed or timed out";
    default:
      return httplib::to_string(error);
  }
}

// Runs one POST; `on_body` receives the body bytes of a response whose status the
// response handler saw (status_ok says whether it is 2xx).
HttpResult send_post(const EndpointConfig& config, const std::string& path,
                     const nlohmann::json& body,
                     const std::function<bool(const char*, size_t)>* on_data) {
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::milliseconds(config.timeout_ms);
  const SplitUrl url = split_base_url(config.base_url);
  httplib::Client client(url.scheme_host_port);
  MUSE_CHECK(client.is_valid(), "endpoint URL '", config.base_url, "' is not valid");
  const time_t secs = config.timeout_ms / 1000;
  const time_t usecs = static_cast<time_t>(config.timeout_ms % 1000) * 1000;
  client.set_connection_timeout(secs, usecs);
  client.set_read_timeout(secs, usecs);
  client.set_write_timeout(secs, usecs);
  client.set_keep_alive(false);

  httplib::Request req;
  req.method = "POST";
  req.path = url.path_prefix + path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", on_data ? "text/event-stream" : "application/json");
  if (!config.api_key.empty()) req.set_header("Authorization", "Bearer " + config.api_key);

  HttpResult result;
  bool timed_out = false;
  bool stopped_by_caller = false;
  bool success_status = false;
  req.response_handler = [&](const httplib::Response& res) {
    result.status = res.status;
    success_status = res.status >= 200 && res.status < 300;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    if (Clock::now() > deadline) {
      timed_out = true;
      return false;
    }
    if (on_data && success_status) {
      if (!(*on_data)(data, size)) {
        stopped_by_caller = true;
        return false;
      }
      return true;
    }
    result.body.append(data, size);
    return true;
  };

  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const bool ok = client.send(req, res, error);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.content_type = res.get_header_value("Content-Type");
  result.retry_after = res.get_header_value("Retry-After");
  if (!ok && !stopped_by_caller) {
    // A timeout after the headers still leaves no complete response: report status 0.
    result.status = 0;
    result.error = transport_error_text(error, timed_out, config.timeout_ms);
    if (!timed_out && Clock::now() >= deadline)
      result.error = str_cat("timed out after ", config.timeout_ms, " ms (", result.error, ")");
  }
  return result;
}

}  // namespace

OpenAIClient::OpenAIClient(EndpointConfig config) : config_(std::move(config)) {
  split_base_url(config_.base_url);  // reject a bad URL at construction
  MUSE_CHECK(config_.timeout_ms > 0, "endpoint timeout must be positive (got ", config_.timeout_ms,
             " ms)");
}

HttpResult OpenAIClient::post_json(const std::string& path, const nlohmann::json& body) const {
  return send_post(config_, path, body, nullptr);
}

HttpResult OpenAIClient::post_stream(
    const std::string& path, const nlohmann::json& body,
    const std::function<bool(const char* data, size_t size)>& on_data) const {
  return send_post(config_, path, body, &on_data);
}

nlohmann::json OpenAIClient::chat(const nlohmann::json& request) const {
  const HttpResult r = post_json("/chat/completions", request);
  const std::string where = config_.base_url + "/chat/completions";
  MUSE_CHECK(r.status != 0, where, ": ", r.error);
  nlohmann::json parsed = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (r.status < 200 || r.status >= 300) {
    std::string message = r.body.substr(0, 500);
    if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_object() &&
        parsed["error"].contains("message") && parsed["error"]["message"].is_string())
      message = parsed["error"]["message"].get<std::string>();
    throw Error(str_cat(where, ": HTTP ", r.status, ": ", message));
  }
  MUSE_CHECK(parsed.is_object(), where, ": the response is not a JSON object");
  return parsed;
}

}  // namespace muse::platform
