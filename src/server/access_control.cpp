#include "server/access_control.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace muse::server {

namespace {

int64_t system_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ApiError unauthorized(const std::string& message) {
  return ApiError(401, "invalid_request_error", message, "", "invalid_api_key");
}

std::string seconds_text(int64_t s) {
  return std::to_string(s) + "s";
}

}  // namespace

int64_t window_start(int64_t now) {
  return now - ((now % 60) + 60) % 60;
}

int64_t seconds_to_window_end(int64_t now) {
  return std::max<int64_t>(1, window_start(now) + 60 - now);
}

AccessControl::AccessControl(ApiKeys static_keys, std::shared_ptr<platform::Store> store)
    : static_keys_(std::move(static_keys)), store_(std::move(store)), now_(system_now) {}

Caller AccessControl::authenticate(std::string_view authorization_header) const {
  if (!enabled()) return Caller{};
  const std::string_view key = ApiKeys::bearer_token(authorization_header);
  if (key.empty())
    throw unauthorized(
        "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.");
  if (static_keys_.enabled() && static_keys_.verify(key)) return Caller{kStaticKeyId, {}};
  if (store_) {
    const std::optional<platform::ApiKeyInfo> info = store_->key_for_secret(std::string(key));
    if (info) {
      const int64_t now = now_();
      if (info->revoked_at != 0) throw unauthorized("This API key has been revoked.");
      if (!info->active(now)) throw unauthorized("This API key has expired.");
      std::optional<platform::Tier> tier = store_->find_tier(info->tier);
      // A key whose tier was removed has no limits to apply: refuse rather than open up.
      if (!tier) throw unauthorized("This API key's tier '" + info->tier + "' no longer exists.");
      return Caller{info->id, std::move(tier)};
    }
  }
  throw unauthorized("Incorrect API key provided.");
}

void AccessControl::check_model(const Caller& caller, const std::vector<std::string>& model_names,
                                const std::string& requested_name) const {
  if (!caller.tier || caller.tier->models.empty()) return;
  const auto& allowed = caller.tier->models;
  for (const std::string& name : model_names)
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) return;
  throw ApiError(
      404, "invalid_request_error",
      "The model '" + requested_name + "' does not exist or you do not have access to it.", "model",
      "model_not_found");
}

HeaderList AccessControl::admit(const Caller& caller, int64_t reserved_tokens) const {
  if (!caller.tier || !store_) return {};
  const platform::Tier& tier = *caller.tier;
  const int64_t now = now_();
  if (tier.monthly_tokens > 0) {
    const int64_t used = store_->tokens_in_month(caller.key_id, platform::utc_month(now));
    if (used >= tier.monthly_tokens)
      throw RateLimitError(
          ApiError(429, "insufficient_quota",
                   "You exceeded your current quota (" + std::to_string(tier.monthly_tokens) +
                       " tokens this month). Ask the operator for a larger tier.",
                   "", "insufficient_quota"),
          {});
  }
  const int64_t window = window_start(now);
  const int64_t reset = seconds_to_window_end(now);
  HeaderList headers;
  int64_t requests = 0;
  if (tier.requests_per_minute > 0)
    requests = store_->add_to_window(caller.key_id, "requests", window, 1);
  int64_t tokens = 0;
  const bool requests_over = tier.requests_per_minute > 0 && requests > tier.requests_per_minute;
  bool tokens_over = false;
  if (tier.tokens_per_minute > 0) {
    if (requests_over) {
      tokens = store_->add_to_window(caller.key_id, "tokens", window, 0);
    } else {
      tokens = store_->add_to_window(caller.key_id, "tokens", window, reserved_tokens);
      if (tokens > tier.tokens_per_minute) {
        // A refused request reserves nothing.
        tokens = store_->add_to_window(caller.key_id, "tokens", window, -reserved_tokens);
        tokens_over = true;
      }
    }
  }
  if (tier.requests_per_minute > 0) {
    headers.emplace_back("x-ratelimit-limit-requests", std::to_string(tier.requests_per_minute));
    headers.emplace_back("x-ratelimit-remaining-requests",
                         std::to_string(std::max<int64_t>(0, tier.requests_per_minute - requests)));
    headers.emplace_back("x-ratelimit-reset-requests", seconds_text(reset));
  }
  if (tier.tokens_per_minute > 0) {
    headers.emplace_back("x-ratelimit-limit-tokens", std::to_string(tier.tokens_per_minute));
    headers.emplace_back("x-ratelimit-remaining-tokens",
                         std::to_string(std::max<int64_t>(0, tier.tokens_per_minute - tokens)));
    headers.emplace_back("x-ratelimit-reset-tokens", seconds_text(reset));
  }
  if (requests_over || tokens_over) {
    headers.emplace_back("Retry-After", std::to_string(reset));
    const std::string what = requests_over ? "requests" : "tokens";
    const std::string message = requests_over
                                    ? "Rate limit reached for requests per minute (RPM): Limit " +
                                          std::to_string(tier.requests_per_minute) + ", Used " +
                                          std::to_string(requests - 1) + "."
                                    : "Rate limit reached for tokens per minute (TPM): Limit " +
                                          std::to_string(tier.tokens_per_minute) + ", Used " +
                                          std::to_string(tokens) + ", Requested " +
                                          std::to_string(reserved_tokens) + ".";
    throw RateLimitError(
        ApiError(429, what, message + " Please try again in " + seconds_text(reset) + ".", "",
                 "rate_limit_exceeded"),
        std::move(headers));
  }
  return headers;
}

void AccessControl::record_usage(const Caller& caller, const std::string& model,
                                 int64_t prompt_tokens, int64_t completion_tokens,
                                 int64_t media_inputs) const {
  if (!store_) return;
  platform::UsageRow row;
  row.key_id = caller.key_id;
  row.model = model;
  row.day = platform::utc_day(now_());
  row.requests = 1;
  row.prompt_tokens = prompt_tokens;
  row.completion_tokens = completion_tokens;
  row.media_inputs = media_inputs;
  try {
    store_->record_usage(row);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "muse serve: cannot record usage: %s\n", e.what());
  }
}

}  // namespace muse::server
