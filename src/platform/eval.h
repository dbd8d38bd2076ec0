// Benchmark evaluations (`muse eval`) against any OpenAI-compatible endpoint.
//
// Two suite formats (JSONL, one example per line; the format is recognised per file from
// the first example's fields):
// - multiple choice: {"question", "choices": [...], "answer": index (0-based) or letter,
//   "id"?}. The model sees the question with lettered choices and answers as JSON
//   {"answer": "<letter>"} (response_format json_schema); the letter is extracted from
//   that JSON or, for endpoints that ignore response_format, from the text. Score:
//   exact-match accuracy = correct / answered.
// - HealthBench: {"prompt": [messages], "rubrics": [{"criterion", "points", "tags"?}],
//   "example_id"?}. The model's completion is graded once per rubric item by a grader
//   model answering {"criteria_met": bool, "explanation": string}. As in HealthBench:
//     example score = sum(points of met items) / sum(points of items with points > 0)
//   (met negative-point items subtract, so an example score may be below 0); an example
//   with no positive points has no score and is left out. overall = clip(mean of example
//   scores, 0, 1); its bootstrap std is the std of clip(mean) over resamples. A tag's
//   score uses the same two formulas restricted, per example, to the rubric items
//   carrying that tag (examples where those items have no positive points are left out).
// Examples whose calls fail are counted as errors and left out of every score.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "platform/openai_client.h"
#include "platform/stats.h"

namespace muse::platform {

struct MultipleChoiceItem {
  std::string id;
  std::string question;
  std::vector<std::string> choices;
  int answer = 0;  // index into choices
};

struct RubricItem {
  std::string criterion;
  double points = 0;
  std::vector<std::string> tags;
};

struct HealthBenchExample {
  std::string id;
  nlohmann::ordered_json prompt;  // chat messages
  std::vector<RubricItem> rubrics;
};

enum class SuiteKind { kMultipleChoice, kHealthBench };

struct Suite {
  SuiteKind kind = SuiteKind::kMultipleChoice;
  std::vector<MultipleChoiceItem> multiple_choice;
  std::vector<HealthBenchExample> healthbench;
  size_t size() const;
};

// Reads a suite file; errors name the file, line and field.
Suite read_suite(const std::string& path);
// "answer" as a 0-based index or a letter ("B", "b", "(B)"); throws when out of range.
int parse_answer_index(const nlohmann::json& answer, size_t n_choices, const std::string& where);
char choice_letter(int index);  // 0 -> 'A'

// The prompt text and chat request for one multiple-choice item.
std::string multiple_choice_prompt(const MultipleChoiceItem& item);
nlohmann::ordered_json multiple_choice_request(const MultipleChoiceItem& item,
                                               const std::string& model, uint64_t seed);
// The chosen index from the model's answer text: {"answer": "C"} JSON, else "answer is
// C" / "Answer: (C)", else a lone letter; nullopt when none of the n_choices letters is found.
std::optional<int> extract_choice(const std::string& text, size_t n_choices);

// Example score (see the file comment); nullopt when no item has positive points.
// met[i] says whether rubrics[i] was met; sizes must match.
std::optional<double> rubric_score(const std::vector<RubricItem>& rubrics,
                                   const std::vector<bool>& met);
// The same restricted to the items carrying `tag`.
std::optional<double> rubric_tag_score(const std::vector<RubricItem>& rubrics,
                                       const std::vector<bool>& met, const std::string& tag);

struct ScoreStat {
  double score = 0;          // clipped mean
  double bootstrap_std = 0;  // std of the clipped mean over resamples
  size_t n = 0;              // examples that contributed
};

struct GradedExample {
  const std::vector<RubricItem>* rubrics = nullptr;
  std::vector<bool> met;
};

struct HealthBenchScores {
  ScoreStat overall;
  std::map<std::string, ScoreStat> by_tag;
  size_t unscorable = 0;  // examples without positive points
};

// Aggregates graded examples as HealthBench does (see the file comment).
HealthBenchScores aggregate_healthbench(const std::vector<GradedExample>& examples, int resamples,
                                        uint64_t seed);

// The grader's request for one rubric item of one conversation + completion.
nlohmann::ordered_json rubric_grader_request(const nlohmann::ordered_json& prompt,
                                             const std::string& completion, const RubricItem& item,
                                             const std::string& model, uint64_t seed);
// Parses {"criteria_met": bool, "explanation": ...}; throws muse::Error.
bool parse_criteria_met(const std::string& text, std::string* explanation);

struct EvalOptions {
  EndpointConfig endpoint;  // the model under evaluation
  std::string model;        // "" lets a single-model server pick its model
  EndpointConfig grader;    // HealthBench grader
  std::string grader_model;
  int concurrency = 4;
  size_t limit = 0;       // 0: all examples
  int max_tokens = 1024;  // completion budget for HealthBench answers
  uint64_t seed = 0;
  int resamples = 1000;
  std::function<void(size_t done, size_t total)> progress;  // may be empty
};

// Runs the suite and returns results.json's document (per-example records and scores).
nlohmann::ordered_json run_eval(const Suite& suite, const EvalOptions& options);
// Writes DIR/results.json and DIR/results.md (DIR is created).
void write_eval_results(const std::string& dir, const nlohmann::ordered_json& results);

}  // namespace muse::platform
