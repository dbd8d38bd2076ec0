// The continuous-batching engine on a tiny random model: results equal single-sequence
// generate(), prefix reuse, cancellation, queue limits, validation, end conditions,
// constraints, log-probabilities and a concurrent stress run.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "engine/engine.h"
#include "engine/generate.h"
#include "model/random_model.h"

namespace muse {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Tokens = std::vector<int32_t>;

std::shared_ptr<const Model> tiny_model() {
  static std::shared_ptr<const Model> model = [] {
    fs::create_directories(MUSE_TEST_TMP);
    const std::string path = std::string(MUSE_TEST_TMP) + "/engine-qwen2-tiny.gguf";
    write_random_model(RandomModelSpec{}, parse_quant_target("f32"), path);
    return std::shared_ptr<const Model>(Model::load(path));
  }();
  return model;
}

// Greedy tokens of one prompt on a fresh single-sequence decoder.
Tokens solo(const Tokens& prompt, int64_t max_tokens, int64_t n_ctx = 256) {
  Decoder decoder(tiny_model(), {n_ctx, 1, 512, 2});
  SamplingParams greedy;
  greedy.temperature = 0;
  Sampler sampler(greedy, static_cast<int32_t>(tiny_model()->config().n_vocab));
  GenerateOptions options;
  options.max_tokens = max_tokens;
  return generate(decoder, prompt, sampler, options);
}

GenerationRequest greedy_request(Tokens prompt, int64_t max_tokens) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  return r;
}

EngineOptions small_options(int64_t n_parallel = 1, int64_t n_batch = 64) {
  EngineOptions o;
  o.n_parallel = n_parallel;
  o.n_ctx = 256;
  o.n_batch = n_batch;
  o.max_queue = 16;
  o.n_threads = 2;
  return o;
}

struct Result {
  std::vector<TokenOutput> outputs;
  Tokens tokens;
  FinishReason finish = FinishReason::kNone;
  std::string error;
  int64_t prompt_tokens = 0;
  int64_t cached = 0;
};

// Reads a stream to its end (fails the test if it stalls).
Result collect(GenerationStream& stream) {
  Result r;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto event = stream.next(100ms);
    if (!event) continue;
    for (auto& t : event->tokens) {
      r.tokens.push_back(t.token);
      r.outputs.push_back(std::move(t));
    }
    r.prompt_tokens = event->prompt_tokens;
    r.cached = event->cached_prompt_tokens;
    if (event->finish != FinishReason::kNone) {
      r.finish = event->finish;
      r.error = event->error;
      return r;
    }
  }
  ADD_FAILURE() << "stream did not end";
  return r;
}

Tokens iota_prompt(int32_t first, int32_t n, int32_t step = 7) {
  Tokens t;
  for (int32_t i = 0; i < n; ++i) t.push_back((first + i * step) % 512);
  return t;
}

// Allows only the tokens in `allowed`; records what it accepts; optionally blocks in its
// first mask() call until release() (to hold the engine loop at a known point).
class TestConstraint : public text::TokenConstraint {
 public:
  explicit TestConstraint(std::set<int32_t> allowed, bool block = false)
      : allowed_(std::move(allowed)), block_(block) {}
  void mask(std::span<float> logits) const override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (block_) {
        entered_ = true;
        cv_.notify_all();
        cv_.wait(lock, [&] { return released_; });
      }
    }
    for (size_t t = 0; t < logits.size(); ++t)
      if (!allowed_.count(static_cast<int32_t>(t))) logits[t] = -INFINITY;
  }
  void accept(int32_t token) override {
    if (!allowed_.count(token)) throw Error("token not allowed");
    if (throw_on_accept_) throw Error("constraint failure");
    std::lock_guard<std::mutex> lock(mu_);
    accepted_.push_back(token);
  }
  bool complete() const override { return false; }

  void wait_entered() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  Tokens accepted() const {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_;
  }
  bool throw_on_accept_ = false;

 private:
  std::set<int32_t> allowed_;
  bool block_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  mutable bool entered_ = false;
  bool released_ = false;
  Tokens accepted_;
};

