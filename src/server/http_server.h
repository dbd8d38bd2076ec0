// `muse serve`: the OpenAI-compatible HTTP server.
//
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,
// GET /v1/models/{id}, GET /health, GET /metrics, POST /tokenize, POST /detokenize.
// With API keys configured every route but /health needs `Authorization: Bearer <key>`.
// Request handling runs on the HTTP library's worker threads; generation runs on each
// model's engine thread; a handler only waits on its request's streams.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "server/api_keys.h"
#include "server/generation.h"
#include "server/metrics.h"
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
  HttpServer(const ServeConfig& config, ModelRegistry& models, ApiKeys keys);
  ~HttpServer();

  // Binds the socket (port 0 picks a free one); throws muse::Error when it cannot.
  int bind();
  // Serves until stop() is called (from any thread).
  void serve();
  void stop();

  MetricsRegistry& metrics() { return metrics_; }

 private:
  void install_routes();
  void install_generation_routes();  // http_generation_routes.cpp
  void install_token_routes();
  void refresh_gauges();
  // The model a request names; with a single model served, an empty name means it.
  ServedModel& find_model(const nlohmann::ordered_json& body);
  // Runs a chat or completion request to the response (JSON or an event stream).
  void respond_generation(std::unique_ptr<StartedRequest> started, const GenerationParams& gen,
                          bool chat, httplib::Response& res);
  void record_finished(const StartedRequest& request, bool abandoned);

  ServeConfig config_;
  ModelRegistry& models_;
  ApiKeys keys_;
  RequestLimits limits_;
  MetricsRegistry metrics_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
};

}  // namespace muse::server
