// `muse eval`: runs a multiple-choice or HealthBench suite against an OpenAI-compatible
// endpoint and writes results.json and results.md (platform/eval.h).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "muse/error.h"
#include "platform/eval.h"

namespace muse::cli {

void draw_progress(const char* what, size_t done, size_t total);  // cmd_grade.cpp
std::string key_from_env(const std::string& var);                 // cmd_grade.cpp

Runner add_eval(CLI::App& app) {
  struct Opts {
    std::string suite, url = "http://127.0.0.1:8080/v1", key_env, model, grader_url, grader_key_env,
                       grader_model, out;
    int concurrency = 4, resamples = 1000, timeout_s = 300, max_tokens = 1024;
    size_t limit = 0;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--suite", o->suite, "Suite file (JSONL: multiple choice or HealthBench)")
      ->required();
  app.add_option("--url", o->url, "Endpoint under evaluation (OpenAI-compatible base URL)")
      ->capture_default_str();
  app.add_option("--key-env", o->key_env, "Environment variable holding its API key");
  app.add_option("--model", o->model, "Model name (default: the server's)");
  app.add_option("--grader-url", o->grader_url, "Rubric grader's base URL (default: --url)");
  app.add_option("--grader-key-env", o->grader_key_env, "Environment variable with its key");
  app.add_option("--grader-model", o->grader_model, "Grader model name");
  app.add_option("--concurrency", o->concurrency, "Examples in flight")->check(CLI::Range(1, 256));
  app.add_option("--limit", o->limit, "Evaluate only the first N examples (0: all)");
  app.add_option("--max-tokens", o->max_tokens, "Completion budget for HealthBench answers")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--seed", o->seed, "Seed for sampling and the bootstrap");
  app.add_option("--resamples", o->resamples, "Bootstrap resamples")->check(CLI::Range(1, 100000));
  app.add_option("--timeout", o->timeout_s, "Per-call timeout in seconds")
      ->check(CLI::Range(1, 3600));
  app.add_option("--out", o->out, "Output directory")->required();
  return [o] {
    const platform::Suite suite = platform::read_suite(o->suite);
    platform::EvalOptions opts;
    opts.endpoint = {o->url, key_from_env(o->key_env), o->timeout_s * 1000};
    opts.model = o->model;
    opts.grader = {
        o->grader_url.empty() ? o->url : o->grader_url,
        key_from_env(o->grader_key_env.empty() && o->grader_url.empty() ? o->key_env
                                                                        : o->grader_key_env),
        o->timeout_s * 1000};
    opts.grader_model = o->grader_model;
    opts.concurrency = o->concurrency;
    opts.limit = o->limit;
    opts.max_tokens = o->max_tokens;
    opts.seed = o->seed;
    opts.resamples = o->resamples;
    opts.progress = [](size_t done, size_t total) { draw_progress("evaluating", done, total); };
    const auto results = platform::run_eval(suite, opts);
    platform::write_eval_results(o->out, results);
    if (results["suite"] == "healthbench")
      std::printf("HealthBench score %.3f (bootstrap std %.3f) over %zu examples; results in %s\n",
                  results["score"]["score"].get<double>(),
                  results["score"]["bootstrap_std"].get<double>(),
                  results["score"]["n"].get<size_t>(), o->out.c_str());
    else
      std::printf("accuracy %.3f over %zu answered examples; results in %s\n",
                  results["accuracy"]["score"].get<double>(),
                  results["accuracy"]["n"].get<size_t>(), o->out.c_str());
    return 0;
  };
}

}  // namespace muse::cli
