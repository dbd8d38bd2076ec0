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
  // The operator's side (docs/platform.md): the store behind keys, tiers and usage.
  CLI::App* keys = app.add_subcommand("keys", "Manage API keys (create, list, revoke)");
  keys->require_subcommand(1);
  add("create", "Issue a key (its secret is shown once)", muse::cli::add_keys_create, *keys);
  add("list", "List keys", muse::cli::add_keys_list, *keys);
  add("revoke", "Revoke a key", muse::cli::add_keys_revoke, *keys);
  CLI::App* tiers = app.add_subcommand("tiers", "Manage access tiers and their limits");
  tiers->require_subcommand(1);
  add("set", "Create or change a tier", muse::cli::add_tiers_set, *tiers);
  add("list", "List tiers", muse::cli::add_tiers_list, *tiers);
  CLI::App* access = app.add_subcommand("access", "The access-request waitlist");
  access->require_subcommand(1);
  add("list", "List access requests", muse::cli::add_access_list, *access);
  add("approve", "Approve a request and issue a key", muse::cli::add_access_approve, *access);
  add("reject", "Reject a request", muse::cli::add_access_reject, *access);
  add("usage", "Usage per key, model and day", muse::cli::add_usage, app);
  add("grade", "Grade mirrored primary/candidate pairs with a judge model", muse::cli::add_grade,
      app);
  add("eval", "Run an evaluation suite against an OpenAI-compatible endpoint", muse::cli::add_eval,
      app);
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
