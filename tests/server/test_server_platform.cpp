// Keys, tiers, limits and usage through the HTTP server in-process, on a SQLite
// in-memory store (also run under ThreadSanitizer): the admin API's key lifecycle, the
// waitlist, 401s, 404 for a model outside the tier, 429s with OpenAI's headers at the
// configured rates, the monthly quota, and usage rows equal to the usage returned.
// The server's clock is fixed (window arithmetic is exact, no test waits a minute).
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/read_file.h"
#include "model/random_model.h"
#include "server/http_server.h"
#include "server/tiny_chat_model.h"

namespace muse::server {
namespace {

using nlohmann::ordered_json;

const std::string kShared = MUSE_SHARED_DIR;
const std::string kAdminKey = "admin-secret-for-tests";
// 48 s into a window that starts at 1699999980 (a multiple of 60): 12 s to its end.
constexpr int64_t kWindowStart = 1699999980;
constexpr int64_t kNow = kWindowStart + 48;

class PlatformTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(MUSE_TEST_TMP) + "/server";
    std::filesystem::create_directories(dir);
    admin_key_file_ = dir + "/admin-" + std::to_string(::getpid()) + ".key";
    std::ofstream(admin_key_file_) << kAdminKey << "\n";
    config_.port = 0;
    config_.parallel = 2;
    config_.ctx_size = 256;
    config_.threads = 1;
    config_.admin_key_file = admin_key_file_;
    config_.prices["tiny"] = ModelPrice{1.5, 4.0};
    ModelEntry entry;
    entry.path = tiny_chat_model("tiny-chat-platform.gguf");
    entry.aliases = {"tiny", "tiny-alias"};
    config_.models = {entry};
    registry_.add(load_served_model(entry, config_));
    store_ = std::shared_ptr<platform::Store>(platform::Store::open(":memory:"));
    ApiKeys static_keys;
    static_keys.add_key("static-key");
    server_ = std::make_unique<HttpServer>(config_, registry_, std::move(static_keys), store_);
    server_->access().set_clock([this] { return now_.load(); });
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(60);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    std::filesystem::remove(admin_key_file_);
  }

