// A fixed pool of worker threads for data-parallel loops. The pool is created
// once per model/engine; parallel_for hands each thread one contiguous range so
// hot loops pay no per-item scheduling cost.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
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

  // Calls fn(thread_index) once on each thread.
  void run_on_all(const std::function<void(int)>& fn);

 private:
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// Number of threads to use by default: the machine's hardware threads.
int default_thread_count();

}  // namespace muse
