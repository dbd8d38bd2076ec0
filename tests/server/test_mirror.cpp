// Traffic mirroring and the gateway: deterministic sampling, the [mirror] config table,
// the bounded queue, candidates that are healthy, failing and slow (fake HTTP servers on
// loopback), records, the client-facing cost of offer(), and pass-through of JSON, event
// streams and errors from a remote primary.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "muse/error.h"
#include "server/gateway.h"
#include "server/mirror.h"
#include "server/mirror_config.h"

namespace muse::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// An httplib server on a free loopback port, running on its own thread.
class FakeServer {
 public:
  httplib::Server http;
  void start() {
    port_ = http.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { http.listen_after_bind(); });
    while (!http.is_running()) std::this_thread::sleep_for(1ms);
  }
  ~FakeServer() {
    http.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

 private:
  int port_ = 0;
  std::thread thread_;
};

std::string tmp_path(const std::string& name) {
  std::filesystem::create_directories(MUSE_TEST_TMP);
  const std::string path = std::string(MUSE_TEST_TMP) + "/" + name;
  std::filesystem::remove(path);
  return path;
}

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line));
  return out;
}

json chat_body(int i) {
  return {{"model", "tiny"},
          {"messages", {{{"role", "user"}, {"content", "question " + std::to_string(i)}}}}};
}

// ---------------------------------------------------------------- sampling

TEST(MirrorSampling, KnownHashes) {
  // SHA-256("abc") starts ba7816bf8f01cfea: 0xba7816bf8f01cfea / 2^64 = 0.72839491...
  EXPECT_TRUE(mirror_sampled("abc", 0.7284));
  EXPECT_FALSE(mirror_sampled("abc", 0.7283));
  // SHA-256("") starts e3b0c44298fc1c14: 0.88941599...
  EXPECT_TRUE(mirror_sampled("", 0.8895));
  EXPECT_FALSE(mirror_sampled("", 0.8894));
  EXPECT_FALSE(mirror_sampled("abc", 0.0));
  EXPECT_TRUE(mirror_sampled("abc", 1.0));
}

TEST(MirrorSampling, FractionWithinBinomialToleranceAndDeterministic) {
  for (double fraction : {0.02, 0.5}) {
    const int n = 10000;
    int hits = 0;
    for (int i = 0; i < n; ++i) {
      const std::string body = chat_body(i).dump();
      const bool sampled = mirror_sampled(body, fraction);
      ASSERT_EQ(sampled, mirror_sampled(body, fraction)) << "not deterministic: " << body;
      hits += sampled;
    }
    const double mean = n * fraction;
    const double sigma = std::sqrt(n * fraction * (1 - fraction));
    EXPECT_LE(std::abs(hits - mean), 4 * sigma) << "fraction " << fraction << ": " << hits;
  }
  // A larger fraction selects a superset (the same hash is compared with both).
  for (int i = 0; i < 1000; ++i) {
    const std::string body = chat_body(i).dump();
    if (mirror_sampled(body, 0.1)) {
      EXPECT_TRUE(mirror_sampled(body, 0.3));
    }
  }
}

// ---------------------------------------------------------------- config

MirrorConfig parse(const std::string& text) {
  const toml::table root = toml::parse(text);
  return parse_mirror_config(*root["mirror"].as_table(), "test.toml");
}

