// Pairwise judging of mirror records and the grading report (see grade.h).
#include "platform/grade.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "muse/error.h"
#include "platform/report_plot.h"
#include "platform/store.h"

namespace muse::platform {
namespace {

using Json = nlohmann::json;

const Json& field(const Json& j, const char* name, const std::string& where) {
  MUSE_CHECK(j.contains(name), where, ": missing field '", name, "'");
  return j[name];
}

std::string string_field(const Json& j, const char* name, const std::string& where) {
  const Json& v = field(j, name, where);
  MUSE_CHECK(v.is_string(), where, ": field '", name, "' must be a string");
  return v.get<std::string>();
}

double number_field(const Json& j, const char* name, const std::string& where) {
  if (!j.contains(name) || j[name].is_null()) return 0;
  MUSE_CHECK(j[name].is_number(), where, ": field '", name, "' must be a number");
  return j[name].get<double>();
}

ModelAnswer parse_answer(const Json& j, const std::string& where) {
  MUSE_CHECK(j.is_object(), where, " must be an object");
  ModelAnswer a;
  if (j.contains("model") && j["model"].is_string()) a.model = j["model"].get<std::string>();
  a.output = string_field(j, "output", where);
  a.latency_ms = number_field(j, "latency_ms", where);
  a.prompt_tokens = static_cast<int64_t>(number_field(j, "prompt_tokens", where));
  a.completion_tokens = static_cast<int64_t>(number_field(j, "completion_tokens", where));
  return a;
}

std::string part_text(const Json& part) {
  if (part.is_string()) return part.get<std::string>();
  if (!part.is_object()) return "";
  const std::string type = part.value("type", "");
  if (type == "text" && part.contains("text") && part["text"].is_string())
    return part["text"].get<std::string>();
  if (type == "image_url") return "[image]";
  if (type == "input_audio") return "[audio]";
  return "";
}

const char* kJudgeSystem =
    "You are an impartial judge. Compare two assistant responses to the same "
    "conversation and decide which one better answers the user's last message: more "
    "helpful, correct, relevant and clear. Ignore the order in which they are shown and "
    "their length unless it matters. Answer with JSON {\"winner\": \"A\"}, "
    "{\"winner\": \"B\"} or {\"winner\": \"tie\"}.";

}  // namespace

MirrorRecord parse_mirror_record(const Json& j, const std::string& where) {
  MUSE_CHECK(j.is_object(), where, ": a mirror record must be a JSON object");
  MirrorRecord r;
  const Json& id = field(j, "id", where);
  MUSE_CHECK(id.is_string() || id.is_number_integer(), where,
             ": field 'id' must be a string or an integer");
  r.id = id.is_string() ? id.get<std::string>() : id.dump();
  r.timestamp = static_cast<int64_t>(number_field(j, "timestamp", where));
  r.request = field(j, "request", where);
  MUSE_CHECK(r.request.is_object(), where, ": field 'request' must be an object");
  r.primary = parse_answer(field(j, "primary", where), where + ": primary");
  r.candidate = parse_answer(field(j, "candidate", where), where + ": candidate");
  if (j.contains("topic") && !j["topic"].is_null()) {
    MUSE_CHECK(j["topic"].is_string(), where, ": field 'topic' must be a string");
    r.topic = j["topic"].get<std::string>();
  }
  return r;
}

std::vector<MirrorRecord> read_mirror_records(const std::string& path) {
  std::ifstream in(path);
  MUSE_CHECK(in, "cannot open mirror records file '", path, "'");
  std::vector<MirrorRecord> out;
  std::string line;
  for (size_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = str_cat(path, ":", line_no);
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    MUSE_CHECK(!j.is_discarded(), where, ": not valid JSON");
    out.push_back(parse_mirror_record(j, where));
  }
  return out;
}

Verdict parse_verdict(const std::string& text) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  MUSE_CHECK(j.is_object() && j.contains("winner") && j["winner"].is_string(),
             "judge answer is not {\"winner\": ...}: ", text.substr(0, 200));
  const std::string w = j["winner"].get<std::string>();
  if (w == "A" || w == "a") return Verdict::kA;
  if (w == "B" || w == "b") return Verdict::kB;
  if (w == "tie" || w == "TIE" || w == "Tie") return Verdict::kTie;
  throw Error(str_cat("judge answer names an unknown winner '", w, "'"));
}

