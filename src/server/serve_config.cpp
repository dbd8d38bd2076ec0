// `muse serve` configuration: TOML config file (toml++) and validation.
#include "server/serve_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "model/decoder.h"
#include "muse/error.h"
#include "server/toml_util.h"

namespace muse::server {

namespace {

// Reads typed values out of TOML nodes; every message names the file and the key.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const std::string& key, const std::string& problem) const {
    throw Error(str_cat("config file ", path_, ": key '", key, "': ", problem));
  }

  std::string string(const toml::node& node, const std::string& key) const {
    const auto* s = node.as_string();
    if (s == nullptr) fail(key, str_cat("expected a string, got ", toml_type_name(node)));
    return s->get();
  }

  int64_t integer(const toml::node& node, const std::string& key, int64_t min, int64_t max) const {
    const auto* i = node.as_integer();
    if (i == nullptr) fail(key, str_cat("expected an integer, got ", toml_type_name(node)));
    int64_t v = i->get();
    if (v < min || v > max) fail(key, str_cat(v, " is out of range [", min, ", ", max, "]"));
    return v;
  }

  double number(const toml::node& node, const std::string& key) const {
    if (const auto* i = node.as_integer()) return double(i->get());
    const auto* f = node.as_floating_point();
    if (f == nullptr) fail(key, str_cat("expected a number, got ", toml_type_name(node)));
    return f->get();
  }

  bool boolean(const toml::node& node, const std::string& key) const {
    const auto* b = node.as_boolean();
    if (b == nullptr) fail(key, str_cat("expected true or false, got ", toml_type_name(node)));
    return b->get();
  }

  std::vector<std::string> strings(const toml::node& node, const std::string& key) const {
    const auto* arr = node.as_array();
    if (arr == nullptr)
      fail(key, str_cat("expected an array of strings, got ", toml_type_name(node)));
    std::vector<std::string> out;
    for (size_t i = 0; i < arr->size(); ++i) {
      out.push_back(string((*arr)[i], str_cat(key, "[", i, "]")));
    }
    return out;
  }

 private:
  const std::string& path_;
};

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

ModelEntry read_model(const Reader& reader, const toml::node& node, size_t index) {
  const std::string prefix = str_cat("model[", index, "]");
  const auto* table = node.as_table();
  if (table == nullptr)
    reader.fail(prefix, str_cat("expected a table, got ", toml_type_name(node)));
  ModelEntry entry;
  for (const auto& [k, v] : *table) {
    const std::string name(k.str());
    const std::string key = prefix + "." + name;
    if (name == "path") {
      entry.path = reader.string(v, key);
    } else if (name == "aliases") {
      entry.aliases = reader.strings(v, key);
    } else if (name == "tool_format") {
      entry.tool_format = reader.string(v, key);
    } else if (name == "chat_template") {
      entry.chat_template_file = reader.string(v, key);
    } else if (name == "mmproj") {
      entry.mmproj = reader.string(v, key);
    } else {
      reader.fail(key, "unknown key");
    }
  }
  if (entry.path.empty()) reader.fail(prefix + ".path", "every [[model]] needs a path");
  return entry;
}

void read_media(const Reader& reader, const toml::node& node, MediaConfig& media) {
  const auto* table = node.as_table();
  if (table == nullptr)
    reader.fail("media", str_cat("expected a table, got ", toml_type_name(node)));
  for (const auto& [k, v] : *table) {
    const std::string name(k.str());
    const std::string key = "media." + name;
    if (name == "max_images") {
      media.max_images = reader.integer(v, key, 0, kInt64Max);
    } else if (name == "max_audio") {
      media.max_audio = reader.integer(v, key, 0, kInt64Max);
    } else if (name == "max_media_bytes") {
      media.max_media_bytes = reader.integer(v, key, 0, kInt64Max);
    } else if (name == "max_image_pixels") {
      media.max_image_pixels = reader.integer(v, key, 1, kInt64Max);
    } else if (name == "max_audio_seconds") {
      media.max_audio_seconds = reader.number(v, key);
    } else if (name == "fetch_timeout_ms") {
      media.fetch_timeout_ms = reader.integer(v, key, 1, kIntMax);
    } else if (name == "allow_private_urls") {
      media.allow_private_urls = reader.boolean(v, key);
    } else if (name == "allowed_hosts") {
      media.allowed_hosts = reader.strings(v, key);
    } else {
      reader.fail(key, "unknown key");
    }
  }
}

