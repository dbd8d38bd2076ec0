// Evaluation scoring by hand-computed examples (HealthBench rubric scores with negative
// points, all-negative rubrics, clipping, per-tag scores; multiple-choice letters) and
// run_eval against fake model and grader servers.
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "muse/error.h"
#include "platform/eval.h"
#include "platform/local_server.h"

namespace muse::platform {
namespace {

using nlohmann::json;

// tests/data (MUSE_TESTS_DIR: __FILE__ is relative under ccache's base dir).
std::string data_dir() {
  return (std::filesystem::path(MUSE_TESTS_DIR) / "data").string();
}

std::vector<RubricItem> rubric() {
  return {{"pressure", 5, {"axis:accuracy"}},
          {"seek care", 3, {"axis:completeness"}},
          {"bad remedy", -4, {"axis:accuracy"}}};
}

TEST(HealthBenchScore, PointsMetOverPositivePoints) {
  const auto r = rubric();
  EXPECT_DOUBLE_EQ(*rubric_score(r, {true, true, false}), 1.0);     // 8 / 8
  EXPECT_DOUBLE_EQ(*rubric_score(r, {true, false, false}), 0.625);  // 5 / 8
  // A met negative item subtracts: (5 - 4) / 8.
  EXPECT_DOUBLE_EQ(*rubric_score(r, {true, false, true}), 0.125);
  // ... and can take the example below zero: -4 / 8.
  EXPECT_DOUBLE_EQ(*rubric_score(r, {false, false, true}), -0.5);
  EXPECT_THROW(rubric_score(r, {true}), Error);
}

TEST(HealthBenchScore, AllNegativeRubricHasNoScore) {
  const std::vector<RubricItem> r = {{"harm", -5, {}}, {"rude", -2, {}}};
  EXPECT_FALSE(rubric_score(r, {true, false}).has_value());
  EXPECT_FALSE(rubric_score(r, {false, false}).has_value());
}

TEST(HealthBenchScore, TagScoresUseOnlyTaggedItems) {
  const auto r = rubric();
  // accuracy: items 0 (+5) and 2 (-4): met {0, 2} -> (5 - 4) / 5.
  EXPECT_DOUBLE_EQ(*rubric_tag_score(r, {true, false, true}, "axis:accuracy"), 0.2);
  EXPECT_DOUBLE_EQ(*rubric_tag_score(r, {true, false, true}, "axis:completeness"), 0.0);
  EXPECT_FALSE(rubric_tag_score(r, {true, false, true}, "axis:other").has_value());
}

TEST(HealthBenchScore, OverallIsTheClippedMeanAndTagsAggregate) {
  const auto r1 = rubric();
  const std::vector<RubricItem> r2 = {{"fine", 4, {"axis:accuracy"}},
                                      {"plain", 2, {"axis:communication"}}};
  const std::vector<RubricItem> negative_only = {{"harm", -5, {"axis:accuracy"}}};
  // Scores: -0.5 (r1: only the bad remedy), 0.0 (r2: nothing met), unscorable.
  std::vector<GradedExample> ex = {
      {&r1, {false, false, true}}, {&r2, {false, false}}, {&negative_only, {true}}};
  HealthBenchScores s = aggregate_healthbench(ex, 500, 3);
  EXPECT_EQ(s.overall.n, 2u);
  EXPECT_EQ(s.unscorable, 1u);
  EXPECT_DOUBLE_EQ(s.overall.score, 0.0);          // mean -0.25 clipped to 0
  EXPECT_DOUBLE_EQ(s.overall.bootstrap_std, 0.0);  // every resample mean is <= 0: clipped
  // Now scores 0.625 and 1.0 -> mean 0.8125, not clipped.
  ex = {{&r1, {true, false, false}}, {&r2, {true, true}}};
  s = aggregate_healthbench(ex, 500, 3);
  EXPECT_DOUBLE_EQ(s.overall.score, 0.8125);
  EXPECT_GT(s.overall.bootstrap_std, 0.0);
  EXPECT_LT(s.overall.bootstrap_std, 0.2);  // half the spread 0.1875 at most
  // accuracy: r1 -> 5/5 = 1, r2 -> 4/4 = 1; completeness: r1 -> 0; communication: r2 -> 1.
  ASSERT_EQ(s.by_tag.size(), 3u);
  EXPECT_DOUBLE_EQ(s.by_tag.at("axis:accuracy").score, 1.0);
  EXPECT_EQ(s.by_tag.at("axis:accuracy").n, 2u);
  EXPECT_DOUBLE_EQ(s.by_tag.at("axis:completeness").score, 0.0);
  EXPECT_EQ(s.by_tag.at("axis:completeness").n, 1u);
  EXPECT_DOUBLE_EQ(s.by_tag.at("axis:communication").score, 1.0);
  // Deterministic for a seed.
  EXPECT_EQ(aggregate_healthbench(ex, 500, 3).overall.bootstrap_std, s.overall.bootstrap_std);
}

TEST(MultipleChoice, ExtractsTheLetter) {
  EXPECT_EQ(extract_choice(R"({"answer": "C"})", 4), 2);
  EXPECT_EQ(extract_choice(R"({"answer":"a"})", 4), 0);
  EXPECT_EQ(extract_choice(R"({"answer": "E"})", 4), std::nullopt);  // not a choice
  EXPECT_EQ(extract_choice("The answer is B.", 4), 1);
  EXPECT_EQ(extract_choice("Answer: (D)", 4), 3);
  EXPECT_EQ(extract_choice("I think (C) is right", 4), 2);
  EXPECT_EQ(extract_choice("A", 4), 0);
  EXPECT_EQ(extract_choice("A cat is not B", 4), 1);  // "A" used as a word is skipped
  EXPECT_EQ(extract_choice("no idea", 4), std::nullopt);
  EXPECT_EQ(extract_choice("Z", 4), std::nullopt);
}

TEST(MultipleChoice, ParsesAnswersAsIndexOrLetter) {
  EXPECT_EQ(parse_answer_index(json(2), 4, "x"), 2);
  EXPECT_EQ(parse_answer_index(json("b"), 4, "x"), 1);
  EXPECT_EQ(parse_answer_index(json("(C)"), 4, "x"), 2);
  EXPECT_THROW(parse_answer_index(json(4), 4, "x"), Error);
  EXPECT_THROW(parse_answer_index(json("E"), 4, "x"), Error);
  EXPECT_THROW(parse_answer_index(json("AB"), 4, "x"), Error);
  EXPECT_THROW(parse_answer_index(json(true), 4, "x"), Error);
}

TEST(MultipleChoice, PromptLettersTheChoicesAndConstrainsTheAnswer) {
  MultipleChoiceItem item{"q1", "2+2?", {"4", "5", "22"}, 0};
  const std::string p = multiple_choice_prompt(item);
  EXPECT_NE(p.find("A. 4\nB. 5\nC. 22\n"), std::string::npos) << p;
  const auto req = multiple_choice_request(item, "m", 1);
  EXPECT_EQ(req["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"],
            nlohmann::ordered_json({"A", "B", "C"}));
}

TEST(Suites, ReadsBothFormatsAndRejectsBadOnes) {
  const Suite mc = read_suite(data_dir() + "/eval/tiny_mc.jsonl");
  ASSERT_EQ(mc.kind, SuiteKind::kMultipleChoice);
  ASSERT_EQ(mc.size(), 3u);
  EXPECT_EQ(mc.multiple_choice[0].answer, 1);
  EXPECT_EQ(mc.multiple_choice[1].answer, 0);
  EXPECT_EQ(mc.multiple_choice[2].answer, 2);
  const Suite hb = read_suite(data_dir() + "/eval/tiny_healthbench.jsonl");
  ASSERT_EQ(hb.kind, SuiteKind::kHealthBench);
  ASSERT_EQ(hb.size(), 2u);
  EXPECT_EQ(hb.healthbench[0].id, "hb-1");
  EXPECT_EQ(hb.healthbench[0].rubrics[2].points, -4);
  EXPECT_EQ(hb.healthbench[0].rubrics[2].tags, std::vector<std::string>{"axis:accuracy"});

  const std::string dir = std::string(MUSE_TEST_TMP) + "/eval_suites";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/bad.jsonl") << R"({"question": "q", "choices": ["a", "b"], "answer": 5})"
                                    << "\n";
  try {
    read_suite(dir + "/bad.jsonl");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/odd.jsonl") << R"({"text": "hello"})"
                                    << "\n";
  EXPECT_THROW(read_suite(dir + "/odd.jsonl"), Error);
  EXPECT_THROW(read_suite(dir + "/missing.jsonl"), Error);
}

// Model: answers MC questions with {"answer": "B"} and anything else with "ADVICE".
// Grader: criteria_met is true when the criterion mentions "pressure" or "plain".
class FakeEndpoint {
 public:
  FakeEndpoint() {
    local_.server().Post("/v1/chat/completions", [](const httplib::Request& req,
                                                    httplib::Response& res) {
      const json body = json::parse(req.body);
      const std::string last = body["messages"].back()["content"];
      std::string content = "ADVICE";
      if (body.value("model", "") == "grader") {
        const bool met =
            last.find("pressure") != std::string::npos || last.find("plain") != std::string::npos;
        content = json{{"criteria_met", met}, {"explanation", "ok"}}.dump();
      } else if (body.contains("response_format")) {
        content = R"({"answer": "B"})";
      }
      res.set_content(
          json{{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}}}}}.dump(),
          "application/json");
    });
  }
  std::string url() const { return local_.base_url(); }