  static httplib::Headers bearer(const std::string& key) {
    return {{"Authorization", "Bearer " + key}};
  }
  httplib::Result admin_post(const std::string& path, const ordered_json& body,
                             const std::string& key = kAdminKey) {
    return client_->Post(path.c_str(), bearer(key), body.dump(), "application/json");
  }
  httplib::Result admin_get(const std::string& path) {
    return client_->Get(path.c_str(), bearer(kAdminKey));
  }
  void add_tier(const ordered_json& tier) {
    auto res = admin_post("/admin/tiers", tier);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
  }
  // Issues a key of `tier` through the admin API; returns {id, secret}.
  std::pair<std::string, std::string> issue_key(const std::string& tier, int64_t expires_at = 0) {
    ordered_json body = {{"name", "customer"}, {"tier", tier}};
    if (expires_at) body["expires_at"] = expires_at;
    auto res = admin_post("/admin/keys", body);
    EXPECT_TRUE(res);
    if (!res) return {};
    EXPECT_EQ(res->status, 201) << res->body;
    const auto j = ordered_json::parse(res->body);
    return {j.value("id", ""), j.value("secret", "")};
  }
  static ordered_json chat(const std::string& model = "tiny", int max_tokens = 4) {
    return {{"model", model},
            {"messages", {{{"role", "user"}, {"content", "Hello there"}}}},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
  }
  // A completion of known size: `prompt_len` token ids, exactly max_tokens generated.
  static ordered_json completion(int prompt_len, int max_tokens) {
    std::vector<int> prompt;
    for (int i = 0; i < prompt_len; ++i) prompt.push_back(100 + i);
    return {{"model", "tiny"},
            {"prompt", prompt},
            {"max_tokens", max_tokens},
            {"ignore_eos", true},
            {"temperature", 0}};
  }
  httplib::Result call(const std::string& path, const ordered_json& body, const std::string& key) {
    return client_->Post(path.c_str(), bearer(key), body.dump(), "application/json");
  }
  static ordered_json error_of(const httplib::Result& res) {
    return ordered_json::parse(res->body)["error"];
  }

  ServeConfig config_;
  ModelRegistry registry_;
  std::shared_ptr<platform::Store> store_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
  std::atomic<int64_t> now_{kNow};
  std::string admin_key_file_;
  int port_ = 0;
};

TEST(RateWindow, FixedSixtySecondWindows) {
  EXPECT_EQ(window_start(kNow), kWindowStart);
  EXPECT_EQ(seconds_to_window_end(kNow), 12);
  EXPECT_EQ(window_start(kWindowStart), kWindowStart);
  EXPECT_EQ(seconds_to_window_end(kWindowStart), 60);
  EXPECT_EQ(seconds_to_window_end(kWindowStart + 59), 1);
}

TEST_F(PlatformTest, AdminApiNeedsTheAdminKey) {
  auto res = client_->Get("/admin/keys");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(error_of(res)["code"], "invalid_api_key");
  res = client_->Get("/admin/keys", bearer("static-key"));
  EXPECT_EQ(res->status, 401);
  res = admin_post("/admin/tiers", {{"name", "x"}}, "wrong");
  EXPECT_EQ(res->status, 401);
  EXPECT_TRUE(store_->tiers().empty());
  // Bad tier bodies are 400 naming the field.
  res = admin_post("/admin/tiers", {{"name", "x"}, {"requests_per_minute", -1}});
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(error_of(res)["param"], "requests_per_minute");
  res = admin_post("/admin/keys", {{"name", "c"}, {"tier", "missing"}});
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(error_of(res)["param"], "tier");
}

TEST_F(PlatformTest, KeyLifecycle) {
  add_tier({{"name", "free"}});
  auto [id, secret] = issue_key("free");
  ASSERT_EQ(id.rfind("key_", 0), 0u) << id;
  ASSERT_FALSE(secret.empty());

  auto res = call("/v1/chat/completions", chat(), secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  // An unlimited tier sends no rate-limit headers.
  EXPECT_FALSE(res->has_header("x-ratelimit-limit-requests"));

  // Listed without its secret.
  res = admin_get("/admin/keys");
  ASSERT_EQ(res->status, 200);
  auto list = ordered_json::parse(res->body)["data"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], id);
  EXPECT_EQ(list[0]["tier"], "free");
  EXPECT_FALSE(list[0].contains("secret"));
  EXPECT_EQ(res->body.find(secret), std::string::npos);

  // Unknown and missing keys.
  res = call("/v1/chat/completions", chat(), secret + "x");
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(error_of(res)["code"], "invalid_api_key");
  res = client_->Post("/v1/chat/completions", chat().dump(), "application/json");
  EXPECT_EQ(res->status, 401);
  res = client_->Get("/v1/models", bearer(secret));
  EXPECT_EQ(res->status, 200);

  // Revoked.
  res = client_->Delete(("/admin/keys/" + id).c_str(), bearer(kAdminKey));
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(ordered_json::parse(res->body)["revoked_at"], kNow);
  res = call("/v1/chat/completions", chat(), secret);
  EXPECT_EQ(res->status, 401);
  EXPECT_NE(error_of(res)["message"].get<std::string>().find("revoked"), std::string::npos);
  res = client_->Delete("/admin/keys/key_0000000000000000", bearer(kAdminKey));
  EXPECT_EQ(res->status, 404);

  // Expired: valid until kNow + 10.
  auto [id2, secret2] = issue_key("free", kNow + 10);
  EXPECT_EQ(call("/v1/chat/completions", chat(), secret2)->status, 200);
  now_ = kNow + 10;
  res = call("/v1/chat/completions", chat(), secret2);
  EXPECT_EQ(res->status, 401);
  EXPECT_NE(error_of(res)["message"].get<std::string>().find("expired"), std::string::npos);

  // Static keys still work, unlimited.
  EXPECT_EQ(call("/v1/chat/completions", chat(), "static-key")->status, 200);
}

TEST_F(PlatformTest, WaitlistApprovalIssuesAWorkingKey) {
  add_tier({{"name", "trial"}, {"requests_per_minute", 10}});
  auto apply = [&](const ordered_json& body) {
    return client_->Post("/v1/access-requests", body.dump(), "application/json");
  };
  // Validation: non-empty strings, an email with '@', length caps.
  const ordered_json good = {
      {"name", "Ada"}, {"email", "ada@example.com"}, {"use_case", "analysis"}};
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, ordered_json>>{{"name", ""},
                                                         {"email", "no-at-sign"},
                                                         {"email", "@example.com"},
                                                         {"use_case", 5},
                                                         {"use_case", std::string(5000, 'x')}}) {
    ordered_json bad = good;
    bad[field] = value;
    auto res = apply(bad);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << field;
    EXPECT_EQ(error_of(res)["param"], field);
  }
  auto res = apply(good);
  ASSERT_EQ(res->status, 201) << res->body;
  const auto created = ordered_json::parse(res->body);
  EXPECT_EQ(created["status"], "pending");
  const int64_t id = created["id"];
  ordered_json other = good;
  other["name"] = "Bob";
  const int64_t id_rejected = ordered_json::parse(apply(other)->body)["id"];

