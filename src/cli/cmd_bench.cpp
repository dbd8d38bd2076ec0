// `muse bench`: prefill and decode throughput, like llama-bench's pp/tg tests.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "cli/commands.h"
#include "kernels/kernel_table.h"
#include "model/decoder.h"
#include "muse/error.h"

namespace muse::cli {

Runner add_bench(CLI::App& app) {
  struct Opts {
    std::string model;
    int64_t prompt_tokens = 512, gen_tokens = 128, batch = 1, context = 0;
    int64_t baseline_batch = 0, baseline_context = -1;  // unset: no baseline
    int threads = 0, reps = 1;
    std::string kv = "f32";
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF file or Hugging Face directory")->required();
  app.add_option("--prompt-tokens", o->prompt_tokens, "Prompt length for the prefill test");
  app.add_option("--gen-tokens", o->gen_tokens, "Tokens to decode");
  app.add_option("-t,--threads", o->threads, "Threads");
  app.add_option("--batch", o->batch, "Sequences decoded together");
  app.add_option("--context", o->context, "Tokens of context before decoding");
  app.add_option("--reps", o->reps, "Repetitions (best is reported)");
  app.add_option("--baseline-batch", o->baseline_batch,
                 "Also decode this many other sequences, step for step in turn with the "
                 "measured ones, and report them as the baseline (default: --batch)");
  app.add_option("--baseline-context", o->baseline_context,
                 "Tokens of context of the baseline sequences (default: --context)");
  app.add_option("--kv", o->kv,
                 "KV cache type: f32 (default, exact), f16 (llama.cpp's default) or q8_0 "
                 "(keys and values Q8_0: llama.cpp's -ctk q8_0 -ctv q8_0)");
  app.add_flag("--json", o->json, "Print one JSON object");
  return [o] {
    MUSE_CHECK(o->prompt_tokens >= 0 && o->gen_tokens >= 0 && o->batch >= 1 && o->context >= 0 &&
                   o->reps >= 1 && o->baseline_batch >= 0 && o->baseline_context >= -1,
               "bench: counts must be non-negative, batch and reps at least 1");
    // A baseline decodes in the same process, its steps alternating with the
    // measured ones, so a ratio of the two sees the same machine conditions
    // (on a shared machine, memory bandwidth drifts by tens of percent within
    // seconds, more than separate runs can average out).
    const bool baseline = o->baseline_batch > 0 || o->baseline_context >= 0;
    const int64_t base_batch = !baseline ? 0 : o->baseline_batch > 0 ? o->baseline_batch : o->batch;
    const int64_t base_context = o->baseline_context >= 0 ? o->baseline_context : o->context;
    const std::optional<DType> kv_type = kv_type_from_name(o->kv);
    MUSE_CHECK(kv_type.has_value(), "bench: --kv must be ", kKvTypeNames, ", not ", o->kv);
    auto model = Model::load(o->model);
    const auto& c = model->config();
    const int threads = o->threads > 0 ? o->threads : default_thread_count();
    const int64_t ctx =
        std::max(o->prompt_tokens, std::max(o->context, base_context) + o->gen_tokens) + 1;
    DecoderOptions dopt{ctx, o->batch + base_batch, 512, threads};
    dopt.kv_type = *kv_type;
    Decoder dec(model, dopt);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.n_vocab - 1));
    using clock = std::chrono::steady_clock;
    double best_prefill = 0, best_decode = 0, best_base = 0;
    for (int rep = 0; rep < o->reps; ++rep) {
      if (o->prompt_tokens > 0) {
        std::vector<BatchItem> items;
        for (int64_t i = 0; i < o->prompt_tokens; ++i)
          items.push_back({tok(rng), static_cast<int32_t>(i), 0, i + 1 == o->prompt_tokens});
        dec.clear(0);
        const auto t0 = clock::now();
        dec.forward(items);
        const double s = std::chrono::duration<double>(clock::now() - t0).count();
        best_prefill = std::max(best_prefill, o->prompt_tokens / s);
      }
      if (o->gen_tokens > 0) {
        // Untimed context fill, then the B measured sequences decode one token
        // each per step (and the baseline's, in turn, order swapped every step).
        auto fill = [&](int32_t first, int64_t n, int64_t context) {
          for (int32_t s = first; s < first + n; ++s) {
            dec.clear(s);
            std::vector<BatchItem> items;
            for (int64_t i = 0; i < std::max<int64_t>(context, 1); ++i)
              items.push_back({tok(rng), static_cast<int32_t>(i), s, false});
            dec.forward(items);
          }
        };
        const auto b = static_cast<int32_t>(o->batch);
        fill(0, o->batch, o->context);
        fill(b, base_batch, base_context);
        auto timed_step = [&](int32_t first, int64_t n) {
          std::vector<BatchItem> step;
          for (int32_t s = first; s < first + n; ++s)
            step.push_back({tok(rng), static_cast<int32_t>(dec.seq_length(s)), s, true});
          const auto t0 = clock::now();
          dec.forward(step);
          return std::chrono::duration<double>(clock::now() - t0).count();
        };
        double main_s = 0, base_s = 0;
        for (int64_t g = 0; g < o->gen_tokens; ++g) {
          if (baseline && g % 2 == 1) base_s += timed_step(b, base_batch);
          main_s += timed_step(0, o->batch);
          if (baseline && g % 2 == 0) base_s += timed_step(b, base_batch);
        }
        best_decode = std::max(best_decode, static_cast<double>(o->gen_tokens * o->batch) / main_s);
        if (baseline)
          best_base = std::max(best_base, static_cast<double>(o->gen_tokens * base_batch) / base_s);
      }
    }
    // Peak resident set of this process (weights, KV cache, scratch, program).
    struct rusage usage {};
    getrusage(RUSAGE_SELF, &usage);
    const double peak_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;
    const DecoderMemory mem = dec.memory();
    const std::string isa(kernels::isa_name(kernels::best_isa()));
    std::string base_json;
    if (baseline) {
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    ", \"baseline_decode_tps\": %.3f, \"baseline_batch\": %lld, "
                    "\"baseline_context\": %lld",
                    best_base, static_cast<long long>(base_batch),
                    static_cast<long long>(base_context));
      base_json = buf;
    }
    if (o->json) {
      std::printf(
          "{\"model\": \"%s\", \"arch\": \"%s\", \"prefill_tps\": %.3f, \"decode_tps\": %.3f, "
          "\"prompt_tokens\": %lld, \"gen_tokens\": %lld, \"threads\": %d, \"batch\": %lld, "
          "\"context\": %lld, \"kv\": \"%s\", \"isa\": \"%s\", \"peak_rss_mb\": %.1f, "
          "\"packed_weights_mb\": %.1f, \"mapped_weights_mb\": %.1f, \"kv_cache_mb\": %.1f, "
          "\"scratch_mb\": %.1f%s}\n",
          o->model.c_str(), c.arch.c_str(), best_prefill, best_decode,
          static_cast<long long>(o->prompt_tokens), static_cast<long long>(o->gen_tokens), threads,
          static_cast<long long>(o->batch), static_cast<long long>(o->context), o->kv.c_str(),
          isa.c_str(), peak_mb, mem.packed_weights / 1048576.0, mem.mapped_weights / 1048576.0,
          mem.kv_cache / 1048576.0, mem.scratch / 1048576.0, base_json.c_str());
    } else {
      std::printf("model %s (%s), %d threads, %s kernels, %s KV cache\n", o->model.c_str(),
                  c.arch.c_str(), threads, isa.c_str(), o->kv.c_str());
      if (o->prompt_tokens > 0)
        std::printf("  prefill pp%lld: %.2f tokens/s\n", static_cast<long long>(o->prompt_tokens),
                    best_prefill);
      if (o->gen_tokens > 0)
        std::printf("  decode tg%lld (batch %lld, context %lld): %.2f tokens/s\n",
                    static_cast<long long>(o->gen_tokens), static_cast<long long>(o->batch),
                    static_cast<long long>(o->context), best_decode);
      if (o->gen_tokens > 0 && baseline)
        std::printf("  baseline, in turn (batch %lld, context %lld): %.2f tokens/s (ratio %.3f)\n",
                    static_cast<long long>(base_batch), static_cast<long long>(base_context),
                    best_base, best_base > 0 ? best_decode / best_base : 0.0);
      std::printf(
          "  memory: peak RSS %.1f MB; weights %.1f MB packed + %.1f MB mapped, KV cache "
          "%.1f MB, scratch %.1f MB\n",
          peak_mb, mem.packed_weights / 1048576.0, mem.mapped_weights / 1048576.0,
          mem.kv_cache / 1048576.0, mem.scratch / 1048576.0);
    }
    return 0;
  };
}

}  // namespace muse::cli
