// Small helpers shared by the HTTP route files.
#pragma once

#include <httplib.h>

#include "server/api_error.h"

namespace muse::server {

// Metric names (the contract of GET /metrics; docs/server.md lists them).
namespace metric {
inline constexpr const char* kRequests = "muse_requests_total";
inline constexpr const char* kRunning = "muse_requests_running";
inline constexpr const char* kQueue = "muse_queue_depth";
inline constexpr const char* kCancelled = "muse_requests_cancelled_total";
inline constexpr const char* kPromptTokens = "muse_prompt_tokens_total";
inline constexpr const char* kCachedTokens = "muse_prompt_tokens_cached_total";
inline constexpr const char* kGenTokens = "muse_generation_tokens_total";
inline constexpr const char* kTtft = "muse_time_to_first_token_seconds";
inline constexpr const char* kItl = "muse_inter_token_latency_seconds";
inline constexpr const char* kDuration = "muse_request_duration_seconds";
inline constexpr const char* kEngineHealthy = "muse_engine_healthy";
}  // namespace metric

inline void respond_json(httplib::Response& res, int status, const nlohmann::ordered_json& j) {
  res.status = status;
  res.set_content(dump_json(j), "application/json");
}

inline void respond_error(httplib::Response& res, const ApiError& e) {
  // After a refused body the rest of it is still on the connection: do not reuse it.
  if (e.status == 413) res.set_header("Connection", "close");
  // Capacity errors tell clients when to come back.
  // (A rate limit sets its own, the seconds to its window's end.)
  if ((e.status == 503 || e.status == 429) && !res.has_header("Retry-After"))
    res.set_header("Retry-After", "1");
  respond_json(res, e.status, e.to_json());
}

// Reads a request body through the content reader, refusing more than `limit` bytes with
// 413. (The HTTP library's own limit only sees bodies sent with Content-Length; a chunked
// body must be counted as it arrives.)
inline std::string read_body(const httplib::Request& req, const httplib::ContentReader& reader,
                             size_t limit) {
  std::string body;
  // A declared length over the limit is refused by the library's reader; say why.
  bool too_large = req.get_header_value<uint64_t>("Content-Length") > limit;
  const bool ok = reader([&](const char* data, size_t length) {
    if (body.size() + length > limit) {
      too_large = true;
      return false;
    }
    body.append(data, length);
    return true;
  });
  if (too_large || (!ok && req.get_header_value<uint64_t>("Content-Length") > limit))
    throw ApiError(413, "invalid_request_error", "request body is larger than the server's limit",
                   "", "request_too_large");
  if (!ok) throw invalid_request("the request body could not be read");
  return body;
}

}  // namespace muse::server
