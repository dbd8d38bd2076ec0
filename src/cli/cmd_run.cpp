#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "core/read_file.h"
#include "engine/generate.h"
#include "muse/error.h"
#include "server/api_error.h"
#include "server/generation.h"
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

// --chat: OpenAI-style messages (images and audio as content parts) through the
// same prompt construction as the server, then the engine directly; prints the
// generated ids, text and log-probabilities (with the 5 most likely alternatives) as
// JSON (the conformance suite compares the server with it).
int run_chat(const std::string& model_path, const std::string& mmproj,
             const std::string& messages_file, int64_t n, int64_t ctx, int threads,
             const SamplingParams& sp) {
  server::ServeConfig cfg;
  cfg.parallel = 1;
  cfg.ctx_size = ctx;
  cfg.threads = threads;
  cfg.media.allow_private_urls = true;  // a local run may read local URLs
  server::ModelEntry entry;
  entry.path = model_path;
  entry.aliases = {"local"};
  entry.mmproj = mmproj;
  auto served = server::load_served_model(entry, cfg);
  nlohmann::ordered_json body;
  body["model"] = "local";
  body["messages"] = nlohmann::ordered_json::parse(read_file(messages_file));
  try {
    const server::ChatRequest req = server::parse_chat_request(body, server::RequestLimits{});
    server::MultimodalPrompt prompt = server::chat_prompt(*served, req);
    GenerationRequest r;
    r.prompt = prompt.tokens;
    r.media = prompt.media;
    r.sampling = sp;
    r.top_logprobs = 5;
    r.max_tokens = std::min<int64_t>(n, ctx - static_cast<int64_t>(prompt.tokens.size()));
    auto stream = served->engine->submit(std::move(r));
    std::vector<int32_t> ids;
    nlohmann::ordered_json logprobs = nlohmann::ordered_json::array();
    for (;;) {
      auto e = stream->next(std::chrono::milliseconds(100));
      if (!e) continue;
      for (const auto& t : e->tokens) {
        ids.push_back(t.token);
        nlohmann::ordered_json top = nlohmann::ordered_json::array();
        for (const auto& [id, lp] : t.top_logprobs) top.push_back({{"token", id}, {"logprob", lp}});
        logprobs.push_back({{"token", t.token}, {"logprob", t.logprob}, {"top_logprobs", top}});
      }
      if (e->finish == FinishReason::kError) throw Error(e->error);
      if (e->finish != FinishReason::kNone) break;
    }
    nlohmann::ordered_json out;
    out["prompt_tokens"] = prompt.tokens.size();
    out["tokens"] = ids;
    out["text"] = served->tokenizer->decode(ids);
    out["logprobs"] = logprobs;
    std::printf("%s\n", server::dump_json(out).c_str());
  } catch (const server::ApiError& e) {
    throw Error(str_cat(e.status, ": ", e.what()));
  }
  return 0;
}

}  // namespace

Runner add_run(CLI::App& app) {
  struct Opts {
    std::string model, prompt, prompt_ids, chat, mmproj;
    int64_t n = 64, ctx = 4096;
    int threads = 0;
    SamplingParams sp;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("-m,--model", o->model, "GGUF file or Hugging Face directory")->required();
  app.add_option("-p,--prompt", o->prompt, "Prompt text (tokenized with the model's tokenizer)");
  app.add_option("--prompt-ids", o->prompt_ids, "Prompt as comma-separated token ids");
  app.add_option("--chat", o->chat,
                 "JSON file with OpenAI chat messages (text, image_url, input_audio parts)");
  app.add_option("--mmproj", o->mmproj, "Image/audio encoders (mmproj GGUF) for --chat");
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
    if (!o->chat.empty())
      return run_chat(o->model, o->mmproj, o->chat, o->n, o->ctx, o->threads, o->sp);
    MUSE_CHECK(o->prompt.empty() != o->prompt_ids.empty(),
               "give exactly one of --prompt, --prompt-ids and --chat");
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
