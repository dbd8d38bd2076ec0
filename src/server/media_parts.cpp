// Resolving image_url / input_audio content parts to bytes (see media_parts.h).
#include "server/media_parts.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "server/api_error.h"

namespace muse::server {

using nlohmann::ordered_json;

namespace {

constexpr std::array<int8_t, 256> make_base64_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = int8_t(i);
  return t;
}
constexpr std::array<int8_t, 256> kBase64 = make_base64_table();

// Decoded size of a well-formed base64 text of `n` characters (an upper bound otherwise):
// lets the limits be checked before anything is allocated.
int64_t base64_decoded_size(std::string_view text) {
  size_t pad = 0;
  while (pad < 2 && pad < text.size() && text[text.size() - 1 - pad] == '=') ++pad;
  return int64_t(text.size() / 4 * 3 + (text.size() % 4) * 3 / 4) - int64_t(pad);
}

ApiError too_large(const std::string& message, const std::string& param) {
  return ApiError(413, "invalid_request_error", message, param, "media_too_large");
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Image media types accepted in data URLs, and the format name they give.
std::string image_format_of(const std::string& media_type) {
  if (media_type == "image/png") return "png";
  if (media_type == "image/jpeg" || media_type == "image/jpg") return "jpeg";
  if (media_type == "image/webp") return "webp";
  if (media_type == "image/gif") return "gif";
  return "";
}

class Walker {
 public:
  Walker(const MediaLimits& limits, const FetchPolicy& policy) : limits_(limits), policy_(policy) {}

  void message(const ordered_json& m, size_t i) {
    if (!m.is_object()) return;
    const auto content = m.find("content");
    if (content == m.end() || !content->is_array()) return;
    const auto role = m.find("role");
    const bool is_user = role != m.end() && role->is_string() && *role == "user";
    for (size_t j = 0; j < content->size(); ++j) {
      const ordered_json& part = (*content)[j];
      if (!part.is_object()) continue;  // validate_messages refused it already
      const auto type = part.find("type");
      if (type == part.end() || !type->is_string()) continue;
      const std::string where = str_cat("messages[", i, "].content[", j, "]");
      const std::string t = *type;
      if (!is_media_part(part)) continue;
      if (!is_user)
        throw invalid_request(str_cat(where, ": only user messages may contain ", t, " parts"),
                              where, "invalid_content_part");
      if (t == "input_audio")
        audio(part, where);
      else
        image(part, t, where);
    }
  }

  std::vector<MediaPart> take() { return std::move(parts_); }

 private:
  void check_fits(int64_t n, const std::string& param) const {
    if (n > limits_.max_media_bytes - total_bytes_)
      throw too_large(str_cat(param, ": the request's media exceed ", limits_.max_media_bytes,
                              " bytes in total"),
                      param);
  }
  void count_bytes(int64_t n, const std::string& param) {
    check_fits(n, param);
    total_bytes_ += n;
  }

  void image(const ordered_json& part, const std::string& t, const std::string& where) {
    if (++images_ > limits_.max_images)
      throw invalid_request(
          str_cat("too many images in the request (limit ", limits_.max_images, ")"), where,
          "too_many_images");
    const auto field = part.find("image_url");
    std::string param = where + ".image_url";
    const ordered_json* url = nullptr;
    MediaPart out{MediaPart::Kind::Image, {}, "", "auto"};
    if (field != part.end() && field->is_string()) {
      url = &*field;
    } else if (field != part.end() && field->is_object()) {
      param += ".url";
      const auto u = field->find("url");
      if (u != field->end()) url = &*u;
      const auto detail = field->find("detail");
      if (detail != field->end() && !detail->is_null()) {
        if (!detail->is_string() || (*detail != "auto" && *detail != "low" && *detail != "high"))
          throw invalid_request(where + ".image_url.detail must be auto, low or high",
                                where + ".image_url.detail");
        out.detail = *detail;
      }
    }
    if (url == nullptr || !url->is_string())
      throw invalid_request(str_cat(param, " must be a string (", t, " part)"), param);
    const std::string& text = url->get_ref<const std::string&>();
    if (text.size() >= 5 && lower(text.substr(0, 5)) == "data:") {
      // The encoded length bounds the decoded size: refuse before decoding.
      const size_t comma = text.find(',');
      check_fits(base64_decoded_size(comma == std::string::npos
                                         ? std::string_view()
                                         : std::string_view(text).substr(comma + 1)),
                 param);
      DataUrl data = parse_data_url(text, param);
      out.format = image_format_of(data.media_type);
      if (out.format.empty())
        throw invalid_request(str_cat(param, ": data URL media type '", data.media_type,
                                      "' is not an image type (image/png, image/jpeg, "
                                      "image/webp, image/gif)"),
                              param, "invalid_image_url");
      out.bytes = std::move(data.bytes);
    } else {
      FetchPolicy policy = policy_;
      policy.max_bytes = std::min(policy.max_bytes, limits_.max_media_bytes - total_bytes_);
      try {
        out.bytes = fetch_url(text, policy);
      } catch (const FetchError& e) {
        throw ApiError(e.status, "invalid_request_error", str_cat(param, ": ", e.what()), param,
                       e.code);
      }
    }
    if (out.bytes.empty())
      throw invalid_request(param + ": the image is empty", param, "invalid_image_url");
    count_bytes(int64_t(out.bytes.size()), param);
    parts_.push_back(std::move(out));
  }

  void audio(const ordered_json& part, const std::string& where) {
    if (++audio_ > limits_.max_audio)
      throw invalid_request(
          str_cat("too many audio inputs in the request (limit ", limits_.max_audio, ")"), where,
          "too_many_audio");
    const auto field = part.find("input_audio");
    if (field == part.end() || !field->is_object())
      throw invalid_request(where + ".input_audio must be an object", where + ".input_audio");
    const auto data = field->find("data");
    const auto format = field->find("format");
    if (data == field->end() || !data->is_string())
      throw invalid_request(where + ".input_audio.data must be a base64 string",
                            where + ".input_audio.data");
    if (format == field->end() || !format->is_string())
      throw invalid_request(where + ".input_audio.format must be a string",
                            where + ".input_audio.format");
    const std::string param = where + ".input_audio.data";
    const std::string& text = data->get_ref<const std::string&>();
    check_fits(base64_decoded_size(text), param);
    std::optional<std::vector<uint8_t>> bytes = decode_base64_strict(text);
    if (!bytes) throw invalid_request(param + " is not valid base64", param, "invalid_base64");
    if (bytes->empty()) throw invalid_request(param + " is empty", param, "invalid_base64");
    count_bytes(int64_t(bytes->size()), param);
    parts_.push_back({MediaPart::Kind::Audio, std::move(*bytes), lower(*format), ""});
  }

  const MediaLimits& limits_;
  const FetchPolicy& policy_;
  int64_t images_ = 0, audio_ = 0, total_bytes_ = 0;
  std::vector<MediaPart> parts_;
};

}  // namespace

std::optional<std::vector<uint8_t>> decode_base64_strict(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  if (!text.empty() && text.back() == '=')
    pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const size_t valid = last ? 4 - pad : 4;
    uint32_t group = 0;
    for (size_t k = 0; k < 4; ++k) {
      int v = 0;
      if (k < valid) {
        v = kBase64[static_cast<unsigned char>(text[i + k])];
        if (v < 0) return std::nullopt;
      }
      group = group << 6 | uint32_t(v);
    }
    // Bits below the last encoded byte must be zero (one canonical text per byte string).
    if (valid == 2 && (group & 0xFFFF) != 0) return std::nullopt;
    if (valid == 3 && (group & 0xFF) != 0) return std::nullopt;
    out.push_back(uint8_t(group >> 16));
    if (valid >= 3) out.push_back(uint8_t(group >> 8));
    if (valid == 4) out.push_back(uint8_t(group));
  }
  return out;
}