// The two Decoder additions the engine's prefix reuse rests on.
// Every KV cache type (their key blocks differ in size: copy_prefix copies whole
// blocks).
TEST(DecoderPrefix, TruncateAndCopyPrefixContinueLikeAFreshRun) {
  const Tokens ids = {5, 17, 300, 2, 99, 41, 7, 250, 13, 18, 19, 20, 21, 22, 23, 24, 25, 26};
  const size_t V = 512;
  for (DType kv : {DType::F32, DType::F16, DType::Q8_0}) {
    DecoderOptions ro{64, 1, 512, 2};
    ro.kv_type = kv;
    Decoder ref(tiny_model(), ro);
    const std::vector<float> want = all_logits(ref, ids);
    DecoderOptions o{64, 3, 512, 2};
    o.kv_type = kv;
    Decoder d(tiny_model(), o);
    std::vector<BatchItem> items;
    for (size_t i = 0; i < ids.size(); ++i)
      items.push_back({ids[i], static_cast<int32_t>(i), 0, false});
    d.forward(items);
    // Keep 17 positions (crosses a 16-position key block) and recompute the last one.
    d.truncate(0, 17);
    EXPECT_EQ(d.seq_length(0), 17);
    d.copy_prefix(0, 2, 17);
    EXPECT_EQ(d.seq_length(2), 17);
    for (int32_t seq : {0, 2}) {
      BatchItem last{ids[17], 17, seq, true};
      auto out = d.forward(std::span<const BatchItem>(&last, 1));
      for (size_t t = 0; t < V; ++t)
        ASSERT_NEAR(out[t], want[17 * V + t], 1e-4) << dtype_name(kv) << " " << seq << " " << t;
    }
  }
  Decoder d(tiny_model(), {64, 3, 512, 2});
  d.forward(std::vector<BatchItem>{
      {5, 0, 0, false}, {17, 1, 0, false}, {300, 2, 0, false}, {2, 3, 0, false}});
  EXPECT_THROW(d.truncate(1, 1), Error);  // nothing cached
  EXPECT_THROW(d.truncate(0, -1), Error);
  EXPECT_THROW(d.copy_prefix(0, 0, 3), Error);  // onto itself
  EXPECT_THROW(d.copy_prefix(0, 1, 5), Error);  // more than cached
  EXPECT_THROW(d.copy_prefix(0, 3, 1), Error);  // no sequence 3
}

TEST(Engine, GreedyOutputEqualsGenerate) {
  const Tokens prompt = {1, 7, 300, 42, 5, 99};
  const Tokens expected = solo(prompt, 8);
  ASSERT_EQ(expected.size(), 8u);
  Engine engine(tiny_model(), small_options());
  auto stream = engine.submit(greedy_request(prompt, 8));
  const Result r = collect(*stream);
  EXPECT_EQ(r.tokens, expected);
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_EQ(r.prompt_tokens, 6);
  EXPECT_EQ(r.cached, 0);
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.prompt_tokens_processed, 6u);
  EXPECT_EQ(s.generated_tokens, 8u);
  EXPECT_EQ(s.requests_finished, 1u);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.slots, 1);
  EXPECT_STREQ(finish_reason_name(r.finish), "length");
}

TEST(Engine, ConcurrentRequestsMatchSoloResults) {
  // 6 prompts of different lengths on 3 slots with a small budget: prefill chunks and
  // decode tokens of different requests share steps, and slots are reused.
  std::vector<Tokens> prompts;
  std::vector<int64_t> lengths = {5, 9, 3, 12, 4, 7};
  for (size_t i = 0; i < 6; ++i)
    prompts.push_back(
        iota_prompt(static_cast<int32_t>(11 + 37 * i), static_cast<int32_t>(3 + 4 * i)));
  Engine engine(tiny_model(), small_options(3, 8));
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (size_t i = 0; i < prompts.size(); ++i)
    streams.push_back(engine.submit(greedy_request(prompts[i], lengths[i])));
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Result r = collect(*streams[i]);
    EXPECT_EQ(r.tokens, solo(prompts[i], lengths[i])) << "request " << i;
    EXPECT_EQ(r.finish, FinishReason::kLength);
  }
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.requests_finished, 6u);
  EXPECT_EQ(s.generated_tokens, 40u);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.waiting, 0);
}

