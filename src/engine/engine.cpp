#include "engine/engine.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/schedule_policy.h"
#include "model/media_prompt.h"

namespace muse {

namespace {

using Clock = std::chrono::steady_clock;

// healthy() is false when the loop has not beaten for this long. A step is one forward
// of at most n_batch tokens, which on a CPU can take seconds for large models.
constexpr double kHeartbeatTimeoutSeconds = 30.0;
// The idle loop wakes this often to beat.
constexpr auto kIdleBeat = std::chrono::milliseconds(200);
constexpr int kMaxTopLogprobs = 20;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

}  // namespace

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------
// GenerationStream

// What the engine hands to a stream; everything under `mu`.
struct GenerationStream::Shared {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<TokenOutput> tokens;  // produced, not yet returned by next()
  FinishReason finish = FinishReason::kNone;
  std::string error;
  int64_t prompt_tokens = 0;
  int64_t cached_prompt_tokens = 0;

  void set_cached(int64_t cached) {
    std::lock_guard<std::mutex> lock(mu);
    cached_prompt_tokens = cached;
  }
  void push(TokenOutput token) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (finish != FinishReason::kNone) return;
      tokens.push_back(std::move(token));
    }
    cv.notify_all();
  }
  // Ends the stream unless it has ended already.
  void end(FinishReason reason, std::string message = {}) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (finish != FinishReason::kNone) return;
      finish = reason;
      error = std::move(message);
    }
    cv.notify_all();
  }
};

