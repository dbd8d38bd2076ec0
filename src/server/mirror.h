// Traffic mirroring: a deterministic sample of the primary's requests is sent to a
// candidate model as well, in the background, and both answers are stored as one record
// for offline grading (`muse grade`).
//
// The client-facing path only calls should_mirror (a hash of the body) and offer (O(1):
// a bounded queue push under a short lock; a full queue drops and counts). One worker
// thread sends queued requests to the candidate (a served model through a callback, or a
// remote endpoint through OpenAIClient with the configured timeout) and writes a record:
//   {"id": "mir_<16 hex>", "timestamp": <unix seconds>, "request": {...},
//    "primary":   {"model", "output", "latency_ms", "prompt_tokens", "completion_tokens"},
//    "candidate": {same fields}, "topic": "..." (when the request's metadata has one)}
// as one flushed JSONL line or through Store::add_mirror_record. A candidate that fails
// or exceeds the timeout is dropped and counted by reason; the client never waits on it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "server/mirror_config.h"

namespace muse::platform {
class Store;
}  // namespace muse::platform

namespace muse::server {

class ModelRegistry;
struct RequestLimits;
struct UpstreamAnswer;

// One side of a record.
struct MirrorAnswer {
  std::string model;
  std::string output;
  double latency_ms = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// What a local candidate returns: error non-empty = failed (the record is dropped).
// latency_ms is measured by the Mirror around the call.
struct CandidateResult {
  MirrorAnswer answer;
  std::string error;
};
using LocalCandidate = std::function<CandidateResult(const nlohmann::json& request)>;

struct MirrorStats {
  int64_t sampled = 0;    // offers (requests chosen by should_mirror)
  int64_t enqueued = 0;   // offers accepted into the queue
  int64_t completed = 0;  // records written
  int64_t dropped_queue_full = 0;
  int64_t dropped_candidate_error = 0;  // candidate refused, failed or answered non-2xx
  int64_t dropped_timeout = 0;          // candidate slower than timeout_ms
  int64_t dropped_record_error = 0;     // the record could not be written
  int64_t dropped_shutdown = 0;         // still queued when the Mirror stopped
  int64_t queued = 0;                   // waiting now (a gauge)
};

// Whether a request body is in the sample: the first 8 bytes of SHA-256(body) read as a
// big-endian integer, divided by 2^64, is below fraction. Deterministic per body.
bool mirror_sampled(std::string_view body, double fraction);

// Prometheus text lines for GET /metrics (append to the registry's render()):
//   muse_mirror_sampled_total, muse_mirror_enqueued_total, muse_mirror_completed_total,
//   muse_mirror_dropped_total{reason="queue_full"|"candidate_error"|"timeout"|
//   "record_error"|"shutdown"}, muse_mirror_queue_depth (gauge).
std::string mirror_metrics_text(const MirrorStats& stats);

// A local candidate: runs the request on the served model `model` (non-streaming, choice
// 0's text; errors such as a full engine queue are returned, not thrown). The registry
// and limits must outlive the Mirror.
LocalCandidate served_model_candidate(ModelRegistry& models, const RequestLimits& limits,
                                      const std::string& model);

class Mirror {
 public:
  // config.mirroring() must hold. A remote candidate is called through OpenAIClient; a
  // local one (no url) through `local` (required then). records = "store" writes through
  // `store` (required then); otherwise config.records is a JSONL file opened for appending
  // now (throws muse::Error when it cannot be). Starts the worker thread.
  Mirror(MirrorConfig config, LocalCandidate local = {}, platform::Store* store = nullptr);
  // Stops the worker after the candidate call in flight; still queued requests are dropped.
  ~Mirror();
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;

  // Whether this body (the raw request bytes) is to be mirrored.
  bool should_mirror(std::string_view body) const { return mirror_sampled(body, config_.fraction); }

  // Queues a request whose primary answer is complete. Never blocks on the candidate;
  // returns false when the queue is full (dropped and counted).
  bool offer(nlohmann::json request, MirrorAnswer primary);
  // The same for a remote primary's answer (Gateway): offered only when it is 2xx and was
  // delivered whole; returns whether it was queued.
  bool offer_upstream(nlohmann::json request, const UpstreamAnswer& answer);

  MirrorStats stats() const;

  // Waits until nothing is queued or in flight (tests, graceful shutdown); false on timeout.
  bool wait_idle(std::chrono::milliseconds timeout) const;

  const MirrorConfig& config() const { return config_; }

 private:
  struct Item {
    nlohmann::json request;
    MirrorAnswer primary;
    int64_t timestamp = 0;
  };
  enum class Outcome { kOk, kError, kTimeout };

  void run();
  Outcome call_candidate(const nlohmann::json& request, MirrorAnswer& out) const;
  bool write_record(const nlohmann::json& record);

  MirrorConfig config_;
  LocalCandidate local_;
  platform::Store* store_ = nullptr;
  std::FILE* file_ = nullptr;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;       // worker: work or stop
  mutable std::condition_variable idle_cv_;  // wait_idle
  std::deque<Item> queue_;
  bool busy_ = false;
  bool stopping_ = false;

  std::atomic<int64_t> sampled_{0}, enqueued_{0}, completed_{0}, dropped_queue_full_{0},
      dropped_candidate_error_{0}, dropped_timeout_{0}, dropped_record_error_{0},
      dropped_shutdown_{0};
  std::thread worker_;
};

}  // namespace muse::server