 private:
  LocalServer local_;
};

TEST(RunEval, MultipleChoiceAccuracy) {
  FakeEndpoint fake;
  const Suite mc = read_suite(data_dir() + "/eval/tiny_mc.jsonl");
  EvalOptions o;
  o.endpoint = {fake.url(), "", 5000};
  o.concurrency = 2;
  o.resamples = 200;
  const auto results = run_eval(mc, o);
  EXPECT_EQ(results["examples"], 3);
  EXPECT_EQ(results["correct"], 1);  // only "Paris" is B
  EXPECT_DOUBLE_EQ(results["accuracy"]["score"].get<double>(), 1.0 / 3.0);
  EXPECT_EQ(results["results"][0]["predicted"], "B");
  EXPECT_EQ(results["results"][0]["correct"], true);
  o.limit = 2;
  EXPECT_EQ(run_eval(mc, o)["examples"], 2);
}

TEST(RunEval, HealthBenchScoresAndWritesFiles) {
  FakeEndpoint fake;
  const Suite hb = read_suite(data_dir() + "/eval/tiny_healthbench.jsonl");
  EvalOptions o;
  o.endpoint = {fake.url(), "", 5000};
  o.grader = {fake.url(), "", 5000};
  o.grader_model = "grader";
  o.resamples = 200;
  const auto results = run_eval(hb, o);
  // hb-1: "pressure" met -> 5 / 8 = 0.625; hb-2: "plain language" met -> 2 / 6.
  EXPECT_DOUBLE_EQ(results["results"][0]["score"].get<double>(), 0.625);
  EXPECT_DOUBLE_EQ(results["results"][1]["score"].get<double>(), 2.0 / 6.0);
  EXPECT_DOUBLE_EQ(results["score"]["score"].get<double>(), (0.625 + 2.0 / 6.0) / 2);
  EXPECT_EQ(results["results"][0]["completion"], "ADVICE");
  EXPECT_EQ(results["results"][0]["rubric_grades"].size(), 3u);
  // accuracy: hb-1 items +5 (met), -4 -> 1.0; hb-2 item +4 -> 0.0; mean 0.5.
  EXPECT_DOUBLE_EQ(results["by_tag"]["axis:accuracy"]["score"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(results["by_tag"]["axis:communication"]["score"].get<double>(), 1.0);

  const std::string dir = std::string(MUSE_TEST_TMP) + "/eval_results";
  std::filesystem::remove_all(dir);
  write_eval_results(dir, results);
  EXPECT_EQ(json::parse(std::ifstream(dir + "/results.json"))["suite"], "healthbench");
  std::ifstream md(dir + "/results.md");
  const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("| **overall** | 0.479 |"), std::string::npos) << text;
  EXPECT_NE(text.find("| axis:accuracy | 0.500 |"), std::string::npos) << text;
}

TEST(RunEval, UnreachableEndpointCountsErrors) {
  const Suite mc = read_suite(data_dir() + "/eval/tiny_mc.jsonl");
  EvalOptions o;
  o.endpoint = {"http://127.0.0.1:1/v1", "", 2000};
  const auto results = run_eval(mc, o);
  EXPECT_EQ(results["errors"], 3);
  EXPECT_EQ(results["accuracy"]["n"], 0);
}

}  // namespace
}  // namespace muse::platform