void read_prices(const Reader& reader, const toml::node& node,
                 std::map<std::string, ModelPrice>& prices) {
  const auto* table = node.as_table();
  if (table == nullptr)
    reader.fail("prices", str_cat("expected a table, got ", toml_type_name(node)));
  for (const auto& [model, entry] : *table) {
    const std::string prefix = str_cat("prices.", model.str());
    const auto* fields = entry.as_table();
    if (fields == nullptr)
      reader.fail(prefix, str_cat("expected a table, got ", toml_type_name(entry)));
    ModelPrice price;
    for (const auto& [k, v] : *fields) {
      const std::string name(k.str());
      const std::string key = prefix + "." + name;
      double* target = name == "prompt"       ? &price.prompt
                       : name == "completion" ? &price.completion
                                              : nullptr;
      if (target == nullptr) reader.fail(key, "unknown key (prompt or completion)");
      *target = reader.number(v, key);
      if (!(*target >= 0)) reader.fail(key, "a price must not be negative");
    }
    prices[std::string(model.str())] = price;
  }
}

}  // namespace

void load_serve_config_file(const std::string& path, ServeConfig& config) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    // Line 0 means there is no position (the file could not be opened).
    const std::string position = where.line == 0 ? "" : str_cat(":", where.line, ":", where.column);
    throw Error(str_cat("config file ", path, position, ": ", e.description()));
  }
  const Reader reader(path);
  // Read into a copy so a bad file leaves `config` untouched.
  ServeConfig out = config;
  using Setter = std::function<void(const toml::node&, const std::string&)>;
  const std::map<std::string, Setter> setters = {
      {"host", [&](auto& v, auto& k) { out.host = reader.string(v, k); }},
      {"port", [&](auto& v, auto& k) { out.port = int(reader.integer(v, k, 0, 65535)); }},
      {"api_keys_file", [&](auto& v, auto& k) { out.api_keys_file = reader.string(v, k); }},
      {"parallel", [&](auto& v, auto& k) { out.parallel = reader.integer(v, k, 1, kInt64Max); }},
      {"ctx_size", [&](auto& v, auto& k) { out.ctx_size = reader.integer(v, k, 1, kInt64Max); }},
      {"batch_size",
       [&](auto& v, auto& k) { out.batch_size = reader.integer(v, k, 1, kInt64Max); }},
      {"max_queue", [&](auto& v, auto& k) { out.max_queue = reader.integer(v, k, 0, kInt64Max); }},
      {"threads", [&](auto& v, auto& k) { out.threads = int(reader.integer(v, k, 0, kIntMax)); }},
      {"kv_type", [&](auto& v, auto& k) { out.kv_type = reader.string(v, k); }},
      {"max_body_bytes",
       [&](auto& v, auto& k) { out.max_body_bytes = size_t(reader.integer(v, k, 1, kInt64Max)); }},
      {"max_tokens_limit",
       [&](auto& v, auto& k) { out.max_tokens_limit = reader.integer(v, k, 1, kInt64Max); }},
      {"max_messages",
       [&](auto& v, auto& k) { out.max_messages = reader.integer(v, k, 1, kInt64Max); }},
      {"max_n", [&](auto& v, auto& k) { out.max_n = reader.integer(v, k, 1, kInt64Max); }},
      {"max_json_depth",
       [&](auto& v, auto& k) { out.max_json_depth = reader.integer(v, k, 1, kInt64Max); }},
      {"media", [&](auto& v, auto&) { read_media(reader, v, out.media); }},
      {"store", [&](auto& v, auto& k) { out.store = reader.string(v, k); }},
      {"admin_key_file", [&](auto& v, auto& k) { out.admin_key_file = reader.string(v, k); }},
      {"prices", [&](auto& v, auto&) { read_prices(reader, v, out.prices); }},
      {"mirror",
       [&](auto& v, auto& k) {
         const auto* t = v.as_table();
         if (t == nullptr) reader.fail(k, str_cat("expected a table, got ", toml_type_name(v)));
         out.mirror = parse_mirror_config(*t, path);
       }},
      {"model",
       [&](auto& v, auto& k) {
         const auto* arr = v.as_array();
         if (arr == nullptr || !arr->is_array_of_tables()) {
           reader.fail(k,
                       str_cat("expected an array of tables ([[model]]), got ", toml_type_name(v)));
         }
         out.models.clear();  // the file's models replace any given before
         for (size_t i = 0; i < arr->size(); ++i)
           out.models.push_back(read_model(reader, (*arr)[i], i));
       }},
  };
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    auto it = setters.find(key);
    if (it == setters.end()) reader.fail(key, "unknown key");
    it->second(v, key);
  }
  config = std::move(out);
}

