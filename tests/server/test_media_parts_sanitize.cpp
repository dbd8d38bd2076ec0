// Media content parts (run under ASan+UBSan by `make test`): chat request validation of
// image_url / input_audio parts, data URL and base64 decoding, limits, order, and random
// JSON shapes that must only ever produce ApiError / muse::Error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "server/api_error.h"
#include "server/media_parts.h"
#include "server/openai_request.h"
#include "server/serve_config.h"

namespace muse::server {
namespace {

using nlohmann::ordered_json;

// The 8-byte PNG signature and "IHDR" chunk start, base64 by hand:
// 89 50 4E 47 0D 0A 1A 0A 00 00 00 0D 49 48 44 52
const std::vector<uint8_t> kPngHead = {0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A,
                                       0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52};
const char* kPngHeadB64 = "iVBORw0KGgoAAAANSUhEUg==";
// "RIFF" -> UklGRg==
const char* kRiffB64 = "UklGRg==";

ordered_json image_part(const std::string& url) {
  return {{"type", "image_url"}, {"image_url", {{"url", url}}}};
}
ordered_json audio_part(const std::string& data, const std::string& format = "wav") {
  return {{"type", "input_audio"}, {"input_audio", {{"data", data}, {"format", format}}}};
}
ordered_json text_part(const std::string& text) {
  return {{"type", "text"}, {"text", text}};
}
ordered_json user(ordered_json parts) {
  return {{"role", "user"}, {"content", std::move(parts)}};
}

ordered_json chat(ordered_json messages) {
  return {{"model", "m"}, {"messages", std::move(messages)}};
}

// Validates like the server (parse_chat_request) and collects the media.
std::vector<MediaPart> collect(const ordered_json& messages, const MediaLimits& limits = {}) {
  const ChatRequest req = parse_chat_request(chat(messages), RequestLimits{});
  return collect_media_parts(req.messages, limits, FetchPolicy{});
}

// The ApiError `f` throws.
template <typename F>
ApiError api_error(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ApiError(0, "", "");
}

TEST(Base64Strict, DecodesCanonicalTextOnly) {
  EXPECT_EQ(decode_base64_strict(""), std::vector<uint8_t>{});
  EXPECT_EQ(decode_base64_strict("TWFu"), (std::vector<uint8_t>{'M', 'a', 'n'}));
  EXPECT_EQ(decode_base64_strict("TWE="), (std::vector<uint8_t>{'M', 'a'}));
  EXPECT_EQ(decode_base64_strict("TQ=="), (std::vector<uint8_t>{'M'}));
  EXPECT_EQ(decode_base64_strict(kPngHeadB64), kPngHead);
  EXPECT_EQ(decode_base64_strict("+/+/"), (std::vector<uint8_t>{0xFB, 0xFF, 0xBF}));
  for (const char* bad : {"TWF", "TQ", "T===", "====", "TW=u", "TWFu\n", " TWFu", "TWF-", "TWF_",
                          "TR==", "TWF=TWFu", "TWE=TWE=", "TQ=\x80", "\xff\xff\xff\xff"})
    EXPECT_FALSE(decode_base64_strict(bad).has_value()) << bad;
}

TEST(DataUrl, ParsesBase64DataUrls) {
  const DataUrl d = parse_data_url(std::string("data:image/png;base64,") + kPngHeadB64, "p");
  EXPECT_EQ(d.media_type, "image/png");
  EXPECT_EQ(d.bytes, kPngHead);
  const DataUrl e = parse_data_url("DATA:Image/JPEG;name=a.jpg;BASE64,TWFu", "p");
  EXPECT_EQ(e.media_type, "image/jpeg");
  EXPECT_EQ(e.bytes, (std::vector<uint8_t>{'M', 'a', 'n'}));
  for (const char* bad : {"data:image/png;base64", "data:image/png,TWFu", "data:;base64,TWFu",
                          "data:image/png;base64,TWF", "data:image/png;base64,TW Fu",
                          "http://x/y.png", "data:image/png;base64;charset=x,TWFu"}) {
    const ApiError e = api_error([&] { parse_data_url(bad, "the.param"); });
    EXPECT_EQ(e.status, 400) << bad;
    EXPECT_EQ(e.param, "the.param") << bad;
  }
}

TEST(MediaParts, RoundTripsImagesAndAudioInOrder) {
  const std::string png = std::string("data:image/png;base64,") + kPngHeadB64;
  const ordered_json messages = {
      {{"role", "system"}, {"content", "look"}},
      user({text_part("first"), image_part(png), audio_part(kRiffB64, "WAV")}),
      {{"role", "assistant"}, {"content", "ok"}},
      user({{{"type", "image_url"}, {"image_url", "data:image/gif;base64,R0lGOA=="}},
            {{"type", "input_image"},
             {"image_url", "data:image/webp;base64,UklGRg=="},
             {"detail", "low"}},
            {{"type", "image_url"},
             {"image_url", {{"url", "data:image/jpeg;base64,/9j/"}, {"detail", "high"}}}}})};
  const std::vector<MediaPart> parts = collect(messages);
  ASSERT_EQ(parts.size(), 5u);
  EXPECT_EQ(parts[0].kind, MediaPart::Kind::Image);
  EXPECT_EQ(parts[0].bytes, kPngHead);
  EXPECT_EQ(parts[0].format, "png");
  EXPECT_EQ(parts[0].detail, "auto");
  EXPECT_EQ(parts[1].kind, MediaPart::Kind::Audio);
  EXPECT_EQ(parts[1].bytes, (std::vector<uint8_t>{'R', 'I', 'F', 'F'}));
  EXPECT_EQ(parts[1].format, "wav");
  EXPECT_EQ(parts[2].format, "gif");
  EXPECT_EQ(parts[2].bytes, (std::vector<uint8_t>{'G', 'I', 'F', '8'}));
  EXPECT_EQ(parts[3].format, "webp");
  EXPECT_EQ(parts[3].detail, "low");
  EXPECT_EQ(parts[4].format, "jpeg");
  EXPECT_EQ(parts[4].detail, "high");
  EXPECT_EQ(parts[4].bytes, (std::vector<uint8_t>{0xFF, 0xD8, 0xFF}));
}

TEST(MediaParts, ValidationNormalisesImageParts) {
  const ordered_json messages = {
      user({{{"type", "image_url"}, {"image_url", "data:image/gif;base64,R0lGOA=="}},
            {{"type", "input_image"}, {"image_url", "https://x.test/a.png"}, {"detail", "low"}},
            text_part("t")})};
  const ChatRequest req = parse_chat_request(chat(messages), RequestLimits{});
  const ordered_json& content = req.messages[0]["content"];
  EXPECT_EQ(content[0],
            ordered_json::parse(
                R"({"type":"image_url","image_url":{"url":"data:image/gif;base64,R0lGOA=="}})"));
  EXPECT_EQ(
      content[1],
      ordered_json::parse(
          R"({"type":"image_url","image_url":{"url":"https://x.test/a.png","detail":"low"}})"));
  EXPECT_EQ(content[2], text_part("t"));
}

TEST(MediaParts, ErrorsNameTheParameter) {
  const std::string png = std::string("data:image/png;base64,") + kPngHeadB64;
  struct Case {
    ordered_json messages;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      // Malformed data URLs, by the walker.
      {{user("x"), user({text_part("a"), image_part("data:image/png;base64,@@@@")})},
       400,
       "messages[1].content[1].image_url.url"},
      {{user({image_part("data:image/png;base64")})}, 400, "messages[0].content[0].image_url.url"},
      {{user({image_part("data:image/png,plain")})}, 400, "messages[0].content[0].image_url.url"},
      {{user({image_part("data:text/plain;base64,TWFu")})},
       400,
       "messages[0].content[0].image_url.url"},
      {{user({image_part("data:image/png;base64,")})}, 400, "messages[0].content[0].image_url.url"},
      {{user({image_part("ftp://x.test/a.png")})}, 400, "messages[0].content[0].image_url.url"},
      {{user({image_part("http://127.0.0.1/a.png")})}, 400, "messages[0].content[0].image_url.url"},
      {{user({audio_part("UklGRg")})}, 400, "messages[0].content[0].input_audio.data"},
      {{user({audio_part("Ukl GRg==")})}, 400, "messages[0].content[0].input_audio.data"},
      // Shapes, by validation.
      {{user({{{"type", "image_url"}}})}, 400, "messages[0].content[0].image_url"},
      {{user({{{"type", "image_url"}, {"image_url", {{"url", 5}}}}})},
       400,
       "messages[0].content[0].image_url.url"},
      {{user({{{"type", "image_url"}, {"image_url", {{"url", png}, {"detail", "max"}}}}})},
       400,
       "messages[0].content[0].image_url.detail"},
      {{user({{{"type", "input_audio"}, {"input_audio", {{"data", kRiffB64}}}}})},
       400,
       "messages[0].content[0].input_audio.format"},
      {{user({{{"type", "input_audio"}, {"input_audio", "UklGRg=="}}})},
       400,
       "messages[0].content[0].input_audio"},
      {{user({{{"type", "video_url"}}})}, 400, "messages[0].content[0].type"},
      // Media outside user messages.
      {{user("hi"), {{"role", "assistant"}, {"content", {image_part(png)}}}},
       400,
       "messages[1].content[0]"},
      {{{{"role", "system"}, {"content", {audio_part(kRiffB64)}}}}, 400, "messages[0].content[0]"},
  };
  for (const Case& c : cases) {
    const ApiError e = api_error([&] { collect(c.messages); });
    EXPECT_EQ(e.status, c.status) << c.messages.dump();
    EXPECT_EQ(e.param, c.param) << c.messages.dump() << ": " << e.what();
  }
}

TEST(MediaParts, AssistantImagesAreRefusedByTheWalkerToo) {
  // Messages that did not go through validation (the walker's own check).
  const ordered_json messages = {
      {{"role", "assistant"}, {"content", {image_part("data:image/gif;base64,R0lGOA==")}}}};
  const ApiError e = api_error([&] { collect_media_parts(messages, {}, {}); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "messages[0].content[0]");
}

TEST(MediaParts, EnforcesLimits) {
  const std::string gif = "data:image/gif;base64,R0lGOA==";  // 4 bytes
  const ordered_json two_images = ordered_json::array({user({image_part(gif), image_part(gif)})});
  const ordered_json three_images =
      ordered_json::array({user({image_part(gif)}), user({image_part(gif), image_part(gif)})});
  const ordered_json two_audio =
      ordered_json::array({user({audio_part(kRiffB64), audio_part(kRiffB64)})});
  const ordered_json twelve_bytes =
      ordered_json::array({user({image_part(gif), image_part(gif), audio_part(kRiffB64)})});
  const ordered_json sixteen_bytes = ordered_json::array(
      {user({image_part(gif), image_part(gif), audio_part(kRiffB64), image_part(gif)})});
  MediaLimits limits;
  limits.max_images = 2;
  limits.max_audio = 1;
  limits.max_media_bytes = 12;
  EXPECT_EQ(collect(two_images, limits).size(), 2u);
  ApiError e = api_error([&] { collect(three_images, limits); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "too_many_images");
  EXPECT_EQ(e.param, "messages[1].content[1]");
  e = api_error([&] { collect(two_audio, limits); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "too_many_audio");
  // 4 + 4 + 4 = 12 bytes fit exactly; 4 more do not (413).
  limits.max_images = 16;
  EXPECT_EQ(collect(twelve_bytes, limits).size(), 3u);
  e = api_error([&] { collect(sixteen_bytes, limits); });
  EXPECT_EQ(e.status, 413);
  EXPECT_EQ(e.param, "messages[0].content[3].image_url.url");
  // A single part bigger than the whole budget is refused before it is decoded.
  limits.max_media_bytes = 1000;
  const ordered_json big = ordered_json::array({user({audio_part(std::string(4000, 'A'))})});
  e = api_error([&] { collect(big, limits); });
  EXPECT_EQ(e.status, 413);
  EXPECT_EQ(e.param, "messages[0].content[0].input_audio.data");
}

// The [media] section of the serve config file.
TEST(MediaConfig, ReadsTheMediaSection) {
  namespace fs = std::filesystem;
  fs::create_directories(MUSE_TEST_TMP);
  const std::string path = (fs::path(MUSE_TEST_TMP) / "media_config.toml").string();
  auto load = [&](const std::string& text) {
    std::ofstream(path) << text;
    ServeConfig config;
    load_serve_config_file(path, config);
    return config;
  };
  const ServeConfig defaults;
  EXPECT_EQ(defaults.media.max_images, 16);
  EXPECT_EQ(defaults.media.max_media_bytes, 64 << 20);
  EXPECT_FALSE(defaults.media.allow_private_urls);
  const ServeConfig c = load(R"([media]
max_images = 4
max_audio = 2
max_media_bytes = 1000
max_image_pixels = 1000000
max_audio_seconds = 30
fetch_timeout_ms = 2500
allow_private_urls = true
allowed_hosts = ["cdn.internal", "127.0.0.1:9000"]
)");
  EXPECT_EQ(c.media.max_images, 4);
  EXPECT_EQ(c.media.max_audio, 2);
  EXPECT_EQ(c.media.max_media_bytes, 1000);
  EXPECT_EQ(c.media.max_image_pixels, 1000000);
  EXPECT_DOUBLE_EQ(c.media.max_audio_seconds, 30.0);
  EXPECT_EQ(c.media.fetch_timeout_ms, 2500);
  EXPECT_TRUE(c.media.allow_private_urls);
  EXPECT_EQ(c.media.allowed_hosts, (std::vector<std::string>{"cdn.internal", "127.0.0.1:9000"}));
  EXPECT_DOUBLE_EQ(load("[media]\nmax_audio_seconds = 12.5\n").media.max_audio_seconds, 12.5);
  for (const char* bad : {"[media]\nmax_imagez = 3\n", "[media]\nallow_private_urls = 1\n",
                          "[media]\nmax_images = -1\n", "[media]\nallowed_hosts = \"x\"\n",
                          "media = 3\n", "[media]\nmax_audio_seconds = \"long\"\n"})
    EXPECT_THROW(load(bad), Error) << bad;
  ServeConfig bad_range = c;
  ModelEntry model;
  model.path = "m.gguf";
  bad_range.models.push_back(model);
  validate_serve_config(bad_range);
  bad_range.media.max_audio_seconds = 0;
  EXPECT_THROW(validate_serve_config(bad_range), Error);
}

// Random JSON shapes through validation and the walker: only ApiError / muse::Error.
ordered_json random_json(std::mt19937& rng, int depth) {
  static const char* kStrings[] = {"user",
                                   "assistant",
                                   "system",
                                   "image_url",
                                   "input_audio",
                                   "input_image",
                                   "text",
                                   "data:image/png;base64,iVBORw0KGgo=",
                                   "data:image/png;base64,",
                                   "data:,",
                                   "data:image/gif;base64,R0lGOA==",
                                   "UklGRg==",
                                   "wav",
                                   "auto",
                                   "low",
                                   "url",
                                   "detail",
                                   "ftp://x/",
                                   "http://127.0.0.1/x",
                                   "",
                                   "\xff\xfe",
                                   "data:image/png;base64,=="};
  switch (depth <= 0 ? rng() % 4 : rng() % 7) {
    case 0:
      return nullptr;
    case 1:
      return int64_t(rng() % 7) - 3;
    case 2:
      return kStrings[rng() % std::size(kStrings)];
    case 3:
      return rng() % 2 == 0;
    case 4:
    case 5: {
      ordered_json o = ordered_json::object();
      static const char* kKeys[] = {"role",   "content",     "type", "text",   "image_url", "url",
                                    "detail", "input_audio", "data", "format", "tool_calls"};
      const int n = int(rng() % 4);
      for (int i = 0; i < n; ++i) o[kKeys[rng() % std::size(kKeys)]] = random_json(rng, depth - 1);
      return o;
    }
    default: {
      ordered_json a = ordered_json::array();
      const int n = int(rng() % 4);
      for (int i = 0; i < n; ++i) a.push_back(random_json(rng, depth - 1));
      return a;
    }
  }
}

// A plausible message whose parts are randomly damaged.
ordered_json random_message(std::mt19937& rng) {
  static const char* kRoles[] = {"user", "user", "assistant", "system", "tool"};
  ordered_json content = ordered_json::array();
  const int n = int(rng() % 4);
  for (int i = 0; i < n; ++i) {
    ordered_json part;
    switch (rng() % 4) {
      case 0:
        part = image_part(random_json(rng, 0).is_string() ? "data:image/gif;base64,R0lGOA==" : "x");
        break;
      case 1:
        part = audio_part("UklGRg==");
        break;
      case 2:
        part = text_part("t");
        break;
      default:
        part = random_json(rng, 3);
    }
    if (part.is_object() && rng() % 3 == 0) {
      static const char* kKeys[] = {"type", "image_url", "input_audio", "url", "detail", "text"};
      part[kKeys[rng() % std::size(kKeys)]] = random_json(rng, 2);
    }
    content.push_back(part);
  }
  ordered_json m = {{"role", kRoles[rng() % std::size(kRoles)]}, {"content", content}};
  if (rng() % 5 == 0) m["content"] = random_json(rng, 3);
  return m;
}

TEST(MediaPartsFuzz, RandomShapesOnlyRaiseApiErrors) {
  std::mt19937 rng(2024);
  MediaLimits limits;
  limits.max_images = 3;
  limits.max_media_bytes = 40;
  FetchPolicy policy;
  policy.timeout_ms = 200;  // http URLs in the corpus are refused before any connection
  int accepted = 0, refused = 0;
  for (int i = 0; i < 4000; ++i) {
    ordered_json messages = ordered_json::array();
    const int n = 1 + int(rng() % 3);
    for (int k = 0; k < n; ++k)
      messages.push_back(rng() % 6 == 0 ? random_json(rng, 3) : random_message(rng));
    try {
      const ChatRequest req = parse_chat_request(chat(messages), RequestLimits{});
      const std::vector<MediaPart> parts = collect_media_parts(req.messages, limits, policy);
      for (const MediaPart& p : parts) EXPECT_FALSE(p.bytes.empty());
      ++accepted;
    } catch (const ApiError& e) {
      EXPECT_TRUE(e.status == 400 || e.status == 413) << e.status;
      ++refused;
    } catch (const Error&) {
      ++refused;
    }
    // The walker alone, on unvalidated shapes.
    try {
      collect_media_parts(messages, limits, policy);
    } catch (const Error&) {
    }
    try {
      collect_media_parts(random_json(rng, 4), limits, policy);
    } catch (const Error&) {
    }
  }
  EXPECT_GT(accepted, 100);
  EXPECT_GT(refused, 100);
}

}  // namespace
}  // namespace muse::server