  res = admin_get("/admin/access-requests?status=pending");
  ASSERT_EQ(res->status, 200);
  auto pending = ordered_json::parse(res->body)["data"];
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0]["email"], "ada@example.com");

  res =
      admin_post("/admin/access-requests/" + std::to_string(id) + "/approve", {{"tier", "trial"}});
  ASSERT_EQ(res->status, 200) << res->body;
  const auto approved = ordered_json::parse(res->body);
  EXPECT_EQ(approved["status"], "approved");
  const std::string secret = approved["key"]["secret"];
  EXPECT_EQ(approved["key_id"], approved["key"]["id"]);
  res = call("/v1/chat/completions", chat(), secret);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-ratelimit-limit-requests"), "10");

  res = admin_post("/admin/access-requests/" + std::to_string(id_rejected) + "/reject", {});
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(ordered_json::parse(res->body)["status"], "rejected");
  // Decided requests cannot be decided again; unknown ones are 404.
  res =
      admin_post("/admin/access-requests/" + std::to_string(id) + "/approve", {{"tier", "trial"}});
  EXPECT_EQ(res->status, 409);
  res = admin_post("/admin/access-requests/999/reject", {});
  EXPECT_EQ(res->status, 404);
  res = admin_get("/admin/access-requests?status=pending");
  EXPECT_TRUE(ordered_json::parse(res->body)["data"].empty());
}

TEST_F(PlatformTest, ModelOutsideTheTierIsNotFound) {
  add_tier({{"name", "other-only"}, {"models", {"some-other-model"}}});
  add_tier({{"name", "alias-only"}, {"models", {"tiny-alias"}}});
  const std::string outside = issue_key("other-only").second;
  const std::string inside = issue_key("alias-only").second;
  auto res = call("/v1/chat/completions", chat(), outside);
  ASSERT_EQ(res->status, 404);
  EXPECT_EQ(error_of(res)["code"], "model_not_found");
  EXPECT_NE(error_of(res)["message"].get<std::string>().find("do not have access"),
            std::string::npos);
  // Any name of the model in the tier's list grants it.
  EXPECT_EQ(call("/v1/chat/completions", chat("tiny"), inside)->status, 200);
  EXPECT_EQ(call("/v1/chat/completions", chat("tiny-alias"), inside)->status, 200);
}

TEST_F(PlatformTest, RequestsPerMinuteGive429WithHeaders) {
  add_tier({{"name", "rpm3"}, {"requests_per_minute", 3}});
  const std::string key = issue_key("rpm3").second;
  for (int i = 0; i < 3; ++i) {
    auto res = call("/v1/chat/completions", chat(), key);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("x-ratelimit-limit-requests"), "3");
    EXPECT_EQ(res->get_header_value("x-ratelimit-remaining-requests"), std::to_string(2 - i));
    EXPECT_EQ(res->get_header_value("x-ratelimit-reset-requests"), "12s");
    EXPECT_FALSE(res->has_header("x-ratelimit-limit-tokens"));
  }
  auto res = call("/v1/chat/completions", chat(), key);
  ASSERT_EQ(res->status, 429);
  EXPECT_EQ(error_of(res)["type"], "requests");
  EXPECT_EQ(error_of(res)["code"], "rate_limit_exceeded");
  EXPECT_EQ(res->get_header_value("Retry-After"), "12");
  EXPECT_EQ(res->get_header_value("x-ratelimit-remaining-requests"), "0");
  // Streaming requests are limited the same way.
  ordered_json streamed = chat();
  streamed["stream"] = true;
  EXPECT_EQ(call("/v1/chat/completions", streamed, key)->status, 429);
  // The next window starts afresh.
  now_ = kWindowStart + 60;
  res = call("/v1/chat/completions", chat(), key);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("x-ratelimit-remaining-requests"), "2");
  EXPECT_EQ(res->get_header_value("x-ratelimit-reset-requests"), "60s");
}

TEST_F(PlatformTest, TokensPerMinuteReservePromptPlusMaxTokens) {
  add_tier({{"name", "tpm25"}, {"tokens_per_minute", 25}});
  const std::string key = issue_key("tpm25").second;
  // 5 prompt tokens + 5 max_tokens = 10 reserved each.
  auto res = call("/v1/completions", completion(5, 5), key);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-ratelimit-limit-tokens"), "25");
  EXPECT_EQ(res->get_header_value("x-ratelimit-remaining-tokens"), "15");
  EXPECT_EQ(res->get_header_value("x-ratelimit-reset-tokens"), "12s");
  res = call("/v1/completions", completion(5, 5), key);
  EXPECT_EQ(res->get_header_value("x-ratelimit-remaining-tokens"), "5");
  res = call("/v1/completions", completion(5, 5), key);
  ASSERT_EQ(res->status, 429);
  EXPECT_EQ(error_of(res)["type"], "tokens");
  EXPECT_EQ(error_of(res)["code"], "rate_limit_exceeded");
  EXPECT_EQ(res->get_header_value("Retry-After"), "12");
  // A refused request reserved nothing: 3 + 2 still fits the 5 left.
  res = call("/v1/completions", completion(3, 2), key);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("x-ratelimit-remaining-tokens"), "0");
}

