// A fixed pool of worker threads for data-parallel loops. The pool is created
// once per model/engine; parallel_for hands each thread one contiguous range so
// hot loops pay no per-item scheduling cost.
//
// A forward pass dispatches a few hundred short parallel regions per token, so
// the hand-off is a spin-then-sleep handshake on atomics: a worker that finished
// a region spins (with pause) for a short while waiting for the next one and only
// then sleeps on the atomic (futex), and the caller likewise spins before it
// sleeps while waiting for the workers. Waking a sleeping thread costs a system
// call; a spinning one sees the new region within a few hundred nanoseconds.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace muse {

class ThreadPool {
 public:
  // n_threads counts the calling thread: a pool of 1 runs everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(thread_index, begin, end) on every thread with [begin, end) a
  // contiguous share of [0, n) whose bounds are multiples of `grain` (except
  // the last). Returns when all are done. Not reentrant.
  void parallel_for(int64_t n, const std::function<void(int, int64_t, int64_t)>& fn,
                    int64_t grain = 1);

  // Calls fn(thread_index) once on each thread. Not reentrant.
  void run_on_all(const std::function<void(int)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  // Bumped once per region; workers run the job when it changes.
  alignas(64) std::atomic<uint32_t> generation_{0};
  // Workers still running the current region.
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

// Number of threads to use by default: the machine's hardware threads.
int default_thread_count();

}  // namespace muse
