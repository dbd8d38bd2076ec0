// Parsing and validation of the [mirror] config table.
#include "server/mirror_config.h"

#include <cstdlib>
#include <sstream>

#include "muse/error.h"
#include "server/toml_util.h"

namespace muse::server {

namespace {

[[noreturn]] void fail(const std::string& file, const std::string& key,
                       const std::string& problem) {
  throw Error(str_cat("config file ", file, ": key 'mirror.", key, "': ", problem));
}

std::string read_string(const std::string& file, const toml::node& node, const std::string& key) {
  const auto* s = node.as_string();
  if (s == nullptr) fail(file, key, str_cat("expected a string, got ", toml_type_name(node)));
  return s->get();
}

MirrorEndpoint read_endpoint(const std::string& file, const toml::node& node,
                             const std::string& key) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    fail(file, key,
         str_cat("expected a table like { model = \"alias\" } or { url = \"https://.../v1\", "
                 "model = \"name\", api_key_env = \"VAR\" }, got ",
                 toml_type_name(node)));
  }
  MirrorEndpoint endpoint;
  for (const auto& [k, v] : *table) {
    const std::string name(k.str());
    const std::string sub = key + "." + name;
    if (name == "model") {
      endpoint.model = read_string(file, v, sub);
    } else if (name == "url") {
      endpoint.url = read_string(file, v, sub);
    } else if (name == "api_key_env") {
      endpoint.api_key_env = read_string(file, v, sub);
    } else if (name == "alias") {
      endpoint.alias = read_string(file, v, sub);
    } else {
      fail(file, sub, "unknown key (expected model, url, api_key_env or alias)");
    }
  }
  return endpoint;
}

void check_endpoint(const MirrorEndpoint& e, const char* which, bool is_primary) {
  MUSE_CHECK(!e.model.empty(), "serve config: mirror.", which, " needs a model (",
             e.remote() ? "the remote provider's model name" : "a served model alias", ")");
  if (e.remote()) {
    MUSE_CHECK(e.url.rfind("http://", 0) == 0 || e.url.rfind("https://", 0) == 0,
               "serve config: mirror.", which, ".url '", e.url,
               "' must start with http:// or https://");
  } else {
    MUSE_CHECK(e.api_key_env.empty(), "serve config: mirror.", which,
               ".api_key_env is only for remote endpoints (with a url)");
  }
  MUSE_CHECK(e.alias.empty() || (is_primary && e.remote()), "serve config: mirror.", which,
             ".alias is only for a remote primary (the model name clients send)");
}

}  // namespace

std::string MirrorEndpoint::api_key() const {
  if (api_key_env.empty()) return "";
  const char* value = std::getenv(api_key_env.c_str());
  return value == nullptr ? "" : value;
}

MirrorConfig parse_mirror_config(const toml::table& table, const std::string& file) {
  MirrorConfig config;
  config.enabled = true;
  for (const auto& [k, v] : table) {
    const std::string key(k.str());
    if (key == "primary") {
      config.primary = read_endpoint(file, v, key);
    } else if (key == "candidate") {
      config.candidate = read_endpoint(file, v, key);
    } else if (key == "fraction") {
      if (const auto* i = v.as_integer()) {
        config.fraction = double(i->get());
      } else if (const auto* f = v.as_floating_point()) {
        config.fraction = f->get();
      } else {
        fail(file, key, str_cat("expected a number, got ", toml_type_name(v)));
      }
      if (!(config.fraction >= 0 && config.fraction <= 1))
        fail(file, key, str_cat(config.fraction, " is out of range [0, 1]"));
    } else if (key == "queue" || key == "timeout_ms") {
      const auto* i = v.as_integer();
      if (i == nullptr) fail(file, key, str_cat("expected an integer, got ", toml_type_name(v)));
      const int64_t value = i->get();
      const int64_t max = key == "queue" ? int64_t{1} << 20 : 3'600'000;
      if (value < 1 || value > max)
        fail(file, key, str_cat(value, " is out of range [1, ", max, "]"));
      (key == "queue" ? config.queue : config.timeout_ms) = value;
    } else if (key == "records") {
      config.records = read_string(file, v, key);
    } else {
      fail(file, key,
           "unknown key (expected primary, candidate, fraction, queue, timeout_ms or records)");
    }
  }
  try {
    validate_mirror_config(config);
  } catch (const Error& e) {
    throw Error(str_cat("config file ", file, ": ", e.what()));
  }
  return config;
}

void validate_mirror_config(const MirrorConfig& config) {
  if (!config.enabled) return;
  MUSE_CHECK(config.primary.configured(), "serve config: mirror.primary is missing");
  check_endpoint(config.primary, "primary", true);
  if (config.candidate.configured()) check_endpoint(config.candidate, "candidate", false);
  MUSE_CHECK(config.fraction >= 0 && config.fraction <= 1,
             "serve config: mirror.fraction = ", config.fraction, " is out of range [0, 1]");
  MUSE_CHECK(config.queue >= 1 && config.queue <= (int64_t{1} << 20),
             "serve config: mirror.queue = ", config.queue, " is out of range [1, 1048576]");
  MUSE_CHECK(config.timeout_ms >= 1 && config.timeout_ms <= 3'600'000,
             "serve config: mirror.timeout_ms = ", config.timeout_ms,
             " is out of range [1, 3600000]");
  MUSE_CHECK(!config.records.empty(),
             "serve config: mirror.records is empty (a JSONL path or "
             "\"store\")");
}

}  // namespace muse::server
