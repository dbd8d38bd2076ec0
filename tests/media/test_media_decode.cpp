// Decoding of images and sounds made in the test with the codec libraries: pixel
// values, EXIF orientations, GIF compositing, PCM formats, downmix and resampling.
#include <gtest/gtest.h>

#include <numeric>

#include "media/audio.h"
#include "media/image.h"
#include "media_test_util.h"

namespace muse::media {
namespace {

using namespace muse::media::test;

std::array<int, 3> pixel(const RgbImage& img, int64_t x, int64_t y) {
  const uint8_t* p = &img.rgb[(y * img.width + x) * 3];
  return {p[0], p[1], p[2]};
}

// A 5x3 image with a distinct colour per pixel.
std::vector<uint8_t> test_pattern(int w, int h) {
  std::vector<uint8_t> rgb(w * h * 3);
  for (int i = 0; i < w * h; ++i) {
    rgb[3 * i] = static_cast<uint8_t>(i * 17);
    rgb[3 * i + 1] = static_cast<uint8_t>(255 - i * 11);
    rgb[3 * i + 2] = static_cast<uint8_t>(i * 5 + 3);
  }
  return rgb;
}

TEST(ImageDecode, PngRgbExact) {
  const auto rgb = test_pattern(5, 3);
  const RgbImage img = decode_image(encode_png(rgb.data(), 5, 3, PNG_FORMAT_RGB));
  EXPECT_EQ(img.width, 5);
  EXPECT_EQ(img.height, 3);
  EXPECT_EQ(img.rgb, rgb);
}

TEST(ImageDecode, PngAlphaIsDroppedNotComposited) {
  const uint8_t rgba[] = {10, 20, 30, 0, 200, 100, 50, 128};
  const RgbImage img = decode_image(encode_png(rgba, 2, 1, PNG_FORMAT_RGBA));
  EXPECT_EQ(pixel(img, 0, 0), (std::array<int, 3>{10, 20, 30}));
  EXPECT_EQ(pixel(img, 1, 0), (std::array<int, 3>{200, 100, 50}));
}

TEST(ImageDecode, PngGreyAndPaletteExpandToRgb) {
  const uint8_t grey[] = {0, 77, 255};
  const RgbImage g = decode_image(encode_png(grey, 3, 1, PNG_FORMAT_GRAY));
  EXPECT_EQ(pixel(g, 1, 0), (std::array<int, 3>{77, 77, 77}));
  const uint8_t palette[] = {255, 0, 0, 0, 128, 255, 9, 8, 7};
  const uint8_t idx[] = {2, 0, 1, 1};
  const RgbImage p = decode_image(encode_png(idx, 2, 2, PNG_FORMAT_RGB_COLORMAP, palette, 3));
  EXPECT_EQ(pixel(p, 0, 0), (std::array<int, 3>{9, 8, 7}));
  EXPECT_EQ(pixel(p, 1, 0), (std::array<int, 3>{255, 0, 0}));
  EXPECT_EQ(pixel(p, 1, 1), (std::array<int, 3>{0, 128, 255}));
}

TEST(ImageDecode, Png16BitGreyClipsLikePil) {
  // PIL opens 16-bit grey as I;16 and convert("RGB") clips to 255.
  const uint16_t grey[] = {5, 200, 1000, 65535};
  const RgbImage img = decode_image(encode_png(grey, 4, 1, PNG_FORMAT_LINEAR_Y));
  EXPECT_EQ(pixel(img, 0, 0)[0], 5);
  EXPECT_EQ(pixel(img, 1, 0)[0], 200);
  EXPECT_EQ(pixel(img, 2, 0)[0], 255);
  EXPECT_EQ(pixel(img, 3, 0)[0], 255);
}

TEST(ImageDecode, Png16BitRgbKeepsHighByte) {
  const uint16_t rgb[] = {0x1234, 0xABCD, 0x00FF};
  const RgbImage img = decode_image(encode_png(rgb, 1, 1, PNG_FORMAT_LINEAR_RGB));
  EXPECT_EQ(pixel(img, 0, 0), (std::array<int, 3>{0x12, 0xAB, 0x00}));
}

TEST(ImageDecode, WebpLosslessExact) {
  const auto rgb = test_pattern(7, 4);
  const RgbImage img = decode_image(encode_webp_lossless(rgb.data(), 7, 4));
  EXPECT_EQ(img.width, 7);
  EXPECT_EQ(img.height, 4);
  EXPECT_EQ(img.rgb, rgb);
}

void put_le(Bytes& b, uint32_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_chunk(Bytes& out, const char* id, const Bytes& payload) {
  out.insert(out.end(), id, id + 4);
  put_le(out, static_cast<uint32_t>(payload.size()), 4);
  out.insert(out.end(), payload.begin(), payload.end());
  if (payload.size() % 2) out.push_back(0);
}

TEST(ImageDecode, AnimatedWebpGivesFirstFrameOnCanvas) {
  // Built by hand (VP8X + ANIM + ANMF chunks) around two lossless frames: a 2x2
  // first frame at offset (2,2) on a 6x4 canvas, then a full-canvas second frame.
  const auto frame1 = test_pattern(2, 2);
  const std::vector<uint8_t> frame2(6 * 4 * 3, 200);
  auto vp8l = [](const Bytes& webp) { return Bytes(webp.begin() + 12, webp.end()); };
  auto anmf = [&](int x, int y, int w, int h, const Bytes& chunk) {
    Bytes p;
    put_le(p, x / 2, 3);
    put_le(p, y / 2, 3);
    put_le(p, w - 1, 3);
    put_le(p, h - 1, 3);
    put_le(p, 100, 3);  // duration
    p.push_back(0x02);  // do not blend
    p.insert(p.end(), chunk.begin(), chunk.end());
    return p;
  };
  Bytes body = {'W', 'E', 'B', 'P'};
  Bytes vp8x = {0x02, 0, 0, 0};  // animation flag
  put_le(vp8x, 6 - 1, 3);
  put_le(vp8x, 4 - 1, 3);
  put_chunk(body, "VP8X", vp8x);
  Bytes anim;
  put_le(anim, 0xFF0000FF, 4);  // background colour (not used for compositing)
  put_le(anim, 0, 2);
  put_chunk(body, "ANIM", anim);
  put_chunk(body, "ANMF", anmf(2, 2, 2, 2, vp8l(encode_webp_lossless(frame1.data(), 2, 2))));
  put_chunk(body, "ANMF", anmf(0, 0, 6, 4, vp8l(encode_webp_lossless(frame2.data(), 6, 4))));
  Bytes file = {'R', 'I', 'F', 'F'};
  put_le(file, static_cast<uint32_t>(body.size()), 4);
  file.insert(file.end(), body.begin(), body.end());

  const RgbImage img = decode_image(file);
  ASSERT_EQ(img.width, 6);
  ASSERT_EQ(img.height, 4);
  EXPECT_EQ(pixel(img, 0, 0), (std::array<int, 3>{0, 0, 0}));  // transparent canvas
  EXPECT_EQ(pixel(img, 2, 2), (std::array<int, 3>{frame1[0], frame1[1], frame1[2]}));
  EXPECT_EQ(pixel(img, 3, 3), (std::array<int, 3>{frame1[9], frame1[10], frame1[11]}));
}

// 64x32 stored image: top-left red, top-right green, bottom-left blue, bottom-right white.
std::vector<uint8_t> quadrants() {
  std::vector<uint8_t> rgb(64 * 32 * 3);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 64; ++x) {
      uint8_t* p = &rgb[(y * 64 + x) * 3];
      const bool right = x >= 32, bottom = y >= 16;
      p[0] = (!bottom && !right) || (bottom && right) ? 255 : 0;
      p[1] = (!bottom && right) || (bottom && right) ? 255 : 0;
      p[2] = bottom ? 255 : 0;
    }
  return rgb;
}

enum Colour { R, G, B, W };

void expect_colour(const RgbImage& img, int64_t x, int64_t y, Colour c, int orientation) {
  static const std::array<int, 3> kRgb[] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}};
  const auto got = pixel(img, x, y);
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(got[i], kRgb[c][i], 40) << "orientation " << orientation << " at " << x << "," << y;
}