GenerationStream::GenerationStream(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

std::optional<StreamEvent> GenerationStream::next(std::chrono::milliseconds timeout) {
  Shared& s = *shared_;
  std::unique_lock<std::mutex> lock(s.mu);
  const bool ready = s.cv.wait_for(
      lock, timeout, [&] { return !s.tokens.empty() || s.finish != FinishReason::kNone; });
  if (!ready) return std::nullopt;
  StreamEvent event;
  event.tokens.swap(s.tokens);
  event.finish = s.finish;
  event.error = s.error;
  event.prompt_tokens = s.prompt_tokens;
  event.cached_prompt_tokens = s.cached_prompt_tokens;
  return event;
}

void GenerationStream::cancel() {
  cancel_requested_.store(true);
}

// ---------------------------------------------------------------------------------------
// Engine

namespace {

// What the decoder sees of a prompt beyond its ids: per position, the identity of
// its input (the cache key: the token id, or for a media row a negative value
// derived from the media hash and the row), the media row replacing its
// embedding, and its rotary position.
struct PromptInputs {
  std::vector<int32_t> keys;
  std::vector<const float*> rows;  // empty: text only
  PromptPositions positions;       // rows empty: sequential
};

int32_t media_key(uint64_t hash, int64_t row) {
  uint64_t h = hash ^ (static_cast<uint64_t>(row) + 0x9E3779B97F4A7C15ull);
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 29;
  return -1 - static_cast<int32_t>(h & 0x3FFFFFFF);
}

PromptInputs prompt_inputs(const ModelConfig& c, const GenerationRequest& r) {
  PromptInputs in;
  in.keys = r.prompt;
  std::vector<MediaSpan> spans;
  for (const PromptMedia& m : r.media) {
    MUSE_CHECK(m.rows && static_cast<int64_t>(m.rows->size()) == m.n_tokens * c.n_embd,
               "media rows do not match their token count and the model width");
    spans.push_back({m.start, m.n_tokens, m.rows->data(), m.grid_h, m.grid_w});
  }
  validate_media_spans(c, r.prompt, spans);
  in.positions = prompt_rope_positions(c, r.prompt, spans);
  if (!spans.empty()) in.rows.assign(r.prompt.size(), nullptr);
  for (size_t i = 0; i < spans.size(); ++i)
    for (int64_t k = 0; k < spans[i].n_tokens; ++k) {
      const auto p = static_cast<size_t>(spans[i].start + k);
      in.keys[p] = media_key(r.media[i].hash, k);
      in.rows[p] = spans[i].rows + k * c.n_embd;
    }
  return in;
}

// A request waiting for a slot.
struct Pending {
  GenerationRequest request;
  std::shared_ptr<GenerationStream> stream;
  PromptInputs inputs;
};

// A request running in a slot. Touched only by the loop thread.
struct Sequence {
  GenerationRequest request;
  std::shared_ptr<GenerationStream> stream;
  PromptInputs inputs;
  Sampler sampler;
  uint64_t arrival = 0;
  size_t prompt_done = 0;  // prompt tokens in the KV cache
  std::vector<int32_t> generated;
  std::vector<float> masked;  // logits copy for the constraint

  Sequence(Pending p, int32_t n_vocab, uint64_t arrival_order)
      : request(std::move(p.request)),
        stream(std::move(p.stream)),
        inputs(std::move(p.inputs)),
        sampler(request.sampling, n_vocab),
        arrival(arrival_order) {}
  int64_t prompt_remaining() const {
    return static_cast<int64_t>(request.prompt.size() - prompt_done);
  }
  // The decoder input of cache position `pos` (a prompt position or a generated token).
  BatchItem item(int32_t token, int32_t pos, int32_t slot, bool logits) const {
    BatchItem it{token, pos, slot, logits};
    const auto n = static_cast<int32_t>(request.prompt.size());
    // Media rows replace the placeholder embeddings whatever the positions are
    // (1-D models such as Muse Nano and Glimmer have no explicit position rows).
    if (pos < n && !inputs.rows.empty()) it.embedding = inputs.rows[static_cast<size_t>(pos)];
    const auto& P = inputs.positions;
    if (P.rows.empty()) return it;
    it.rope_explicit = true;
    if (pos < n) {
      std::copy(P.rows[static_cast<size_t>(pos)].begin(), P.rows[static_cast<size_t>(pos)].end(),
                it.rope_pos);
    } else {
      it.rope_pos[0] = it.rope_pos[1] = it.rope_pos[2] = P.next + (pos - n);
    }
    return it;
  }
};

struct Slot {
  std::vector<int32_t> tokens;  // exactly what the decoder caches for this slot
  uint64_t last_used = 0;
  std::unique_ptr<Sequence> seq;  // null: free
};

}  // namespace

struct Engine::Impl {
  std::shared_ptr<const Model> model;
  EngineOptions options;
  Decoder decoder;
  SchedulePolicy policy;
  int32_t n_vocab = 0;

  // Shared with submit()/stats(): under mu.
  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Pending> waiting;
  bool stopping = false;
  std::mutex join_mu;  // shutdown() may be called from two threads
  EngineStats counters;  // running, steps and the totals (waiting/slots filled in stats())
  std::atomic<int64_t> heartbeat_ns{0};
  std::atomic<bool> loop_alive{false};

  // Loop thread only.
  std::vector<Slot> slots;
  uint64_t clock = 0;  // orders admissions and slot use

  std::thread thread;

  Impl(std::shared_ptr<const Model> m, EngineOptions o)
      : model(std::move(m)),
        options(std::move(o)),
        decoder(model, DecoderOptions{options.n_ctx, options.n_parallel, options.n_batch,
                                      options.n_threads, options.kv_type}),
        policy(options.n_batch),
        n_vocab(static_cast<int32_t>(model->config().n_vocab)),
        slots(static_cast<size_t>(options.n_parallel)) {}

  void beat() { heartbeat_ns.store(now_ns()); }

  bool is_eog(int32_t token) const {
    return std::find(options.eog_ids.begin(), options.eog_ids.end(), token) !=
           options.eog_ids.end();
  }

  // Frees a slot and ends its stream. Stats are updated before the stream learns of its
  // end, so a client that saw the end also sees the stats of it.
  void finish(Slot& slot, FinishReason reason, std::string error = {}) {
    std::unique_ptr<Sequence> seq = std::move(slot.seq);
    slot.last_used = ++clock;
    {
      std::lock_guard<std::mutex> lock(mu);
      --counters.running;
      if (reason == FinishReason::kCancelled) {
        ++counters.requests_cancelled;
      } else {
        ++counters.requests_finished;
      }
    }
    seq->stream->shared().end(reason, std::move(error));
  }

  void run();
  void step();
  void admit(std::vector<Pending> admitted);
  void sample(Slot& slot, std::span<const float> logits);
  void stop_all(const std::string& message);
};

void Engine::Impl::run() {
  beat();
  while (true) {
    std::vector<Pending> admitted;
    std::vector<std::shared_ptr<GenerationStream>> dropped;
    {
      std::unique_lock<std::mutex> lock(mu);
      auto has_running = [&] {
        return std::any_of(slots.begin(), slots.end(),
                           [](const Slot& s) { return s.seq != nullptr; });
      };
      while (!stopping && waiting.empty() && !has_running()) {
        beat();
        wake.wait_for(lock, kIdleBeat);
      }
      beat();
      if (stopping) break;
      // Requests cancelled while waiting never take a slot.
      for (auto it = waiting.begin(); it != waiting.end();) {
        if (it->stream->cancelled()) {
          dropped.push_back(std::move(it->stream));
          ++counters.requests_cancelled;
          it = waiting.erase(it);
        } else {
          ++it;
        }
      }
      // Highest priority first, first come first served within a priority.
      size_t free = 0;
      for (const Slot& s : slots) free += s.seq ? 0 : 1;
      if (free > 0 && !waiting.empty()) {
        std::vector<int> priorities;
        priorities.reserve(waiting.size());
        for (const Pending& p : waiting) priorities.push_back(p.request.priority);
        const std::vector<size_t> order = SchedulePolicy::admission_order(priorities, free);
        std::vector<bool> taken(waiting.size(), false);
        for (size_t i : order) {
          admitted.push_back(std::move(waiting[i]));
          taken[i] = true;
          ++counters.running;
        }
        std::deque<Pending> rest;
        for (size_t i = 0; i < waiting.size(); ++i)
          if (!taken[i]) rest.push_back(std::move(waiting[i]));
        waiting.swap(rest);
      }
    }
    for (auto& stream : dropped) stream->shared().end(FinishReason::kCancelled);
    try {
      admit(std::move(admitted));
      step();
    } catch (const std::exception& e) {
      // Not expected (allocation failure and the like): fail what runs, keep serving.
      for (size_t i = 0; i < slots.size(); ++i) {
        if (!slots[i].seq) continue;
        decoder.clear(static_cast<int32_t>(i));
        slots[i].tokens.clear();
        finish(slots[i], FinishReason::kError, e.what());
      }
    }
  }
  loop_alive.store(false);
}

void Engine::Impl::admit(std::vector<Pending> admitted) {
  if (admitted.empty()) return;
  std::vector<SlotView> views;
  for (size_t i = 0; i < slots.size(); ++i)
    views.push_back(
        {static_cast<int32_t>(i), slots[i].seq != nullptr, slots[i].tokens, slots[i].last_used});
  std::vector<std::span<const int32_t>> prompts;
  for (const Pending& p : admitted) prompts.emplace_back(p.inputs.keys);
  const std::vector<SlotChoice> choices = policy.plan_admissions(prompts, views);
  for (size_t i = 0; i < admitted.size(); ++i) {
    auto stream = admitted[i].stream;
    try {
      // As many slots were free as requests were admitted, so this holds.
      MUSE_CHECK(i < choices.size(), "engine: no free slot for an admitted request");
      const SlotChoice& c = choices[i];
      Slot& slot = slots[static_cast<size_t>(c.slot)];
      if (c.copy_from >= 0) {
        const Slot& src = slots[static_cast<size_t>(c.copy_from)];
        decoder.copy_prefix(c.copy_from, c.slot, c.reuse);
        slot.tokens.assign(src.tokens.begin(), src.tokens.begin() + c.reuse);
      } else {
        decoder.truncate(c.slot, c.reuse);
        slot.tokens.resize(static_cast<size_t>(c.reuse));
      }
      slot.last_used = ++clock;
      auto seq = std::make_unique<Sequence>(std::move(admitted[i]), n_vocab, clock);
      seq->prompt_done = static_cast<size_t>(c.reuse);
      slot.seq = std::move(seq);
      stream->shared().set_cached(c.reuse);
      std::lock_guard<std::mutex> lock(mu);
      counters.prompt_tokens_cached += static_cast<uint64_t>(c.reuse);
    } catch (const std::exception& e) {
      // It was counted as running when it left the queue.
      {
        std::lock_guard<std::mutex> lock(mu);
        --counters.running;
        ++counters.requests_finished;
      }
      stream->shared().end(FinishReason::kError, e.what());
    }
  }
}

void Engine::Impl::step() {
  // Cancelled requests leave first.
  for (Slot& slot : slots)
    if (slot.seq && slot.seq->stream->cancelled()) finish(slot, FinishReason::kCancelled);

  std::vector<SequenceLoad> loads;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i].seq) continue;
    loads.push_back(
        {static_cast<int32_t>(i), slots[i].seq->arrival, slots[i].seq->prompt_remaining()});
  }
  if (loads.empty()) return;
  const std::vector<int64_t> plan = policy.plan_step(loads);

  std::vector<BatchItem> items;
  std::vector<int32_t> with_logits;  // slots whose logits come back, in row order
  std::vector<int32_t> in_batch;
  for (size_t k = 0; k < loads.size(); ++k) {
    const int64_t n = plan[k];
    if (n == 0) continue;
    const int32_t id = loads[k].id;
    const Slot& slot = slots[static_cast<size_t>(id)];
    const Sequence& seq = *slot.seq;
    in_batch.push_back(id);
    auto pos = static_cast<int32_t>(slot.tokens.size());
    if (loads[k].prompt_remaining > 0) {
      for (int64_t j = 0; j < n; ++j) {
        const size_t p = seq.prompt_done + static_cast<size_t>(j);
        const bool last = p + 1 == seq.request.prompt.size();
        items.push_back(seq.item(seq.request.prompt[p], pos++, id, last));
        if (last) with_logits.push_back(id);
      }
    } else {
      items.push_back(seq.item(seq.generated.back(), pos, id, true));
      with_logits.push_back(id);
    }
  }

  std::span<const float> logits;
  try {
    logits = decoder.forward(items);
  } catch (const std::exception& e) {
    // The decoder normally leaves its caches untouched on failure; reset these slots
    // anyway so that a slot's token list never disagrees with its cache.
    for (int32_t id : in_batch) {
      Slot& slot = slots[static_cast<size_t>(id)];
      decoder.clear(id);
      slot.tokens.clear();
      finish(slot, FinishReason::kError, e.what());
    }
    std::lock_guard<std::mutex> lock(mu);
    ++counters.steps;
    return;
  }

  uint64_t prompt_processed = 0;
  for (const BatchItem& it : items) {
    Slot& slot = slots[static_cast<size_t>(it.seq)];
    Sequence& seq = *slot.seq;
    const size_t at = slot.tokens.size();
    slot.tokens.push_back(at < seq.inputs.keys.size() ? seq.inputs.keys[at] : it.token);
    if (seq.prompt_done < seq.request.prompt.size()) {
      ++seq.prompt_done;
      ++prompt_processed;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    ++counters.steps;
    counters.prompt_tokens_processed += prompt_processed;
  }
  const auto V = static_cast<size_t>(n_vocab);
  for (size_t row = 0; row < with_logits.size(); ++row) {
    Slot& slot = slots[static_cast<size_t>(with_logits[row])];
    try {
      sample(slot, logits.subspan(row * V, V));
    } catch (const std::exception& e) {
      if (slot.seq) finish(slot, FinishReason::kError, e.what());
    }
  }
}

