// Prometheus metrics registry and text exposition format 0.0.4 rendering.
#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "muse/error.h"

namespace muse::server {

namespace {

enum class Kind { kCounter, kGauge, kHistogram };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kCounter:
      return "counter";
    case Kind::kGauge:
      return "gauge";
    case Kind::kHistogram:
      return "histogram";
  }
  return "untyped";
}

bool is_metric_name(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Label names: [a-zA-Z_][a-zA-Z0-9_]*; names starting with "__" are reserved by Prometheus.
bool is_label_name(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Sample values and `le` bounds: integral values print without exponent or fraction,
// others as the shortest text that parses back to the same double (Go's ParseFloat, which
// Prometheus uses, accepts that form), and the specials as Prometheus spells them.
std::string format_number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

void append_escaped_label_value(std::string& out, const std::string& value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// HELP text escapes only backslash and newline (exposition format 0.0.4).
std::string escape_help(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}` (nothing when there are no labels); `le`, when given, comes last.
std::string format_labels(const Labels& labels, const std::string* le = nullptr) {
  if (labels.empty() && le == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    append_escaped_label_value(out, value);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) out += ',';
    out += "le=\"";
    out += *le;
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

struct MetricsRegistry::Family {
  struct Series {
    double value = 0.0;                   // counter or gauge
    std::vector<uint64_t> bucket_counts;  // histogram: per bucket (not cumulative), + Inf last
    double sum = 0.0;
    uint64_t count = 0;
  };

  std::string name;
  std::string help;
  Kind kind = Kind::kCounter;
  std::vector<double> bounds;
  std::map<Labels, Series> series;  // sorted by labels so the output is stable

  // The series for `labels`, created on first use after checking the label names.
  Series& series_for(const Labels& labels) {
    auto it = series.find(labels);
    if (it != series.end()) return it->second;
    for (size_t i = 0; i < labels.size(); ++i) {
      const std::string& label = labels[i].first;
      MUSE_CHECK(is_label_name(label), "metric ", name, ": invalid label name '", label, "'");
      MUSE_CHECK(!(kind == Kind::kHistogram && label == "le"), "metric ", name,
                 ": label 'le' is reserved for histogram buckets");
      for (size_t j = 0; j < i; ++j) {
        MUSE_CHECK(labels[j].first != label, "metric ", name, ": label '", label, "' given twice");
      }
    }
    Series& s = series[labels];
    if (kind == Kind::kHistogram) s.bucket_counts.assign(bounds.size() + 1, 0);
    return s;
  }
};

namespace {

// Declares a family; shared by the three declare_* methods.
template <typename FamilyT, typename FamilyVec, typename FamilyMap>
void declare_family(FamilyVec& families, FamilyMap& by_name, const std::string& name,
                    const std::string& help, Kind kind, std::vector<double> bounds) {
  MUSE_CHECK(is_metric_name(name), "invalid metric name '", name, "'");
  MUSE_CHECK(by_name.find(name) == by_name.end(), "metric ", name, " declared twice");
  auto family = std::make_unique<FamilyT>();
  family->name = name;
  family->help = help;
  family->kind = kind;
  family->bounds = std::move(bounds);
  by_name[name] = family.get();
  families.push_back(std::move(family));
}

// The declared family `name`, which must be of `kind`; the caller holds the registry lock.
template <typename FamilyMap>
auto& find_family(const FamilyMap& by_name, const std::string& name, Kind kind) {
  auto it = by_name.find(name);
  MUSE_CHECK(it != by_name.end(), "metric ", name, " is not declared");
  MUSE_CHECK(it->second->kind == kind, "metric ", name, " is a ", kind_name(it->second->kind),
             ", not a ", kind_name(kind));
  return *it->second;
}

}  // namespace

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::declare_counter(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(mu_);
  declare_family<Family>(families_, by_name_, name, help, Kind::kCounter, {});
}

void MetricsRegistry::declare_gauge(const std::string& name, const std::string& help) {
  std::lock_guard<std::mutex> lock(mu_);
  declare_family<Family>(families_, by_name_, name, help, Kind::kGauge, {});
}

void MetricsRegistry::declare_histogram(const std::string& name, const std::string& help,
                                        std::vector<double> bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    MUSE_CHECK(std::isfinite(bounds[i]), "histogram ", name, ": bucket bound ", i,
               " is not finite (the +Inf bucket is implicit)");
    MUSE_CHECK(i == 0 || bounds[i] > bounds[i - 1], "histogram ", name,
               ": bucket bounds must be strictly ascending");
  }
  std::lock_guard<std::mutex> lock(mu_);
  declare_family<Family>(families_, by_name_, name, help, Kind::kHistogram, std::move(bounds));
}

void MetricsRegistry::add(const std::string& counter, double value, const Labels& labels) {
  MUSE_CHECK(value >= 0.0, "counter ", counter, ": increment must be >= 0, not ",
             format_number(value));
  std::lock_guard<std::mutex> lock(mu_);
  find_family(by_name_, counter, Kind::kCounter).series_for(labels).value += value;
}

void MetricsRegistry::set(const std::string& gauge, double value, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  find_family(by_name_, gauge, Kind::kGauge).series_for(labels).value = value;
}

void MetricsRegistry::observe(const std::string& histogram, double value, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& family = find_family(by_name_, histogram, Kind::kHistogram);
  Family::Series& s = family.series_for(labels);
  // First bucket whose upper bound is >= value (buckets are "less than or equal");
  // values above every bound (and NaN) land in the +Inf bucket.
  size_t bucket =
      std::lower_bound(family.bounds.begin(), family.bounds.end(), value) - family.bounds.begin();
  if (std::isnan(value)) bucket = family.bounds.size();
  s.bucket_counts[bucket] += 1;
  s.sum += value;
  s.count += 1;
}

double MetricsRegistry::value(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_name_.find(name);
  MUSE_CHECK(it != by_name_.end(), "metric ", name, " is not declared");
  const Family& family = *it->second;
  MUSE_CHECK(family.kind != Kind::kHistogram, "metric ", name,
             " is a histogram; value() reads counters and gauges");
  auto s = family.series.find(labels);
  return s == family.series.end() ? 0.0 : s->second.value;
}

std::string MetricsRegistry::render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& family : families_) {
    out += "# HELP " + family->name + " " + escape_help(family->help) + "\n";
    out += "# TYPE " + family->name + " " + kind_name(family->kind) + "\n";
    for (const auto& [labels, s] : family->series) {
      if (family->kind != Kind::kHistogram) {
        out += family->name + format_labels(labels) + " " + format_number(s.value) + "\n";
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t b = 0; b <= family->bounds.size(); ++b) {
        cumulative += s.bucket_counts[b];
        std::string le = b < family->bounds.size() ? format_number(family->bounds[b]) : "+Inf";
        out += family->name + "_bucket" + format_labels(labels, &le) + " " +
               std::to_string(cumulative) + "\n";
      }
      out += family->name + "_sum" + format_labels(labels) + " " + format_number(s.sum) + "\n";
      out += family->name + "_count" + format_labels(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace muse::server
