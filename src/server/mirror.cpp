// The mirror's sampling, bounded queue, candidate worker and record writer.
#include "server/mirror.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>

#include "muse/error.h"
#include "platform/openai_client.h"
#include "platform/store.h"
#include "server/gateway.h"
#include "server/generation.h"
#include "server/openai_request.h"
#include "server/served_model.h"

namespace muse::server {

using nlohmann::json;

bool mirror_sampled(std::string_view body, double fraction) {
  if (fraction <= 0) return false;
  if (fraction >= 1) return true;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  uint64_t x = 0;
  for (int i = 0; i < 8; ++i) x = (x << 8) | digest[i];
  // x / 2^64 < fraction, in long double so fractions near 1 keep their precision.
  return static_cast<long double>(x) < static_cast<long double>(fraction) * 18446744073709551616.0L;
}

namespace {

std::string record_id() {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // Unique enough for a record id if the CSPRNG is unavailable.
    const uint64_t t = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
    std::memcpy(bytes, &t, sizeof bytes);
  }
  static const char* hex = "0123456789abcdef";
  std::string id = "mir_";
  for (unsigned char b : bytes) {
    id += hex[b >> 4];
    id += hex[b & 15];
  }
  return id;
}

json answer_json(const MirrorAnswer& a) {
  return {{"model", a.model},
          {"output", a.output},
          {"latency_ms", a.latency_ms},
          {"prompt_tokens", a.prompt_tokens},
          {"completion_tokens", a.completion_tokens}};
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Mirror::Mirror(MirrorConfig config, LocalCandidate local, platform::Store* store)
    : config_(std::move(config)), local_(std::move(local)), store_(store) {
  validate_mirror_config(config_);
  MUSE_CHECK(config_.mirroring(), "mirror: no candidate configured (or fraction is 0)");
  MUSE_CHECK(config_.candidate.remote() || local_, "mirror: the candidate '",
             config_.candidate.model, "' is a served model but no local candidate was given");
  if (config_.records_in_store()) {
    MUSE_CHECK(store_ != nullptr, "mirror: records = \"store\" but no store is configured");
  } else {
    file_ = std::fopen(config_.records.c_str(), "a");
    MUSE_CHECK(file_ != nullptr, "mirror: cannot open the records file '", config_.records,
               "' for appending: ", std::strerror(errno));
  }
  worker_ = std::thread([this] { run(); });
}

Mirror::~Mirror() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    dropped_shutdown_ += int64_t(queue_.size());
    queue_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (file_ != nullptr) std::fclose(file_);
}

bool Mirror::offer(json request, MirrorAnswer primary) {
  ++sampled_;
  Item item{std::move(request), std::move(primary), unix_now()};
  {
    std::lock_guard lock(mu_);
    if (stopping_ || int64_t(queue_.size()) >= config_.queue) {
      ++dropped_queue_full_;
      return false;
    }
    queue_.push_back(std::move(item));
    ++enqueued_;
  }
  cv_.notify_one();
  return true;
}

bool Mirror::offer_upstream(json request, const UpstreamAnswer& a) {
  if (a.status < 200 || a.status >= 300 || a.client_gone || !a.error.empty()) return false;
  return offer(std::move(request),
               MirrorAnswer{a.output.model, a.output.output, a.latency_ms, a.output.prompt_tokens,
                            a.output.completion_tokens});
}

std::string mirror_metrics_text(const MirrorStats& s) {
  std::string out;
  auto counter = [&](const char* name, const char* help, int64_t value) {
    out += str_cat("# HELP ", name, " ", help, "\n# TYPE ", name, " counter\n", name, " ", value,
                   "\n");
  };
  counter("muse_mirror_sampled_total", "Requests chosen for mirroring.", s.sampled);
  counter("muse_mirror_enqueued_total", "Mirror requests accepted into the queue.", s.enqueued);
  counter("muse_mirror_completed_total", "Mirror records written.", s.completed);
  out +=
      "# HELP muse_mirror_dropped_total Mirror requests dropped, by reason.\n"
      "# TYPE muse_mirror_dropped_total counter\n";
  const std::pair<const char*, int64_t> reasons[] = {{"queue_full", s.dropped_queue_full},
                                                     {"candidate_error", s.dropped_candidate_error},
                                                     {"timeout", s.dropped_timeout},
                                                     {"record_error", s.dropped_record_error},
                                                     {"shutdown", s.dropped_shutdown}};
  for (const auto& [reason, value] : reasons)
    out += str_cat("muse_mirror_dropped_total{reason=\"", reason, "\"} ", value, "\n");
  out += str_cat(
      "# HELP muse_mirror_queue_depth Mirror requests waiting for the candidate.\n"
      "# TYPE muse_mirror_queue_depth gauge\nmuse_mirror_queue_depth ",
      s.queued, "\n");
  return out;
}

LocalCandidate served_model_candidate(ModelRegistry& models, const RequestLimits& limits,
                                      const std::string& model) {
  return [&models, &limits, model](const json& request) -> CandidateResult {
    CandidateResult out;
    try {
      ServedModel* served = models.find(model);
      if (served == nullptr) return {{}, "the candidate model '" + model + "' is not served"};
      nlohmann::ordered_json body = nlohmann::ordered_json::parse(request.dump());
      body["model"] = model;
      body["stream"] = false;
      body.erase("stream_options");
      const ChatRequest chat = parse_chat_request(body, limits);
      std::unique_ptr<StartedRequest> started = start_chat(*served, model, chat);
      std::string text, error;
      drive(*started, [&](ChoiceRun& c, ChoiceDelta& d) {
        if (c.index() != 0) return true;
        if (!d.error.empty()) error = d.error;
        text += d.content;
        return true;
      });
      if (!error.empty()) return {{}, error};
      out.answer = {served->id, std::move(text), 0, started->prompt_tokens(),
                    started->completion_tokens()};
    } catch (const std::exception& e) {
      out.error = e.what();
    }
    return out;
  };
}

MirrorStats Mirror::stats() const {
  MirrorStats s;
  s.sampled = sampled_;
  s.enqueued = enqueued_;
  s.completed = completed_;
  s.dropped_queue_full = dropped_queue_full_;
  s.dropped_candidate_error = dropped_candidate_error_;
  s.dropped_timeout = dropped_timeout_;
  s.dropped_record_error = dropped_record_error_;
  s.dropped_shutdown = dropped_shutdown_;
  std::lock_guard lock(mu_);
  s.queued = int64_t(queue_.size());
  return s;
}

bool Mirror::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !busy_; });
}