// Samples the next token of the sequence in `slot`, delivers it and ends the sequence
// when it is done.
void Engine::Impl::sample(Slot& slot, std::span<const float> logits) {
  Sequence& seq = *slot.seq;
  const GenerationRequest& req = seq.request;
  std::span<const float> dist = logits;
  if (req.constraint) {
    seq.masked.assign(logits.begin(), logits.end());
    req.constraint->mask(seq.masked);
    dist = seq.masked;
  }
  const int32_t token = seq.sampler.sample(dist, req.prompt, seq.generated);
  if (is_eog(token) && !req.ignore_eos) {
    finish(slot, FinishReason::kStop);
    return;
  }
  if (req.constraint) req.constraint->accept(token);
  TokenOutput out;
  out.token = token;
  if (req.top_logprobs >= 0) {
    out.logprob = token_logprob(logits, token);
    out.top_logprobs = top_logprobs(logits, req.top_logprobs);
  }
  seq.generated.push_back(token);
  {
    std::lock_guard<std::mutex> lock(mu);
    ++counters.generated_tokens;
  }
  seq.stream->shared().push(std::move(out));
  const auto total = static_cast<int64_t>(req.prompt.size() + seq.generated.size());
  if (static_cast<int64_t>(seq.generated.size()) >= req.max_tokens || total >= options.n_ctx)
    finish(slot, FinishReason::kLength);
}

