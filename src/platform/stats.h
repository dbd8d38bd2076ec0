// Small statistics for grading and evaluation reports: a seeded bootstrap of the mean
// (deterministic for a given seed on every platform) and helpers around it.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace muse::platform {

struct BootstrapResult {
  double mean = 0;  // statistic of the original values
  double std = 0;   // population standard deviation of the resampled statistics
  double lo = 0;    // percentile interval of the resampled statistics (e.g. 2.5%)
  double hi = 0;    // (e.g. 97.5%)
};

// Bootstraps `statistic` (default: the mean) over `values`: `resamples` samples of
// size n drawn with replacement by a std::mt19937_64 seeded with `seed` (indices
// taken as rng() % n, so results are identical everywhere). The interval is the
// (1 - confidence)/2 and (1 + confidence)/2 percentiles with linear interpolation.
// Empty values give all zeros; resamples must be >= 1 and confidence in (0, 1).
BootstrapResult bootstrap(const std::vector<double>& values, int resamples, uint64_t seed,
                          double confidence = 0.95,
                          const std::function<double(const std::vector<double>&)>& statistic = {});

double mean_of(const std::vector<double>& values);  // 0 for an empty vector
double clip01(double x);
// Linear-interpolation percentile of sorted values, q in [0, 1] (numpy's default).
double percentile_sorted(const std::vector<double>& sorted, double q);

}  // namespace muse::platform
