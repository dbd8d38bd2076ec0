// Prometheus metrics: counters, gauges and histograms with optional labels, rendered in
// the Prometheus text exposition format (version 0.0.4). Thread-safe: observations come
// from many request threads while /metrics renders.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace muse::server {

using Labels = std::vector<std::pair<std::string, std::string>>;  // name -> value, in order

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();  // defined where Family is complete
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Declares a metric family (once; declaring the same name twice throws muse::Error).
  // Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; help is one line.
  void declare_counter(const std::string& name, const std::string& help);
  void declare_gauge(const std::string& name, const std::string& help);
  // Histogram with ascending upper bounds (a +Inf bucket is implicit).
  void declare_histogram(const std::string& name, const std::string& help,
                         std::vector<double> bounds);

  // Observations. Using an undeclared name or the wrong kind throws muse::Error. Label
  // values are escaped on output (\\, \", \n).
  void add(const std::string& counter, double value = 1.0, const Labels& labels = {});
  void set(const std::string& gauge, double value, const Labels& labels = {});
  void observe(const std::string& histogram, double value, const Labels& labels = {});

  // Current value of a counter or gauge series (0 when never touched): for tests.
  double value(const std::string& name, const Labels& labels = {}) const;

  // The whole registry in text format: # HELP / # TYPE lines, then series; histograms as
  // _bucket{le="..."} (cumulative), _sum and _count. Families in declaration order.
  std::string render() const;

 private:
  struct Family;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
  std::map<std::string, Family*> by_name_;
};

}  // namespace muse::server