TEST(ImageDecode, JpegAllExifOrientations) {
  const auto rgb = quadrants();
  // Expected corners (TL, TR, BL, BR) of the image as meant to be seen.
  const Colour expected[9][4] = {
      {},           {R, G, B, W},  // 1 as stored
      {G, R, W, B},                // 2 mirrored horizontally
      {W, B, G, R},                // 3 rotated 180
      {B, W, R, G},                // 4 mirrored vertically
      {R, B, G, W},                // 5 transposed
      {B, R, W, G},                // 6 stored rotated: shown turned 90 degrees clockwise
      {W, G, B, R},                // 7 transversed
      {G, W, R, B},                // 8 shown turned 90 degrees counter-clockwise
  };
  for (int o = 1; o <= 8; ++o) {
    const RgbImage img = decode_image(encode_jpeg(rgb.data(), 64, 32, o));
    const bool swapped = o >= 5;
    ASSERT_EQ(img.width, swapped ? 32 : 64) << o;
    ASSERT_EQ(img.height, swapped ? 64 : 32) << o;
    const int64_t r = img.width - 3, b = img.height - 3;
    expect_colour(img, 2, 2, expected[o][0], o);
    expect_colour(img, r, 2, expected[o][1], o);
    expect_colour(img, 2, b, expected[o][2], o);
    expect_colour(img, r, b, expected[o][3], o);
  }
  // No EXIF at all: as stored.
  const RgbImage plain = decode_image(encode_jpeg(rgb.data(), 64, 32));
  expect_colour(plain, 2, 2, R, 0);
  expect_colour(plain, 61, 29, W, 0);
}