TEST(Engine, NextTurnReusesTheCachedPrefix) {
  Engine engine(tiny_model(), small_options());
  const Tokens first = {3, 1, 4, 1, 5, 9, 2, 6};
  const Result a = collect(*engine.submit(greedy_request(first, 5)));
  ASSERT_EQ(a.tokens.size(), 5u);
  Tokens second = first;
  second.insert(second.end(), a.tokens.begin(), a.tokens.end());
  second.insert(second.end(), {100, 200, 300});
  const Result b = collect(*engine.submit(greedy_request(second, 6)));
  // The last generated token of the first turn was never run through the model.
  EXPECT_EQ(b.cached, static_cast<int64_t>(first.size() + a.tokens.size() - 1));
  EXPECT_EQ(b.tokens, solo(second, 6));
  // The same prompt again: all but its last token come from the cache.
  const Result c = collect(*engine.submit(greedy_request(second, 6)));
  EXPECT_EQ(c.cached, static_cast<int64_t>(second.size() - 1));
  EXPECT_EQ(c.tokens, b.tokens);
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.prompt_tokens_cached, static_cast<uint64_t>(b.cached + c.cached));
  EXPECT_EQ(s.prompt_tokens_processed,
            static_cast<uint64_t>(first.size() + (second.size() - b.cached) + 1));
}

TEST(Engine, PrefixIsCopiedFromABusySlot) {
  Engine engine(tiny_model(), small_options(2));
  const Tokens shared = iota_prompt(20, 10);
  auto holder = std::make_shared<TestConstraint>(std::set<int32_t>{1, 2, 3}, true);
  GenerationRequest a = greedy_request(shared, 20);
  a.constraint = holder;
  auto sa = engine.submit(std::move(a));
  holder->wait_entered();  // a's prompt is cached; the loop waits in a's first mask()
  Tokens other = Tokens(shared.begin(), shared.begin() + 6);
  other.insert(other.end(), {400, 401, 402});
  auto sb = engine.submit(greedy_request(other, 4));
  holder->release();
  const Result rb = collect(*sb);
  EXPECT_EQ(rb.cached, 6);
  EXPECT_EQ(rb.tokens, solo(other, 4));
  const Result ra = collect(*sa);
  EXPECT_EQ(ra.tokens.size(), 20u);
}

TEST(Engine, CancelFreesTheSlot) {
  Engine engine(tiny_model(), small_options());
  auto stream = engine.submit(greedy_request(iota_prompt(5, 4), 200));
  std::optional<StreamEvent> first;
  while (!first || first->tokens.empty()) first = stream->next(5s);
  stream->cancel();
  stream->cancel();  // idempotent
  EXPECT_TRUE(stream->cancelled());
  const Result r = collect(*stream);
  EXPECT_EQ(r.finish, FinishReason::kCancelled);
  EngineStats s = engine.stats();
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.requests_cancelled, 1u);
  EXPECT_EQ(s.requests_finished, 0u);
  // The end is returned again, without tokens.
  auto again = stream->next(0ms);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->finish, FinishReason::kCancelled);
  EXPECT_TRUE(again->tokens.empty());
  // The slot serves the next request.
  const Tokens prompt = {8, 9, 10};
  EXPECT_EQ(collect(*engine.submit(greedy_request(prompt, 3))).tokens, solo(prompt, 3));
}

// Submits {1, 2, 3} (2 tokens) with a constraint that blocks the engine loop
// inside that request's step until holder->release(): the request holds a slot
// and the loop admits nothing meanwhile.
struct HeldRequest {
  std::shared_ptr<TestConstraint> holder;
  std::shared_ptr<GenerationStream> stream;
};
HeldRequest hold_loop(Engine& engine) {
  HeldRequest h{std::make_shared<TestConstraint>(std::set<int32_t>{1, 2}, true), nullptr};
  GenerationRequest a = greedy_request({1, 2, 3}, 2);
  a.constraint = h.holder;
  h.stream = engine.submit(std::move(a));
  h.holder->wait_entered();
  return h;
}

