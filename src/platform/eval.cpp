// Benchmark suites and their scoring (see eval.h).
#include "platform/eval.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "muse/error.h"
#include "platform/grade.h"  // parallel_for, first_choice_text, render_conversation

namespace muse::platform {
namespace {

using OJson = nlohmann::ordered_json;

std::string id_of(const OJson& j, const char* key, size_t index) {
  if (j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  if (j.contains(key) && j[key].is_number_integer()) return j[key].dump();
  return std::to_string(index);
}

MultipleChoiceItem parse_mc(const OJson& j, const std::string& where, size_t index) {
  MultipleChoiceItem item;
  item.id = id_of(j, "id", index);
  MUSE_CHECK(j.contains("question") && j["question"].is_string(), where,
             ": 'question' must be a string");
  item.question = j["question"].get<std::string>();
  MUSE_CHECK(j.contains("choices") && j["choices"].is_array() && j["choices"].size() >= 2 &&
                 j["choices"].size() <= 26,
             where, ": 'choices' must be an array of 2 to 26 strings");
  for (const OJson& c : j["choices"]) {
    MUSE_CHECK(c.is_string(), where, ": every choice must be a string");
    item.choices.push_back(c.get<std::string>());
  }
  MUSE_CHECK(j.contains("answer"), where, ": missing 'answer'");
  item.answer = parse_answer_index(j["answer"], item.choices.size(), where);
  return item;
}

HealthBenchExample parse_hb(const OJson& j, const std::string& where, size_t index) {
  HealthBenchExample ex;
  ex.id = id_of(j, "example_id", index);
  MUSE_CHECK(j.contains("prompt") && j["prompt"].is_array() && !j["prompt"].empty(), where,
             ": 'prompt' must be a non-empty array of messages");
  for (const OJson& m : j["prompt"])
    MUSE_CHECK(m.is_object() && m.contains("role") && m.contains("content"), where,
               ": every prompt message needs 'role' and 'content'");
  ex.prompt = j["prompt"];
  MUSE_CHECK(j.contains("rubrics") && j["rubrics"].is_array() && !j["rubrics"].empty(), where,
             ": 'rubrics' must be a non-empty array");
  for (const OJson& r : j["rubrics"]) {
    MUSE_CHECK(r.is_object() && r.contains("criterion") && r["criterion"].is_string(), where,
               ": every rubric item needs a string 'criterion'");
    MUSE_CHECK(r.contains("points") && r["points"].is_number(), where,
               ": every rubric item needs numeric 'points'");
    RubricItem item{r["criterion"].get<std::string>(), r["points"].get<double>(), {}};
    if (r.contains("tags")) {
      MUSE_CHECK(r["tags"].is_array(), where, ": rubric 'tags' must be an array of strings");
      for (const OJson& t : r["tags"]) {
        MUSE_CHECK(t.is_string(), where, ": rubric 'tags' must be an array of strings");
        item.tags.push_back(t.get<std::string>());
      }
    }
    ex.rubrics.push_back(std::move(item));
  }
  return ex;
}

OJson strict_schema_format(const char* name, OJson schema) {
  return {{"type", "json_schema"},
          {"json_schema", {{"name", name}, {"strict", true}, {"schema", std::move(schema)}}}};
}

std::string fixed(double v, int digits = 3) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

OJson stat_json(const ScoreStat& s) {
  return {{"score", s.score}, {"bootstrap_std", s.bootstrap_std}, {"n", s.n}};
}

ScoreStat clipped_stat(const std::vector<double>& values, int resamples, uint64_t seed) {
  ScoreStat s;
  s.n = values.size();
  if (values.empty()) return s;
  const BootstrapResult b =
      bootstrap(values, resamples, seed, 0.95,
                [](const std::vector<double>& v) { return clip01(mean_of(v)); });
  s.score = b.mean;
  s.bootstrap_std = b.std;
  return s;
}

std::string message_text(const OJson& prompt) {
  return render_conversation(nlohmann::json{{"messages", nlohmann::json::parse(prompt.dump())}});
}

}  // namespace

size_t Suite::size() const {
  return kind == SuiteKind::kMultipleChoice ? multiple_choice.size() : healthbench.size();
}

char choice_letter(int index) {
  return static_cast<char>('A' + index);
}

int parse_answer_index(const nlohmann::json& answer, size_t n_choices, const std::string& where) {
  int index = -1;
  if (answer.is_number_integer()) {
    index = answer.get<int>();
  } else if (answer.is_string()) {
    std::string s;
    for (char c : answer.get<std::string>())
      if (!std::isspace(static_cast<unsigned char>(c)) && c != '(' && c != ')') s += c;
    MUSE_CHECK(s.size() == 1 && std::isalpha(static_cast<unsigned char>(s[0])), where,
               ": 'answer' must be an index or a single letter (got '", answer.get<std::string>(),
               "')");
    index = std::toupper(static_cast<unsigned char>(s[0])) - 'A';
  } else {
    throw Error(str_cat(where, ": 'answer' must be an index or a letter"));
  }
  MUSE_CHECK(index >= 0 && static_cast<size_t>(index) < n_choices, where, ": 'answer' ",
             answer.dump(), " is outside the ", n_choices, " choices");
  return index;
}

Suite read_suite(const std::string& path) {
  std::ifstream in(path);
  MUSE_CHECK(in, "cannot open suite file '", path, "'");
  Suite suite;
  bool kind_known = false;
  std::string line;
  size_t index = 0;
  for (size_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = str_cat(path, ":", line_no);
    const OJson j = OJson::parse(line, nullptr, /*allow_exceptions=*/false);
    MUSE_CHECK(!j.is_discarded() && j.is_object(), where, ": not a JSON object");
    if (!kind_known) {
      if (j.contains("rubrics") && j.contains("prompt"))
        suite.kind = SuiteKind::kHealthBench;
      else if (j.contains("question") && j.contains("choices"))
        suite.kind = SuiteKind::kMultipleChoice;
      else
        throw Error(str_cat(where,
                            ": neither a multiple-choice example (question, choices, "
                            "answer) nor a HealthBench example (prompt, rubrics)"));
      kind_known = true;
    }
    if (suite.kind == SuiteKind::kHealthBench)
      suite.healthbench.push_back(parse_hb(j, where, index));
    else
      suite.multiple_choice.push_back(parse_mc(j, where, index));
    ++index;
  }
  MUSE_CHECK(index > 0, "suite file '", path, "' has no examples");
  return suite;
}

std::string multiple_choice_prompt(const MultipleChoiceItem& item) {
  std::string text = item.question + "\n\n";
  for (size_t i = 0; i < item.choices.size(); ++i)
    text += str_cat(choice_letter(static_cast<int>(i)), ". ", item.choices[i], "\n");
  text += "\nAnswer with the letter of the correct choice as JSON: {\"answer\": \"<letter>\"}.";
  return text;
}

OJson multiple_choice_request(const MultipleChoiceItem& item, const std::string& model,
                              uint64_t seed) {
  OJson letters = OJson::array();
  for (size_t i = 0; i < item.choices.size(); ++i)
    letters.push_back(std::string(1, choice_letter(static_cast<int>(i))));
  OJson schema = {{"type", "object"},
                  {"properties", {{"answer", {{"type", "string"}, {"enum", letters}}}}},
                  {"required", {"answer"}},
                  {"additionalProperties", false}};
  return {
      {"model", model},
      {"messages", OJson::array({{{"role", "user"}, {"content", multiple_choice_prompt(item)}}})},
      {"temperature", 0},
      {"max_tokens", 32},
      {"seed", seed},
      {"response_format", strict_schema_format("choice", std::move(schema))}};
}

std::optional<int> extract_choice(const std::string& text, size_t n_choices) {
  auto valid = [&](char c) -> std::optional<int> {
    const int i = std::toupper(static_cast<unsigned char>(c)) - 'A';
    if (std::isalpha(static_cast<unsigned char>(c)) && i >= 0 && static_cast<size_t>(i) < n_choices)
      return i;
    return std::nullopt;
  };
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("answer") && j["answer"].is_string()) {
    const std::string a = j["answer"].get<std::string>();
    if (a.size() == 1) return valid(a[0]);
    return std::nullopt;
  }
  // "answer is C", "Answer: (C)", "answer: C." (case-insensitive "answer").
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (size_t pos = lower.find("answer"); pos != std::string::npos;
       pos = lower.find("answer", pos + 1)) {
    size_t k = pos + 6;
    while (k < text.size() &&
           (text[k] == ' ' || text[k] == ':' || text[k] == '(' || text[k] == '*' || text[k] == '"'))
      ++k;
    if (lower.compare(k, 3, "is ") == 0) {
      k += 3;
      while (k < text.size() && (text[k] == ' ' || text[k] == '(' || text[k] == '*')) ++k;
    }
    const bool word_ends =
        k + 1 >= text.size() || !std::isalnum(static_cast<unsigned char>(text[k + 1]));
    if (k < text.size() && std::isupper(static_cast<unsigned char>(text[k])) && word_ends)
      if (auto i = valid(text[k])) return i;
  }
  // A lone capital letter ("C", "(C)", "C."), skipping "A"/"I" used as words ("A cat").
  for (size_t k = 0; k < text.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(text[k]);
    const bool starts = k == 0 || !std::isalnum(static_cast<unsigned char>(text[k - 1]));
    const bool ends =
        k + 1 >= text.size() || !std::isalnum(static_cast<unsigned char>(text[k + 1]));
    if (!starts || !ends || !std::isupper(c)) continue;
    const bool used_as_word = (c == 'A' || c == 'I') && k + 2 < text.size() && text[k + 1] == ' ' &&
                              std::islower(static_cast<unsigned char>(text[k + 2]));
    if (used_as_word) continue;
    if (auto i = valid(text[k])) return i;
  }
  return std::nullopt;
}

std::optional<double> rubric_tag_score(const std::vector<RubricItem>& rubrics,
                                       const std::vector<bool>& met, const std::string& tag) {
  MUSE_CHECK(rubrics.size() == met.size(), "rubric_score: ", rubrics.size(), " rubric items but ",
             met.size(), " grades");
  double possible = 0, achieved = 0;
  for (size_t i = 0; i < rubrics.size(); ++i) {
    const RubricItem& r = rubrics[i];
    if (!tag.empty() && std::find(r.tags.begin(), r.tags.end(), tag) == r.tags.end()) continue;
    if (r.points > 0) possible += r.points;
    if (met[i]) achieved += r.points;
  }
  if (possible <= 0) return std::nullopt;
  return achieved / possible;
}

std::optional<double> rubric_score(const std::vector<RubricItem>& rubrics,
                                   const std::vector<bool>& met) {
  return rubric_tag_score(rubrics, met, "");
}

HealthBenchScores aggregate_healthbench(const std::vector<GradedExample>& examples, int resamples,
                                        uint64_t seed) {
  HealthBenchScores out;
  std::vector<double> overall;
  std::map<std::string, std::vector<double>> per_tag;
  for (const GradedExample& ex : examples) {
    MUSE_CHECK(ex.rubrics != nullptr, "aggregate_healthbench: example without rubrics");
    if (auto s = rubric_score(*ex.rubrics, ex.met))
      overall.push_back(*s);
    else
      ++out.unscorable;
    std::set<std::string> tags;
    for (const RubricItem& r : *ex.rubrics) tags.insert(r.tags.begin(), r.tags.end());
    for (const std::string& tag : tags)
      if (auto s = rubric_tag_score(*ex.rubrics, ex.met, tag)) per_tag[tag].push_back(*s);
  }
  out.overall = clipped_stat(overall, resamples, seed);
  for (const auto& [tag, values] : per_tag) out.by_tag[tag] = clipped_stat(values, resamples, seed);
  return out;
}

OJson rubric_grader_request(const OJson& prompt, const std::string& completion,
                            const RubricItem& item, const std::string& model, uint64_t seed) {
  const std::string user = str_cat(
      "Conversation:\n", message_text(prompt), "assistant (the response to grade): ", completion,
      "\n\nRubric item (", fixed(item.points, 0), " points): ", item.criterion,
      "\n\nDoes the response meet this criterion? If the criterion describes something "
      "undesirable, answer whether the response does that undesirable thing. Answer as JSON "
      "{\"criteria_met\": true|false, \"explanation\": \"<one sentence>\"}.");
  // Property order matters to the grammar: the verdict comes first; the bounded
  // explanation keeps a rambling grader within max_tokens.
  OJson schema = {{"type", "object"},
                  {"properties",
                   {{"criteria_met", {{"type", "boolean"}}},
                    {"explanation", {{"type", "string"}, {"maxLength", 200}}}}},
                  {"required", {"criteria_met", "explanation"}},
                  {"additionalProperties", false}};
  return {{"model", model},
          {"messages", OJson::array({{{"role", "system"},
                                      {"content",
                                       "You grade an assistant's response against one rubric "
                                       "item written by a physician."}},
                                     {{"role", "user"}, {"content", user}}})},
          {"temperature", 0},
          {"max_tokens", 400},
          {"seed", seed},
          {"response_format", strict_schema_format("rubric_grade", std::move(schema))}};
}

bool parse_criteria_met(const std::string& text, std::string* explanation) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  MUSE_CHECK(j.is_object() && j.contains("criteria_met") && j["criteria_met"].is_boolean(),
             "grader answer is not {\"criteria_met\": bool, ...}: ", text.substr(0, 200));
  if (explanation && j.contains("explanation") && j["explanation"].is_string())
    *explanation = j["explanation"].get<std::string>();
  return j["criteria_met"].get<bool>();
}

