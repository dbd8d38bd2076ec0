// Raw media of a chat request: the image_url and input_audio content parts of the
// validated messages, resolved to bytes (data: URLs and base64 decoded, http(s) URLs
// fetched under a FetchPolicy), in order (messages in order, parts in order), with the
// per-request limits enforced. Decoding the bytes to pixels or samples is src/media's job.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/url_fetch.h"

namespace muse::server {

struct MediaPart {
  enum class Kind { Image, Audio } kind;
  std::vector<uint8_t> bytes;
  std::string format;  // "png"/"jpeg"/"webp"/"gif" (from a data URL), "wav"/"mp3"/...
                       // (input_audio.format); "" when unknown (fetched URLs)
  std::string detail;  // image_url.detail: "auto" (default), "low" or "high"; "" for audio
};

struct MediaLimits {
  int64_t max_images = 16;             // image parts per request (400 beyond)
  int64_t max_audio = 8;               // audio parts per request (400 beyond)
  int64_t max_media_bytes = 64 << 20;  // decoded bytes of all parts together (413 beyond)
};

// Whether a content part is an image or audio part (image_url, input_image,
// input_audio): the one definition the prompt builder, the media walker and usage
// metering share, so they always agree on which parts are media.
bool is_media_part(const nlohmann::ordered_json& part);
// Media parts in the messages (usage metering; 0 = a text-only request).
int64_t count_media_parts(const nlohmann::ordered_json& messages);

// Walks `messages` as validate_messages (openai_request.cpp) returns them and resolves
// every media part. Parts:
//   {"type": "image_url", "image_url": {"url": "data:image/png;base64,..." | "http(s)://...",
//                                       "detail"?: "auto"|"low"|"high"}}
//   {"type": "input_audio", "input_audio": {"data": "<base64>", "format": "wav"|...}}
// Errors are ApiErrors naming the part (e.g. messages[2].content[1].image_url.url):
// 400 for malformed data URLs or base64, unsupported media types, too many parts, media
// in a non-user message, refused/failed fetches; 413 when the total decoded bytes exceed
// max_media_bytes or a fetched body exceeds its limit (the fetch limit is the smaller of
// policy.max_bytes and what is left of max_media_bytes). A fetch timeout is a 400.
std::vector<MediaPart> collect_media_parts(const nlohmann::ordered_json& messages,
                                           const MediaLimits& limits, const FetchPolicy& policy);

// Strict standard base64 (RFC 4648 section 4: A-Z a-z 0-9 + /, padded to a multiple of
// 4, '=' only at the end, unused bits zero, no whitespace). nullopt if malformed.
std::optional<std::vector<uint8_t>> decode_base64_strict(std::string_view text);

// A data URL "data:<media type>[;param=value...];base64,<data>". Returns its decoded
// bytes and the media type (lower case, without parameters). Throws a 400 ApiError naming
// `param` when it is not a base64 data URL.
struct DataUrl {
  std::string media_type;
  std::vector<uint8_t> bytes;
};
DataUrl parse_data_url(std::string_view url, const std::string& param);

}  // namespace muse::server
