// The HTTP server in-process over loopback (also run under ThreadSanitizer): response
// shapes, errors, keys, streaming, client disconnects and prefix reuse across turns.
#include <gtest/gtest.h>
#include <httplib.h>

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

class ServerTest : public ::testing::Test {
 protected:
  void start(const std::vector<std::string>& keys = {}) {
    config_.port = 0;
    config_.parallel = 2;
    config_.ctx_size = 512;
    config_.threads = 1;
    config_.max_body_bytes = 1 << 16;
    ModelEntry entry;
    entry.path = tiny_chat_model();
    entry.aliases = {"tiny", "tiny-alias"};
    config_.models = {entry};
    registry_.add(load_served_model(entry, config_));
    ApiKeys api_keys;
    for (const auto& k : keys) api_keys.add_key(k);
    server_ = std::make_unique<HttpServer>(config_, registry_, std::move(api_keys));
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(60);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Result post(const std::string& path, const ordered_json& body,
                       const httplib::Headers& headers = {}) {
    return client_->Post(path.c_str(), headers, body.dump(), "application/json");
  }
  static ordered_json chat(const std::string& content, int max_tokens = 8) {
    return {{"model", "tiny"},
            {"messages", {{{"role", "user"}, {"content", content}}}},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
  }

  ServeConfig config_;
  ModelRegistry registry_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

TEST_F(ServerTest, ChatCompletionShapeAndUsage) {
  start();
  auto res = post("/v1/chat/completions", chat("Hello there", 6));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto j = ordered_json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny");
  ASSERT_EQ(j["choices"].size(), 1u);
  const auto& c = j["choices"][0];
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_TRUE(c["message"]["content"].is_string());
  EXPECT_TRUE(c["message"]["refusal"].is_null());
  EXPECT_TRUE(c["logprobs"].is_null());
  EXPECT_TRUE(c["finish_reason"] == "length" || c["finish_reason"] == "stop");
  const auto& u = j["usage"];
  EXPECT_GT(u["prompt_tokens"].get<int>(), 5);
  EXPECT_EQ(u["total_tokens"].get<int>(),
            u["prompt_tokens"].get<int>() + u["completion_tokens"].get<int>());
  if (c["finish_reason"] == "length") {
    EXPECT_EQ(u["completion_tokens"], 6);
  }
}

TEST_F(ServerTest, ErrorsHaveOpenAiShapeAndStatus) {
  start();
  auto res = post("/v1/chat/completions",
                  {{"model", "nope"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  auto j = ordered_json::parse(res->body);
  EXPECT_EQ(j["error"]["code"], "model_not_found");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  ordered_json bad = chat("x");
  bad["temperature"] = 7;
  res = post("/v1/chat/completions", bad);
  EXPECT_EQ(res->status, 400);
  j = ordered_json::parse(res->body);
  EXPECT_EQ(j["error"]["param"], "temperature");
  // A prompt longer than the context.
  res = post("/v1/chat/completions", chat(std::string(3000, 'a') + " " + std::string(3000, 'b')));
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(ordered_json::parse(res->body)["error"]["code"], "context_length_exceeded");
  // Over the body limit.
  res = post("/v1/chat/completions", chat(std::string(1 << 17, 'z')));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_EQ(ordered_json::parse(res->body)["error"]["type"], "invalid_request_error");
  // Not JSON.
  res = client_->Post("/v1/chat/completions", "{nope", "application/json");
  EXPECT_EQ(res->status, 400);
  res = client_->Get("/v1/nothing-here");
  EXPECT_EQ(res->status, 404);
  EXPECT_TRUE(ordered_json::parse(res->body).contains("error"));
}

TEST_F(ServerTest, KeysGuardEveryRouteButHealth) {
  start({"sk-test-1", "sk-test-2"});
  EXPECT_EQ(client_->Get("/health")->status, 200);
  auto res = client_->Get("/v1/models");
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(ordered_json::parse(res->body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(client_->Get("/metrics")->status, 401);
  EXPECT_EQ(client_->Get("/v1/models", {{"Authorization", "Bearer sk-test-3"}})->status, 401);
  EXPECT_EQ(client_->Get("/v1/models", {{"Authorization", "Bearer sk-test-2"}})->status, 200);
  res = post("/v1/chat/completions", chat("hi", 2), {{"Authorization", "Bearer sk-test-1"}});
  EXPECT_EQ(res->status, 200);
  const auto models = ordered_json::parse(
      client_->Get("/v1/models", {{"Authorization", "Bearer sk-test-1"}})->body);
  ASSERT_EQ(models["data"].size(), 2u);
  EXPECT_EQ(models["data"][1]["id"], "tiny-alias");
}

// Splits an event stream into its data payloads.
std::vector<std::string> sse_events(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = text.find("data: ", pos)) != std::string::npos) {
    const size_t end = text.find("\n\n", pos);
    out.push_back(text.substr(pos + 6, end - pos - 6));
    pos = end;
  }
  return out;
}

TEST_F(ServerTest, StreamMatchesNonStreamingText) {
  start();
  ordered_json req = chat("Tell me a story", 12);
  const auto whole = ordered_json::parse(post("/v1/chat/completions", req)->body);
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto res = post("/v1/chat/completions", req);
  ASSERT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  const auto events = sse_events(res->body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  int finishes = 0;
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    const auto chunk = ordered_json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    const auto& delta = chunk["choices"][0]["delta"];
    if (i == 0) {
      EXPECT_EQ(delta["role"], "assistant");
    }
    if (delta.contains("content")) text += delta["content"].get<std::string>();
    finishes += !chunk["choices"][0]["finish_reason"].is_null();
  }
  EXPECT_EQ(finishes, 1);
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
  const auto usage = ordered_json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], whole["usage"]["completion_tokens"]);
}

TEST_F(ServerTest, ClientDisconnectFreesTheSequence) {
  start();
  ordered_json req = chat("Go on forever", 400);
  req["stream"] = true;
  int chunks = 0;
  httplib::Request r;
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.body = req.dump();
  r.set_header("Content-Type", "application/json");
  r.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 3; };
  auto res = client_->send(r);  // the receiver hangs up after 3 chunks
  EXPECT_GE(chunks, 3);
  // The engine drops the sequence within a few steps.
  int64_t running = -1;
  for (int i = 0; i < 200 && running != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    running = registry_.models().front()->engine->stats().running;
  }
  EXPECT_EQ(running, 0);
  EXPECT_LT(registry_.models().front()->engine->stats().generated_tokens, 400u);
  for (int i = 0; i < 200 && server_->metrics().value("muse_requests_cancelled_total",
                                                      {{"model", "tiny"}}) < 1;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_EQ(server_->metrics().value("muse_requests_cancelled_total", {{"model", "tiny"}}), 1);
}

TEST_F(ServerTest, NextTurnReusesTheCachedPrefix) {
  start();
  ordered_json req = chat("What is the capital of France? Answer briefly.", 6);
  const auto first = ordered_json::parse(post("/v1/chat/completions", req)->body);
  req["messages"].push_back(
      {{"role", "assistant"}, {"content", first["choices"][0]["message"]["content"]}});
  req["messages"].push_back({{"role", "user"}, {"content", "And of Spain?"}});
  const auto second = ordered_json::parse(post("/v1/chat/completions", req)->body);
  const int cached = second["usage"]["prompt_tokens_details"]["cached_tokens"];
  EXPECT_GE(cached, first["usage"]["prompt_tokens"].get<int>() - 1);
  EXPECT_LT(cached, second["usage"]["prompt_tokens"].get<int>());
}

TEST_F(ServerTest, TokenizeDetokenizeRoundTrip) {
  start();
  auto res = post("/tokenize", {{"model", "tiny"}, {"content", "Hello world"}});
  ASSERT_EQ(res->status, 200);
  const auto tokens = ordered_json::parse(res->body)["tokens"];
  EXPECT_EQ(tokens, ordered_json({15496, 995}));  // GPT-2 ids of "Hello", " world"
  res = post("/detokenize", {{"model", "tiny"}, {"tokens", tokens}});
  EXPECT_EQ(ordered_json::parse(res->body)["content"], "Hello world");
  res = post("/detokenize", {{"model", "tiny"}, {"tokens", {-1}}});
  EXPECT_EQ(res->status, 400);
}

}  // namespace
}  // namespace muse::server
