// The [mirror] section of `muse serve`'s config file: a primary (a model Muse serves or a
// remote OpenAI-compatible endpoint: Muse is then a gateway in front of it) and, optionally,
// a candidate that receives a deterministic sample of the traffic in the background.
//
//   [mirror]
//   primary = { model = "qwen2.5-0.5b" }                 # a served alias, or remote:
//   # primary = { url = "https://api.x.com/v1", model = "gpt-x", api_key_env = "X_KEY",
//   #             alias = "default" }  # alias: the model name clients send (default: model)
//   candidate = { url = "http://127.0.0.1:9000/v1", model = "new-model", api_key_env = "K" }
//   fraction = 0.02        # share of primary requests mirrored, in [0, 1]
//   queue = 64             # mirror requests waiting for the candidate; more are dropped
//   timeout_ms = 30000     # remote primary/candidate: connect + whole response
//   records = "mirror.jsonl"  # JSONL file (appended), or "store" (the operator's store)
//
// Credentials of remote endpoints are read from the environment variable api_key_env at
// start-up, never taken from the client's request. Unknown keys are errors.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>

namespace muse::server {

struct MirrorEndpoint {
  std::string model;        // served alias (local) or the remote provider's model name
  std::string url;          // "" = a model Muse serves; else base URL ending in /v1
  std::string api_key_env;  // remote only: environment variable holding the bearer key
  std::string alias;        // remote primary only: model name clients send ("" = model)

  bool configured() const { return !model.empty() || !url.empty(); }
  bool remote() const { return !url.empty(); }
  // The model name clients use to reach this endpoint.
  const std::string& client_model() const { return alias.empty() ? model : alias; }
  // The bearer key from api_key_env ("" when unset or not named). Read at call time.
  std::string api_key() const;
};

struct MirrorConfig {
  bool enabled = false;  // a [mirror] table was given
  MirrorEndpoint primary;
  MirrorEndpoint candidate;  // !configured(): gateway only, no mirroring
  double fraction = 0.02;
  int64_t queue = 64;
  int64_t timeout_ms = 30000;
  std::string records = "mirror.jsonl";

  bool mirroring() const { return enabled && candidate.configured() && fraction > 0; }
  bool records_in_store() const { return records == "store"; }
};

// Parses the [mirror] table. `file` names the config file in messages. Throws muse::Error
// naming the key and the problem (unknown key, wrong type, value out of range, a remote
// endpoint without model, a local one with api_key_env). The result is validated.
MirrorConfig parse_mirror_config(const toml::table& table, const std::string& file);

// Checks a MirrorConfig built in code (parse_mirror_config calls it). Throws muse::Error.
void validate_mirror_config(const MirrorConfig& config);

}  // namespace muse::server
