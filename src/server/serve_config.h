// Configuration of `muse serve`: command-line flags, optionally a TOML config file, with
// flags overriding the file.
//
// Config file (TOML):
//   host = "127.0.0.1"
//   port = 8080
//   api_keys_file = "keys.txt"
//   parallel = 4            # sequence slots per model
//   ctx_size = 4096         # positions per sequence
//   batch_size = 512        # tokens per forward step
//   max_queue = 64          # waiting requests per model before 503
//   threads = 0             # 0 = all cores
//   max_body_bytes = 33554432  # requests carry base64 images and audio
//   max_tokens_limit = 32768
//   [[model]]               # one table per model served
//   path = "models/qwen2.5-0.5b-q8_0.gguf"
//   aliases = ["qwen2.5-0.5b", "default"]
//   tool_format = "hermes"  # optional override of the detected tool-call format
//   chat_template = "file.jinja"  # optional override of the model's template
//   mmproj = "models/omni-mmproj.gguf"  # image/audio encoders of a GGUF model
//   [media]                 # images and audio in chat requests (all keys optional)
//   max_images = 16         # image parts per request
//   max_audio = 8           # audio parts per request
//   max_media_bytes = 67108864   # decoded media bytes per request (413 beyond)
//   max_image_pixels = 40000000  # width * height of one decoded image
//   max_audio_seconds = 600.0    # length of one audio input (integer or float)
//   fetch_timeout_ms = 10000     # whole download of one image URL, redirects included
//   allow_private_urls = false   # let image URLs reach private/loopback addresses
//   allowed_hosts = ["cdn.internal:8443"]  # "host" or "host:port" exempt from that rule
//   store = "sqlite:muse.db"   # keys, tiers, limits, usage ("postgresql://..." for replicas)
//   admin_key_file = "admin.key"  # one line: the admin key; required for /admin/...
//   [prices."qwen2.5-0.5b"]    # dollars per million tokens, for /admin/usage costs
//   prompt = 0.15
//   completion = 0.60
// Unknown keys are an error (catches typos).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "server/mirror_config.h"

namespace muse::server {

struct ModelEntry {
  std::string path;                  // GGUF file or Hugging Face directory
  std::vector<std::string> aliases;  // names clients use; the first is listed by /v1/models
  std::string tool_format;           // "" = detect from the chat template
  std::string chat_template_file;    // "" = the model's own template
  std::string mmproj;  // image/audio encoders (mmproj GGUF); "" = the HF directory's own
};

// The [media] section (defaults as in MediaLimits, media::ImageLimits, media::AudioLimits
// and FetchPolicy).
struct MediaConfig {
  int64_t max_images = 16;
  int64_t max_audio = 8;
  int64_t max_media_bytes = int64_t{64} << 20;
  int64_t max_image_pixels = 40'000'000;
  double max_audio_seconds = 600.0;
  int64_t fetch_timeout_ms = 10000;
  bool allow_private_urls = false;
  std::vector<std::string> allowed_hosts;
};

// Price of a model's tokens in dollars per million.
struct ModelPrice {
  double prompt = 0;
  double completion = 0;
};

struct ServeConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_keys_file;
  int64_t parallel = 4;
  int64_t ctx_size = 4096;
  int64_t batch_size = 512;
  int64_t max_queue = 64;
  int threads = 0;
  std::string kv_type = "f32";  // f32 (exact), f16, or q8_0 (Q8_0 keys and values)
  size_t max_body_bytes = 32u << 20;
  int64_t max_tokens_limit = 32768;  // largest max_tokens a request may ask for
  int64_t max_messages = 1024;
  int64_t max_n = 16;  // largest n (choices per request)
  int64_t max_json_depth = 64;
  std::vector<ModelEntry> models;
  MediaConfig media;
  MirrorConfig mirror;  // [mirror]: gateway to a remote primary, traffic mirroring
  // The operator's store (docs/server.md, "Keys, tiers and usage"): "" = none (only
  // api_keys_file keys, or an open server).
  std::string store;
  std::string admin_key_file;                // "" = the /admin API is disabled
  std::map<std::string, ModelPrice> prices;  // by model name (served id)
};

// Reads a TOML config file into `config` (keys present in the file replace the defaults).
// Throws muse::Error naming the file, key and problem (syntax error, wrong type, unknown
// key, port out of range, no model path, a [media] key of the wrong type).
void load_serve_config_file(const std::string& path, ServeConfig& config);

// Checks the finished configuration (at least one model, ranges of every number, unique
// aliases across models). Throws muse::Error.
void validate_serve_config(const ServeConfig& config);

}  // namespace muse::server
