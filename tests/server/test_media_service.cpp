// The media side of a served model: encode with a content-hash cache, errors as
// OpenAI-shaped statuses (400 undecodable / unsupported kind, 413 over a limit).
#include <gtest/gtest.h>

#include "core/read_file.h"
#include "server/api_error.h"
#include "server/media_service.h"

namespace muse::server {
namespace {

const std::string kGoldens = std::string(MUSE_SHARED_DIR) + "/goldens/";

MediaPart part(MediaPart::Kind kind, const std::string& bytes, std::string detail = "") {
  return {kind, std::vector<uint8_t>(bytes.begin(), bytes.end()), "", std::move(detail)};
}

int status_of(MediaService& s, const MediaPart& p) {
  try {
    s.encode(p, "messages");
  } catch (const ApiError& e) {
    return e.status;
  }
  return 200;
}

TEST(MediaService, SecondEncodingComesFromTheCache) {
  MediaService s(load_media_encoders(kGoldens + "qwen25omni"), {});
  const std::string png = read_file(kGoldens + "qwen25omni/image.png");
  const std::string wav = read_file(kGoldens + "qwen25omni/audio.wav");
  const EncodedMedia a = s.encode(part(MediaPart::Kind::Image, png), "m");
  EXPECT_EQ(a.n_tokens, 12);
  EXPECT_EQ(a.grid_h, 3);
  EXPECT_EQ(a.grid_w, 4);
  EXPECT_EQ(a.rows->size(), 12u * 128);
  const EncodedMedia b = s.encode(part(MediaPart::Kind::Image, png), "m");
  EXPECT_EQ(a.rows.get(), b.rows.get());
  EXPECT_EQ(a.hash, b.hash);
  auto stats = s.cache_stats();
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.misses, 1u);
  // Low detail is another encoding of the same bytes; audio hashes differently too.
  const EncodedMedia low = s.encode(part(MediaPart::Kind::Image, png, "low"), "m");
  EXPECT_NE(low.hash, a.hash);
  const EncodedMedia audio = s.encode(part(MediaPart::Kind::Audio, wav), "m");
  EXPECT_EQ(audio.n_tokens, 62);
  EXPECT_EQ(audio.grid_h, 0);
  stats = s.cache_stats();
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_EQ(stats.misses, 3u);
}

TEST(MediaService, CacheKeepsWithinItsBudget) {
  MediaServiceOptions o;
  o.cache_bytes = 12 * 128 * sizeof(float);  // room for one image
  MediaService s(load_media_encoders(kGoldens + "qwen25omni"), o);
  const std::string png = read_file(kGoldens + "qwen25omni/image.png");
  const std::string other = read_file(kGoldens + "muse_glimmer/image.png");
  s.encode(part(MediaPart::Kind::Image, png), "m");
  s.encode(part(MediaPart::Kind::Image, other), "m");
  s.encode(part(MediaPart::Kind::Image, png), "m");  // evicted: encoded again
  const auto stats = s.cache_stats();
  EXPECT_EQ(stats.hits, 0u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_LE(stats.bytes, o.cache_bytes);
}

TEST(MediaService, BadMediaGetsClientErrors) {
  MediaServiceOptions o;
  o.image.max_pixels = 1000;  // the 112x84 golden image is over it
  MediaService s(load_media_encoders(kGoldens + "qwen25omni"), o);
  const std::string png = read_file(kGoldens + "qwen25omni/image.png");
  EXPECT_EQ(status_of(s, part(MediaPart::Kind::Image, png)), 413);
  EXPECT_EQ(status_of(s, part(MediaPart::Kind::Image, "not an image")), 400);
  EXPECT_EQ(status_of(s, part(MediaPart::Kind::Audio, "RIFF\x10\0\0\0WAVEjunk")), 400);
  // A model with vision only refuses audio.
  MediaService vision_only(load_media_encoders(kGoldens + "muse_glimmer"), {});
  EXPECT_FALSE(vision_only.has_audio());
  try {
    vision_only.encode(part(MediaPart::Kind::Audio, read_file(kGoldens + "qwen25omni/audio.wav")),
                       "messages");
    FAIL() << "audio accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "unsupported_content_type");
  }
}

}  // namespace
}  // namespace muse::server
