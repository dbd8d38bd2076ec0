// A cpp-httplib server on a free 127.0.0.1 port, running on its own thread: the fake
// OpenAI-compatible endpoints (models, judges, graders) of the platform tests. Routes
// may be added after it has started.
#pragma once

#include <httplib.h>

#include <chrono>
#include <string>
#include <thread>

namespace muse::platform {

class LocalServer {
 public:
  LocalServer() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LocalServer() {
    server_.stop();
    thread_.join();
  }
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  httplib::Server& server() { return server_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace muse::platform
