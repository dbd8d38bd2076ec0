// Subcommands of the `muse` program; each registers its options on a CLI11 app
// and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace muse::cli {

using Runner = std::function<int()>;

Runner add_run(CLI::App& app);
Runner add_serve(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_convert(CLI::App& app);
Runner add_quantize(CLI::App& app);
Runner add_tokenize(CLI::App& app);
Runner add_template(CLI::App& app);
Runner add_debug_logits(CLI::App& debug);
Runner add_debug_make_model(CLI::App& debug);
Runner add_debug_media(CLI::App& debug);
Runner add_keys_create(CLI::App& app);
Runner add_keys_list(CLI::App& app);
Runner add_keys_revoke(CLI::App& app);
Runner add_tiers_set(CLI::App& app);
Runner add_tiers_list(CLI::App& app);
Runner add_access_list(CLI::App& app);
Runner add_access_approve(CLI::App& app);
Runner add_access_reject(CLI::App& app);
Runner add_usage(CLI::App& app);
Runner add_grade(CLI::App& app);
Runner add_eval(CLI::App& app);

}  // namespace muse::cli