Outcome candidate_outcome(Verdict v, bool candidate_first) {
  if (v == Verdict::kTie) return Outcome::kTie;
  const Verdict candidate_slot = candidate_first ? Verdict::kA : Verdict::kB;
  return v == candidate_slot ? Outcome::kWin : Outcome::kLoss;
}

bool verdicts_consistent(Verdict primary_first, Verdict candidate_first) {
  return candidate_outcome(primary_first, false) == candidate_outcome(candidate_first, true);
}

Outcome combine_verdicts(Verdict primary_first, Verdict candidate_first) {
  if (!verdicts_consistent(primary_first, candidate_first)) return Outcome::kTie;
  return candidate_outcome(primary_first, false);
}

const char* verdict_name(Verdict v) {
  return v == Verdict::kA ? "A" : v == Verdict::kB ? "B" : "tie";
}

const char* outcome_name(Outcome o) {
  return o == Outcome::kWin ? "win" : o == Outcome::kLoss ? "loss" : "tie";
}

double outcome_score(Outcome o) {
  return o == Outcome::kWin ? 1.0 : o == Outcome::kTie ? 0.5 : 0.0;
}

double WinCounts::win_rate() const {
  return n() == 0 ? 0.0
                  : (static_cast<double>(wins) + 0.5 * static_cast<double>(ties)) /
                        static_cast<double>(n());
}

void WinCounts::add(Outcome o) {
  if (o == Outcome::kWin)
    ++wins;
  else if (o == Outcome::kTie)
    ++ties;
  else
    ++losses;
}

std::string render_conversation(const Json& request) {
  std::string out;
  if (!request.contains("messages") || !request["messages"].is_array()) return out;
  for (const Json& m : request["messages"]) {
    if (!m.is_object()) continue;
    std::string content;
    if (m.contains("content")) {
      const Json& c = m["content"];
      if (c.is_array()) {
        for (const Json& part : c) content += part_text(part);
      } else {
        content = part_text(c);
      }
    }
    out += str_cat(m.value("role", "user"), ": ", content, "\n");
  }
  return out;
}

std::string first_choice_text(const Json& response) {
  MUSE_CHECK(response.contains("choices") && response["choices"].is_array() &&
                 !response["choices"].empty(),
             "chat completion has no choices");
  const Json& choice = response["choices"][0];
  MUSE_CHECK(choice.contains("message") && choice["message"].is_object(),
             "chat completion choice has no message");
  const Json& content = choice["message"].value("content", Json());
  if (content.is_null()) return "";
  MUSE_CHECK(content.is_string(), "chat completion message content is not a string");
  return content.get<std::string>();
}

Json judge_request(const MirrorRecord& record, bool candidate_first, const std::string& judge_model,
                   uint64_t seed) {
  const std::string& a = candidate_first ? record.candidate.output : record.primary.output;
  const std::string& b = candidate_first ? record.primary.output : record.candidate.output;
  const std::string user =
      str_cat("Conversation:\n", render_conversation(record.request), "\n[Response A]\n", a,
              "\n[End of response A]\n\n", "[Response B]\n", b, "\n[End of response B]\n\n",
              "Which response is better? Answer with JSON only.");
  Json schema = {{"type", "object"},
                 {"properties", {{"winner", {{"type", "string"}, {"enum", {"A", "B", "tie"}}}}}},
                 {"required", {"winner"}},
                 {"additionalProperties", false}};
  return Json{{"model", judge_model},
              {"messages", Json::array({{{"role", "system"}, {"content", kJudgeSystem}},
                                        {{"role", "user"}, {"content", user}}})},
              {"temperature", 0},
              {"max_tokens", 32},
              {"seed", seed},
              {"response_format",
               {{"type", "json_schema"},
                {"json_schema", {{"name", "verdict"}, {"strict", true}, {"schema", schema}}}}}};
}

