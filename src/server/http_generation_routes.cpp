// The generation routes (chat and text completions) and the tokenizer routes.
#include <httplib.h>

#include "server/api_error.h"
#include "server/generation.h"
#include "server/http_server.h"
#include "server/http_util.h"
#include "server/openai_response.h"

namespace muse::server {

using nlohmann::ordered_json;

namespace {

std::string sse(const ordered_json& j) {
  return "data: " + dump_json(j) + "\n\n";
}

}  // namespace

ServedModel& HttpServer::find_model(const ordered_json& body) {
  std::string name;
  if (body.contains("model") && body["model"].is_string()) name = body["model"];
  if (name.empty() && models_.models().size() == 1) return *models_.models().front();
  if (ServedModel* m = models_.find(name)) return *m;
  throw ApiError(404, "invalid_request_error",
                 "The model '" + name + "' does not exist or you do not have access to it.",
                 "model", "model_not_found");
}

void HttpServer::record_finished(const StartedRequest& r, bool abandoned) {
  const Labels model = {{"model", r.model->id}};
  metrics_.add(metric::kPromptTokens, double(r.prompt_tokens()), model);
  metrics_.add(metric::kCachedTokens, double(r.cached_prompt_tokens()), model);
  metrics_.add(metric::kGenTokens, double(r.completion_tokens()), model);
  if (abandoned) metrics_.add(metric::kCancelled, 1, model);
  for (const auto& c : r.choices) {
    if (c->time_to_first_token() >= 0)
      metrics_.observe(metric::kTtft, c->time_to_first_token(), model);
    for (double gap : c->take_inter_token_gaps()) metrics_.observe(metric::kItl, gap, model);
  }
  metrics_.observe(
      metric::kDuration,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count(), model);
}

void HttpServer::respond_generation(std::unique_ptr<StartedRequest> started,
                                    const GenerationParams& gen, bool chat,
                                    httplib::Response& res) {
  if (!gen.stream) {
    std::vector<ChoiceResult> results(started->choices.size());
    drive(*started, [&](ChoiceRun& c, ChoiceDelta& d) {
      results[size_t(c.index())].add(d);
      return true;
    });
    record_finished(*started, false);
    for (const auto& r : results)
      if (!r.error.empty()) throw ApiError(500, "server_error", "generation failed: " + r.error);
    respond_json(res, 200,
                 chat ? chat_completion_json(*started, results, gen.logprobs)
                      : text_completion_json(*started, results, gen.logprobs));
    return;
  }
  std::shared_ptr<StartedRequest> request(started.release());
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider("text/event-stream", [this, request, gen, chat](
                                                            size_t, httplib::DataSink& sink) {
    auto send = [&](const std::string& text) { return sink.write(text.data(), text.size()); };
    bool ok = true;
    if (chat)
      for (const auto& c : request->choices)
        ok = ok && send(sse(chat_role_chunk(*request, c->index(), gen.include_usage)));
    std::string error;
    ok = ok && drive(*request, [&](ChoiceRun& c, ChoiceDelta& d) {
           if (d.empty()) return sink.is_writable();
           if (!d.error.empty()) {
             error = d.error;
             return false;
           }
           return send(sse(
               chat ? chat_delta_chunk(*request, c.index(), d, gen.logprobs, gen.include_usage)
                    : text_delta_chunk(*request, c.index(), d, gen.logprobs, gen.include_usage)));
         });
    if (!error.empty()) {
      // Errors after the stream started travel as an event (the status is already sent).
      record_finished(*request, false);
      send(sse(ApiError(500, "server_error", "generation failed: " + error).to_json()));
      send("data: [DONE]\n\n");
      sink.done();
      return true;
    }
    record_finished(*request, !ok);
    if (!ok) return false;  // the client is gone; its sequences are cancelled
    if (gen.include_usage)
      send(sse(usage_chunk(*request, chat ? "chat.completion.chunk" : "text_completion")));
    send("data: [DONE]\n\n");
    sink.done();
    return true;
  });
}

void HttpServer::install_generation_routes() {
  auto route = [this](const std::string& endpoint, bool chat) {
    return [this, endpoint, chat](const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
      std::string model_label;
      try {
        const ordered_json body = parse_request_body(read_body(req, reader, config_.max_body_bytes),
                                                     limits_.max_json_depth);
        if (chat) {
          ChatRequest cr = parse_chat_request(body, limits_);
          ServedModel& m = find_model(body);
          model_label = m.id;
          auto started = start_chat(m, cr.model, cr);
          respond_generation(std::move(started), cr.gen, true, res);
        } else {
          CompletionRequest cr = parse_completion_request(body, limits_);
          ServedModel& m = find_model(body);
          model_label = m.id;
          auto started = start_completion(m, cr.model, cr);
          respond_generation(std::move(started), cr.gen, false, res);
        }
      } catch (const ApiError& e) {
        respond_error(res, e);
      } catch (const Error& e) {
        respond_error(res, invalid_request(e.what()));
      }
      metrics_.add(
          metric::kRequests, 1,
          {{"model", model_label}, {"endpoint", endpoint}, {"status", std::to_string(res.status)}});
    };
  };
  http_->Post("/v1/chat/completions", route("/v1/chat/completions", true));
  http_->Post("/v1/completions", route("/v1/completions", false));
}

namespace {

// A POST route taking a JSON body and answering JSON; bad input becomes an ApiError.
template <typename Fn>
auto json_route(const ServeConfig& config, const RequestLimits& limits, Fn fn) {
  return [&config, &limits, fn](const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader) {
    try {
      const ordered_json body =
          parse_request_body(read_body(req, reader, config.max_body_bytes), limits.max_json_depth);
      respond_json(res, 200, fn(body));
    } catch (const ApiError& e) {
      respond_error(res, e);
    }
  };
}

}  // namespace

void HttpServer::install_token_routes() {
  http_->Post("/tokenize", json_route(config_, limits_, [this](const ordered_json& body) {
                ServedModel& m = find_model(body);
                if (!body.contains("content") || !body["content"].is_string())
                  throw invalid_request("content must be a string", "content");
                const bool add_special = body.value("add_special", false);
                const bool parse_special = body.value("parse_special", true);
                std::vector<int32_t> ids;
                try {
                  ids = m.tokenizer->encode(body["content"].get<std::string>(), add_special,
                                            parse_special);
                } catch (const Error& e) {
                  throw invalid_request(e.what(), "content");
                }
                ordered_json out = {{"tokens", ids}};
                if (body.value("with_pieces", false)) {
                  ordered_json pieces = ordered_json::array();
                  for (int32_t id : ids)
                    pieces.push_back({{"id", id}, {"piece", m.tokenizer->token_to_piece(id)}});
                  out["tokens"] = pieces;
                }
                return out;
              }));
  http_->Post("/detokenize", json_route(config_, limits_, [this](const ordered_json& body) {
                ServedModel& m = find_model(body);
                if (!body.contains("tokens") || !body["tokens"].is_array())
                  throw invalid_request("tokens must be an array of token ids", "tokens");
                std::vector<int32_t> ids;
                const auto n_vocab = int64_t(m.tokenizer->vocab_size());
                for (const auto& t : body["tokens"]) {
                  if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= n_vocab)
                    throw invalid_request(
                        "tokens must be ids in [0, " + std::to_string(n_vocab) + ")", "tokens");
                  ids.push_back(int32_t(t.get<int64_t>()));
                }
                return ordered_json{{"content", m.tokenizer->decode(ids)}};
              }));
}

}  // namespace muse::server