TEST(MirrorConfigTest, ParsesLocalAndRemoteEndpoints) {
  const MirrorConfig c = parse(R"(
[mirror]
primary = { url = "https://api.example.com/v1", model = "gpt-x", api_key_env = "X_KEY", alias = "default" }
candidate = { model = "tiny" }
fraction = 0.25
queue = 8
timeout_ms = 1500
records = "store"
)");
  EXPECT_TRUE(c.enabled);
  EXPECT_TRUE(c.primary.remote());
  EXPECT_EQ(c.primary.url, "https://api.example.com/v1");
  EXPECT_EQ(c.primary.model, "gpt-x");
  EXPECT_EQ(c.primary.client_model(), "default");
  EXPECT_EQ(c.primary.api_key_env, "X_KEY");
  EXPECT_FALSE(c.candidate.remote());
  EXPECT_EQ(c.candidate.model, "tiny");
  EXPECT_DOUBLE_EQ(c.fraction, 0.25);
  EXPECT_EQ(c.queue, 8);
  EXPECT_EQ(c.timeout_ms, 1500);
  EXPECT_TRUE(c.records_in_store());
  EXPECT_TRUE(c.mirroring());

  const MirrorConfig d = parse("[mirror]\nprimary = { model = \"tiny\" }\nfraction = 1\n");
  EXPECT_DOUBLE_EQ(d.fraction, 1.0);
  EXPECT_EQ(d.queue, 64);
  EXPECT_EQ(d.timeout_ms, 30000);
  EXPECT_EQ(d.records, "mirror.jsonl");
  EXPECT_FALSE(d.mirroring());  // no candidate: nothing to mirror
}

TEST(MirrorConfigTest, BadTablesNameTheKey) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      parse(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("[mirror]\nprimary = { model = \"a\" }\nfractoin = 0.1\n", "mirror.fractoin");
  expect_error("[mirror]\nprimary = { model = \"a\" }\nfraction = 1.5\n", "out of range");
  expect_error("[mirror]\nprimary = { model = \"a\" }\nqueue = 0\n", "mirror.queue");
  expect_error("[mirror]\nprimary = { model = \"a\" }\nrecords = 3\n", "expected a string");
  expect_error("[mirror]\nprimary = { model = \"a\", key = \"x\" }\n", "mirror.primary.key");
  expect_error("[mirror]\nprimary = \"a\"\n", "expected a table");
  expect_error("[mirror]\ncandidate = { model = \"a\" }\n", "primary is missing");
  expect_error("[mirror]\nprimary = { url = \"https://x/v1\" }\n", "needs a model");
  expect_error("[mirror]\nprimary = { url = \"ftp://x/v1\", model = \"m\" }\n", "http://");
  expect_error("[mirror]\nprimary = { model = \"a\", api_key_env = \"K\" }\n", "api_key_env");
  expect_error(
      "[mirror]\nprimary = { model = \"a\" }\ncandidate = { model = \"b\", alias = \"c\" }\n",
      "alias");
}

// ---------------------------------------------------------------- mirror

// A candidate endpoint whose behaviour the test switches: healthy, failing (500) or slow.
struct FakeCandidate {
  enum Mode { kHealthy, kFailing, kSlow };
  std::atomic<int> mode{kHealthy};
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<json> bodies;
  std::vector<std::string> auth;
  FakeServer server;

  FakeCandidate() {
    server.http.Post("/v1/chat/completions", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
      ++calls;
      const json body = json::parse(req.body);
      {
        std::lock_guard lock(mu);
        bodies.push_back(body);
        auth.push_back(req.get_header_value("Authorization"));
      }
      if (mode == kFailing) {
        res.status = 500;
        res.set_content(R"({"error":{"message":"down","type":"server_error"}})",
                        "application/json");
        return;
      }
      if (mode == kSlow) std::this_thread::sleep_for(700ms);
      const std::string question = body["messages"][0]["content"];
      res.set_content(json{{"model", "cand-v2"},
                           {"choices",
                            {{{"index", 0},
                              {"message", {{"role", "assistant"}, {"content", "re: " + question}}},
                              {"finish_reason", "stop"}}}},
                           {"usage", {{"prompt_tokens", 7}, {"completion_tokens", 3}}}}
                          .dump(),
                      "application/json");
    });
    server.start();
  }
};

MirrorConfig remote_candidate_config(const FakeCandidate& fake, const std::string& records) {
  MirrorConfig c;
  c.enabled = true;
  c.primary.model = "tiny";
  c.candidate.url = fake.server.url();
  c.candidate.model = "cand";
  c.candidate.api_key_env = "MUSE_TEST_MIRROR_KEY";
  c.fraction = 1.0;
  c.queue = 16;
  c.timeout_ms = 250;
  c.records = records;
  return c;
}