void Mirror::run() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mu_);
      busy_ = false;
      idle_cv_.notify_all();
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    MirrorAnswer candidate;
    switch (call_candidate(item.request, candidate)) {
      case Outcome::kError:
        ++dropped_candidate_error_;
        continue;
      case Outcome::kTimeout:
        ++dropped_timeout_;
        continue;
      case Outcome::kOk:
        break;
    }
    json record = {{"id", record_id()},
                   {"timestamp", item.timestamp},
                   {"request", std::move(item.request)},
                   {"primary", answer_json(item.primary)},
                   {"candidate", answer_json(candidate)}};
    const json& req = record["request"];
    if (req.contains("metadata") && req["metadata"].is_object() &&
        req["metadata"].contains("topic") && req["metadata"]["topic"].is_string())
      record["topic"] = req["metadata"]["topic"];
    if (write_record(record)) {
      ++completed_;
    } else {
      ++dropped_record_error_;
    }
  }
}

Mirror::Outcome Mirror::call_candidate(const json& request, MirrorAnswer& out) const {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  };
  const double timeout_ms = double(config_.timeout_ms);
  if (!config_.candidate.remote()) {
    CandidateResult result;
    try {
      result = local_(request);
    } catch (const std::exception& e) {
      result.error = e.what();
    }
    const double latency = elapsed_ms();
    if (latency > timeout_ms) return Outcome::kTimeout;  // too late to compare fairly
    if (!result.error.empty()) return Outcome::kError;
    out = std::move(result.answer);
    out.latency_ms = latency;
    if (out.model.empty()) out.model = config_.candidate.model;
    return Outcome::kOk;
  }

  json body = request;
  body["model"] = config_.candidate.model;
  body["stream"] = false;  // the record needs the whole answer, not its timing
  body.erase("stream_options");
  const bool chat = !request.contains("prompt") || request.contains("messages");
  platform::HttpResult result;
  try {
    const platform::OpenAIClient client(platform::EndpointConfig{
        config_.candidate.url, config_.candidate.api_key(), int(config_.timeout_ms)});
    result = client.post_json(chat ? "/chat/completions" : "/completions", body);
  } catch (const std::exception&) {
    return Outcome::kError;
  }
  const double latency = elapsed_ms();
  if (result.status == 0) {
    const bool timed_out = latency >= 0.95 * timeout_ms ||
                           result.error.find("imeout") != std::string::npos ||
                           result.error.find("imed out") != std::string::npos;
    return timed_out ? Outcome::kTimeout : Outcome::kError;
  }
  if (latency > timeout_ms) return Outcome::kTimeout;
  if (result.status < 200 || result.status >= 300) return Outcome::kError;
  const json response = json::parse(result.body, nullptr, /*allow_exceptions=*/false);
  if (!response.is_object() || !response.contains("choices")) return Outcome::kError;
  const ChatOutput parsed = chat_output_from_json(response);
  out.model = parsed.model.empty() ? config_.candidate.model : parsed.model;
  out.output = parsed.output;
  out.prompt_tokens = parsed.prompt_tokens;
  out.completion_tokens = parsed.completion_tokens;
  out.latency_ms = latency;
  return Outcome::kOk;
}

bool Mirror::write_record(const json& record) {
  try {
    if (store_ != nullptr && config_.records_in_store()) {
      store_->add_mirror_record(record);
      return true;
    }
    // Only the worker writes, so lines never interleave; flushed so readers see whole lines.
    const std::string line = record.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    return std::fwrite(line.data(), 1, line.size(), file_) == line.size() &&
           std::fflush(file_) == 0;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace muse::server