void Engine::Impl::stop_all(const std::string& message) {
  std::deque<Pending> left;
  {
    std::lock_guard<std::mutex> lock(mu);
    left.swap(waiting);
  }
  for (Pending& p : left) p.stream->shared().end(FinishReason::kError, message);
  for (Slot& slot : slots)
    if (slot.seq) finish(slot, FinishReason::kError, message);
}

Engine::Engine(std::shared_ptr<const Model> model, EngineOptions options) {
  MUSE_CHECK(model != nullptr, "engine: no model");
  MUSE_CHECK(options.n_parallel > 0, "engine: n_parallel must be positive, not ",
             options.n_parallel);
  MUSE_CHECK(options.n_ctx >= 2, "engine: n_ctx must be at least 2, not ", options.n_ctx);
  MUSE_CHECK(options.n_ctx <= INT32_MAX, "engine: n_ctx ", options.n_ctx, " is too large");
  MUSE_CHECK(options.n_batch > 0, "engine: n_batch must be positive, not ", options.n_batch);
  MUSE_CHECK(options.max_queue >= 0, "engine: max_queue must not be negative, not ",
             options.max_queue);
  MUSE_CHECK(options.n_threads >= 0, "engine: n_threads must not be negative, not ",
             options.n_threads);
  const int64_t n_vocab = model->config().n_vocab;
  for (int32_t id : options.eog_ids)
    MUSE_CHECK(id >= 0 && id < n_vocab, "engine: end-of-generation token ", id,
               " is outside the vocabulary (", n_vocab, " tokens)");
  impl_ = std::make_unique<Impl>(std::move(model), std::move(options));
  impl_->counters.slots = impl_->options.n_parallel;
  impl_->beat();
  impl_->loop_alive.store(true);
  impl_->thread = std::thread([impl = impl_.get()] { impl->run(); });
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  std::lock_guard<std::mutex> join_lock(impl_->join_mu);
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->stop_all("engine stopped");
}