MirrorAnswer primary_answer(int i) {
  return {"tiny", "answer " + std::to_string(i), 12.5, 9, 4};
}

TEST(Mirror, HealthyFailingSlowCandidate) {
  setenv("MUSE_TEST_MIRROR_KEY", "cand-secret", 1);
  FakeCandidate fake;
  const std::string records = tmp_path("mirror_phases.jsonl");
  Mirror mirror(remote_candidate_config(fake, records));

  // Slow: every call exceeds the 250 ms timeout.
  fake.mode = FakeCandidate::kSlow;
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(mirror.offer(chat_body(i), primary_answer(i)));
  ASSERT_TRUE(mirror.wait_idle(5s));
  // Failing: 500 answers.
  fake.mode = FakeCandidate::kFailing;
  for (int i = 2; i < 5; ++i) EXPECT_TRUE(mirror.offer(chat_body(i), primary_answer(i)));
  ASSERT_TRUE(mirror.wait_idle(5s));
  // Healthy.
  fake.mode = FakeCandidate::kHealthy;
  for (int i = 5; i < 9; ++i) {
    json req = chat_body(i);
    req["stream"] = true;
    req["stream_options"] = {{"include_usage", true}};
    if (i == 5) req["metadata"] = {{"topic", "math"}};
    EXPECT_TRUE(mirror.offer(req, primary_answer(i)));
  }
  ASSERT_TRUE(mirror.wait_idle(5s));

  const MirrorStats s = mirror.stats();
  EXPECT_EQ(s.sampled, 9);
  EXPECT_EQ(s.enqueued, 9);
  EXPECT_EQ(s.dropped_timeout, 2);
  EXPECT_EQ(s.dropped_candidate_error, 3);
  EXPECT_EQ(s.completed, 4);
  EXPECT_EQ(s.dropped_queue_full, 0);
  EXPECT_EQ(s.queued, 0);

  const std::vector<json> lines = read_jsonl(records);
  ASSERT_EQ(lines.size(), 4u);
  for (size_t k = 0; k < lines.size(); ++k) {
    const json& r = lines[k];
    const int i = int(k) + 5;
    EXPECT_EQ(r["id"].get<std::string>().rfind("mir_", 0), 0u);
    EXPECT_EQ(r["id"].get<std::string>().size(), 4u + 16u);
    EXPECT_NEAR(double(r["timestamp"].get<int64_t>()),
                double(std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count()),
                60.0);
    EXPECT_EQ(r["request"]["messages"], chat_body(i)["messages"]);  // the client's request
    EXPECT_EQ(r["request"]["model"], "tiny");
    EXPECT_EQ(r["primary"]["model"], "tiny");
    EXPECT_EQ(r["primary"]["output"], "answer " + std::to_string(i));
    EXPECT_DOUBLE_EQ(r["primary"]["latency_ms"].get<double>(), 12.5);
    EXPECT_EQ(r["primary"]["prompt_tokens"], 9);
    EXPECT_EQ(r["primary"]["completion_tokens"], 4);
    EXPECT_EQ(r["candidate"]["model"], "cand-v2");
    EXPECT_EQ(r["candidate"]["output"], "re: question " + std::to_string(i));
    EXPECT_GT(r["candidate"]["latency_ms"].get<double>(), 0.0);
    EXPECT_LT(r["candidate"]["latency_ms"].get<double>(), 250.0);
    EXPECT_EQ(r["candidate"]["prompt_tokens"], 7);
    EXPECT_EQ(r["candidate"]["completion_tokens"], 3);
    EXPECT_EQ(r.contains("topic"), i == 5);
  }
  EXPECT_EQ(lines[0]["topic"], "math");

  // What the candidate received: its own model name, no streaming, Muse's key for it.
  std::lock_guard lock(fake.mu);
  ASSERT_EQ(fake.bodies.size(), 9u);
  for (size_t k = 0; k < fake.bodies.size(); ++k) {
    EXPECT_EQ(fake.bodies[k]["model"], "cand");
    EXPECT_EQ(fake.bodies[k]["stream"], false);
    EXPECT_FALSE(fake.bodies[k].contains("stream_options"));
    EXPECT_EQ(fake.auth[k], "Bearer cand-secret");
  }
}

