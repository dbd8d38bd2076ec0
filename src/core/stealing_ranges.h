// Items [0, n) split over threads in contiguous shares, each share worked front
// to back by its owner; a thread whose share runs out takes items from the back
// of another's. On a shared machine one core of two is often slower for a while
// (a neighbour's load, an interrupt, a lower clock), and with even static shares
// the other waits at the region's end; here it takes over the slow share's tail.
// The owner still walks its share in address order, so streaming the weights of
// a GEMV keeps the hardware prefetchers' pattern.
//
// Usage: reset() before the parallel region (not concurrently with next()),
// then every thread calls next(t) until it returns -1. Each item is returned
// exactly once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace muse {

class StealingRanges {
 public:
  // Shares of [0, n) for n_threads threads (n < 2^31). Allocates only when
  // n_threads grows.
  void reset(int64_t n, int n_threads);

  // The next item for thread t (its own share first), or -1 when every share
  // is empty.
  int64_t next(int t);

 private:
  // One share as (front << 32) | back, [front, back) still to do: the owner
  // takes `front`, a thief `back - 1`, both by compare-and-swap.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::unique_ptr<Share[]> shares_;
  int capacity_ = 0;
  int n_threads_ = 0;
};

}  // namespace muse
