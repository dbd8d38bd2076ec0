// `muse grade`: judges mirrored primary/candidate answer pairs with a judge model and
// writes report.md, winrate.png and results.json (platform/grade.h).
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "cli/commands.h"
#include "muse/error.h"
#include "platform/grade.h"
#include "platform/store.h"

namespace muse::cli {

// A one-line progress bar on stderr, redrawn in place with '\r'.
void draw_progress(const char* what, size_t done, size_t total) {
  constexpr int kWidth = 30;
  const int filled = total == 0 ? kWidth : static_cast<int>(done * kWidth / total);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '-');
  std::fprintf(stderr, "\r%s [%s] %zu/%zu", what, bar.c_str(), done, total);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::string key_from_env(const std::string& var) {
  if (var.empty()) return "";
  const char* value = std::getenv(var.c_str());
  MUSE_CHECK(value != nullptr && *value != '\0', "environment variable ", var,
             " (named for the API key) is not set");
  return value;
}

Runner add_grade(CLI::App& app) {
  struct Opts {
    std::string records, store, judge_url, judge_key_env, judge_model, out;
    int concurrency = 4, resamples = 1000, timeout_s = 120;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  auto* records = app.add_option("--records", o->records, "Mirror records (JSONL file)");
  auto* store = app.add_option("--store", o->store, "Read mirror records from this store URL");
  records->excludes(store);
  app.add_option("--judge-url", o->judge_url, "Judge's OpenAI-compatible base URL (…/v1)")
      ->required();
  app.add_option("--judge-key-env", o->judge_key_env,
                 "Environment variable holding the judge's API key");
  app.add_option("--judge-model", o->judge_model, "Judge model name (default: the server's)");
  app.add_option("--concurrency", o->concurrency, "Judge calls in flight")
      ->check(CLI::Range(1, 256));
  app.add_option("--seed", o->seed, "Seed for the judge and the bootstrap");
  app.add_option("--resamples", o->resamples, "Bootstrap resamples")->check(CLI::Range(1, 100000));
  app.add_option("--timeout", o->timeout_s, "Per-call timeout in seconds")
      ->check(CLI::Range(1, 3600));
  app.add_option("--out", o->out, "Output directory")->required();
  return [o, records, store] {
    MUSE_CHECK(records->count() + store->count() > 0,
               "muse grade: give --records FILE.jsonl or --store URL");
    std::vector<platform::MirrorRecord> recs;
    if (store->count() > 0) {
      const auto db = platform::Store::open(o->store);
      size_t index = 0;
      for (const auto& j : db->mirror_records())
        recs.push_back(platform::parse_mirror_record(j, str_cat(o->store, " record ", ++index)));
    } else {
      recs = platform::read_mirror_records(o->records);
    }
    MUSE_CHECK(!recs.empty(), "muse grade: ", store->count() ? o->store : o->records,
               " holds no mirror records");
    platform::GradeOptions opts;
    opts.judge = {o->judge_url, key_from_env(o->judge_key_env), o->timeout_s * 1000};
    opts.judge_model = o->judge_model;
    opts.concurrency = o->concurrency;
    opts.seed = o->seed;
    opts.resamples = o->resamples;
    opts.progress = [](size_t done, size_t total) { draw_progress("grading", done, total); };
    const auto pairs = platform::grade_records(recs, opts);
    const auto summary = platform::summarize_grades(pairs, opts.resamples, opts.seed);
    platform::write_grade_report(o->out, summary, pairs, opts);
    std::printf(
        "candidate win rate %.3f (95%% CI %.3f-%.3f) over %lld pairs: %lld wins, %lld "
        "ties, %lld losses, %lld errors; report in %s\n",
        summary.overall.win_rate(), summary.win_rate.lo, summary.win_rate.hi,
        static_cast<long long>(summary.overall.n()), static_cast<long long>(summary.overall.wins),
        static_cast<long long>(summary.overall.ties),
        static_cast<long long>(summary.overall.losses), static_cast<long long>(summary.errors),
        o->out.c_str());
    return summary.overall.n() > 0 ? 0 : 1;
  };
}

}  // namespace muse::cli