TEST(Mirror, UnreachableCandidateIsAnError) {
  MirrorConfig c;
  c.enabled = true;
  c.primary.model = "tiny";
  {
    FakeServer closed;  // a port that was free a moment ago: nothing listens there now
    closed.start();
    c.candidate.url = closed.url();
  }
  c.candidate.model = "cand";
  c.fraction = 1;
  c.timeout_ms = 2000;
  c.records = tmp_path("mirror_unreachable.jsonl");
  Mirror mirror(c);
  mirror.offer(chat_body(1), primary_answer(1));
  ASSERT_TRUE(mirror.wait_idle(5s));
  EXPECT_EQ(mirror.stats().dropped_candidate_error, 1);
  EXPECT_EQ(mirror.stats().completed, 0);
}

// A local candidate that blocks until released.
struct BlockingCandidate {
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  int entered = 0;
  CandidateResult operator()(const json& request) {
    std::unique_lock lock(mu);
    ++entered;
    cv.notify_all();
    cv.wait(lock, [&] { return released; });
    return {
        {"local-cand", "local: " + request["messages"][0]["content"].get<std::string>(), 0, 5, 2},
        ""};
  }
  void wait_entered(int n) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return entered >= n; });
  }
  void release() {
    std::lock_guard lock(mu);
    released = true;
    cv.notify_all();
  }
};

MirrorConfig local_candidate_config(const std::string& records, int64_t queue) {
  MirrorConfig c;
  c.enabled = true;
  c.primary.model = "tiny";
  c.candidate.model = "small";
  c.fraction = 1;
  c.queue = queue;
  c.timeout_ms = 60000;
  c.records = records;
  return c;
}

TEST(Mirror, FullQueueDropsAndCounts) {
  BlockingCandidate candidate;
  const std::string records = tmp_path("mirror_queue.jsonl");
  Mirror mirror(local_candidate_config(records, 4), [&](const json& r) { return candidate(r); });
  EXPECT_TRUE(mirror.offer(chat_body(0), primary_answer(0)));
  candidate.wait_entered(1);  // the worker holds request 0; the queue is empty again
  int accepted = 0;
  for (int i = 1; i <= 10; ++i) accepted += mirror.offer(chat_body(i), primary_answer(i));
  EXPECT_EQ(accepted, 4);
  MirrorStats s = mirror.stats();
  EXPECT_EQ(s.sampled, 11);
  EXPECT_EQ(s.enqueued, 5);
  EXPECT_EQ(s.dropped_queue_full, 6);
  EXPECT_EQ(s.queued, 4);
  candidate.release();
  ASSERT_TRUE(mirror.wait_idle(5s));
  s = mirror.stats();
  EXPECT_EQ(s.completed, 5);
  const std::vector<json> lines = read_jsonl(records);
  ASSERT_EQ(lines.size(), 5u);
  // FIFO: requests 0..4 were the ones kept.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(lines[size_t(i)]["candidate"]["output"], "local: question " + std::to_string(i));
    EXPECT_EQ(lines[size_t(i)]["candidate"]["model"], "local-cand");
    EXPECT_EQ(lines[size_t(i)]["candidate"]["completion_tokens"], 2);
  }
}