TEST_F(PlatformTest, MonthlyQuotaExhausted) {
  add_tier({{"name", "q20"}, {"monthly_tokens", 20}});
  const std::string key = issue_key("q20").second;
  // 5 + 5 tokens served twice: 20, the whole quota.
  for (int i = 0; i < 2; ++i) {
    auto res = call("/v1/completions", completion(5, 5), key);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(ordered_json::parse(res->body)["usage"]["total_tokens"], 10);
  }
  auto res = call("/v1/completions", completion(1, 1), key);
  ASSERT_EQ(res->status, 429);
  EXPECT_EQ(error_of(res)["type"], "insufficient_quota");
  EXPECT_EQ(error_of(res)["code"], "insufficient_quota");
}

// Reads an event stream's final usage chunk.
ordered_json streamed_usage(const std::string& body) {
  ordered_json usage;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    const auto j = ordered_json::parse(data);
    if (j.contains("usage") && !j["usage"].is_null()) usage = j["usage"];
  }
  return usage;
}

TEST_F(PlatformTest, UsageEqualsWhatClientsWereTold) {
  add_tier({{"name", "paid"}, {"requests_per_minute", 100}, {"tokens_per_minute", 100000}});
  const auto [id, key] = issue_key("paid");
  int64_t prompt = 0, completion_tokens = 0;
  auto add = [&](const ordered_json& usage) {
    ASSERT_TRUE(usage.is_object());
    prompt += usage["prompt_tokens"].get<int64_t>();
    completion_tokens += usage["completion_tokens"].get<int64_t>();
  };
  auto res = call("/v1/chat/completions", chat("tiny", 6), key);
  ASSERT_EQ(res->status, 200);
  add(ordered_json::parse(res->body)["usage"]);
  ordered_json streamed = chat("tiny", 5);
  streamed["stream"] = true;
  streamed["stream_options"] = {{"include_usage", true}};
  res = call("/v1/chat/completions", streamed, key);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("x-ratelimit-limit-requests"), "100");
  add(streamed_usage(res->body));
  res = call("/v1/completions", completion(7, 3), key);
  ASSERT_EQ(res->status, 200);
  add(ordered_json::parse(res->body)["usage"]);
  EXPECT_EQ(call("/v1/chat/completions", chat(), "static-key")->status, 200);

  res = admin_get("/admin/usage?key=" + id);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto j = ordered_json::parse(res->body);
  ASSERT_EQ(j["data"].size(), 1u);
  const auto& row = j["data"][0];
  EXPECT_EQ(row["key_id"], id);
  EXPECT_EQ(row["model"], "tiny");
  EXPECT_EQ(row["day"], "2023-11-14");
  EXPECT_EQ(row["requests"], 3);
  EXPECT_EQ(row["prompt_tokens"], prompt);
  EXPECT_EQ(row["completion_tokens"], completion_tokens);
  EXPECT_EQ(row["media_inputs"], 0);
  // Prices: 1.5 $ per million prompt tokens, 4 $ per million completion tokens.
  const double cost = (double(prompt) * 1.5 + double(completion_tokens) * 4.0) / 1e6;
  EXPECT_DOUBLE_EQ(row["cost"].get<double>(), cost);
  EXPECT_DOUBLE_EQ(j["totals"]["cost"].get<double>(), cost);
  EXPECT_EQ(j["totals"]["requests"], 3);

  // Static keys are metered as "static"; day filters apply.
  res = admin_get("/admin/usage?key=static");
  EXPECT_EQ(ordered_json::parse(res->body)["totals"]["requests"], 1);
  res = admin_get("/admin/usage?from=2023-11-15");
  EXPECT_TRUE(ordered_json::parse(res->body)["data"].empty());
  res = admin_get("/admin/usage?from=2023-11-14&to=2023-11-14");
  EXPECT_EQ(ordered_json::parse(res->body)["totals"]["requests"], 4);
  EXPECT_EQ(admin_get("/admin/usage?from=yesterday")->status, 400);
}

}  // namespace
}  // namespace muse::server