void validate_serve_config(const ServeConfig& config) {
  validate_mirror_config(config.mirror);
  // A local primary or candidate must be one of the served models.
  for (const MirrorEndpoint* e : {&config.mirror.primary, &config.mirror.candidate}) {
    if (!config.mirror.enabled || !e->configured() || e->remote()) continue;
    bool served = false;
    for (const auto& m : config.models)
      served = served || std::find(m.aliases.begin(), m.aliases.end(), e->model) != m.aliases.end();
    MUSE_CHECK(served, "serve config: mirror model '", e->model, "' is not a served model alias");
  }
  auto check_range = [](const char* name, int64_t v, int64_t min, int64_t max) {
    MUSE_CHECK(v >= min && v <= max, "serve config: ", name, " = ", v, " is out of range [", min,
               ", ", max, "]");
  };
  MUSE_CHECK(!config.host.empty(), "serve config: host is empty");
  check_range("port", config.port, 0, 65535);  // 0 = any free port
  // Upper limits are generous; they catch typos (an extra digit) before allocating.
  check_range("parallel", config.parallel, 1, 4096);
  check_range("ctx_size", config.ctx_size, 1, int64_t{1} << 24);
  check_range("batch_size", config.batch_size, 1, int64_t{1} << 20);
  check_range("max_queue", config.max_queue, 0, int64_t{1} << 20);
  check_range("threads", config.threads, 0, 4096);
  MUSE_CHECK(kv_type_from_name(config.kv_type).has_value(), "serve config: kv_type '",
             config.kv_type, "' is not ", kKvTypeNames);
  MUSE_CHECK(config.max_body_bytes >= 1 && config.max_body_bytes <= (size_t{1} << 32),
             "serve config: max_body_bytes = ", config.max_body_bytes, " is out of range [1, ",
             size_t{1} << 32, "]");
  check_range("max_tokens_limit", config.max_tokens_limit, 1, int64_t{1} << 24);
  check_range("max_messages", config.max_messages, 1, int64_t{1} << 20);
  check_range("max_n", config.max_n, 1, 1024);
  check_range("max_json_depth", config.max_json_depth, 1, 10000);

  const MediaConfig& media = config.media;
  check_range("media.max_images", media.max_images, 0, 4096);
  check_range("media.max_audio", media.max_audio, 0, 4096);
  check_range("media.max_media_bytes", media.max_media_bytes, 0, int64_t{1} << 34);
  check_range("media.max_image_pixels", media.max_image_pixels, 1, int64_t{1} << 32);
  check_range("media.fetch_timeout_ms", media.fetch_timeout_ms, 1, 600'000);
  MUSE_CHECK(media.max_audio_seconds > 0 && media.max_audio_seconds <= 86400,
             "serve config: media.max_audio_seconds = ", media.max_audio_seconds,
             " is out of range (0, 86400]");
  for (const std::string& host : media.allowed_hosts)
    MUSE_CHECK(!host.empty(), "serve config: media.allowed_hosts has an empty entry");

  MUSE_CHECK(!config.models.empty(), "serve config: no model to serve");
  std::set<std::string> aliases;
  for (size_t i = 0; i < config.models.size(); ++i) {
    const ModelEntry& m = config.models[i];
    MUSE_CHECK(!m.path.empty(), "serve config: model ", i, " has no path");
    for (const std::string& alias : m.aliases) {
      MUSE_CHECK(!alias.empty(), "serve config: model ", m.path, " has an empty alias");
      MUSE_CHECK(aliases.insert(alias).second, "serve config: alias '", alias,
                 "' is given more than once");
    }
  }
}

}  // namespace muse::server