TEST(Mirror, LocalCandidateErrorsAndLateAnswersAreDropped) {
  MirrorConfig c = local_candidate_config(tmp_path("mirror_local_err.jsonl"), 8);
  c.timeout_ms = 50;
  std::atomic<int> n{0};
  Mirror mirror(c, [&](const json&) -> CandidateResult {
    const int k = n++;
    if (k == 0) return {{}, "engine queue full"};
    if (k == 1) throw Error("boom");
    std::this_thread::sleep_for(80ms);  // later than timeout_ms
    return {{"small", "late", 0, 1, 1}, ""};
  });
  for (int i = 0; i < 3; ++i) mirror.offer(chat_body(i), primary_answer(i));
  ASSERT_TRUE(mirror.wait_idle(5s));
  EXPECT_EQ(mirror.stats().dropped_candidate_error, 2);
  EXPECT_EQ(mirror.stats().dropped_timeout, 1);
  EXPECT_EQ(mirror.stats().completed, 0);
}

TEST(Mirror, OfferTakesMicrosecondsWhileTheCandidateHangs) {
  setenv("MUSE_TEST_MIRROR_KEY", "cand-secret", 1);
  FakeCandidate fake;
  fake.mode = FakeCandidate::kSlow;  // every call hangs past the timeout
  MirrorConfig c = remote_candidate_config(fake, tmp_path("mirror_latency.jsonl"));
  c.queue = 64;
  Mirror mirror(c);
  const json body = chat_body(1);
  mirror.offer(body, primary_answer(0));
  const auto deadline = Clock::now() + 5s;
  while (fake.calls == 0 && Clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(fake.calls.load(), 1) << "the candidate should be hanging on the first request";
  std::vector<double> micros;
  for (int i = 0; i < 2000; ++i) {
    json request = body;  // the copy is the caller's; offer takes it by move
    const auto t0 = Clock::now();
    mirror.offer(std::move(request), primary_answer(i));
    micros.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(micros.begin(), micros.end());
  EXPECT_LT(micros[micros.size() / 2], 20.0) << "median offer() in microseconds";
  EXPECT_LT(micros[micros.size() * 99 / 100], 200.0) << "p99 offer() in microseconds";
  const MirrorStats s = mirror.stats();
  EXPECT_EQ(s.sampled, 2001);
  EXPECT_EQ(s.enqueued, 65);  // the one in flight, then the queue filled
  EXPECT_EQ(s.dropped_queue_full, 2001 - 65);
}

TEST(Mirror, UpstreamAnswersAndMetricsText) {
  BlockingCandidate candidate;
  candidate.release();
  Mirror mirror(local_candidate_config(tmp_path("mirror_upstream.jsonl"), 4),
                [&](const json& r) { return candidate(r); });
  UpstreamAnswer ok;
  ok.status = 200;
  ok.latency_ms = 40;
  ok.output = {"gpt-x-2025", "hi", 3, 1};
  UpstreamAnswer refused = ok;
  refused.status = 429;
  UpstreamAnswer gone = ok;
  gone.client_gone = true;
  EXPECT_TRUE(mirror.offer_upstream(chat_body(1), ok));
  EXPECT_FALSE(mirror.offer_upstream(chat_body(2), refused));
  EXPECT_FALSE(mirror.offer_upstream(chat_body(3), gone));
  ASSERT_TRUE(mirror.wait_idle(5s));
  const std::vector<json> lines = read_jsonl(mirror.config().records);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["primary"], (json{{"model", "gpt-x-2025"},
                                       {"output", "hi"},
                                       {"latency_ms", 40.0},
                                       {"prompt_tokens", 3},
                                       {"completion_tokens", 1}}));

  MirrorStats s;
  s.sampled = 10;
  s.enqueued = 8;
  s.completed = 5;
  s.dropped_queue_full = 2;
  s.dropped_timeout = 3;
  s.queued = 1;
  const std::string text = mirror_metrics_text(s);
  for (const char* line :
       {"# TYPE muse_mirror_sampled_total counter\nmuse_mirror_sampled_total 10\n",
        "muse_mirror_enqueued_total 8\n", "muse_mirror_completed_total 5\n",
        "muse_mirror_dropped_total{reason=\"queue_full\"} 2\n",
        "muse_mirror_dropped_total{reason=\"timeout\"} 3\n",
        "muse_mirror_dropped_total{reason=\"candidate_error\"} 0\n",
        "# TYPE muse_mirror_queue_depth gauge\nmuse_mirror_queue_depth 1\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " not in\n" << text;
}

TEST(Mirror, RefusesUnusableSetups) {
  MirrorConfig c = local_candidate_config(tmp_path("mirror_bad.jsonl"), 4);
  EXPECT_THROW(Mirror(c, {}), Error);  // a local candidate needs the callback
  c.records = "store";
  EXPECT_THROW(Mirror(c, [](const json&) { return CandidateResult{}; }), Error);
  c.records = "/nonexistent-dir/x/mirror.jsonl";
  EXPECT_THROW(Mirror(c, [](const json&) { return CandidateResult{}; }), Error);
}

// ---------------------------------------------------------------- gateway

const std::string kJsonAnswer =
    R"({"id":"chatcmpl-1","object":"chat.completion","model":"gpt-x-2025","choices":[{"index":0,)"
    R"("message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],)"
    R"("usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}})";
