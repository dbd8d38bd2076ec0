// OpenAIClient against a local cpp-httplib server: JSON calls, error statuses and
// bodies, streamed chunks in order, stopping a stream, timeouts, refused connections.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "muse/error.h"
#include "platform/local_server.h"
#include "platform/openai_client.h"

namespace muse::platform {
namespace {

class OpenAIClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto& s = local_.server();
    s.Post("/v1/echo", [](const httplib::Request& req, httplib::Response& res) {
      nlohmann::json body = nlohmann::json::parse(req.body);
      res.set_content(
          nlohmann::json{
              {"got", body}, {"auth", req.get_header_value("Authorization")}, {"path", req.path}}
              .dump(),
          "application/json");
    });
    s.Post("/v1/limited", [](const httplib::Request&, httplib::Response& res) {
      res.status = 429;
      res.set_header("Retry-After", "7");
      res.set_content(R"({"error":{"message":"slow down","type":"rate_limit"}})",
                      "application/json");
    });
    s.Post("/v1/chat/completions", [](const httplib::Request& req, httplib::Response& res) {
      const auto body = nlohmann::json::parse(req.body);
      if (body.value("model", "") == "missing") {
        res.status = 404;
        res.set_content(R"({"error":{"message":"no such model"}})", "application/json");
        return;
      }
      res.set_content(R"({"choices":[{"message":{"role":"assistant","content":"hi"}}]})",
                      "application/json");
    });
    s.Post("/v1/stream", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider(
          "text/event-stream", [](size_t offset, httplib::DataSink& sink) {
            for (int i = 0; i < 5; ++i) {
              const std::string ev = "data: " + std::to_string(i) + "\n\n";
              sink.write(ev.data(), ev.size());
              std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            (void)offset;
            sink.done();
            return true;
          });
    });
    s.Post("/v1/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      res.set_content("{}", "application/json");
    });
  }

  LocalServer local_;
};

TEST_F(OpenAIClientTest, PostsJsonWithBearerKeyUnderTheBasePath) {
  OpenAIClient client({local_.base_url(), "sk-test", 5000});
  const HttpResult r = client.post_json("/echo", {{"x", 1}});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.content_type, "application/json");
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["got"]["x"], 1);
  EXPECT_EQ(j["auth"], "Bearer sk-test");
  EXPECT_EQ(j["path"], "/v1/echo");
  EXPECT_GT(r.seconds, 0);
}

TEST_F(OpenAIClientTest, NoKeyMeansNoAuthorizationHeader) {
  OpenAIClient client({local_.base_url() + "/", "", 5000});  // trailing slash tolerated
  const HttpResult r = client.post_json("/echo", nlohmann::json::object());
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(nlohmann::json::parse(r.body)["auth"], "");
}

TEST_F(OpenAIClientTest, ErrorStatusKeepsBodyAndRetryAfter) {
  OpenAIClient client({local_.base_url(), "", 5000});
  const HttpResult r = client.post_json("/limited", nlohmann::json::object());
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_after, "7");
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["message"], "slow down");
  EXPECT_TRUE(r.error.empty());
}

TEST_F(OpenAIClientTest, ChatReturnsResponseOrThrowsWithStatusAndMessage) {
  OpenAIClient client({local_.base_url(), "", 5000});
  const auto ok = client.chat({{"model", "m"}, {"messages", nlohmann::json::array()}});
  EXPECT_EQ(ok["choices"][0]["message"]["content"], "hi");
  try {
    client.chat({{"model", "missing"}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("404"), std::string::npos) << what;
    EXPECT_NE(what.find("no such model"), std::string::npos) << what;
  }
}

TEST_F(OpenAIClientTest, StreamDeliversChunksInOrder) {
  OpenAIClient client({local_.base_url(), "", 5000});
  std::string received;
  int calls = 0;
  const HttpResult r =
      client.post_stream("/stream", {{"stream", true}}, [&](const char* data, size_t size) {
        received.append(data, size);
        ++calls;
        return true;
      });
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.content_type, "text/event-stream");
  EXPECT_EQ(received, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
  EXPECT_GE(calls, 2);  // delivered as it arrived, not in one piece at the end
  EXPECT_TRUE(r.body.empty());
}

TEST_F(OpenAIClientTest, StreamStopsWhenReceiverSaysSo) {
  OpenAIClient client({local_.base_url(), "", 5000});
  std::string received;
  const HttpResult r =
      client.post_stream("/stream", {{"stream", true}}, [&](const char* data, size_t size) {
        received.append(data, size);
        return false;
      });
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(received.rfind("data: 0", 0), 0u);
  EXPECT_LT(received.size(), 45u);
}

TEST_F(OpenAIClientTest, StreamErrorBodyGoesToResultNotReceiver) {
  OpenAIClient client({local_.base_url(), "", 5000});
  bool called = false;
  const HttpResult r = client.post_stream("/limited", {{"stream", true}},
                                          [&](const char*, size_t) { return called = true; });
  EXPECT_EQ(r.status, 429);
  EXPECT_FALSE(called);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"]["message"], "slow down");
}

TEST_F(OpenAIClientTest, TimeoutGivesStatusZero) {
  OpenAIClient client({local_.base_url(), "", 300});
  const auto start = std::chrono::steady_clock::now();
  const HttpResult r = client.post_json("/slow", nlohmann::json::object());
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status, 0);
  EXPECT_FALSE(r.error.empty());
  EXPECT_LT(took, 1.2);
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
}

TEST(OpenAIClient, ConnectionRefusedGivesStatusZero) {
  // A port that was free a moment ago: bound, never listened on, closed.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  OpenAIClient client({"http://127.0.0.1:" + std::to_string(port) + "/v1", "", 2000});
  const HttpResult r = client.post_json("/chat/completions", nlohmann::json::object());
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.error.find("connection"), std::string::npos) << r.error;
  EXPECT_THROW(client.chat(nlohmann::json::object()), Error);
}

TEST(OpenAIClient, RejectsBadBaseUrls) {
  EXPECT_THROW(OpenAIClient({"ftp://example.com/v1", "", 1000}), Error);
  EXPECT_THROW(OpenAIClient({"127.0.0.1:8080/v1", "", 1000}), Error);
  EXPECT_THROW(OpenAIClient({"http:///v1", "", 1000}), Error);
  EXPECT_THROW(OpenAIClient({"http://x/v1", "", 0}), Error);
  EXPECT_NO_THROW(OpenAIClient({"https://api.example.com/v1", "", 1000}));
}

}  // namespace
}  // namespace muse::platform