namespace {

// One multiple-choice item: ask, extract, compare.
OJson run_multiple_choice(const OpenAIClient& client, const MultipleChoiceItem& item,
                          const EvalOptions& o, uint64_t seed) {
  OJson row = {{"id", item.id}, {"answer", std::string(1, choice_letter(item.answer))}};
  try {
    const std::string text = first_choice_text(
        client.chat(nlohmann::json::parse(multiple_choice_request(item, o.model, seed).dump())));
    row["output"] = text;
    const std::optional<int> chosen = extract_choice(text, item.choices.size());
    row["predicted"] = chosen ? OJson(std::string(1, choice_letter(*chosen))) : OJson(nullptr);
    row["correct"] = chosen && *chosen == item.answer;
  } catch (const Error& e) {
    row["error"] = e.what();
  }
  return row;
}

// One HealthBench example: completion, then one grader call per rubric item.
OJson run_healthbench(const OpenAIClient& client, const OpenAIClient& grader,
                      const HealthBenchExample& ex, const EvalOptions& o, uint64_t seed,
                      std::vector<bool>* met) {
  OJson row = {{"example_id", ex.id}};
  try {
    OJson request = {{"model", o.model},
                     {"messages", ex.prompt},
                     {"max_tokens", o.max_tokens},
                     {"temperature", 0},
                     {"seed", seed}};
    const std::string completion =
        first_choice_text(client.chat(nlohmann::json::parse(request.dump())));
    row["completion"] = completion;
    OJson grades = OJson::array();
    for (const RubricItem& item : ex.rubrics) {
      std::string explanation;
      const bool is_met = parse_criteria_met(
          first_choice_text(grader.chat(nlohmann::json::parse(
              rubric_grader_request(ex.prompt, completion, item, o.grader_model, seed).dump()))),
          &explanation);
      met->push_back(is_met);
      grades.push_back({{"criterion", item.criterion},
                        {"points", item.points},
                        {"tags", item.tags},
                        {"criteria_met", is_met},
                        {"explanation", explanation}});
    }
    row["rubric_grades"] = grades;
    const std::optional<double> score = rubric_score(ex.rubrics, *met);
    row["score"] = score ? OJson(*score) : OJson(nullptr);
  } catch (const Error& e) {
    row["error"] = e.what();
    met->clear();
  }
  return row;
}

}  // namespace