TEST(Engine, FullQueueRefusesRequests) {
  EngineOptions o = small_options();
  o.max_queue = 2;
  Engine engine(tiny_model(), o);
  auto [holder, sa] = hold_loop(engine);  // a holds the only slot
  auto sb = engine.submit(greedy_request({4}, 1));
  auto sc = engine.submit(greedy_request({5}, 1));
  EXPECT_EQ(engine.stats().waiting, 2);
  EXPECT_EQ(engine.stats().running, 1);
  EXPECT_THROW(engine.submit(greedy_request({6}, 1)), QueueFullError);
  holder->release();
  EXPECT_EQ(collect(*sa).finish, FinishReason::kLength);
  EXPECT_EQ(collect(*sb).finish, FinishReason::kLength);
  EXPECT_EQ(collect(*sc).finish, FinishReason::kLength);
  // Queue space again.
  EXPECT_EQ(collect(*engine.submit(greedy_request({6}, 1))).tokens.size(), 1u);
}

// A request submitted while a slot is free but the loop has not yet filled it
// (here: the loop is held inside another request's step) waits for that slot;
// only requests beyond the free slots count against max_queue.
TEST(Engine, QueueLimitCountsOnlyRequestsBeyondFreeSlots) {
  EngineOptions o = small_options(2);
  o.max_queue = 1;
  Engine engine(tiny_model(), o);
  auto [holder, sa] = hold_loop(engine);  // the loop is inside a's step; one slot is free
  // Submissions are recorded, not thrown, so that a is released before any check.
  auto try_submit = [&](int32_t token) -> std::shared_ptr<GenerationStream> {
    try {
      return engine.submit(greedy_request({token}, 1));
    } catch (const QueueFullError&) {
      return nullptr;
    }
  };
  auto sb = try_submit(4);  // takes the free slot
  auto sc = try_submit(5);  // the one queue place
  const int64_t waiting = engine.stats().waiting;
  auto sd = try_submit(6);  // refused
  holder->release();
  ASSERT_NE(sb, nullptr) << "refused with an empty queue";
  ASSERT_NE(sc, nullptr) << "refused: the request bound for the free slot counted as queued";
  EXPECT_EQ(waiting, 2);
  EXPECT_EQ(sd, nullptr) << "accepted beyond the free slot and max_queue";
  EXPECT_EQ(collect(*sa).finish, FinishReason::kLength);
  EXPECT_EQ(collect(*sb).finish, FinishReason::kLength);
  EXPECT_EQ(collect(*sc).finish, FinishReason::kLength);
  if (sd) collect(*sd);
}

TEST(Engine, InvalidRequestsAndOptionsThrow) {
  Engine engine(tiny_model(), small_options());
  auto expect_invalid = [&](GenerationRequest r) {
    EXPECT_THROW(engine.submit(std::move(r)), Error);
  };
  expect_invalid(greedy_request({}, 4));
  expect_invalid(greedy_request({1, -1}, 4));
  expect_invalid(greedy_request({1, 512}, 4));
  expect_invalid(greedy_request(Tokens(256, 1), 4));  // n_ctx 256: at most 255
  expect_invalid(greedy_request({1}, 0));
  GenerationRequest r = greedy_request({1}, 4);
  r.top_logprobs = 21;
  expect_invalid(r);
  r.top_logprobs = -2;
  expect_invalid(r);
  r = greedy_request({1}, 4);
  r.sampling.temperature = -1;
  expect_invalid(r);
  r = greedy_request({1}, 4);
  r.sampling.logit_bias[600] = 1.0f;
  expect_invalid(r);
  EXPECT_EQ(engine.stats().waiting, 0);
  // A request of exactly n_ctx - 1 tokens is fine and ends when the context is full.
  const Result full = collect(*engine.submit(greedy_request(Tokens(255, 1), 4)));
  EXPECT_EQ(full.tokens.size(), 1u);
  EXPECT_EQ(full.finish, FinishReason::kLength);

  auto bad_options = [&](auto change) {
    EngineOptions o = small_options();
    change(o);
    EXPECT_THROW(Engine(tiny_model(), o), Error);
  };
  bad_options([](EngineOptions& o) { o.n_parallel = 0; });
  bad_options([](EngineOptions& o) { o.n_ctx = 1; });
  bad_options([](EngineOptions& o) { o.n_batch = 0; });
  bad_options([](EngineOptions& o) { o.eog_ids = {512}; });
}

