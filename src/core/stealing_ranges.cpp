#include "core/stealing_ranges.h"

#include "muse/error.h"

namespace muse {

namespace {
constexpr uint64_t pack(uint64_t front, uint64_t back) { return front << 32 | back; }
constexpr uint64_t front_of(uint64_t range) { return range >> 32; }
constexpr uint64_t back_of(uint64_t range) { return range & 0xffffffffu; }
}  // namespace

void StealingRanges::reset(int64_t n, int n_threads) {
  MUSE_CHECK(n >= 0 && n < (int64_t{1} << 31) && n_threads > 0,
             "StealingRanges: bad size ", n, " or thread count ", n_threads);
  if (n_threads > capacity_) {
    shares_ = std::make_unique<Share[]>(static_cast<size_t>(n_threads));
    capacity_ = n_threads;
  }
  n_threads_ = n_threads;
  for (int t = 0; t < n_threads; ++t) {
    const uint64_t begin = static_cast<uint64_t>(n * t / n_threads);
    const uint64_t end = static_cast<uint64_t>(n * (t + 1) / n_threads);
    shares_[t].range.store(pack(begin, end), std::memory_order_relaxed);
  }
}

int64_t StealingRanges::next(int t) {
  // Own share, from the front.
  std::atomic<uint64_t>& own = shares_[t].range;
  uint64_t r = own.load(std::memory_order_relaxed);
  while (front_of(r) < back_of(r)) {
    if (own.compare_exchange_weak(r, pack(front_of(r) + 1, back_of(r)), std::memory_order_relaxed))
      return static_cast<int64_t>(front_of(r));
  }
  // The others' shares, from the back, starting with the next thread's.
  for (int i = 1; i < n_threads_; ++i) {
    std::atomic<uint64_t>& other = shares_[(t + i) % n_threads_].range;
    uint64_t o = other.load(std::memory_order_relaxed);
    while (front_of(o) < back_of(o)) {
      if (other.compare_exchange_weak(o, pack(front_of(o), back_of(o) - 1),
                                      std::memory_order_relaxed))
        return static_cast<int64_t>(back_of(o) - 1);
    }
  }
  return -1;
}

}  // namespace muse
