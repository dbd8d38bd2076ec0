#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define MUSE_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define MUSE_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define MUSE_CPU_RELAX() std::this_thread::yield()
#endif

namespace muse {
namespace {

// How long a thread spins for the next event before it sleeps: long enough to
// cover the serial gaps between the parallel regions of a forward pass, short
// enough not to hold a core that other processes need when the pool is idle.
constexpr auto kSpinTime = std::chrono::microseconds(200);

// Spins until pred() holds or kSpinTime passes; returns pred(). After a short
// busy spin it yields between checks, so that when there are more runnable
// threads than cores the thread being waited for gets the core.
template <typename Pred>
bool spin_until(Pred pred) {
  for (int i = 0; i < 256; ++i) {
    if (pred()) return true;
    MUSE_CPU_RELAX();
  }
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  while (!pred()) {
    std::this_thread::yield();
    if (std::chrono::steady_clock::now() > deadline) return pred();
  }
  return true;
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0;
  for (;;) {
    // Wait for a new region: spin first, then sleep on the counter.
    if (!spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; })) {
      generation_.wait(seen, std::memory_order_acquire);
      if (generation_.load(std::memory_order_acquire) == seen) continue;  // spurious
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    (*job_)(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::run_on_all(const std::function<void(int)>& fn) {
  if (n_threads_ == 1) {
    fn(0);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  fn(0);
  if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
    for (int left = pending_.load(std::memory_order_acquire); left != 0;
         left = pending_.load(std::memory_order_acquire)) {
      pending_.wait(left, std::memory_order_acquire);
    }
  }
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int, int64_t, int64_t)>& fn,
                              int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  const int64_t n_parts = std::min<int64_t>(n_threads_, n_grains);
  if (n_parts <= 1) {
    fn(0, 0, n);
    return;
  }
  run_on_all([&](int t) {
    if (t >= n_parts) return;
    const int64_t g0 = n_grains * t / n_parts;
    const int64_t g1 = n_grains * (t + 1) / n_parts;
    const int64_t b = g0 * grain;
    const int64_t e = std::min(n, g1 * grain);
    if (b < e) fn(t, b, e);
  });
}

int default_thread_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

}  // namespace muse