TEST(Engine, LengthAndStopEndings) {
  Engine engine(tiny_model(), [] {
    EngineOptions o = small_options();
    o.n_ctx = 16;
    return o;
  }());
  const Tokens prompt = iota_prompt(40, 10);
  // max_tokens.
  const Result a = collect(*engine.submit(greedy_request(prompt, 3)));
  EXPECT_EQ(a.tokens, solo(prompt, 3));
  EXPECT_EQ(a.finish, FinishReason::kLength);
  // Context full: 10 prompt tokens + 6 generated = n_ctx 16.
  const Result b = collect(*engine.submit(greedy_request(prompt, 100)));
  EXPECT_EQ(b.tokens, solo(prompt, 6, 16));
  EXPECT_EQ(b.finish, FinishReason::kLength);
}

TEST(Engine, EndOfGenerationTokenStops) {
  const Tokens prompt = iota_prompt(60, 6);
  const Tokens full = solo(prompt, 6);
  const int32_t eog = full[2];
  const auto first_eog = std::find(full.begin(), full.end(), eog) - full.begin();
  EngineOptions o = small_options();
  o.eog_ids = {eog};
  Engine engine(tiny_model(), o);
  const Result stopped = collect(*engine.submit(greedy_request(prompt, 6)));
  EXPECT_EQ(stopped.tokens, Tokens(full.begin(), full.begin() + first_eog));
  EXPECT_EQ(stopped.finish, FinishReason::kStop);
  GenerationRequest ignoring = greedy_request(prompt, 6);
  ignoring.ignore_eos = true;
  const Result all = collect(*engine.submit(std::move(ignoring)));
  EXPECT_EQ(all.tokens, full);
  EXPECT_EQ(all.finish, FinishReason::kLength);
}

TEST(Engine, ConstraintRestrictsTokensAndItsFailureEndsOnlyThatRequest) {
  Engine engine(tiny_model(), small_options(2));
  auto allowed = std::make_shared<TestConstraint>(std::set<int32_t>{17, 230});
  GenerationRequest r;
  r.prompt = {5, 6, 7};
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 3;
  r.max_tokens = 12;
  r.constraint = allowed;
  auto failing = std::make_shared<TestConstraint>(std::set<int32_t>{1, 2});
  failing->throw_on_accept_ = true;
  GenerationRequest f = greedy_request({9, 9}, 5);
  f.constraint = failing;
  auto sf = engine.submit(std::move(f));
  auto sr = engine.submit(std::move(r));
  const Result rf = collect(*sf);
  EXPECT_EQ(rf.finish, FinishReason::kError);
  EXPECT_EQ(rf.error, "constraint failure");
  const Result rr = collect(*sr);
  EXPECT_EQ(rr.finish, FinishReason::kLength);
  ASSERT_EQ(rr.tokens.size(), 12u);
  for (int32_t t : rr.tokens) EXPECT_TRUE(t == 17 || t == 230) << t;
  EXPECT_EQ(allowed->accepted(), rr.tokens);
  EXPECT_EQ(engine.stats().requests_finished, 2u);
}

