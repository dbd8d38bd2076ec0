// fetch_url against real local HTTP servers on 127.0.0.1 (ephemeral ports): what is
// fetched, what is refused before any connection, redirects, size limits and timeouts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>

#include "server/url_fetch.h"

namespace muse::server {
namespace {

using namespace std::chrono_literals;

// An httplib server on 127.0.0.1 on a free port, counting the requests it receives.
class LocalServer {
 public:
  explicit LocalServer(std::unique_ptr<httplib::Server> server = nullptr)
      : server_(server ? std::move(server) : std::make_unique<httplib::Server>()) {
    server_->set_pre_routing_handler([this](const httplib::Request&, httplib::Response&) {
      ++hits;
      return httplib::Server::HandlerResponse::Unhandled;
    });
  }
  ~LocalServer() {
    stopping = true;
    server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Server& http() { return *server_; }
  void start() {
    port = server_->bind_to_any_port("127.0.0.1");
    ASSERT_GT(port, 0);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) std::this_thread::sleep_for(1ms);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port) + path;
  }
  std::string host_port() const { return "127.0.0.1:" + std::to_string(port); }

  int port = 0;
  std::atomic<int> hits{0};
  std::atomic<bool> stopping{false};

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

std::string body_of(const std::vector<uint8_t>& v) {
  return std::string(v.begin(), v.end());
}

// Runs fetch_url and returns the FetchError it throws (fails the test if none).
FetchError fetch_error(const std::string& url, const FetchPolicy& policy) {
  try {
    fetch_url(url, policy);
  } catch (const FetchError& e) {
    return e;
  }
  ADD_FAILURE() << "fetching " << url << " did not fail";
  return FetchError(0, "", "");
}

class UrlFetch : public ::testing::Test {
 protected:
  void SetUp() override {
    server.http().Get("/img", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("PNGDATA:" + req.get_header_value("Host"), "image/png");
    });
    server.http().Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("no", "text/plain");
    });
    server.http().Get("/to-self", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("/img");
    });
    server.http().Get("/to-self-twice", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("to-self", 307);  // relative to the directory: /to-self
    });
    server.http().Get("/loop", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("/loop");
    });
    server.http().Get("/to-other", [this](const httplib::Request&, httplib::Response& res) {
      res.set_redirect(other.url("/img"));
    });
    server.http().Get("/to-metadata", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("http://169.254.169.254/latest/meta-data/", 301);
    });
    server.http().Get("/to-file", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("file:///etc/passwd");
    });
    // 64 MiB in 64 KiB chunks, with or without Content-Length; counts what was written.
    auto big = [this](const httplib::Request&, httplib::Response& res, bool with_length) {
      auto provider = [this](size_t offset, httplib::DataSink& sink) {
        static const std::string chunk(64 << 10, 'x');
        if (offset >= kBigSize || stopping()) return false;
        if (!sink.write(chunk.data(), chunk.size())) return false;
        big_sent += chunk.size();
        if (offset + chunk.size() >= kBigSize) sink.done();
        return true;
      };
      if (with_length)
        res.set_content_provider(kBigSize, "application/octet-stream",
                                 [provider](size_t offset, size_t, httplib::DataSink& sink) {
                                   return provider(offset, sink);
                                 });
      else
        res.set_chunked_content_provider("application/octet-stream", provider);
    };
    server.http().Get("/big-length",
                      [big](const httplib::Request& q, httplib::Response& r) { big(q, r, true); });
    server.http().Get("/big-chunked",
                      [big](const httplib::Request& q, httplib::Response& r) { big(q, r, false); });
    server.http().Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      for (int i = 0; i < 500 && !stopping(); ++i) std::this_thread::sleep_for(10ms);
      res.set_content("late", "text/plain");
    });
    // One byte every 50 ms, forever: each read is quick, only the overall deadline ends it.
    server.http().Get("/drip", [this](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/plain", [this](size_t, httplib::DataSink& sink) {
        if (stopping()) return false;
        std::this_thread::sleep_for(50ms);
        return sink.write("x", 1);
      });
    });
    server.start();
    other.http().Get("/img", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("secret", "text/plain");
    });
    other.start();
    policy.allowed_hosts = {server.host_port()};
    policy.timeout_ms = 5000;
  }

  bool stopping() const { return server.stopping; }

  static constexpr size_t kBigSize = 64 << 20;
  LocalServer server, other;
  FetchPolicy policy;
  std::atomic<size_t> big_sent{0};
};

TEST_F(UrlFetch, FetchesAnAllowedHostAndSendsItsHostHeader) {
  EXPECT_EQ(body_of(fetch_url(server.url("/img"), policy)), "PNGDATA:" + server.host_port());
  EXPECT_EQ(server.hits, 1);
  // "host" without a port allows every port; names are compared case-insensitively.
  policy.allowed_hosts = {"LOCALHOST"};
  const std::string via_name = "http://localhost:" + std::to_string(server.port) + "/img";
  EXPECT_EQ(body_of(fetch_url(via_name, policy)),
            "PNGDATA:localhost:" + std::to_string(server.port));
}

