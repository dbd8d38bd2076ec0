// MetricsRegistry: exact Prometheus text output, thread safety, and error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <thread>

#include "muse/error.h"
#include "server/metrics.h"

namespace muse::server {
namespace {

TEST(Metrics, RendersExactTextFormat) {
  MetricsRegistry r;
  r.declare_counter("muse_requests_total", "Requests handled.");
  r.declare_gauge("muse_queue_depth", "Waiting requests.");
  r.declare_histogram("muse_latency_seconds", "Request latency.", {0.125, 0.5, 1});
  r.declare_counter("muse_unused_total", "Never touched.");

  r.add("muse_requests_total", 1, {{"endpoint", "/v1/models"}, {"status", "200"}});
  r.add("muse_requests_total", 1, {{"endpoint", "/v1/chat"}, {"status", "200"}});
  r.add("muse_requests_total", 2, {{"endpoint", "/v1/chat"}, {"status", "200"}});
  r.set("muse_queue_depth", 3.5);
  r.set("muse_queue_depth", 7);
  // Observations on a bound go into that bound's bucket (le = less or equal). Dyadic values
  // keep the sum exact.
  for (double v : {0.0625, 0.125, 0.25, 2.0}) r.observe("muse_latency_seconds", v);

  const std::string expected =
      "# HELP muse_requests_total Requests handled.\n"
      "# TYPE muse_requests_total counter\n"
      "muse_requests_total{endpoint=\"/v1/chat\",status=\"200\"} 3\n"
      "muse_requests_total{endpoint=\"/v1/models\",status=\"200\"} 1\n"
      "# HELP muse_queue_depth Waiting requests.\n"
      "# TYPE muse_queue_depth gauge\n"
      "muse_queue_depth 7\n"
      "# HELP muse_latency_seconds Request latency.\n"
      "# TYPE muse_latency_seconds histogram\n"
      "muse_latency_seconds_bucket{le=\"0.125\"} 2\n"
      "muse_latency_seconds_bucket{le=\"0.5\"} 3\n"
      "muse_latency_seconds_bucket{le=\"1\"} 3\n"
      "muse_latency_seconds_bucket{le=\"+Inf\"} 4\n"
      "muse_latency_seconds_sum 2.4375\n"
      "muse_latency_seconds_count 4\n"
      "# HELP muse_unused_total Never touched.\n"
      "# TYPE muse_unused_total counter\n";
  EXPECT_EQ(r.render(), expected);
  EXPECT_EQ(r.value("muse_requests_total", {{"endpoint", "/v1/chat"}, {"status", "200"}}), 3);
  EXPECT_EQ(r.value("muse_requests_total", {{"endpoint", "/nope"}}), 0);
  EXPECT_EQ(r.value("muse_queue_depth"), 7);
}

TEST(Metrics, HistogramWithLabelsPutsLeLast) {
  MetricsRegistry r;
  r.declare_histogram("h", "H.", {1});
  r.observe("h", 0.5, {{"model", "m"}});
  r.observe("h", 3, {{"model", "m"}});
  EXPECT_EQ(r.render(),
            "# HELP h H.\n"
            "# TYPE h histogram\n"
            "h_bucket{model=\"m\",le=\"1\"} 1\n"
            "h_bucket{model=\"m\",le=\"+Inf\"} 2\n"
            "h_sum{model=\"m\"} 3.5\n"
            "h_count{model=\"m\"} 2\n");
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  MetricsRegistry r;
  r.declare_gauge("g", "Back\\slash and\nnewline.");
  r.set("g", 1, {{"path", "a\\b \"q\"\nz"}});
  EXPECT_EQ(r.render(),
            "# HELP g Back\\\\slash and\\nnewline.\n"
            "# TYPE g gauge\n"
            "g{path=\"a\\\\b \\\"q\\\"\\nz\"} 1\n");
}

TEST(Metrics, FormatsNumbersForPrometheus) {
  MetricsRegistry r;
  r.declare_gauge("g", "G.");
  const double inf = std::numeric_limits<double>::infinity();
  r.set("g", 123456789, {{"k", "a_int"}});
  r.set("g", -3, {{"k", "b_neg"}});
  r.set("g", 0.1, {{"k", "c_frac"}});
  r.set("g", 1.5e-7, {{"k", "d_small"}});
  r.set("g", 1e20, {{"k", "e_huge"}});
  r.set("g", inf, {{"k", "f_inf"}});
  r.set("g", -inf, {{"k", "g_ninf"}});
  r.set("g", std::nan(""), {{"k", "h_nan"}});
  r.set("g", 1.0 / 3.0, {{"k", "i_third"}});
  EXPECT_EQ(r.render(),
            "# HELP g G.\n"
            "# TYPE g gauge\n"
            "g{k=\"a_int\"} 123456789\n"
            "g{k=\"b_neg\"} -3\n"
            "g{k=\"c_frac\"} 0.1\n"
            "g{k=\"d_small\"} 1.5e-07\n"
            "g{k=\"e_huge\"} 1e+20\n"
            "g{k=\"f_inf\"} +Inf\n"
            "g{k=\"g_ninf\"} -Inf\n"
            "g{k=\"h_nan\"} NaN\n"
            "g{k=\"i_third\"} 0.3333333333333333\n");
}

TEST(Metrics, ConcurrentObservationsSumCorrectly) {
  MetricsRegistry r;
  r.declare_counter("c_total", "C.");
  r.declare_gauge("g", "G.");
  r.declare_histogram("h", "H.", {10});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&r, t] {
      Labels labels = {{"worker", t % 2 == 0 ? "even" : "odd"}};
      for (int i = 0; i < kPerThread; ++i) {
        r.add("c_total");
        r.add("c_total", 1, labels);
        r.observe("h", t == 0 ? 20 : 1);
        r.set("g", i);
      }
    });
  }
  // Rendering while others write must be safe (and is exercised by TSan/ASan builds).
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(r.render().empty());
  for (auto& th : threads) th.join();
  EXPECT_EQ(r.value("c_total"), kThreads * kPerThread);
  EXPECT_EQ(r.value("c_total", {{"worker", "even"}}), kThreads / 2 * kPerThread);
  EXPECT_EQ(r.value("c_total", {{"worker", "odd"}}), kThreads / 2 * kPerThread);
  EXPECT_EQ(r.value("g"), kPerThread - 1);
  const std::string text = r.render();
  EXPECT_NE(text.find("h_bucket{le=\"10\"} 60000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{le=\"+Inf\"} 80000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_sum 460000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_count 80000\n"), std::string::npos) << text;
}