TEST(Engine, LogprobsMatchTheModelDistribution) {
  const Tokens prompt = {2, 4, 8, 16, 32};
  Engine engine(tiny_model(), small_options());
  GenerationRequest req = greedy_request(prompt, 4);
  req.top_logprobs = 3;
  const Result r = collect(*engine.submit(std::move(req)));
  ASSERT_EQ(r.outputs.size(), 4u);
  Tokens seq = prompt;
  seq.insert(seq.end(), r.tokens.begin(), r.tokens.end() - 1);
  Decoder decoder(tiny_model(), {256, 1, 512, 2});
  const std::vector<float> logits = all_logits(decoder, seq);
  const size_t V = 512;
  for (size_t i = 0; i < r.outputs.size(); ++i) {
    std::span<const float> row(&logits[(prompt.size() - 1 + i) * V], V);
    const TokenOutput& out = r.outputs[i];
    EXPECT_NEAR(out.logprob, token_logprob(row, out.token), 1e-4) << i;
    const auto top = top_logprobs(row, 3);
    ASSERT_EQ(out.top_logprobs.size(), 3u);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(out.top_logprobs[k].first, top[k].first);
      EXPECT_NEAR(out.top_logprobs[k].second, top[k].second, 1e-4);
    }
    // Greedy: the token is the most likely one.
    EXPECT_EQ(out.token, top[0].first);
  }
  GenerationRequest none = greedy_request(prompt, 2);
  none.top_logprobs = 0;
  const Result z = collect(*engine.submit(std::move(none)));
  ASSERT_EQ(z.outputs.size(), 2u);
  EXPECT_TRUE(z.outputs[0].top_logprobs.empty());
  EXPECT_LT(z.outputs[0].logprob, 0.0f);
}

TEST(Engine, StoppingEndsOpenStreams) {
  std::shared_ptr<GenerationStream> running, queued;
  {
    EngineOptions o = small_options();
    o.n_ctx = 2048;
    Engine engine(tiny_model(), o);
    running = engine.submit(greedy_request({1, 2}, 2000));
    queued = engine.submit(greedy_request({3}, 5));
    while (running->next(5s)->tokens.empty()) {
    }
    EXPECT_TRUE(engine.healthy());
  }
  const Result r = collect(*running);
  EXPECT_EQ(r.finish, FinishReason::kError);
  EXPECT_EQ(r.error, "engine stopped");
  EXPECT_EQ(collect(*queued).finish, FinishReason::kError);
}

TEST(Engine, StressWithRandomCancels) {
  Engine engine(tiny_model(), [] {
    EngineOptions o = small_options(3, 16);
    o.max_queue = 64;
    return o;
  }());
  std::atomic<uint64_t> received{0}, cancelled_ends{0}, other_ends{0}, bad_ends{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int i = 0; i < 10; ++i) {
        GenerationRequest r;
        const int n = 1 + static_cast<int>(rng() % 12);
        for (int k = 0; k < n; ++k) r.prompt.push_back(static_cast<int32_t>(rng() % 512));
        r.max_tokens = 1 + static_cast<int64_t>(rng() % 8);
        r.sampling.temperature = 0.8f;
        r.sampling.seed = rng();
        r.top_logprobs = static_cast<int>(rng() % 3) - 1;
        auto stream = engine.submit(std::move(r));
        const unsigned mode = rng() % 3;  // 0: no cancel, 1: at once, 2: after an event
        if (mode == 1) stream->cancel();
        if (mode == 2) {
          if (auto e = stream->next(2s)) received += e->tokens.size();
          stream->cancel();
        }
        const Result res = collect(*stream);
        received += res.tokens.size();
        if (res.finish == FinishReason::kCancelled) {
          ++cancelled_ends;
        } else if (res.finish == FinishReason::kLength) {
          ++other_ends;
        } else {
          ++bad_ends;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad_ends.load(), 0u);
  EXPECT_EQ(cancelled_ends + other_ends, 40u);
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.running, 0);
  EXPECT_EQ(s.requests_cancelled, cancelled_ends.load());
  EXPECT_EQ(s.requests_finished, other_ends.load());
  EXPECT_EQ(s.generated_tokens, received.load());
  // The loop stays healthy while idle.
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(engine.healthy());
  EXPECT_LT(engine.stats().seconds_since_loop_alive, 1.0);
}

}  // namespace
}  // namespace muse