const std::vector<std::string> kEvents = {
    "data: {\"model\":\"gpt-x-2025\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"}}]}\n\n",
    "data: "
    "{\"model\":\"gpt-x-2025\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    "data: {\"model\":\"gpt-x-2025\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo "
    "\\u00e9\"}}]}"
    "\n\n",
    "data: {\"model\":\"gpt-x-2025\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":3}}\n\n",
    "data: [DONE]\n\n"};
const std::string kRateLimited =
    R"({"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}})";

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += p;
  return out;
}

// A remote provider: answers by the first message's content ("json", "stream", "error").
struct FakePrimary {
  FakeServer server;
  std::mutex mu;
  std::vector<json> bodies;
  std::vector<std::string> auth;

  FakePrimary() {
    server.http.Post("/v1/chat/completions", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
      const json body = json::parse(req.body);
      {
        std::lock_guard lock(mu);
        bodies.push_back(body);
        auth.push_back(req.get_header_value("Authorization"));
      }
      const std::string what = body["messages"][0]["content"];
      if (what == "error") {
        res.status = 429;
        res.set_header("Retry-After", "7");
        res.set_content(kRateLimited, "application/json");
      } else if (what == "stream") {
        res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
          for (size_t i = 0; i < kEvents.size(); ++i) {
            if (i > 0) std::this_thread::sleep_for(120ms);  // arrives in separate reads
            if (!sink.write(kEvents[i].data(), kEvents[i].size())) return false;
          }
          sink.done();
          return true;
        });
      } else {
        res.set_content(kJsonAnswer, "application/json");
      }
    });
    server.start();
  }
};

json ask(const std::string& what, bool stream = false) {
  json j = {{"model", "default"},
            {"messages", {{{"role", "user"}, {"content", what}}}},
            {"max_tokens", 5}};
  if (stream) j["stream"] = true;
  return j;
}

struct CapturingSink {
  int begins = 0;
  int status = 0;
  std::string content_type;
  GatewaySink::Headers headers;
  std::vector<std::string> writes;
  GatewaySink sink() {
    GatewaySink s;
    s.begin = [this](int st, const std::string& ct, const GatewaySink::Headers& h) {
      ++begins;
      status = st;
      content_type = ct;
      headers = h;
    };
    s.write = [this](const char* data, size_t size) {
      EXPECT_EQ(begins, 1) << "write before begin";
      writes.emplace_back(data, size);
      return true;
    };
    return s;
  }
};

MirrorEndpoint remote_primary(const std::string& url) {
  setenv("MUSE_TEST_GATEWAY_KEY", "provider-secret", 1);
  MirrorEndpoint e;
  e.url = url;
  e.model = "gpt-x";
  e.api_key_env = "MUSE_TEST_GATEWAY_KEY";
  e.alias = "default";
  return e;
}

