// Seeded bootstrap (see stats.h).
#include "platform/stats.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "muse/error.h"

namespace muse::platform {

double mean_of(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double clip01(double x) {
  return std::clamp(x, 0.0, 1.0);
}

double percentile_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(pos));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double frac = pos - static_cast<double>(below);
  return sorted[below] + (sorted[above] - sorted[below]) * frac;
}

BootstrapResult bootstrap(const std::vector<double>& values, int resamples, uint64_t seed,
                          double confidence,
                          const std::function<double(const std::vector<double>&)>& statistic) {
  MUSE_CHECK(resamples >= 1, "bootstrap: resamples must be at least 1 (got ", resamples, ")");
  MUSE_CHECK(confidence > 0 && confidence < 1, "bootstrap: confidence must be in (0, 1)");
  BootstrapResult result;
  if (values.empty()) return result;
  const auto stat = statistic ? statistic : mean_of;
  result.mean = stat(values);
  std::mt19937_64 rng(seed);
  const size_t n = values.size();
  std::vector<double> sample(n), stats;
  stats.reserve(static_cast<size_t>(resamples));
  for (int r = 0; r < resamples; ++r) {
    for (size_t i = 0; i < n; ++i) sample[i] = values[rng() % n];
    stats.push_back(stat(sample));
  }
  const double m = mean_of(stats);
  double var = 0;
  for (double s : stats) var += (s - m) * (s - m);
  result.std = std::sqrt(var / static_cast<double>(stats.size()));
  std::sort(stats.begin(), stats.end());
  result.lo = percentile_sorted(stats, (1 - confidence) / 2);
  result.hi = percentile_sorted(stats, (1 + confidence) / 2);
  return result;
}

}  // namespace muse::platform
