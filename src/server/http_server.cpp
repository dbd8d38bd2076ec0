#include "server/http_server.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>

#include "server/api_error.h"
#include "server/generation.h"
#include "server/http_util.h"
#include "server/openai_response.h"

namespace muse::server {

using nlohmann::ordered_json;

namespace {

ApiError model_not_found(const std::string& name) {
  return ApiError(404, "invalid_request_error",
                  "The model '" + name + "' does not exist or you do not have access to it.",
                  "model", "model_not_found");
}

}  // namespace

namespace {

std::shared_ptr<platform::Store> open_store(const ServeConfig& config,
                                            std::shared_ptr<platform::Store> given) {
  if (given || config.store.empty()) return given;
  return std::shared_ptr<platform::Store>(platform::Store::open(config.store));
}

}  // namespace

HttpServer::HttpServer(const ServeConfig& config, ModelRegistry& models, ApiKeys keys,
                       std::shared_ptr<platform::Store> store)
    : config_(config),
      models_(models),
      access_(std::move(keys), open_store(config, std::move(store))),
      http_(new httplib::Server) {
  MUSE_CHECK(config.admin_key_file.empty() || access_.store() != nullptr,
             "serve config: admin_key_file needs a store (set `store` or --store)");
  if (!config.admin_key_file.empty()) admin_key_ = ApiKeys::load_file(config.admin_key_file);
  limits_.max_messages = config.max_messages;
  limits_.max_n = config.max_n;
  limits_.max_tokens = config.max_tokens_limit;
  limits_.max_json_depth = config.max_json_depth;
  const MirrorConfig& mc = config_.mirror;
  if (mc.enabled && mc.primary.remote())
    gateway_ = std::make_unique<Gateway>(mc.primary, mc.timeout_ms);
  if (mc.mirroring())
    mirror_ = std::make_unique<Mirror>(
        mc,
        mc.candidate.remote() ? LocalCandidate{}
                              : served_model_candidate(models_, limits_, mc.candidate.model),
        mc.records_in_store() ? access_.store() : nullptr);
  metrics_.declare_counter(metric::kRequests, "HTTP requests by model, endpoint and status code.");
  metrics_.declare_gauge(metric::kRunning, "Requests being generated (sequences in the engine).");
  metrics_.declare_gauge(metric::kQueue, "Requests waiting for a sequence slot.");
  metrics_.declare_counter(metric::kCancelled,
                           "Requests abandoned by their client before the end.");
  metrics_.declare_counter(metric::kPromptTokens, "Prompt tokens of finished requests.");
  metrics_.declare_counter(metric::kCachedTokens, "Prompt tokens reused from the prefix cache.");
  metrics_.declare_counter(metric::kGenTokens, "Generated tokens.");
  const std::vector<double> latency = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                       1,     2.5,  5,     10,   30,  60};
  metrics_.declare_histogram(metric::kTtft, "Time from request arrival to its first token.",
                             latency);
  metrics_.declare_histogram(metric::kItl, "Time between successive tokens of a request.", latency);
  metrics_.declare_histogram(metric::kDuration, "Time from request arrival to its last token.",
                             latency);
  metrics_.declare_gauge(metric::kEngineHealthy, "1 when the model's engine loop is alive.");
  install_routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  if (config_.port == 0) {
    port_ = http_->bind_to_any_port(config_.host);
    MUSE_CHECK(port_ > 0, "cannot bind to ", config_.host, " (any port)");
  } else {
    MUSE_CHECK(http_->bind_to_port(config_.host, config_.port), "cannot bind to ", config_.host,
               ":", config_.port, " (address in use or not available)");
    port_ = config_.port;
  }
  return port_;
}

void HttpServer::serve() {
  http_->listen_after_bind();
}
void HttpServer::stop() {
  http_->stop();
}

void HttpServer::refresh_gauges() {
  for (const auto& m : models_.models()) {
    const EngineStats s = m->engine->stats();
    const Labels l = {{"model", m->id}};
    metrics_.set(metric::kRunning, double(s.running), l);
    metrics_.set(metric::kQueue, double(s.waiting), l);
    metrics_.set(metric::kEngineHealthy, m->engine->healthy() ? 1 : 0, l);
  }
}

void HttpServer::install_routes() {
  httplib::Server& http = *http_;
  // Every streaming request holds a worker thread; size the pool for the engines' slots
  // and queues plus headroom for the cheap routes.
  int64_t capacity = 32;
  for (const auto& m : models_.models())
    capacity += m->engine->options().n_parallel + m->engine->options().max_queue;
  const size_t threads = size_t(std::max<int64_t>(capacity, 64));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(config_.max_body_bytes);
  http.set_read_timeout(30);
  http.set_write_timeout(30);

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // The generation routes authenticate themselves (they need the caller's tier); the
    // admin API has its own key; the waitlist is public.
    if (!access_.enabled() || req.path == "/health" || req.path == "/v1/chat/completions" ||
        req.path == "/v1/completions" || req.path == "/v1/access-requests" ||
        req.path.rfind("/admin/", 0) == 0)
      return httplib::Server::HandlerResponse::Unhandled;
    try {
      access_.authenticate(req.get_header_value("Authorization"));
      return httplib::Server::HandlerResponse::Unhandled;
    } catch (const ApiError& e) {
      respond_error(res, e);
    }
    metrics_.add(metric::kRequests, 1, {{"model", ""}, {"endpoint", req.path}, {"status", "401"}});
    return httplib::Server::HandlerResponse::Handled;
  });

  // Requests the router did not handle (unknown path, body over the limit, bad HTTP).
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      respond_error(res,
                    ApiError(404, "invalid_request_error",
                             "Unknown route " + req.method + " " + req.path, "", "unknown_url"));
    else if (res.status == 413)
      respond_error(
          res, ApiError(413, "invalid_request_error",
                        "request body is larger than the server's limit", "", "request_too_large"));
    else
      respond_error(res, ApiError(res.status, "invalid_request_error",
                                  "request failed with HTTP status " + std::to_string(res.status)));
  });

  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        std::fprintf(stderr, "muse serve: internal error: %s\n", what.c_str());
        respond_error(res, ApiError(500, "server_error", "internal error: " + what));
      });

  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    std::fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    bool ok = !models_.models().empty();
    for (const auto& m : models_.models()) ok = ok && m->engine->healthy();
    respond_json(res, ok ? 200 : 503, {{"status", ok ? "ok" : "unhealthy"}});
  });

  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    refresh_gauges();
    std::string text = metrics_.render();
    if (mirror_) text += mirror_metrics_text(mirror_->stats());
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });

  auto model_json = [](const ServedModel& m, const std::string& id) {
    return ordered_json{
        {"id", id}, {"object", "model"}, {"created", m.created}, {"owned_by", "muse"}};
  };
  http.Get("/v1/models", [this, model_json](const httplib::Request&, httplib::Response& res) {
    ordered_json data = ordered_json::array();
    for (const auto& m : models_.models())
      for (const auto& alias : m->aliases) data.push_back(model_json(*m, alias));
    respond_json(res, 200, {{"object", "list"}, {"data", data}});
  });
  http.Get(R"(/v1/models/(.+))",
           [this, model_json](const httplib::Request& req, httplib::Response& res) {
             const std::string name = req.matches[1];
             if (ServedModel* m = models_.find(name))
               respond_json(res, 200, model_json(*m, name));
             else
               respond_error(res, model_not_found(name));
           });

  install_generation_routes();
  install_token_routes();
  if (access_.store()) install_access_request_route();
  if (access_.store() && admin_key_.enabled()) install_admin_routes();
}

}  // namespace muse::server
