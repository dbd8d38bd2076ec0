// The generation routes (chat and text completions) and the tokenizer routes.
#include <httplib.h>

#include <algorithm>

#include "server/access_control.h"
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

// Tokens a request may use: its prompt plus max_tokens (or the context's rest) per
// choice. Computed before the engine is touched, for the tokens-per-minute limit.
// Media rows are not counted (they are known only after encoding).
int64_t reserve_for(const ServedModel& m, int64_t prompt_tokens, const GenerationParams& gen) {
  const int64_t n_ctx = m.engine->options().n_ctx;
  const int64_t completion =
      gen.max_tokens ? *gen.max_tokens : std::max<int64_t>(0, n_ctx - prompt_tokens);
  return prompt_tokens + completion * gen.n;
}

int64_t chat_prompt_tokens(const ServedModel& m, const ChatRequest& cr) {
  try {
    return int64_t(m.tokenizer->encode(render_chat_prompt(m, cr), false, true).size());
  } catch (const Error&) {
    return 0;  // the request fails later with its proper error
  }
}

int64_t completion_reserve(const ServedModel& m, const CompletionRequest& cr) {
  int64_t total = 0;
  for (const CompletionPrompt& p : cr.prompts) {
    int64_t n = int64_t(p.tokens.size());
    if (!p.is_tokens) {
      try {
        n = int64_t(m.tokenizer->encode(p.text, true, true).size());
      } catch (const Error&) {
        n = 0;
      }
    }
    total += reserve_for(m, n, cr.gen);
  }
  return total;
}

void set_headers(httplib::Response& res, const HeaderList& headers) {
  for (const auto& [name, value] : headers) res.set_header(name, value);
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

void HttpServer::record_finished(const StartedRequest& r, bool abandoned, const Caller& caller,
                                 int64_t media_inputs) {
  access_.record_usage(caller, r.model->id, r.prompt_tokens(), r.completion_tokens(),
                       media_inputs);
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
                                    const Caller& caller, int64_t media_inputs,
                                    httplib::Response& res, nlohmann::json mirror_request) {
  // The primary's complete answer goes to the mirror (never delaying the client: offer
  // only enqueues).
  auto offer_mirror = [this](const StartedRequest& r, nlohmann::json request, std::string text) {
    if (!mirror_ || request.is_null()) return;
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r.start)
            .count();
    mirror_->offer(std::move(request), {r.model->id, std::move(text), ms, r.prompt_tokens(),
                                        r.completion_tokens()});
  };
  if (!gen.stream) {
    std::vector<ChoiceResult> results(started->choices.size());
    drive(*started, [&](ChoiceRun& c, ChoiceDelta& d) {
      results[size_t(c.index())].add(d);
      return true;
    });
    record_finished(*started, false, caller, media_inputs);
    for (const auto& r : results)
      if (!r.error.empty()) throw ApiError(500, "server_error", "generation failed: " + r.error);
    if (!results.empty()) offer_mirror(*started, std::move(mirror_request), results[0].content);
    respond_json(res, 200,
                 chat ? chat_completion_json(*started, results, gen.logprobs)
                      : text_completion_json(*started, results, gen.logprobs));
    return;
  }
  std::shared_ptr<StartedRequest> request(started.release());
  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider("text/event-stream", [this, request, gen, chat, caller,
                                                         media_inputs, offer_mirror,
                                                         mirror_request](size_t,
                                                                         httplib::DataSink& sink) {
    std::string first_choice_text;  // for the mirror record
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
           if (c.index() == 0 && !mirror_request.is_null()) first_choice_text += d.content;
           return send(sse(
               chat ? chat_delta_chunk(*request, c.index(), d, gen.logprobs, gen.include_usage)
                    : text_delta_chunk(*request, c.index(), d, gen.logprobs, gen.include_usage)));
         });
    if (!error.empty()) {
      // Errors after the stream started travel as an event (the status is already sent).
      record_finished(*request, false, caller, media_inputs);
      send(sse(ApiError(500, "server_error", "generation failed: " + error).to_json()));
      send("data: [DONE]\n\n");
      sink.done();
      return true;
    }
    record_finished(*request, !ok, caller, media_inputs);
    if (!ok) return false;  // the client is gone; its sequences are cancelled
    if (gen.include_usage)
      send(sse(usage_chunk(*request, chat ? "chat.completion.chunk" : "text_completion")));
    offer_mirror(*request, mirror_request, std::move(first_choice_text));
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
        // Who is calling, before reading the body.
        const Caller caller = access_.authenticate(req.get_header_value("Authorization"));
        const std::string raw = read_body(req, reader, config_.max_body_bytes);
        const ordered_json body = parse_request_body(raw, limits_.max_json_depth);
        // Mirroring samples by a hash of the raw body (deterministic per request).
        const bool mirror_this = chat && mirror_ && mirror_->should_mirror(raw);
        if (chat && gateway_ && gateway_->handles(body.value("model", std::string()))) {
          // A remote primary: Muse is a gateway; its answer passes through unchanged.
          model_label = gateway_->remote().client_model();
          access_.check_model(caller, {model_label}, model_label);
          set_headers(res, access_.admit(caller, 0));
          respond_via_gateway(*gateway_, nlohmann::json::parse(raw), res,
                              [this, mirror_this, raw](const UpstreamAnswer& a) {
                                if (mirror_this)
                                  mirror_->offer_upstream(nlohmann::json::parse(raw), a);
                              });
          metrics_.add(metric::kRequests, 1,
                       {{"model", model_label}, {"endpoint", endpoint},
                        {"status", std::to_string(res.status)}});
          return;
        }
        // Access and limits are checked before the engine is touched.
        auto admit = [&](ServedModel& m, const std::string& name, int64_t reserve) {
          model_label = m.id;
          access_.check_model(caller, m.aliases, name.empty() ? m.id : name);
          set_headers(res, access_.admit(caller, reserve));
        };
        const bool count_tokens = caller.tier && caller.tier->tokens_per_minute > 0;
        if (chat) {
          ChatRequest cr = parse_chat_request(body, limits_);
          ServedModel& m = find_model(body);
          admit(m, cr.model, count_tokens ? reserve_for(m, chat_prompt_tokens(m, cr), cr.gen) : 0);
          cr.gen.priority = caller.priority();
          auto started = start_chat(m, cr.model, cr);
          const bool mirror_model = mirror_this && !config_.mirror.primary.remote() &&
                                    (config_.mirror.primary.model.empty() ||
                                     std::find(m.aliases.begin(), m.aliases.end(),
                                               config_.mirror.primary.model) != m.aliases.end());
          respond_generation(std::move(started), cr.gen, true, caller,
                             count_media_parts(cr.messages), res,
                             mirror_model ? nlohmann::json::parse(raw) : nlohmann::json());
        } else {
          CompletionRequest cr = parse_completion_request(body, limits_);
          ServedModel& m = find_model(body);
          admit(m, cr.model, count_tokens ? completion_reserve(m, cr) : 0);
          cr.gen.priority = caller.priority();
          auto started = start_completion(m, cr.model, cr);
          respond_generation(std::move(started), cr.gen, false, caller, 0, res);
        }
      } catch (const RateLimitError& e) {
        set_headers(res, e.headers);
        respond_error(res, e);
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