void parallel_for(size_t n, int concurrency, const std::function<void(size_t)>& fn) {
  const size_t threads = std::min(n, static_cast<size_t>(std::max(1, concurrency)));
  std::atomic<size_t> next{0};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        next = n;  // stop handing out work
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  if (threads > 0) worker();
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

std::vector<PairResult> grade_records(const std::vector<MirrorRecord>& records,
                                      const GradeOptions& options) {
  const OpenAIClient judge(options.judge);
  std::vector<PairResult> results(records.size());
  std::atomic<size_t> done{0};
  std::mutex progress_mutex;
  parallel_for(records.size(), options.concurrency, [&](size_t i) {
    const MirrorRecord& rec = records[i];
    PairResult& r = results[i];
    r.id = rec.id;
    r.timestamp = rec.timestamp;
    r.topic = rec.topic;
    try {
      // Both orderings use the same seed so that only the positions differ.
      const uint64_t seed = options.seed + i;
      r.primary_first = parse_verdict(
          first_choice_text(judge.chat(judge_request(rec, false, options.judge_model, seed))));
      r.candidate_first = parse_verdict(
          first_choice_text(judge.chat(judge_request(rec, true, options.judge_model, seed))));
      r.outcome = combine_verdicts(r.primary_first, r.candidate_first);
    } catch (const Error& e) {
      r.error = e.what();
    }
    const size_t now_done = ++done;
    if (options.progress) {
      std::lock_guard<std::mutex> lock(progress_mutex);
      options.progress(now_done, records.size());
    }
  });
  return results;
}

GradeSummary summarize_grades(const std::vector<PairResult>& pairs, int resamples, uint64_t seed,
                              int max_buckets) {
  GradeSummary s;
  std::vector<double> scores;
  std::vector<const PairResult*> graded;
  for (const PairResult& p : pairs) {
    if (!p.error.empty()) {
      ++s.errors;
      continue;
    }
    graded.push_back(&p);
    s.overall.add(p.outcome);
    s.by_topic[p.topic.empty() ? "(none)" : p.topic].add(p.outcome);
    if (!verdicts_consistent(p.primary_first, p.candidate_first)) ++s.inconsistent;
    scores.push_back(outcome_score(p.outcome));
  }
  s.win_rate = bootstrap(scores, resamples, seed);

  std::set<std::string> days;
  for (const PairResult* p : graded) days.insert(utc_day(p->timestamp));
  s.buckets_by_day = days.size() >= 2;
  if (s.buckets_by_day) {
    std::map<std::string, WinCounts> per_day;
    for (const PairResult* p : graded) per_day[utc_day(p->timestamp)].add(p->outcome);
    for (auto& [day, counts] : per_day) s.over_time.push_back({day, counts});
  } else if (!graded.empty()) {
    const size_t n = graded.size();
    const size_t buckets = std::min(n, static_cast<size_t>(std::max(1, max_buckets)));
    for (size_t b = 0; b < buckets; ++b) {
      const size_t lo = b * n / buckets, hi = (b + 1) * n / buckets;
      TimeBucket bucket;
      bucket.label = str_cat(lo + 1, "-", hi);
      for (size_t i = lo; i < hi; ++i) bucket.counts.add(graded[i]->outcome);
      s.over_time.push_back(bucket);
    }
  }
  return s;
}

namespace {

std::string fixed(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

Json counts_json(const WinCounts& c) {
  return {{"n", c.n()},
          {"wins", c.wins},
          {"ties", c.ties},
          {"losses", c.losses},
          {"win_rate", c.win_rate()}};
}

std::string counts_row(const std::string& name, const WinCounts& c) {
  return str_cat("| ", name, " | ", c.n(), " | ", c.wins, " | ", c.ties, " | ", c.losses, " | ",
                 fixed(c.win_rate()), " |\n");
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  MUSE_CHECK(out, "cannot write '", path.string(), "'");
}

}  // namespace

void write_grade_report(const std::string& dir, const GradeSummary& s,
                        const std::vector<PairResult>& pairs, const GradeOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  MUSE_CHECK(!ec, "cannot create output directory '", dir, "': ", ec.message());
  const std::filesystem::path out(dir);

  Json j;
  j["judge"] = {{"base_url", options.judge.base_url}, {"model", options.judge_model}};
  j["overall"] = counts_json(s.overall);
  j["errors"] = s.errors;
  j["inconsistent"] = s.inconsistent;
  j["win_rate"] = {{"value", s.overall.win_rate()},
                   {"ci95", {s.win_rate.lo, s.win_rate.hi}},
                   {"bootstrap_std", s.win_rate.std},
                   {"resamples", options.resamples},
                   {"seed", options.seed}};
  j["by_topic"] = Json::object();
  for (const auto& [topic, c] : s.by_topic) j["by_topic"][topic] = counts_json(c);
  j["over_time"] = Json::array();
  for (const TimeBucket& b : s.over_time) {
    Json row = counts_json(b.counts);
    row["bucket"] = b.label;
    j["over_time"].push_back(row);
  }
  j["buckets"] = s.buckets_by_day ? "day" : "record_order";
  j["pairs"] = Json::array();
  for (const PairResult& p : pairs) {
    Json row = {{"id", p.id}, {"timestamp", p.timestamp}, {"topic", p.topic}};
    if (p.error.empty()) {
      row["verdict_primary_first"] = verdict_name(p.primary_first);
      row["verdict_candidate_first"] = verdict_name(p.candidate_first);
      row["outcome"] = outcome_name(p.outcome);
    } else {
      row["error"] = p.error;
    }
    j["pairs"].push_back(row);
  }
  write_text(out / "results.json", j.dump(2) + "\n");

  std::string md = "# Grading report: candidate vs primary\n\n";
  md += str_cat("Judge: `", options.judge.base_url, "`",
                options.judge_model.empty() ? "" : str_cat(" model `", options.judge_model, "`"),
                ". Each pair was judged twice with the positions swapped; disagreeing verdicts "
                "count as ties. Win rate = (wins + 0.5 ties) / n, from the candidate's view.\n\n");
  md += str_cat("**Win rate: ", fixed(s.overall.win_rate()), "** (95% bootstrap CI ",
                fixed(s.win_rate.lo), " to ", fixed(s.win_rate.hi), ", ", options.resamples,
                " resamples, seed ", options.seed, ")\n\n");
  const std::string header =
      "| | n | wins | ties | losses | win rate |\n|---|---:|---:|---:|---:|---:|\n";
  md += header + counts_row("all", s.overall) + "\n";
  md += str_cat("Inconsistent pairs (counted as ties): ", s.inconsistent,
                ". Pairs not graded (judge errors): ", s.errors, ".\n\n");
  md += "## By topic\n\n| topic" + header.substr(1);
  for (const auto& [topic, c] : s.by_topic) md += counts_row(topic, c);
  md += str_cat("\n## Over time (", s.buckets_by_day ? "by UTC day" : "by record order",
                ")\n\n![win rate over time](winrate.png)\n\n| bucket", header.substr(1));
  for (const TimeBucket& b : s.over_time) md += counts_row(b.label, b.counts);
  write_text(out / "report.md", md);

  LinePlot plot;
  for (const TimeBucket& b : s.over_time) plot.values.push_back(b.counts.win_rate());
  plot.reference = 0.5;
  write_line_plot_png((out / "winrate.png").string(), plot);
}

}  // namespace muse::platform
