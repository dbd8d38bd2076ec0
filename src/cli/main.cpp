// `muse`: the command-line front end. Errors from input are reported on stderr
// with exit status 1; usage errors with status 2 (CLI11's convention is kept).
#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "muse/error.h"

int main(int argc, char** argv) {
  CLI::App app{"Muse: a self-hosted server for natively multimodal language models"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, muse::cli::Runner>> runners;
  auto add = [&](const char* name, const char* help, muse::cli::Runner (*make)(CLI::App&),
                 CLI::App& parent) {
    CLI::App* sub = parent.add_subcommand(name, help);
    runners.emplace_back(sub, make(*sub));
  };
  add("serve", "Serve models over an OpenAI-compatible HTTP API", muse::cli::add_serve, app);
  add("run", "Generate text from a prompt", muse::cli::add_run, app);
  add("bench", "Measure prefill and decode speed", muse::cli::add_bench, app);
  add("convert", "Convert a Hugging Face model directory to GGUF", muse::cli::add_convert, app);
  add("quantize", "Re-quantize a GGUF file", muse::cli::add_quantize, app);
  add("tokenize", "Tokenize test strings (llama.cpp's .inp format)", muse::cli::add_tokenize, app);
  add("template", "Render a chat template over test cases", muse::cli::add_template, app);
  CLI::App* debug = app.add_subcommand("debug", "Developer tools");
  debug->require_subcommand(1);
  add("logits", "Run input ids through a model and write its logits", muse::cli::add_debug_logits,
      *debug);
  add("make-model", "Write a random-weight model at given shapes", muse::cli::add_debug_make_model,
      *debug);
  add("media", "Decode and preprocess an image or audio file", muse::cli::add_debug_media, *debug);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : runners)
      if (sub->parsed()) return run();
  } catch (const muse::Error& e) {
    std::fprintf(stderr, "muse: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "muse: error: out of memory\n");
    return 1;
  }
  return 0;
}
