// `muse serve`: the OpenAI-compatible HTTP server.
//
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
// GET /v1/models/{id}, GET /health, GET /metrics, POST /tokenize, POST /detokenize.
// With API keys configured every route but /health needs `Authorization: Bearer <key>`.
// With a store (config `store`): keys issued by the admin API with per-tier limits and
// usage metering (access_control.h), the admin API under /admin (admin_routes.cpp, its
// own key from `admin_key_file`) and the public POST /v1/access-requests waitlist.
// Request handling runs on the HTTP library's worker threads; generation runs on each
// model's engine thread; a handler only waits on its request's streams.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "server/access_control.h"
#include "server/api_keys.h"
#include "server/gateway.h"
#include "server/generation.h"
#include "server/metrics.h"
#include "server/mirror.h"
#include "server/openai_request.h"
#include "server/serve_config.h"
#include "server/served_model.h"

namespace httplib {
class Server;
struct Response;
}  // namespace httplib

namespace muse::server {

class HttpServer {
 public:
  // store: null opens config.store when it is set (tests pass their own).
  HttpServer(const ServeConfig& config, ModelRegistry& models, ApiKeys keys,
             std::shared_ptr<platform::Store> store = nullptr);
  ~HttpServer();

  // Binds the socket (port 0 picks a free one); throws muse::Error when it cannot.
  int bind();
  // Serves until stop() is called (from any thread).
  void serve();
  void stop();

  MetricsRegistry& metrics() { return metrics_; }
  AccessControl& access() { return access_; }

 private:
  void install_routes();
  void install_generation_routes();  // http_generation_routes.cpp
  void install_token_routes();
  void install_admin_routes();  // admin_routes.cpp (with a store)
  void install_access_request_route();
  void refresh_gauges();
  // The model a request names; with a single model served, an empty name means it.
  ServedModel& find_model(const nlohmann::ordered_json& body);
  // Runs a chat or completion request to the response (JSON or an event stream).
  // Usage is recorded for `caller` when the request ends (also streamed or abandoned).
  // mirror_request: the request body to mirror to the candidate once the answer is
  // complete (null: not sampled).
  void respond_generation(std::unique_ptr<StartedRequest> started, const GenerationParams& gen,
                          bool chat, const Caller& caller, int64_t media_inputs,
                          httplib::Response& res, nlohmann::json mirror_request = nullptr);
  void record_finished(const StartedRequest& request, bool abandoned, const Caller& caller,
                       int64_t media_inputs);

  ServeConfig config_;
  ModelRegistry& models_;
  AccessControl access_;
  ApiKeys admin_key_;  // empty: no admin API
  RequestLimits limits_;
  MetricsRegistry metrics_;
  // Declared after limits_ and models_ (they use them), so destroyed first.
  std::unique_ptr<Gateway> gateway_;  // remote primary
  std::unique_ptr<Mirror> mirror_;    // candidate mirroring
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
};

}  // namespace muse::server
