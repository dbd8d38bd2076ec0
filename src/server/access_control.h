// Who may call the API and how much: authentication (static keys from api_keys_file, or
// keys issued through the store), the model list of a key's tier, rate limits (requests
// and tokens per minute in fixed 60 s windows, counted in the store so that replicas
// sharing a PostgreSQL store share one limit), the monthly token quota, and usage
// metering. Every check runs before the engine is touched.
//
// Callers:
//   - no keys and no store: an open server; usage (with a store) is recorded as key "".
//   - a static key (api_keys_file): unlimited, every model; usage recorded as "static".
//   - a store key: its tier's limits; usage recorded under its id ("key_...").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform/store.h"
#include "server/api_error.h"
#include "server/api_keys.h"

namespace muse::server {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Key id under which usage of static keys is recorded.
inline constexpr const char* kStaticKeyId = "static";

// An authenticated caller.
struct Caller {
  std::string key_id;                  // "" (open server), "static", or a store key id
  std::optional<platform::Tier> tier;  // store keys only
  int priority() const { return tier ? tier->priority : 0; }
  bool limited() const {
    return tier && (tier->requests_per_minute > 0 || tier->tokens_per_minute > 0);
  }
};

// A refused request with the headers its response carries (Retry-After, x-ratelimit-*).
class RateLimitError : public ApiError {
 public:
  RateLimitError(ApiError error, HeaderList headers)
      : ApiError(std::move(error)), headers(std::move(headers)) {}
  HeaderList headers;
};

class AccessControl {
 public:
  // store may be null (no store: static keys or an open server only).
  AccessControl(ApiKeys static_keys, std::shared_ptr<platform::Store> store);

  // True when requests must carry a key.
  bool enabled() const { return static_keys_.enabled() || store_ != nullptr; }
  platform::Store* store() const { return store_.get(); }
  // Unix seconds; replaceable for tests (window arithmetic).
  void set_clock(std::function<int64_t()> now) { now_ = std::move(now); }
  int64_t now() const { return now_(); }

  // The caller of a request with this Authorization header value. Throws ApiError 401
  // (invalid_api_key): no key, an unknown key, a revoked or an expired key (the message
  // says which).
  Caller authenticate(std::string_view authorization_header) const;

  // Throws ApiError 404 model_not_found when the caller's tier does not list any of the
  // model's names.
  void check_model(const Caller& caller, const std::vector<std::string>& model_names,
                   const std::string& requested_name) const;

  // Admits one request that may use `reserved_tokens` (prompt + max completion):
  // monthly quota (429 insufficient_quota), requests per minute and tokens per minute
  // (429 rate_limit_exceeded, type "requests" / "tokens", with Retry-After). Returns the
  // x-ratelimit-* headers of a limited key (empty otherwise). Throws RateLimitError.
  HeaderList admit(const Caller& caller, int64_t reserved_tokens) const;

  // Adds one request's usage to the caller's (key, model, today) totals; no-op without
  // a store. Never throws (a store failure is logged: the answer was already served).
  void record_usage(const Caller& caller, const std::string& model, int64_t prompt_tokens,
                    int64_t completion_tokens, int64_t media_inputs) const;

 private:
  ApiKeys static_keys_;
  std::shared_ptr<platform::Store> store_;
  std::function<int64_t()> now_;
};

// Start of the fixed 60 s window holding `now`, and whole seconds until it ends (>= 1).
int64_t window_start(int64_t now);
int64_t seconds_to_window_end(int64_t now);

}  // namespace muse::server