TEST(ImageDecode, GifFirstFrameOnLogicalScreen) {
  // Palette: 0 black, 1 red, 2 green, 3 blue. Screen 6x4, frame 3x2 at (2,1),
  // transparent index 3 fills the rest of the screen; the second frame is ignored.
  const std::vector<uint8_t> palette = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
  GifFrame first{2, 1, 3, 2, {1, 2, 1, 2, 1, 2}};
  first.transparent = 3;
  GifFrame second{0, 0, 6, 4, std::vector<uint8_t>(24, 0)};
  const RgbImage img = decode_image(encode_gif(6, 4, palette, {first, second}));
  ASSERT_EQ(img.width, 6);
  ASSERT_EQ(img.height, 4);
  EXPECT_EQ(pixel(img, 0, 0), (std::array<int, 3>{0, 0, 255}));
  EXPECT_EQ(pixel(img, 2, 1), (std::array<int, 3>{255, 0, 0}));
  EXPECT_EQ(pixel(img, 3, 1), (std::array<int, 3>{0, 255, 0}));
  EXPECT_EQ(pixel(img, 4, 2), (std::array<int, 3>{0, 255, 0}));
  EXPECT_EQ(pixel(img, 5, 3), (std::array<int, 3>{0, 0, 255}));
}

TEST(ImageDecode, GifInterlacedRowsInPlace) {
  const std::vector<uint8_t> palette = {0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255};
  GifFrame f{0, 0, 1, 9, {}};
  f.interlace = true;
  for (int y = 0; y < 9; ++y) f.indices.push_back(static_cast<uint8_t>(y % 4));
  const RgbImage img = decode_image(encode_gif(1, 9, palette, {f}));
  for (int y = 0; y < 9; ++y) {
    const int i = y % 4;
    EXPECT_EQ(pixel(img, 0, y),
              (std::array<int, 3>{palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]}))
        << y;
  }
}

TEST(ImageDecode, LimitsFromHeader) {
  const auto rgb = test_pattern(5, 3);
  const auto png = encode_png(rgb.data(), 5, 3, PNG_FORMAT_RGB);
  ImageLimits small;
  small.max_pixels = 14;
  EXPECT_THROW(decode_image(png, small), MediaTooLarge);
  small = {};
  small.max_side = 4;
  EXPECT_THROW(decode_image(png, small), MediaTooLarge);
  small = {};
  small.max_bytes = 10;
  EXPECT_THROW(decode_image(png, small), MediaTooLarge);
  const auto jpg = encode_jpeg(quadrants().data(), 64, 32);
  small = {};
  small.max_pixels = 1000;
  EXPECT_THROW(decode_image(jpg, small), MediaTooLarge);
}

// ---------------------------------------------------------------- audio

struct SoundCase {
  const char* name;
  int format;
  double max_error;  // per-sample error after the round trip; < 0: lossy
};

class AudioRoundTrip : public ::testing::TestWithParam<SoundCase> {};

