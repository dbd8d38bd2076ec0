// Offline grading of mirrored traffic (`muse grade`): each mirror record holds one
// request and the answers of the primary and the candidate model; a judge model
// (any OpenAI-compatible endpoint) compares them twice, with positions swapped, and
// the candidate's win rate is reported with a bootstrap confidence interval, per topic
// and over time.
//
// Scoring (candidate's view):
//   call 1: A = primary, B = candidate     call 2: A = candidate, B = primary
//   each call's verdict becomes win / tie / loss for the candidate; the pair's outcome is
//   that result when both calls agree and a tie otherwise (position bias cancels out).
//   win rate = (wins + 0.5 * ties) / n, n = wins + ties + losses (pairs whose judge
//   calls failed are counted as errors and left out of n).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "platform/openai_client.h"
#include "platform/stats.h"

namespace muse::platform {

struct ModelAnswer {
  std::string model;
  std::string output;  // assistant text
  double latency_ms = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

struct MirrorRecord {
  std::string id;
  int64_t timestamp = 0;   // unix seconds
  nlohmann::json request;  // the chat request body
  ModelAnswer primary, candidate;
  std::string topic;  // "" when the record has none
};

// Parses one record ({"id", "timestamp", "request", "primary", "candidate", "topic"?});
// throws muse::Error naming `where` and the missing/mistyped field.
MirrorRecord parse_mirror_record(const nlohmann::json& j, const std::string& where);
// Reads a JSONL file of records (blank lines skipped); errors name the file and line.
std::vector<MirrorRecord> read_mirror_records(const std::string& path);

enum class Verdict { kA, kB, kTie };
enum class Outcome { kWin, kTie, kLoss };  // from the candidate's view

// Parses the judge's answer text {"winner": "A" | "B" | "tie"}; throws muse::Error.
Verdict parse_verdict(const std::string& text);
// The candidate's result in one call (candidate_first: the candidate is A).
Outcome candidate_outcome(Verdict v, bool candidate_first);
// Whether both calls give the candidate the same result.
bool verdicts_consistent(Verdict primary_first, Verdict candidate_first);
// Combines call 1 (A = primary) and call 2 (A = candidate); disagreement is a tie.
Outcome combine_verdicts(Verdict primary_first, Verdict candidate_first);
const char* verdict_name(Verdict v);
const char* outcome_name(Outcome o);

// The judge's chat request for one ordering (candidate_first: A = candidate).
nlohmann::json judge_request(const MirrorRecord& record, bool candidate_first,
                             const std::string& judge_model, uint64_t seed);
// The conversation of a chat request as plain text ("user: ..." lines; media parts
// shown as [image] / [audio]).
std::string render_conversation(const nlohmann::json& request);
// choices[0].message.content of a chat completion (throws when absent).
std::string first_choice_text(const nlohmann::json& response);

struct PairResult {
  std::string id;
  int64_t timestamp = 0;
  std::string topic;
  Verdict primary_first = Verdict::kTie;
  Verdict candidate_first = Verdict::kTie;
  Outcome outcome = Outcome::kTie;
  std::string error;  // non-empty: the judge failed for this pair (not counted)
};

struct WinCounts {
  int64_t wins = 0, ties = 0, losses = 0;
  int64_t n() const { return wins + ties + losses; }
  double win_rate() const;  // (wins + 0.5 ties) / n; 0 when n == 0
  void add(Outcome o);
};

struct TimeBucket {
  std::string label;  // "2024-05-01" (by day) or "1-10" (record order)
  WinCounts counts;
};

struct GradeSummary {
  WinCounts overall;
  int64_t errors = 0;
  int64_t inconsistent = 0;  // pairs whose two verdicts disagreed (counted as ties)
  BootstrapResult win_rate;  // bootstrap over per-pair scores 1 / 0.5 / 0
  std::map<std::string, WinCounts> by_topic;  // "" topic listed as "(none)"
  bool buckets_by_day = false;
  std::vector<TimeBucket> over_time;
};

// Per-pair score for the bootstrap: win 1, tie 0.5, loss 0.
double outcome_score(Outcome o);
// Summarizes graded pairs: counts, bootstrap 95% interval, topics, and buckets over
// time: by UTC day when the pairs span at least two days, otherwise up to `max_buckets`
// equal groups in record order.
GradeSummary summarize_grades(const std::vector<PairResult>& pairs, int resamples, uint64_t seed,
                              int max_buckets = 10);

struct GradeOptions {
  EndpointConfig judge;
  std::string judge_model;  // "" lets a single-model server pick its model
  int concurrency = 4;
  uint64_t seed = 0;
  int resamples = 1000;
  std::function<void(size_t done, size_t total)> progress;  // may be empty
};

// Asks the judge about every record (two calls each), `concurrency` at a time; results
// come back in record order. Judge failures are recorded per pair, never thrown.
std::vector<PairResult> grade_records(const std::vector<MirrorRecord>& records,
                                      const GradeOptions& options);

// Writes DIR/results.json, DIR/report.md and DIR/winrate.png (DIR is created).
void write_grade_report(const std::string& dir, const GradeSummary& summary,
                        const std::vector<PairResult>& pairs, const GradeOptions& options);

// Runs `fn(i)` for i in [0, n) on `concurrency` threads (at least 1); exceptions
// escaping fn are rethrown after all threads stop. Shared by grade and eval.
void parallel_for(size_t n, int concurrency, const std::function<void(size_t)>& fn);

}  // namespace muse::platform