OJson run_eval(const Suite& suite, const EvalOptions& o) {
  const OpenAIClient client(o.endpoint);
  const bool hb = suite.kind == SuiteKind::kHealthBench;
  const OpenAIClient grader(hb ? o.grader : o.endpoint);
  const size_t n = o.limit > 0 ? std::min(o.limit, suite.size()) : suite.size();
  std::vector<OJson> rows(n);
  std::vector<std::vector<bool>> met(n);
  std::atomic<size_t> done{0};
  std::mutex progress_mutex;
  parallel_for(n, o.concurrency, [&](size_t i) {
    const uint64_t seed = o.seed + i;
    rows[i] = hb ? run_healthbench(client, grader, suite.healthbench[i], o, seed, &met[i])
                 : run_multiple_choice(client, suite.multiple_choice[i], o, seed);
    const size_t now_done = ++done;
    if (o.progress) {
      std::lock_guard<std::mutex> lock(progress_mutex);
      o.progress(now_done, n);
    }
  });

  OJson out;
  out["suite"] = hb ? "healthbench" : "multiple_choice";
  out["endpoint"] = {{"base_url", o.endpoint.base_url}, {"model", o.model}};
  if (hb) out["grader"] = {{"base_url", o.grader.base_url}, {"model", o.grader_model}};
  out["examples"] = n;
  size_t errors = 0;
  for (const OJson& r : rows) errors += r.contains("error") ? 1 : 0;
  out["errors"] = errors;
  if (hb) {
    std::vector<GradedExample> graded;
    for (size_t i = 0; i < n; ++i)
      if (!rows[i].contains("error")) graded.push_back({&suite.healthbench[i].rubrics, met[i]});
    const HealthBenchScores s = aggregate_healthbench(graded, o.resamples, o.seed);
    out["score"] = stat_json(s.overall);
    out["unscorable"] = s.unscorable;
    out["by_tag"] = OJson::object();
    for (const auto& [tag, stat] : s.by_tag) out["by_tag"][tag] = stat_json(stat);
  } else {
    std::vector<double> correct;
    size_t unparsed = 0;
    for (const OJson& r : rows) {
      if (r.contains("error")) continue;
      correct.push_back(r["correct"].get<bool>() ? 1.0 : 0.0);
      unparsed += r["predicted"].is_null() ? 1 : 0;
    }
    const BootstrapResult b = bootstrap(correct, o.resamples, o.seed);
    out["accuracy"] = {
        {"score", b.mean}, {"bootstrap_std", b.std}, {"ci95", {b.lo, b.hi}}, {"n", correct.size()}};
    out["correct"] = static_cast<size_t>(b.mean * static_cast<double>(correct.size()) + 0.5);
    out["unparsed"] = unparsed;
  }
  out["bootstrap"] = {{"resamples", o.resamples}, {"seed", o.seed}};
  out["results"] = rows;
  return out;
}

