// Grading arithmetic (verdict combination, win rate, bootstrap) by hand-computed
// examples, record parsing, and grade_records + the report against a fake judge.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "muse/error.h"
#include "platform/grade.h"
#include "platform/local_server.h"
#include "platform/report_plot.h"

namespace muse::platform {
namespace {

using nlohmann::json;

TEST(Grade, CombinesSwappedVerdictsFromTheCandidatesView) {
  // Call 1: A = primary, B = candidate. Call 2: A = candidate, B = primary.
  EXPECT_EQ(combine_verdicts(Verdict::kB, Verdict::kA), Outcome::kWin);
  EXPECT_EQ(combine_verdicts(Verdict::kA, Verdict::kB), Outcome::kLoss);
  EXPECT_EQ(combine_verdicts(Verdict::kTie, Verdict::kTie), Outcome::kTie);
  // Position bias (always "A" or always "B") is inconsistent: a tie.
  EXPECT_EQ(combine_verdicts(Verdict::kA, Verdict::kA), Outcome::kTie);
  EXPECT_EQ(combine_verdicts(Verdict::kB, Verdict::kB), Outcome::kTie);
  EXPECT_FALSE(verdicts_consistent(Verdict::kA, Verdict::kA));
  // One win and one tie disagree too.
  EXPECT_EQ(combine_verdicts(Verdict::kB, Verdict::kTie), Outcome::kTie);
  EXPECT_FALSE(verdicts_consistent(Verdict::kB, Verdict::kTie));
  EXPECT_TRUE(verdicts_consistent(Verdict::kTie, Verdict::kTie));
}

TEST(Grade, ParsesVerdicts) {
  EXPECT_EQ(parse_verdict(R"({"winner": "A"})"), Verdict::kA);
  EXPECT_EQ(parse_verdict(R"({"winner":"B"})"), Verdict::kB);
  EXPECT_EQ(parse_verdict(R"( {"winner": "tie"} )"), Verdict::kTie);
  EXPECT_THROW(parse_verdict(R"({"winner": "C"})"), Error);
  EXPECT_THROW(parse_verdict("A"), Error);
  EXPECT_THROW(parse_verdict(R"({"winner": "A")"), Error);
}

TEST(Grade, WinRateCountsTiesAsHalf) {
  WinCounts c;
  for (Outcome o :
       {Outcome::kWin, Outcome::kWin, Outcome::kWin, Outcome::kTie, Outcome::kTie, Outcome::kLoss})
    c.add(o);
  EXPECT_EQ(c.n(), 6);
  EXPECT_DOUBLE_EQ(c.win_rate(), 4.0 / 6.0);  // (3 + 0.5 * 2) / 6
  EXPECT_DOUBLE_EQ(WinCounts{}.win_rate(), 0.0);
}

PairResult pair(const std::string& id, int64_t ts, const std::string& topic, Verdict v1,
                Verdict v2) {
  PairResult p;
  p.id = id, p.timestamp = ts, p.topic = topic, p.primary_first = v1, p.candidate_first = v2;
  p.outcome = combine_verdicts(v1, v2);
  return p;
}

TEST(Grade, SummaryCountsTopicsErrorsAndInconsistency) {
  std::vector<PairResult> pairs = {
      pair("1", 0, "code", Verdict::kB, Verdict::kA),     // win
      pair("2", 0, "code", Verdict::kA, Verdict::kB),     // loss
      pair("3", 0, "chat", Verdict::kA, Verdict::kA),     // inconsistent: tie
      pair("4", 0, "", Verdict::kB, Verdict::kA),         // win
      pair("5", 0, "chat", Verdict::kTie, Verdict::kTie)  // tie
  };
  PairResult failed = pair("6", 0, "chat", Verdict::kA, Verdict::kA);
  failed.error = "judge down";
  pairs.push_back(failed);
  const GradeSummary s = summarize_grades(pairs, 200, 7);
  EXPECT_EQ(s.overall.wins, 2);
  EXPECT_EQ(s.overall.ties, 2);
  EXPECT_EQ(s.overall.losses, 1);
  EXPECT_EQ(s.errors, 1);
  EXPECT_EQ(s.inconsistent, 1);
  EXPECT_DOUBLE_EQ(s.overall.win_rate(), 0.6);  // (2 + 1) / 5
  EXPECT_DOUBLE_EQ(s.win_rate.mean, 0.6);
  EXPECT_LE(s.win_rate.lo, 0.6);
  EXPECT_GE(s.win_rate.hi, 0.6);
  EXPECT_GE(s.win_rate.lo, 0.0);
  EXPECT_LE(s.win_rate.hi, 1.0);
  ASSERT_EQ(s.by_topic.size(), 3u);
  EXPECT_DOUBLE_EQ(s.by_topic.at("code").win_rate(), 0.5);
  EXPECT_EQ(s.by_topic.at("chat").ties, 2);
  EXPECT_EQ(s.by_topic.at("(none)").wins, 1);
  // All timestamps on one day: buckets in record order (5 graded pairs, 5 buckets).
  EXPECT_FALSE(s.buckets_by_day);
  ASSERT_EQ(s.over_time.size(), 5u);
  EXPECT_EQ(s.over_time[0].label, "1-1");
  EXPECT_DOUBLE_EQ(s.over_time[1].counts.win_rate(), 0.0);
}

TEST(Grade, BucketsByDayWhenRecordsSpanDays) {
  const int64_t day1 = 1714521600;  // 2024-05-01T00:00:00Z
  const std::vector<PairResult> pairs = {pair("1", day1 + 10, "", Verdict::kB, Verdict::kA),
                                         pair("2", day1 + 20, "", Verdict::kA, Verdict::kB),
                                         pair("3", day1 + 86400 + 5, "", Verdict::kB, Verdict::kA)};
  const GradeSummary s = summarize_grades(pairs, 100, 1);
  ASSERT_TRUE(s.buckets_by_day);
  ASSERT_EQ(s.over_time.size(), 2u);
  EXPECT_EQ(s.over_time[0].label, "2024-05-01");
  EXPECT_DOUBLE_EQ(s.over_time[0].counts.win_rate(), 0.5);
  EXPECT_EQ(s.over_time[1].label, "2024-05-02");
  EXPECT_DOUBLE_EQ(s.over_time[1].counts.win_rate(), 1.0);
}

TEST(Stats, BootstrapIsDeterministicAndBounded) {
  const std::vector<double> v = {1, 0, 0.5, 1, 1, 0, 0.5, 1, 0, 1};
  const BootstrapResult a = bootstrap(v, 1000, 42), b = bootstrap(v, 1000, 42);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_EQ(a.std, b.std);
  EXPECT_DOUBLE_EQ(a.mean, 0.6);
  EXPECT_LT(a.lo, 0.6);
  EXPECT_GT(a.hi, 0.6);
  EXPECT_GE(a.lo, 0.0);
  EXPECT_LE(a.hi, 1.0);
  // The std of the mean of 10 draws is about sd / sqrt(10) = 0.418 / 3.16 = 0.13.
  EXPECT_NEAR(a.std, 0.132, 0.02);
  const BootstrapResult c = bootstrap(v, 1000, 43);
  EXPECT_NE(a.std, c.std);  // another seed, other resamples
  const BootstrapResult constant = bootstrap({1, 1, 1}, 50, 3);
  EXPECT_EQ(constant.lo, 1.0);
  EXPECT_EQ(constant.hi, 1.0);
  EXPECT_EQ(constant.std, 0.0);
  EXPECT_EQ(bootstrap({}, 10, 1).mean, 0.0);
  EXPECT_THROW(bootstrap(v, 0, 1), Error);
}

TEST(Stats, PercentileInterpolatesLinearly) {
  const std::vector<double> s = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(percentile_sorted(s, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(percentile_sorted(s, 0.25), 1.75);
  EXPECT_DOUBLE_EQ(percentile_sorted(s, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(percentile_sorted(s, 1.0), 4.0);
}

const char* kRecord =
    R"({"id":"r1","timestamp":1714521600,"request":{"messages":[{"role":"user","content":"Say hi"}]},)"
    R"("primary":{"model":"p","output":"hello","latency_ms":12.5,"prompt_tokens":3,"completion_tokens":1},)"
    R"("candidate":{"model":"c","output":"hi there","latency_ms":20,"prompt_tokens":3,"completion_tokens":2},)"
    R"("topic":"greeting"})";

TEST(Grade, ParsesMirrorRecordsAndNamesBadFields) {
  const MirrorRecord r = parse_mirror_record(json::parse(kRecord), "x");
  EXPECT_EQ(r.id, "r1");
  EXPECT_EQ(r.timestamp, 1714521600);
  EXPECT_EQ(r.primary.output, "hello");
  EXPECT_EQ(r.candidate.model, "c");
  EXPECT_DOUBLE_EQ(r.primary.latency_ms, 12.5);
  EXPECT_EQ(r.candidate.completion_tokens, 2);
  EXPECT_EQ(r.topic, "greeting");
  json bad = json::parse(kRecord);
  bad["candidate"].erase("output");
  try {
    parse_mirror_record(bad, "f.jsonl:3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("f.jsonl:3: candidate: missing field 'output'"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(parse_mirror_record(json::array(), "x"), Error);
}

TEST(Grade, JudgeRequestPlacesAnswersAndForcesTheSchema) {
  const MirrorRecord r = parse_mirror_record(json::parse(kRecord), "x");
  const json a = judge_request(r, false, "judge", 5);
  const std::string user = a["messages"][1]["content"];
  EXPECT_LT(user.find("[Response A]\nhello"), user.find("[Response B]\nhi there"));
  EXPECT_NE(user.find("user: Say hi"), std::string::npos);
  const json b = judge_request(r, true, "judge", 5);
  EXPECT_NE(std::string(b["messages"][1]["content"]).find("[Response A]\nhi there"),
            std::string::npos);
  EXPECT_EQ(a["response_format"]["type"], "json_schema");
  EXPECT_EQ(a["response_format"]["json_schema"]["schema"]["properties"]["winner"]["enum"],
            json({"A", "B", "tie"}));
  EXPECT_EQ(a["model"], "judge");
}

// A judge that prefers the response containing "GOOD", says "A" when neither does (a
// position-biased judge), and fails for conversations mentioning "FAIL".
class FakeJudge {
 public:
  FakeJudge() {
    local_.server().Post("/v1/chat/completions", [](const httplib::Request& req,
                                                    httplib::Response& res) {
      const json body = json::parse(req.body);
      const std::string user = body["messages"][1]["content"];
      if (user.find("FAIL") != std::string::npos) {
        res.status = 500;
        res.set_content(R"({"error":{"message":"judge exploded"}})", "application/json");
        return;
      }
      const size_t a = user.find("[Response A]"), b = user.find("[Response B]");
      const size_t good = user.find("GOOD");
      std::string winner = "A";
      if (good != std::string::npos) winner = good > b ? "B" : (good > a ? "A" : "tie");
      const json answer = {{"winner", winner}};
      res.set_content(
          json{{"choices", {{{"message", {{"role", "assistant"}, {"content", answer.dump()}}}}}}}
              .dump(),
          "application/json");
    });
  }
  std::string url() const { return local_.base_url(); }

 private:
  LocalServer local_;
};

MirrorRecord make_record(const std::string& id, const std::string& primary,
                         const std::string& candidate, const std::string& question = "q") {
  MirrorRecord r;
  r.id = id;
  r.timestamp = 1714521600;
  r.request = {{"messages", {{{"role", "user"}, {"content", question}}}}};
  r.primary.output = primary;
  r.candidate.output = candidate;
  r.topic = id == "4" ? "math" : "chat";
  return r;
}

TEST(Grade, GradesAgainstAJudgeAndWritesTheReport) {
  FakeJudge judge;
  const std::vector<MirrorRecord> records = {
      make_record("1", "meh", "GOOD"),           // win
      make_record("2", "GOOD", "meh"),           // loss
      make_record("3", "meh", "meh"),            // judge says A both times: tie
      make_record("4", "meh", "GOOD"),           // win
      make_record("5", "x", "y", "FAIL this")};  // judge error
  GradeOptions opts;
  opts.judge = {judge.url(), "", 5000};
  opts.concurrency = 3;
  opts.seed = 11;
  opts.resamples = 300;
  size_t last_done = 0;
  opts.progress = [&](size_t done, size_t total) {
    EXPECT_EQ(total, 5u);
    last_done = done;
  };
  const std::vector<PairResult> pairs = grade_records(records, opts);
  EXPECT_EQ(last_done, 5u);
  ASSERT_EQ(pairs.size(), 5u);
  EXPECT_EQ(pairs[0].outcome, Outcome::kWin);
  EXPECT_EQ(pairs[1].outcome, Outcome::kLoss);
  EXPECT_EQ(pairs[2].outcome, Outcome::kTie);
  EXPECT_EQ(pairs[2].primary_first, Verdict::kA);
  EXPECT_EQ(pairs[2].candidate_first, Verdict::kA);
  EXPECT_EQ(pairs[3].outcome, Outcome::kWin);
  EXPECT_NE(pairs[4].error.find("judge exploded"), std::string::npos) << pairs[4].error;

  const GradeSummary s = summarize_grades(pairs, opts.resamples, opts.seed);
  EXPECT_DOUBLE_EQ(s.overall.win_rate(), 2.5 / 4);
  EXPECT_EQ(s.errors, 1);
  const std::string dir = std::string(MUSE_TEST_TMP) + "/grade_report";
  std::filesystem::remove_all(dir);
  write_grade_report(dir, s, pairs, opts);
  const json results = json::parse(std::ifstream(dir + "/results.json"));
  EXPECT_EQ(results["overall"]["wins"], 2);
  EXPECT_EQ(results["overall"]["n"], 4);
  EXPECT_EQ(results["errors"], 1);
  EXPECT_EQ(results["by_topic"]["math"]["wins"], 1);
  EXPECT_EQ(results["pairs"].size(), 5u);
  std::ifstream md(dir + "/report.md");
  const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("| all | 4 | 2 | 1 | 1 | 0.625 |"), std::string::npos) << text;
  EXPECT_NE(text.find("winrate.png"), std::string::npos);
  std::ifstream png(dir + "/winrate.png", std::ios::binary);
  char sig[8] = {};
  png.read(sig, 8);
  EXPECT_EQ(std::string(sig, 8), "\x89PNG\r\n\x1a\n");
}

TEST(ReportPlot, RendersAxesLineAndEncodesPng) {
  LinePlot plot;
  plot.values = {0.0, 1.0};
  plot.width = 200, plot.height = 100;
  const std::vector<uint8_t> rgb = render_line_plot(plot);
  ASSERT_EQ(rgb.size(), 200u * 100u * 3u);
  auto px = [&](int x, int y) { return &rgb[(static_cast<size_t>(y) * 200 + x) * 3]; };
  // Axes: x = 56 is the y axis, y = height - 24 the x axis (dark pixels).
  EXPECT_LT(px(56, 50)[0], 100);
  EXPECT_LT(px(120, 76)[0], 100);
  // The first point (value 0) sits on the x axis at x = 64; the last (1) at the top.
  EXPECT_EQ(px(64, 76 - 2)[2], 200);  // line colour (30, 90, 200) next to the point
  EXPECT_EQ(px(176, 16)[2], 200);
  const std::vector<uint8_t> png = encode_png_rgb(rgb, 200, 100);
  ASSERT_GT(png.size(), 33u);
  EXPECT_EQ(std::string(png.begin(), png.begin() + 8), "\x89PNG\r\n\x1a\n");
  // IHDR width and height (big endian) at bytes 16..23.
  EXPECT_EQ((png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19], 200);
  EXPECT_EQ((png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23], 100);
  EXPECT_THROW(encode_png_rgb(rgb, 201, 100), Error);
}

}  // namespace
}  // namespace muse::platform
