// `muse serve`: loads the models and serves the OpenAI-compatible API until SIGINT or
// SIGTERM, then stops accepting, ends open streams and exits 0.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "muse/error.h"
#include "server/http_server.h"
#include "server/serve_config.h"

namespace muse::cli {

namespace {

std::string default_model_path() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto beside = exe.parent_path().parent_path().parent_path() / "models" / "muse-nano.gguf";
    if (std::filesystem::exists(beside, ec)) return beside.string();
  }
  return MUSE_DEFAULT_MODEL;
}

}  // namespace

Runner add_serve(CLI::App& app) {
  struct Opts {
    server::ServeConfig cfg;
    std::string config_file;
    std::vector<std::string> models, aliases;
    std::string tool_format, chat_template, mmproj;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--config", o->config_file, "TOML config file (flags override it)")
      ->check(CLI::ExistingFile);
  app.add_option(
      "-m,--model", o->models,
      "GGUF file or Hugging Face directory (repeatable; default: the shipped Muse Nano)");
  app.add_option("--model-alias", o->aliases, "Name clients use for the model (repeatable)");
  auto* host = app.add_option("--host", o->cfg.host, "Address to listen on");
  auto* port = app.add_option("--port", o->cfg.port, "Port (0 picks a free one)");
  auto* keys =
      app.add_option("--api-keys-file", o->cfg.api_keys_file, "File with one key per line");
  auto* store = app.add_option("--store", o->cfg.store,
                               "Keys/tiers/usage store: sqlite:PATH or postgresql://...");
  auto* admin_key = app.add_option("--admin-key-file", o->cfg.admin_key_file,
                                   "File holding the admin key (enables /admin)");
  auto* parallel =
      app.add_option("--parallel", o->cfg.parallel, "Sequences decoded at once per model");
  auto* ctx = app.add_option("--ctx-size", o->cfg.ctx_size, "Context positions per sequence");
  auto* batch = app.add_option("--batch-size", o->cfg.batch_size, "Most tokens per forward step");
  auto* queue = app.add_option("--max-queue", o->cfg.max_queue, "Waiting requests before 503");
  auto* threads = app.add_option("--threads", o->cfg.threads, "Compute threads (0 = all cores)");
  auto* kv = app.add_option("--kv-type", o->cfg.kv_type,
                            "KV cache type: f32|f16|q8_0 (q8_0: keys and values Q8_0)");
  auto* body = app.add_option("--max-body-bytes", o->cfg.max_body_bytes, "Largest request body");
  auto* max_tokens = app.add_option("--max-tokens-limit", o->cfg.max_tokens_limit,
                                    "Largest max_tokens a request may ask for");
  app.add_option("--tool-format", o->tool_format,
                 "Tool-call format override: hermes|llama3_json|mistral|atem|generic");
  app.add_option("--chat-template", o->chat_template, "Jinja chat template file override")
      ->check(CLI::ExistingFile);
  app.add_option("--mmproj", o->mmproj, "Image/audio encoders (mmproj GGUF) of the --model")
      ->check(CLI::ExistingFile);
  return [o, host, port, keys, store, admin_key, parallel, ctx, batch, queue, threads, kv, body,
          max_tokens] {
    server::ServeConfig cfg;
    if (!o->config_file.empty()) server::load_serve_config_file(o->config_file, cfg);
    // Flags given on the command line override the file.
    if (host->count()) cfg.host = o->cfg.host;
    if (port->count()) cfg.port = o->cfg.port;
    if (keys->count()) cfg.api_keys_file = o->cfg.api_keys_file;
    if (store->count()) cfg.store = o->cfg.store;
    if (admin_key->count()) cfg.admin_key_file = o->cfg.admin_key_file;
    if (parallel->count()) cfg.parallel = o->cfg.parallel;
    if (ctx->count()) cfg.ctx_size = o->cfg.ctx_size;
    if (batch->count()) cfg.batch_size = o->cfg.batch_size;
    if (queue->count()) cfg.max_queue = o->cfg.max_queue;
    if (threads->count()) cfg.threads = o->cfg.threads;
    if (kv->count()) cfg.kv_type = o->cfg.kv_type;
    if (body->count()) cfg.max_body_bytes = o->cfg.max_body_bytes;
    if (max_tokens->count()) cfg.max_tokens_limit = o->cfg.max_tokens_limit;
    MUSE_CHECK(o->mmproj.empty() || o->models.size() == 1, "--mmproj needs exactly one --model");
    MUSE_CHECK(o->aliases.empty() || o->models.size() == 1,
               "--model-alias needs exactly one --model; use a config file to name several models");
    // Neither --model nor a config file's models: the shipped default model, found next
    // to the binary (build/bin/muse -> models/) or where this build's sources are.
    if (o->models.empty() && cfg.models.empty()) {
      o->models.push_back(default_model_path());
      if (o->aliases.empty()) o->aliases.push_back("muse-nano");
    }
    for (const auto& path : o->models) {
      server::ModelEntry e;
      e.path = path;
      e.aliases = o->aliases;
      if (e.aliases.empty()) e.aliases.push_back(std::filesystem::path(path).stem().string());
      e.tool_format = o->tool_format;
      e.chat_template_file = o->chat_template;
      e.mmproj = o->mmproj;
      cfg.models.push_back(e);
    }
    server::validate_serve_config(cfg);

    // Signals go to one waiting thread (blocked everywhere else before any thread starts).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server

    server::ApiKeys api_keys;
    if (!cfg.api_keys_file.empty()) api_keys = server::ApiKeys::load_file(cfg.api_keys_file);
    server::ModelRegistry registry;
    for (const auto& entry : cfg.models) {
      std::fprintf(stderr, "muse serve: loading %s\n", entry.path.c_str());
      registry.add(server::load_served_model(entry, cfg));
    }
    server::HttpServer http(cfg, registry, std::move(api_keys));
    const int bound = http.bind();
    std::fprintf(stderr, "muse serve: listening on http://%s:%d (%zu model%s)\n", cfg.host.c_str(),
                 bound, registry.models().size(), registry.models().size() == 1 ? "" : "s");
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      std::fprintf(stderr, "muse serve: stopping (signal %d)\n", sig);
      // End open streams first so that their handlers return, then stop listening.
      for (const auto& m : registry.models()) m->engine->shutdown();
      http.stop();
    });
    http.serve();
    // serve() also returns if listening failed; make the waiter exit either way.
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    return 0;
  };
}

}  // namespace muse::cli
