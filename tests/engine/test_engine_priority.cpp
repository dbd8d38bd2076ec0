// Priority admission: SchedulePolicy::admission_order (highest priority first, first come
// first served within a priority) and the engine following it when slots are scarce.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "engine/engine.h"
#include "engine/schedule_policy.h"
#include "model/random_model.h"

namespace muse {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

TEST(AdmissionOrder, HighestPriorityFirstFifoWithin) {
  const std::vector<int> priorities = {0, 5, 0, 5, 1};
  EXPECT_EQ(SchedulePolicy::admission_order(priorities, 10), (std::vector<size_t>{1, 3, 4, 0, 2}));
  EXPECT_EQ(SchedulePolicy::admission_order(priorities, 2), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(SchedulePolicy::admission_order(priorities, 0), (std::vector<size_t>{}));
}

TEST(AdmissionOrder, EqualPrioritiesAreFirstComeFirstServed) {
  const std::vector<int> same = {2, 2, 2};
  EXPECT_EQ(SchedulePolicy::admission_order(same, 3), (std::vector<size_t>{0, 1, 2}));
  const std::vector<int> negative = {-1, 0, -1};
  EXPECT_EQ(SchedulePolicy::admission_order(negative, 3), (std::vector<size_t>{1, 0, 2}));
}

std::shared_ptr<const Model> tiny_model() {
  static std::shared_ptr<const Model> model = [] {
    fs::create_directories(MUSE_TEST_TMP);
    const std::string path = std::string(MUSE_TEST_TMP) + "/engine-priority-tiny.gguf";
    write_random_model(RandomModelSpec{}, parse_quant_target("f32"), path);
    return std::shared_ptr<const Model>(Model::load(path));
  }();
  return model;
}

GenerationRequest endless(int priority) {
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.sampling.temperature = 0;
  r.max_tokens = 200;  // runs until cancelled (the test cancels each one)
  r.ignore_eos = true;
  r.priority = priority;
  return r;
}

// Waits until the stream has produced a token; false on timeout.
bool wait_first_token(GenerationStream& s) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = s.next(20ms);
    if (e && !e->tokens.empty()) return true;
  }
  return false;
}

// With one slot, exactly one request runs at a time: the order in which the queued
// requests start is the admission order. Each is cancelled once it has started, which
// frees the slot for the next (no timing involved).
TEST(EnginePriority, OneSlotAdmitsHighestPriorityFirst) {
  EngineOptions o;
  o.n_parallel = 1;
  o.n_ctx = 256;
  o.n_batch = 64;
  o.max_queue = 16;
  o.n_threads = 2;
  Engine engine(tiny_model(), o);
  auto blocker = engine.submit(endless(0));
  ASSERT_TRUE(wait_first_token(*blocker));

  const std::vector<int> priorities = {0, 5, 0, 5, 1};
  std::vector<std::shared_ptr<GenerationStream>> queued;
  for (int p : priorities) queued.push_back(engine.submit(endless(p)));
  for (const auto& s : queued) EXPECT_FALSE(s->next(0ms).has_value());
  EXPECT_EQ(engine.stats().waiting, 5);
  blocker->cancel();

  std::vector<size_t> started;
  std::vector<bool> done(queued.size(), false);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (started.size() < queued.size() && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < queued.size(); ++i) {
      if (done[i]) continue;
      auto e = queued[i]->next(1ms);
      if (!e || e->tokens.empty()) continue;
      // Only the request in the single slot can produce tokens.
      started.push_back(i);
      done[i] = true;
      queued[i]->cancel();
    }
  }
  EXPECT_EQ(started, (std::vector<size_t>{1, 3, 4, 0, 2}));
}

}  // namespace
}  // namespace muse