TEST_P(AudioRoundTrip, DecodesAndDownmixes) {
  const SoundCase c = GetParam();
  const int rate = (c.format & SF_FORMAT_SUBMASK) == SF_FORMAT_OPUS ? 48000 : 16000;
  const int n = rate / 2;
  // Stereo: left 440 Hz at 0.6, right the same at -0.2 -> mono mean 0.2 * sine.
  const auto s = sine(n, 440.0, rate, 1.0);
  std::vector<float> inter(2 * n);
  for (int i = 0; i < n; ++i) inter[2 * i] = 0.6f * s[i], inter[2 * i + 1] = -0.2f * s[i];
  const auto bytes = encode_sound(inter, 2, rate, c.format);
  if (bytes.empty()) GTEST_SKIP() << "libsndfile cannot write " << c.name << " here";
  const PcmAudio pcm = decode_audio(bytes, {}, c.name);
  EXPECT_EQ(pcm.sample_rate, rate);
  if (c.max_error >= 0) {
    ASSERT_EQ(pcm.samples.size(), static_cast<size_t>(n));
    double worst = 0;
    for (int i = 0; i < n; ++i) worst = std::max(worst, std::fabs(pcm.samples[i] - 0.2 * s[i]));
    EXPECT_LE(worst, c.max_error) << c.name;
  } else {
    // Lossy codecs: about the right length, and the tone with about its amplitude.
    EXPECT_NEAR(static_cast<double>(pcm.samples.size()), n, 0.1 * n) << c.name;
    const size_t b = pcm.samples.size() / 4, e = 3 * pcm.samples.size() / 4;
    EXPECT_GT(tone_energy_fraction(pcm.samples, b, e, 440.0, rate), 0.9) << c.name;
    double peak = 0;
    for (size_t i = b; i < e; ++i) peak = std::max(peak, double(std::fabs(pcm.samples[i])));
    EXPECT_NEAR(peak, 0.2, 0.04) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Media, AudioRoundTrip,
    ::testing::Values(SoundCase{"wav_u8", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 1.0 / 64},
                      SoundCase{"wav_s16", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1.0 / 16000},
                      SoundCase{"wav_s24", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 1e-6},
                      SoundCase{"wav_s32", SF_FORMAT_WAV | SF_FORMAT_PCM_32, 1e-7},
                      SoundCase{"wav_float", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 1e-7},
                      SoundCase{"flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1.0 / 16000},
                      SoundCase{"ogg_vorbis", SF_FORMAT_OGG | SF_FORMAT_VORBIS, -1},
                      SoundCase{"ogg_opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, -1},
                      SoundCase{"mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, -1}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(AudioResample, SineKeepsFrequencyAndAmplitude) {
  PcmAudio in;
  in.sample_rate = 44100;
  in.samples = sine(44100, 1000.0, 44100, 0.5);
  const PcmAudio out = resample(in, 16000);
  EXPECT_EQ(out.sample_rate, 16000);
  EXPECT_NEAR(static_cast<double>(out.samples.size()), 16000, 2);
  const size_t b = 2000, e = 14000;
  EXPECT_GT(tone_energy_fraction(out.samples, b, e, 1000.0, 16000), 0.999);
  double peak = 0;
  int crossings = 0;
  for (size_t i = b; i < e; ++i) {
    peak = std::max(peak, double(std::fabs(out.samples[i])));
    crossings += (out.samples[i - 1] < 0) != (out.samples[i] < 0);
  }
  EXPECT_NEAR(peak, 0.5, 0.01);
  EXPECT_NEAR(crossings, 2 * 1000 * 12000 / 16000, 2);  // 2 per period over 0.75 s
  // Same rate: unchanged.
  const PcmAudio same = resample(out, 16000);
  EXPECT_EQ(same.samples, out.samples);
}

TEST(AudioFeaturesPipeline, ResamplesAndComputesValidFrames) {
  // 0.5 s at 8 kHz -> 8000 samples at 16 kHz -> 50 frames of 128 mels.
  const auto s = sine(4000, 300.0, 8000, 0.3);
  const auto wav = encode_sound(s, 1, 8000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
  AudioProcessorSpec spec;
  const AudioFeatures f = audio_features(wav, spec);
  EXPECT_EQ(f.n_mel, 128);
  EXPECT_EQ(f.n_frames, 50);
  EXPECT_EQ(f.features.size(), static_cast<size_t>(128 * 50));
  // The clamp keeps everything within 2 (8 / 4) below the maximum.
  const auto [mn, mx] = std::minmax_element(f.features.begin(), f.features.end());
  EXPECT_LE(*mx - *mn, 2.0 + 1e-6);
}

TEST(WhisperMel, FrameCountsAndMask) {
  const auto s = sine(1000, 440.0, 16000, 0.5);  // 1000 samples: 6.25 hops
  const AudioFeatures unpadded = whisper_log_mel(s, 80);
  EXPECT_EQ(unpadded.n_frames, 7);  // ceil(1000 / 160)
  std::vector<int32_t> mask;
  const AudioFeatures padded = whisper_log_mel(s, 80, 3200, &mask);
  EXPECT_EQ(padded.n_frames, 20);
  ASSERT_EQ(mask.size(), 20u);
  EXPECT_EQ(std::accumulate(mask.begin(), mask.end(), 0), 7);
  EXPECT_EQ(mask[6], 1);
  EXPECT_EQ(mask[7], 0);
  EXPECT_THROW(whisper_log_mel({}, 80), Error);
}

}  // namespace
}  // namespace muse::media
