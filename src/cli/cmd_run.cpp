#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "engine/generate.h"
#include "muse/error.h"
#include "text/tokenizer.h"

namespace muse::cli {
namespace {

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      MUSE_CHECK(used == item.size() && v >= 0 && v <= INT32_MAX, "bad token id '", item, "'");
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::logic_error&) {
      throw Error(str_cat("bad token id '", item, "'"));
    }
  }
  return ids;
}

}  // namespace

Runner add_run(CLI::App& app) {
  struct Opts {
    std::string model, prompt, prompt_ids;
    int64_t n = 64, ctx = 4096;
    int threads = 0;
    SamplingParams sp;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF file or Hugging Face directory")->required();
  app.add_option("-p,--prompt", o->prompt, "Prompt text (tokenized with the model's tokenizer)");
  app.add_option("--prompt-ids", o->prompt_ids, "Prompt as comma-separated token ids");
  app.add_option("-n,--n-predict", o->n, "Tokens to generate");
  app.add_option("--temp", o->sp.temperature, "Temperature (0 = greedy)");
  app.add_option("--top-k", o->sp.top_k, "Top-k (0 = off)");
  app.add_option("--top-p", o->sp.top_p, "Top-p");
  app.add_option("--min-p", o->sp.min_p, "Min-p");
  app.add_option("--repeat-penalty", o->sp.repetition_penalty, "Repetition penalty");
  auto* seed = app.add_option("--seed", o->seed, "Random seed");
  app.add_option("-t,--threads", o->threads, "Threads");
  app.add_option("-c,--ctx-size", o->ctx, "Context size");
  return [o, seed] {
    if (seed->count()) o->sp.seed = o->seed;
    MUSE_CHECK(o->prompt.empty() != o->prompt_ids.empty(),
               "give exactly one of --prompt and --prompt-ids");
    auto model = Model::load(o->model);
    const auto& c = model->config();
    // A text prompt is tokenized with the model's own tokenizer (BOS as its
    // metadata says; special-token text in the prompt is recognised, as in
    // llama.cpp's CLI) and the output streamed as text; ids in, ids out.
    std::unique_ptr<text::Tokenizer> tok;
    std::vector<int32_t> prompt;
    if (!o->prompt.empty()) {
      tok = text::load_tokenizer(*model);
      prompt = tok->encode(o->prompt, /*add_special=*/true, /*parse_special=*/true);
    } else {
      prompt = parse_ids(o->prompt_ids);
    }
    MUSE_CHECK(!prompt.empty(), "the prompt is empty");
    Decoder decoder(model, {std::min<int64_t>(o->ctx, static_cast<int64_t>(prompt.size()) + o->n), 1, 512, o->threads});
    Sampler sampler(o->sp, static_cast<int32_t>(c.n_vocab));
    GenerateOptions go;
    go.max_tokens = o->n;
    if (tok) {
      go.stop_tokens = tok->eog_ids();
      text::StreamDecoder stream(*tok);
      generate(decoder, prompt, sampler, go, [&](int32_t id) {
        if (!tok->is_eog(id)) std::fputs(stream.push(id).c_str(), stdout);
        std::fflush(stdout);
        return true;
      });
      std::fputs(stream.flush().c_str(), stdout);
    } else {
      generate(decoder, prompt, sampler, go, [](int32_t id) {
        std::printf("%d ", id);
        std::fflush(stdout);
        return true;
      });
    }
    std::printf("\n");
    return 0;
  };
}

}  // namespace muse::cli