TEST(Gateway, JsonPassedThroughWithTheProvidersModelAndKey) {
  FakePrimary primary;
  const Gateway gateway(remote_primary(primary.server.url()), 5000);
  EXPECT_TRUE(gateway.handles("default"));
  EXPECT_FALSE(gateway.handles("gpt-x"));
  CapturingSink cap;
  const UpstreamAnswer a = gateway.forward(ask("json"), cap.sink());
  EXPECT_EQ(cap.begins, 1);
  EXPECT_EQ(cap.status, 200);
  EXPECT_EQ(cap.content_type, "application/json");
  EXPECT_EQ(joined(cap.writes), kJsonAnswer);
  EXPECT_EQ(a.status, 200);
  EXPECT_FALSE(a.streamed);
  EXPECT_EQ(a.error, "");
  EXPECT_EQ(a.output.model, "gpt-x-2025");
  EXPECT_EQ(a.output.output, "hello there");
  EXPECT_EQ(a.output.prompt_tokens, 11);
  EXPECT_EQ(a.output.completion_tokens, 2);
  EXPECT_GT(a.latency_ms, 0.0);
  std::lock_guard lock(primary.mu);
  ASSERT_EQ(primary.bodies.size(), 1u);
  json expected = ask("json");
  expected["model"] = "gpt-x";
  EXPECT_EQ(primary.bodies[0], expected);  // everything else forwarded as sent
  EXPECT_EQ(primary.auth[0], "Bearer provider-secret");
}

TEST(Gateway, EventStreamBytesPassedThroughInOrderAsTheyArrive) {
  FakePrimary primary;
  const Gateway gateway(remote_primary(primary.server.url()), 5000);
  CapturingSink cap;
  const UpstreamAnswer a = gateway.forward(ask("stream", true), cap.sink());
  EXPECT_EQ(cap.status, 200);
  EXPECT_EQ(cap.content_type, "text/event-stream");
  EXPECT_EQ(joined(cap.writes), joined(kEvents));
  EXPECT_GE(cap.writes.size(), kEvents.size()) << "chunks were buffered together";
  EXPECT_TRUE(a.streamed);
  EXPECT_EQ(a.output.output, "Hello \xc3\xa9");
  EXPECT_EQ(a.output.model, "gpt-x-2025");
  EXPECT_EQ(a.output.prompt_tokens, 5);
  EXPECT_EQ(a.output.completion_tokens, 3);
}

TEST(Gateway, UpstreamErrorsPassedThroughAndUnreachableIs502) {
  FakePrimary primary;
  const Gateway gateway(remote_primary(primary.server.url()), 5000);
  CapturingSink cap;
  const UpstreamAnswer a = gateway.forward(ask("error"), cap.sink());
  EXPECT_EQ(cap.status, 429);
  EXPECT_EQ(joined(cap.writes), kRateLimited);
  EXPECT_EQ(cap.headers, (GatewaySink::Headers{{"Retry-After", "7"}}));
  EXPECT_EQ(a.status, 429);
  EXPECT_EQ(a.output.output, "");

  std::string closed_url;
  {
    FakeServer closed;
    closed.start();
    closed_url = closed.url();
  }
  const Gateway down(remote_primary(closed_url), 2000);
  CapturingSink cap2;
  const UpstreamAnswer b = down.forward(ask("json"), cap2.sink());
  EXPECT_EQ(cap2.status, 502);
  EXPECT_EQ(b.status, 502);
  EXPECT_NE(b.error, "");
  const json err = json::parse(joined(cap2.writes));
  EXPECT_EQ(err["error"]["type"], "server_error");
  EXPECT_EQ(err["error"]["code"], "upstream_unreachable");
  EXPECT_TRUE(err["error"]["param"].is_null());
}

// Muse's side: an httplib server whose route is the adapter, as the lead wires it.
struct GatewayFront {
  Gateway gateway;
  FakeServer server;
  std::mutex mu;
  std::vector<UpstreamAnswer> completed;
  explicit GatewayFront(const std::string& upstream) : gateway(remote_primary(upstream), 5000) {
    server.http.Post(
        "/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
          respond_via_gateway(gateway, json::parse(req.body), res, [this](const UpstreamAnswer& a) {
            std::lock_guard lock(mu);
            completed.push_back(a);
          });
        });
    server.start();
  }
};