DataUrl parse_data_url(std::string_view url, const std::string& param) {
  auto fail = [&](const std::string& problem) {
    return invalid_request(str_cat(param, ": ", problem), param, "invalid_image_url");
  };
  if (url.size() < 5 || lower(std::string(url.substr(0, 5))) != "data:")
    throw fail("not a data URL");
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) throw fail("data URL has no ',' before its data");
  // "<media type>[;param=value]*;base64"
  const std::string header = lower(std::string(url.substr(5, comma - 5)));
  const size_t semi = header.find(';');
  DataUrl out;
  out.media_type = header.substr(0, semi);
  if (out.media_type.empty()) throw fail("data URL has no media type");
  const size_t last_semi = header.rfind(';');
  if (semi == std::string::npos || header.substr(last_semi + 1) != "base64")
    throw fail("data URL must be base64 encoded (';base64,')");
  std::optional<std::vector<uint8_t>> bytes = decode_base64_strict(url.substr(comma + 1));
  if (!bytes) throw fail("data URL contains invalid base64");
  out.bytes = std::move(*bytes);
  return out;
}

bool is_media_part(const ordered_json& part) {
  if (!part.is_object()) return false;
  const auto type = part.find("type");
  if (type == part.end() || !type->is_string()) return false;
  const std::string& t = type->get_ref<const std::string&>();
  return t == "image_url" || t == "input_image" || t == "input_audio";
}

int64_t count_media_parts(const ordered_json& messages) {
  int64_t n = 0;
  for (const auto& m : messages) {
    if (!m.is_object()) continue;
    auto content = m.find("content");
    if (content == m.end() || !content->is_array()) continue;
    for (const auto& part : *content) n += is_media_part(part) ? 1 : 0;
  }
  return n;
}

std::vector<MediaPart> collect_media_parts(const ordered_json& messages, const MediaLimits& limits,
                                           const FetchPolicy& policy) {
  if (!messages.is_array()) throw invalid_request("messages must be an array", "messages");
  Walker walker(limits, policy);
  for (size_t i = 0; i < messages.size(); ++i) walker.message(messages[i], i);
  return walker.take();
}

}  // namespace muse::server