TEST(Metrics, RejectsUndeclaredNamesAndWrongKinds) {
  MetricsRegistry r;
  r.declare_counter("c_total", "C.");
  r.declare_gauge("g", "G.");
  r.declare_histogram("h", "H.", {1});
  EXPECT_THROW(r.add("missing_total"), Error);
  EXPECT_THROW(r.set("missing", 1), Error);
  EXPECT_THROW(r.observe("missing", 1), Error);
  EXPECT_THROW(r.value("missing"), Error);
  EXPECT_THROW(r.add("g"), Error);
  EXPECT_THROW(r.add("h"), Error);
  EXPECT_THROW(r.set("c_total", 1), Error);
  EXPECT_THROW(r.set("h", 1), Error);
  EXPECT_THROW(r.observe("c_total", 1), Error);
  EXPECT_THROW(r.observe("g", 1), Error);
  EXPECT_THROW(r.value("h"), Error);
  EXPECT_THROW(r.add("c_total", -1), Error);  // counters only go up
  EXPECT_THROW(r.add("c_total", std::nan("")), Error);
  try {
    r.set("c_total", 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c_total"), std::string::npos) << e.what();
  }
  EXPECT_EQ(r.value("c_total"), 0);  // failed calls changed nothing
}

TEST(Metrics, RejectsBadDeclarationsAndLabels) {
  MetricsRegistry r;
  r.declare_counter("ok:name_1", "Fine.");
  EXPECT_THROW(r.declare_counter("ok:name_1", "Twice."), Error);
  EXPECT_THROW(r.declare_gauge("ok:name_1", "Twice, other kind."), Error);
  EXPECT_THROW(r.declare_counter("", "Empty."), Error);
  EXPECT_THROW(r.declare_counter("1abc", "Digit first."), Error);
  EXPECT_THROW(r.declare_gauge("a-b", "Dash."), Error);
  EXPECT_THROW(r.declare_gauge("a b", "Space."), Error);
  EXPECT_THROW(r.declare_histogram("h1", "Descending.", {1, 0.5}), Error);
  EXPECT_THROW(r.declare_histogram("h2", "Repeated.", {1, 1}), Error);
  EXPECT_THROW(r.declare_histogram("h3", "Inf.", {1, std::numeric_limits<double>::infinity()}),
               Error);
  EXPECT_THROW(r.declare_histogram("h4", "NaN.", {std::nan("")}), Error);

  r.declare_histogram("h", "H.", {});  // only the implicit +Inf bucket
  EXPECT_THROW(r.observe("h", 1, {{"le", "x"}}), Error);
  EXPECT_THROW(r.add("ok:name_1", 1, {{"bad-label", "x"}}), Error);
  EXPECT_THROW(r.add("ok:name_1", 1, {{"__reserved", "x"}}), Error);
  EXPECT_THROW(r.add("ok:name_1", 1, {{"9", "x"}}), Error);
  EXPECT_THROW(r.add("ok:name_1", 1, {{"a", "x"}, {"a", "y"}}), Error);
  r.observe("h", 5);
  EXPECT_EQ(r.render(),
            "# HELP ok:name_1 Fine.\n"
            "# TYPE ok:name_1 counter\n"
            "# HELP h H.\n"
            "# TYPE h histogram\n"
            "h_bucket{le=\"+Inf\"} 1\n"
            "h_sum 5\n"
            "h_count 1\n");
}

}  // namespace
}  // namespace muse::server