struct ClientResult {
  int status = 0;
  std::string content_type, retry_after, body;
  std::vector<double> arrival_ms;  // per received piece, since the request was sent
};

ClientResult post_client(const std::string& base_url, const json& body) {
  const std::string host = base_url.substr(0, base_url.size() - 3);  // drop "/v1"
  httplib::Client client(host);
  client.set_read_timeout(10, 0);
  ClientResult out;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Authorization", "Bearer the-clients-own-key");
  const auto t0 = Clock::now();
  req.response_handler = [&](const httplib::Response& r) {
    out.status = r.status;
    out.content_type = r.get_header_value("Content-Type");
    out.retry_after = r.get_header_value("Retry-After");
    return true;
  };
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    out.body.append(data, size);
    out.arrival_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    return true;
  };
  EXPECT_TRUE(client.send(req));
  return out;
}

TEST(Gateway, HttplibAdapterStreamsJsonErrorsAndReportsCompletion) {
  FakePrimary primary;
  GatewayFront front(primary.server.url());

  const ClientResult s = post_client(front.server.url(), ask("stream", true));
  EXPECT_EQ(s.status, 200);
  EXPECT_EQ(s.content_type, "text/event-stream");
  EXPECT_EQ(s.body, joined(kEvents));
  ASSERT_GE(s.arrival_ms.size(), 2u);
  // Upstream events are 120 ms apart: the first must reach the client long before the last.
  EXPECT_GT(s.arrival_ms.back() - s.arrival_ms.front(), 300.0) << "the stream was buffered";

  const ClientResult j = post_client(front.server.url(), ask("json"));
  EXPECT_EQ(j.status, 200);
  EXPECT_EQ(j.content_type, "application/json");
  EXPECT_EQ(j.body, kJsonAnswer);

  const ClientResult e = post_client(front.server.url(), ask("error"));
  EXPECT_EQ(e.status, 429);
  EXPECT_EQ(e.retry_after, "7");
  EXPECT_EQ(e.body, kRateLimited);

  {
    std::lock_guard lock(primary.mu);
    for (const std::string& a : primary.auth) EXPECT_EQ(a, "Bearer provider-secret");
  }
  // on_complete ran for each (after the stream's last byte for the first).
  const auto deadline = Clock::now() + 5s;
  for (;;) {
    {
      std::lock_guard lock(front.mu);
      if (front.completed.size() == 3 || Clock::now() > deadline) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  std::lock_guard lock(front.mu);
  ASSERT_EQ(front.completed.size(), 3u);
  EXPECT_EQ(front.completed[0].output.output, "Hello \xc3\xa9");
  EXPECT_EQ(front.completed[1].output.output, "hello there");
  EXPECT_EQ(front.completed[2].status, 429);
}

TEST(Gateway, ReadsOutputsOfCompletionsAndToolCalls) {
  EXPECT_EQ(
      chat_output_from_json(
          json::parse(
              R"({"choices":[{"index":0,"text":"abc"}],"usage":{"prompt_tokens":1,"completion_tokens":2}})"))
          .output,
      "abc");
  const json tool = json::parse(
      R"({"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1"}]}}]})");
  EXPECT_EQ(chat_output_from_json(tool).output, R"([{"id":"c1"}])");
  // Choice 1's deltas are not mixed into choice 0's text; \r\n framing is accepted.
  const ChatOutput o = chat_output_from_sse(
      "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"X\"}}]}\r\n\r\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\r\n\r\n"
      "data: [DONE]\r\n\r\n");
  EXPECT_EQ(o.output, "ok");
  EXPECT_EQ(chat_output_from_json(json("not an object")).output, "");
}

}  // namespace
}  // namespace muse::server