TEST_F(UrlFetch, RefusesPrivateAndSpecialAddressesWithoutConnecting) {
  const FetchPolicy strict;  // nothing allowed
  const std::string port = std::to_string(server.port);
  for (const std::string& url : std::vector<std::string>{
           "http://127.0.0.1:" + port + "/img", "http://localhost:" + port + "/img",
           "http://[::1]:" + port + "/img", "http://10.0.0.1/x.png", "http://192.168.1.1/x.png",
           "http://172.16.5.4/x.png", "http://100.64.0.1/x.png",
           "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest",
           "http://0.0.0.0:" + port + "/img", "http://[::ffff:127.0.0.1]:" + port + "/img",
           "http://2130706433:" + port + "/img",  // 127.0.0.1 as one decimal number
           "http://0x7f.1:" + port + "/img",      // and in inet_aton's short hex form
           "http://[fe80::1]/x", "http://224.0.0.1/x", "http://255.255.255.255/x"}) {
    const FetchError e = fetch_error(url, strict);
    EXPECT_EQ(e.status, 400) << url;
    EXPECT_EQ(e.code, "url_refused") << url << ": " << e.what();
  }
  EXPECT_EQ(server.hits, 0);
  // Allowing another port of the same host does not allow this one.
  FetchPolicy other_port;
  other_port.allowed_hosts = {other.host_port()};
  EXPECT_EQ(fetch_error(server.url("/img"), other_port).code, "url_refused");
  EXPECT_EQ(server.hits, 0);
  // 0.0.0.0 stays refused even when private addresses are allowed.
  FetchPolicy open;
  open.allow_private = true;
  EXPECT_EQ(fetch_error("http://0.0.0.0:" + port + "/img", open).code, "url_refused");
  EXPECT_EQ(body_of(fetch_url(server.url("/img"), open)), "PNGDATA:" + server.host_port());
}

TEST_F(UrlFetch, RefusesOtherSchemesCredentialsAndMalformedUrls) {
  for (const std::string& url : std::vector<std::string>{
           "ftp://example.com/a.png", "file:///etc/passwd", "gopher://example.com/",
           "data:image/png;base64,AAAA", "http://user:pass@example.com/a.png",
           "http://" + server.host_port() + "@evil.example/"})
    EXPECT_EQ(fetch_error(url, policy).code, "url_refused") << url;
  for (const std::string& url : std::vector<std::string>{
           "example.com/a.png", "http://", "http:///a.png", "http://exa mple.com/",
           "http://example.com:99999/", "http://example.com:/", "http://[::1/",
           "http://example.com/a\r\nX-Injected: 1", "http://ex%61mple.com/",
           "http://[fe80::1%25eth0]/"})
    EXPECT_EQ(fetch_error(url, policy).code, "invalid_url") << url;
  EXPECT_EQ(server.hits, 0);
}

TEST_F(UrlFetch, ParsesUrls) {
  const ParsedUrl a = parse_fetch_url("HTTPS://Example.COM/a/b.png?x=1#frag");
  EXPECT_EQ(a.scheme, "https");
  EXPECT_EQ(a.host, "example.com");
  EXPECT_EQ(a.port, 443);
  EXPECT_EQ(a.target, "/a/b.png?x=1");
  const ParsedUrl b = parse_fetch_url("http://[2001:DB8::1]:8080?q");
  EXPECT_TRUE(b.host_is_ipv6);
  EXPECT_EQ(b.host, "2001:db8::1");
  EXPECT_EQ(b.port, 8080);
  EXPECT_EQ(b.target, "/?q");
}