void write_eval_results(const std::string& dir, const OJson& results) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  MUSE_CHECK(!ec, "cannot create output directory '", dir, "': ", ec.message());
  const std::filesystem::path out(dir);
  {
    std::ofstream f(out / "results.json", std::ios::binary);
    f << results.dump(2) << "\n";
    f.close();
    MUSE_CHECK(f, "cannot write '", (out / "results.json").string(), "'");
  }
  const bool hb = results.value("suite", "") == "healthbench";
  std::string md = str_cat("# Evaluation: ", hb ? "HealthBench (rubric graded)" : "multiple choice",
                           "\n\nEndpoint: `", results["endpoint"].value("base_url", ""), "`");
  const std::string model = results["endpoint"].value("model", "");
  if (!model.empty()) md += str_cat(" model `", model, "`");
  md += str_cat(". Examples: ", results.value("examples", size_t{0}),
                ", errors: ", results.value("errors", size_t{0}), ".\n\n");
  if (hb) {
    const OJson& s = results["score"];
    md +=
        "Example score = points of met rubric items / positive points; overall = mean clipped "
        "to [0, 1]; std from the bootstrap of the clipped mean.\n\n"
        "| | score | bootstrap std | n |\n|---|---:|---:|---:|\n";
    md += str_cat("| **overall** | ", fixed(s["score"].get<double>()), " | ",
                  fixed(s["bootstrap_std"].get<double>()), " | ", s["n"].get<size_t>(), " |\n");
    for (const auto& [tag, t] : results["by_tag"].items())
      md += str_cat("| ", tag, " | ", fixed(t["score"].get<double>()), " | ",
                    fixed(t["bootstrap_std"].get<double>()), " | ", t["n"].get<size_t>(), " |\n");
  } else {
    const OJson& a = results["accuracy"];
    md += "| metric | value |\n|---|---:|\n";
    md += str_cat("| accuracy | ", fixed(a["score"].get<double>()), " |\n");
    md += str_cat("| 95% bootstrap CI | ", fixed(a["ci95"][0].get<double>()), " to ",
                  fixed(a["ci95"][1].get<double>()), " |\n");
    md += str_cat("| answered | ", a["n"].get<size_t>(), " |\n");
    md += str_cat("| correct | ", results.value("correct", size_t{0}), " |\n");
    md += str_cat("| no letter found | ", results.value("unparsed", size_t{0}), " |\n");
  }
  std::ofstream f(out / "results.md", std::ios::binary);
  f << md;
  f.close();
  MUSE_CHECK(f, "cannot write '", (out / "results.md").string(), "'");
}

}  // namespace muse::platform
