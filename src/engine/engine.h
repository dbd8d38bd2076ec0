// The engine: continuous batching of many generation requests on one model.
//
// A background thread runs the step loop: it admits queued requests into free sequence
// slots, builds one batch from every running sequence (one decode token each, plus
// prompt chunks for sequences still in prefill, within a token budget chosen by the
// SchedulePolicy), runs one Decoder::forward, samples, and delivers tokens to each
// request's GenerationStream. A finished, cancelled or failed sequence frees its slot at
// once. A slot keeps its KV cache after its request ends so that a later request whose
// prompt starts with the same tokens (the next turn of a conversation) reuses the cached
// prefix instead of recomputing it.
//
// This is the narrow API the server uses: submit / stream (next) / cancel / stats.
// All methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/sampler.h"
#include "model/decoder.h"
#include "muse/error.h"
#include "text/token_constraint.h"

namespace muse {

struct EngineOptions {
  int64_t n_parallel = 4;  // sequence slots (requests decoded at once)
  int64_t n_ctx = 4096;    // positions per sequence (prompt + generated)
  int64_t n_batch = 512;   // most tokens in one forward step (decode + prefill chunks)
  int64_t max_queue = 64;  // requests waiting for a slot; more are refused (QueueFullError)
  int n_threads = 0;       // decoder threads, 0 = default
  DType kv_type = DType::F32;
  std::vector<int32_t> eog_ids;  // tokens that end generation (not delivered as output)
};

// An image or audio clip in a prompt: its encoder rows replace the input rows of
// prompt positions [start, start + n_tokens) (which hold the placeholder id).
struct PromptMedia {
  int64_t start = 0;
  int64_t n_tokens = 0;
  std::shared_ptr<const std::vector<float>> rows;  // [n_tokens][n_embd]
  int64_t grid_h = 0, grid_w = 0;  // merged image grid (M-RoPE positions); 0 for audio
  // Content identity: equal hashes promise equal rows. Prefix reuse between
  // requests compares these, since the placeholder ids alone are all alike.
  uint64_t hash = 0;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // non-empty, ids in the vocabulary
  std::vector<PromptMedia> media;  // in prompt order, non-overlapping
  SamplingParams sampling;
  int64_t max_tokens = 16;  // > 0; generation also ends when the context is full
  // Optional: restricts each step's tokens (grammar); owned by this request.
  std::shared_ptr<text::TokenConstraint> constraint;
  // -1: no log-probabilities. 0..20: each token carries its log-probability and that many
  // most likely alternatives (from the model's distribution before sampling filters).
  int top_logprobs = -1;
  bool ignore_eos = false;  // keep generating past end-of-generation tokens
  // When slots are scarce, waiting requests of higher priority are admitted first
  // (first come, first served within a priority). The server sets it from the key's tier.
  int priority = 0;
};

struct TokenOutput {
  int32_t token = 0;
  float logprob = 0.0f;  // valid when top_logprobs >= 0
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

enum class FinishReason {
  kNone,       // still running
  kStop,       // an end-of-generation token (not delivered)
  kLength,     // max_tokens reached or the context is full
  kCancelled,  // cancel() was called
  kError,      // see StreamEvent::error
};

const char* finish_reason_name(FinishReason reason);

// What a stream has produced since the previous next() call.
struct StreamEvent {
  std::vector<TokenOutput> tokens;
  FinishReason finish = FinishReason::kNone;  // set on the last event of a stream
  std::string error;                          // when finish == kError
  int64_t prompt_tokens = 0;                  // the prompt's length
  int64_t cached_prompt_tokens = 0;           // of which reused from a slot's cache
};

class GenerationStream {
 public:
  // Waits up to `timeout` for new tokens or the end; returns nullopt on timeout. After
  // the event with finish != kNone has been returned, returns that end again at once
  // (with no tokens).
  std::optional<StreamEvent> next(std::chrono::milliseconds timeout);
  // Asks the engine to stop this request; its slot is freed at the next step and the
  // stream ends with kCancelled (unless it had already ended). Idempotent.
  void cancel();
  bool cancelled() const { return cancel_requested_.load(); }

  // --- used by the engine ---
  struct Shared;
  explicit GenerationStream(std::shared_ptr<Shared> shared);
  Shared& shared() { return *shared_; }

 private:
  std::shared_ptr<Shared> shared_;
  std::atomic<bool> cancel_requested_{false};
};

// A request refused because the queue is full (the server answers 503 + Retry-After).
class QueueFullError : public Error {
 public:
  using Error::Error;
};

struct EngineStats {
  int64_t waiting = 0;       // queued, not yet in a slot
  int64_t running = 0;       // in a slot (prefill or decode)
  int64_t slots = 0;         // n_parallel
  uint64_t steps = 0;        // forward steps run
  uint64_t prompt_tokens_processed = 0;  // prompt tokens run through the model
  uint64_t prompt_tokens_cached = 0;     // prompt tokens reused from slot caches
  uint64_t generated_tokens = 0;
  uint64_t requests_finished = 0;
  uint64_t requests_cancelled = 0;
  double seconds_since_loop_alive = 0;  // the step loop's heartbeat (idle waits count)
};

class Engine {
 public:
  // Builds the Decoder (n_seq = n_parallel) and starts the step loop. Throws muse::Error
  // for invalid options.
  Engine(std::shared_ptr<const Model> model, EngineOptions options);
  ~Engine();  // shutdown()
  // Stops the loop: streams still open (running or queued) end with kError "engine
  // stopped" and later submit() calls throw QueueFullError. Idempotent, thread-safe.
  void shutdown();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Throws muse::Error for an invalid request (empty prompt, id out of
  // vocabulary, prompt longer than n_ctx - 1, bad sampling params, max_tokens <= 0) and
  // QueueFullError when max_queue requests are already waiting beyond the free slots
  // (parallel + max_queue in all) or after shutdown().
  std::shared_ptr<GenerationStream> submit(GenerationRequest request);

  EngineStats stats() const;
  // The loop is running and not stuck (heartbeat within the last few seconds).
  bool healthy() const;
  const EngineOptions& options() const;
  const Model& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace muse