TEST_F(UrlFetch, ClassifiesAddresses) {
  for (const char* ip : {"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                         "2002:0808:0808::1", "64:ff9b::808:808"})
    EXPECT_TRUE(is_public_address(ip)) << ip;
  for (const char* ip : {"127.0.0.1",
                         "127.255.0.9",
                         "10.1.2.3",
                         "172.31.255.255",
                         "192.168.0.1",
                         "169.254.169.254",
                         "100.127.255.255",
                         "0.0.0.0",
                         "224.0.0.251",
                         "240.0.0.1",
                         "198.18.0.1",
                         "192.0.2.1",
                         "::",
                         "::1",
                         "fe80::1",
                         "fc00::1",
                         "fd00:ec2::254",
                         "ff02::1",
                         "::ffff:10.0.0.1",
                         "::ffff:169.254.169.254",
                         "64:ff9b::7f00:1",
                         "2002:7f00:0001::1",
                         "2001:db8::1",
                         "2001:0:4136:e378::1",
                         "::127.0.0.1",
                         "not an ip"})
    EXPECT_FALSE(is_public_address(ip)) << ip;
  // The edges of 172.16/12 and 100.64/10.
  EXPECT_TRUE(is_public_address("172.15.255.255"));
  EXPECT_TRUE(is_public_address("172.32.0.0"));
  EXPECT_TRUE(is_public_address("100.63.255.255"));
  EXPECT_TRUE(is_public_address("100.128.0.0"));
}

TEST_F(UrlFetch, FollowsRedirectsOnlyToAllowedPlaces) {
  // Absolute-path and directory-relative Locations are followed.
  EXPECT_EQ(body_of(fetch_url(server.url("/to-self"), policy)), "PNGDATA:" + server.host_port());
  EXPECT_EQ(server.hits, 2);
  EXPECT_EQ(body_of(fetch_url(server.url("/to-self-twice"), policy)),
            "PNGDATA:" + server.host_port());
  EXPECT_EQ(server.hits, 5);
  // A redirect to a private address that is not allowed: refused, never contacted.
  const FetchError e = fetch_error(server.url("/to-other"), policy);
  EXPECT_EQ(e.code, "url_refused") << e.what();
  EXPECT_EQ(other.hits, 0);
  EXPECT_EQ(fetch_error(server.url("/to-metadata"), policy).code, "url_refused");
  EXPECT_EQ(fetch_error(server.url("/to-file"), policy).code, "url_refused");
  // Allowing the other server makes the same chain work.
  policy.allowed_hosts.push_back(other.host_port());
  EXPECT_EQ(body_of(fetch_url(server.url("/to-other"), policy)), "secret");
  EXPECT_EQ(other.hits, 1);
}

TEST_F(UrlFetch, StopsAfterMaxRedirects) {
  policy.max_redirects = 3;
  const int before = server.hits;
  const FetchError e = fetch_error(server.url("/loop"), policy);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "too_many_redirects");
  EXPECT_EQ(server.hits - before, 4);  // the first request and 3 redirects
  policy.max_redirects = 0;
  EXPECT_EQ(fetch_error(server.url("/to-self"), policy).code, "too_many_redirects");
  policy.max_redirects = 1;
  EXPECT_EQ(body_of(fetch_url(server.url("/to-self"), policy)), "PNGDATA:" + server.host_port());
}

TEST_F(UrlFetch, RefusesBodiesOverTheLimitAndStopsDownloading) {
  policy.max_bytes = 100000;
  for (const char* path : {"/big-length", "/big-chunked"}) {
    big_sent = 0;
    const auto start = std::chrono::steady_clock::now();
    const FetchError e = fetch_error(server.url(path), policy);
    EXPECT_EQ(e.status, 413) << path;
    EXPECT_EQ(e.code, "media_too_large") << path;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    std::this_thread::sleep_for(200ms);  // let the server notice the closed connection
    // Socket buffers hold a few MiB at most; the 64 MiB were not all sent.
    EXPECT_LT(big_sent.load(), kBigSize / 4) << path;
  }
  // Exactly at the limit is fine.
  policy.max_bytes = int64_t(("PNGDATA:" + server.host_port()).size());
  EXPECT_EQ(fetch_url(server.url("/img"), policy).size(), size_t(policy.max_bytes));
  policy.max_bytes -= 1;
  EXPECT_EQ(fetch_error(server.url("/img"), policy).status, 413);
}

TEST_F(UrlFetch, TimesOutOnSlowServers) {
  policy.timeout_ms = 300;
  for (const char* path : {"/slow", "/drip"}) {
    const auto start = std::chrono::steady_clock::now();
    const FetchError e = fetch_error(server.url(path), policy);
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(e.status, 400) << path;
    EXPECT_EQ(e.code, "fetch_timeout") << path << ": " << e.what();
    EXPECT_GE(took, 250ms) << path;
    EXPECT_LT(took, 1500ms) << path;
  }
}

TEST_F(UrlFetch, UpstreamErrorsAndUnreachableHosts) {
  const FetchError e = fetch_error(server.url("/missing"), policy);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "upstream_status");
  EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  // A port nobody listens on (bound without listen(), then released).
  int closed_port = 0;
  {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    closed_port = ntohs(addr.sin_port);
    close(fd);
  }
  FetchPolicy open;
  open.allow_private = true;
  const FetchError c = fetch_error("http://127.0.0.1:" + std::to_string(closed_port) + "/x", open);
  EXPECT_EQ(c.code, "fetch_failed") << c.what();
  EXPECT_EQ(fetch_error("http://no-such-host.invalid/x.png", policy).code, "fetch_failed");
}

// HTTPS: a local TLS server with a self-signed certificate must be refused (certificate
// verification is on); the handshake itself works.
TEST(UrlFetchHttps, VerifiesCertificates) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(MUSE_TEST_TMP) / "url_fetch_tls";
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
      "-keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "openssl command not available";
  LocalServer tls(std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str()));
  tls.http().Get("/img", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("tls", "text/plain");
  });
  tls.start();
  FetchPolicy policy;
  policy.allowed_hosts = {tls.host_port()};
  policy.timeout_ms = 5000;
  const std::string url = "https://" + tls.host_port() + "/img";
  try {
    fetch_url(url, policy);
    ADD_FAILURE() << "a self-signed certificate was accepted";
  } catch (const FetchError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "fetch_failed");
    EXPECT_NE(std::string(e.what()).find("certificate"), std::string::npos) << e.what();
  }
  // Plain http to the TLS port is not a valid HTTP answer.
  EXPECT_THROW(fetch_url("http://" + tls.host_port() + "/img", policy), FetchError);
}

}  // namespace
}  // namespace muse::server
