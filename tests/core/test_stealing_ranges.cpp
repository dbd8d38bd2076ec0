// StealingRanges: every item exactly once, owners front to back, thieves from the back.
#include "core/stealing_ranges.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace muse {
namespace {

std::vector<int64_t> drain(StealingRanges& r, int t) {
  std::vector<int64_t> got;
  for (int64_t i; (i = r.next(t)) >= 0;) got.push_back(i);
  return got;
}

TEST(StealingRanges, OneThreadTakesAllInOrder) {
  StealingRanges r;
  r.reset(5, 1);
  EXPECT_EQ(drain(r, 0), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(r.next(0), -1);
  r.reset(0, 1);
  EXPECT_EQ(r.next(0), -1);
}

TEST(StealingRanges, IdleThreadTakesTheOthersTailFromTheBack) {
  StealingRanges r;
  r.reset(10, 2);  // shares [0, 5) and [5, 10)
  EXPECT_EQ(r.next(0), 0);
  EXPECT_EQ(r.next(0), 1);
  // Thread 1 finishes its share, then takes 4 and 3 from thread 0's back.
  EXPECT_EQ(drain(r, 1), (std::vector<int64_t>{5, 6, 7, 8, 9, 4, 3, 2}));
  EXPECT_EQ(r.next(0), -1);
}

TEST(StealingRanges, OwnerAndThiefMeetWithoutLosingOrRepeating) {
  StealingRanges r;
  r.reset(7, 3);  // shares [0, 2), [2, 4), [4, 7)
  EXPECT_EQ(r.next(2), 4);
  EXPECT_EQ(r.next(0), 0);
  EXPECT_EQ(r.next(0), 1);
  EXPECT_EQ(r.next(0), 3);  // thread 1's back
  EXPECT_EQ(r.next(1), 2);  // its own front
  EXPECT_EQ(r.next(1), 6);  // thread 2's back
  EXPECT_EQ(r.next(2), 5);
  EXPECT_EQ(r.next(0), -1);
  EXPECT_EQ(r.next(1), -1);
  EXPECT_EQ(r.next(2), -1);
}

TEST(StealingRanges, ConcurrentThreadsCoverEveryItemOnce) {
  StealingRanges r;
  for (int threads : {2, 3, 4}) {
    for (int64_t n : {0, 1, 3, 1000, 100000}) {
      r.reset(n, threads);
      std::vector<std::vector<int64_t>> got(static_cast<size_t>(threads));
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          // Thread 0 dawdles, so the others run out and steal from it.
          for (int64_t i; (i = r.next(t)) >= 0;) {
            got[static_cast<size_t>(t)].push_back(i);
            if (t == 0) std::this_thread::yield();
          }
        });
      for (auto& th : pool) th.join();
      std::vector<int64_t> all;
      for (int t = 0; t < threads; ++t) {
        const auto& g = got[static_cast<size_t>(t)];
        // What a thread took of its own share came front to back.
        const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
        int64_t last = -1;
        for (int64_t i : g) {
          if (i < begin || i >= end) continue;
          ASSERT_GT(i, last) << "thread " << t;
          last = i;
        }
        all.insert(all.end(), g.begin(), g.end());
      }
      std::sort(all.begin(), all.end());
      ASSERT_EQ(static_cast<int64_t>(all.size()), n) << threads << " threads";
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(all[static_cast<size_t>(i)], i);
    }
  }
}

TEST(StealingRanges, ResetReusesWithMoreOrFewerThreads) {
  StealingRanges r;
  r.reset(4, 2);
  EXPECT_EQ(r.next(1), 2);
  r.reset(6, 3);
  EXPECT_EQ(drain(r, 2), (std::vector<int64_t>{4, 5, 1, 0, 3, 2}));  // then 0's back, 1's
  r.reset(2, 1);
  EXPECT_EQ(drain(r, 0), (std::vector<int64_t>{0, 1}));
}

}  // namespace
}  // namespace muse