std::shared_ptr<GenerationStream> Engine::submit(GenerationRequest request) {
  const EngineOptions& o = impl_->options;
  const int32_t n_vocab = impl_->n_vocab;
  MUSE_CHECK(!request.prompt.empty(), "the prompt is empty");
  for (int32_t id : request.prompt)
    MUSE_CHECK(id >= 0 && id < n_vocab, "prompt token id ", id, " is outside the vocabulary (",
               n_vocab, " tokens)");
  MUSE_CHECK(static_cast<int64_t>(request.prompt.size()) <= o.n_ctx - 1, "the prompt has ",
             request.prompt.size(), " tokens; at most ", o.n_ctx - 1,
             " fit the context (n_ctx = ", o.n_ctx, ")");
  MUSE_CHECK(request.max_tokens > 0, "max_tokens must be positive, not ", request.max_tokens);
  MUSE_CHECK(request.top_logprobs >= -1 && request.top_logprobs <= kMaxTopLogprobs,
             "top_logprobs must be between 0 and ", kMaxTopLogprobs, ", not ",
             request.top_logprobs);
  validate_sampling_params(request.sampling, n_vocab);
  PromptInputs inputs = prompt_inputs(impl_->model->config(), request);

  auto shared = std::make_shared<GenerationStream::Shared>();
  shared->prompt_tokens = static_cast<int64_t>(request.prompt.size());
  auto stream = std::make_shared<GenerationStream>(shared);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopping) throw QueueFullError("the engine is shutting down");
    // Requests the loop has not yet moved into free slots are not waiting for a
    // slot: without this, a burst against an idle engine (the loop still asleep)
    // refused its second request although a slot was free.
    const int64_t unclaimed = std::max<int64_t>(0, o.n_parallel - impl_->counters.running);
    if (static_cast<int64_t>(impl_->waiting.size()) >= o.max_queue + unclaimed)
      throw QueueFullError(str_cat("the request queue is full (", o.max_queue, " waiting)"));
    impl_->waiting.push_back({std::move(request), stream, std::move(inputs)});
  }
  impl_->wake.notify_all();
  return stream;
}

EngineStats Engine::stats() const {
  EngineStats s;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    s = impl_->counters;
    s.waiting = static_cast<int64_t>(impl_->waiting.size());
  }
  s.slots = impl_->options.n_parallel;
  s.seconds_since_loop_alive = static_cast<double>(now_ns() - impl_->heartbeat_ns.load()) * 1e-9;
  return s;
}

bool Engine::healthy() const {
  return impl_->loop_alive.load() && stats().seconds_since_loop_alive < kHeartbeatTimeoutSeconds;
}

const EngineOptions& Engine::options() const {
  return impl_->options;
}

const Model& Engine::model() const {
  return *impl_->model;
}

}  // namespace muse
