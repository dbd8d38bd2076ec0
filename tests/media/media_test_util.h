// Test helpers: encode small images and sounds in memory with the codec libraries
// (so the decode tests check real files without committed binaries).
#pragma once

// clang-format off
#include <cstdio>  // before jpeglib.h, which uses FILE without including it
// clang-format on

#include <gif_lib.h>
#include <jpeglib.h>
#include <png.h>
#include <sndfile.h>
#include <webp/encode.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace muse::media::test {

using Bytes = std::vector<uint8_t>;

// A png_image simplified-API encode. `format` e.g. PNG_FORMAT_RGB, PNG_FORMAT_RGBA,
// PNG_FORMAT_GRAY, PNG_FORMAT_LINEAR_Y (16-bit grey), PNG_FORMAT_RGB_COLORMAP.
inline Bytes encode_png(const void* pixels, int w, int h, png_uint_32 format,
                        const void* colormap = nullptr, int colormap_entries = 0) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = w;
  img.height = h;
  img.format = format;
  img.colormap_entries = colormap_entries;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&img, nullptr, &size, 0, pixels, 0, colormap))
    throw std::runtime_error(std::string("png size: ") + img.message);
  Bytes out(size);
  if (!png_image_write_to_memory(&img, out.data(), &size, 0, pixels, 0, colormap))
    throw std::runtime_error(std::string("png write: ") + img.message);
  out.resize(size);
  return out;
}

// RGB JPEG; orientation > 0 adds an EXIF APP1 marker with that Orientation tag.
inline Bytes encode_jpeg(const uint8_t* rgb, int w, int h, int orientation = 0, int quality = 95) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* mem = nullptr;
  unsigned long mem_size = 0;
  jpeg_mem_dest(&c, &mem, &mem_size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  jpeg_start_compress(&c, TRUE);
  if (orientation > 0) {
    // "Exif\0\0", big-endian TIFF header, IFD0 with one SHORT entry 0x0112.
    const uint8_t exif[] = {
        'E', 'x', 'i', 'f',  0,    0, 'M', 'M', 0, 42, 0, 0, 0,
        8,   0,   1,   0x01, 0x12, 0, 3,   0,   0, 0,  1, 0, static_cast<uint8_t>(orientation),
        0,   0,   0,   0,    0,    0};
    jpeg_write_marker(&c, JPEG_APP0 + 1, exif, sizeof exif);
  }
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb + c.next_scanline * w * 3);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  Bytes out(mem, mem + mem_size);
  jpeg_destroy_compress(&c);
  free(mem);
  return out;
}

inline Bytes encode_webp_lossless(const uint8_t* rgb, int w, int h) {
  uint8_t* out = nullptr;
  const size_t n = WebPEncodeLosslessRGB(rgb, w, h, w * 3, &out);
  Bytes b(out, out + n);
  WebPFree(out);
  return b;
}

struct GifFrame {
  int left, top, width, height;
  std::vector<uint8_t> indices;
  bool interlace = false;
  int transparent = -1;
};

inline int gif_write(GifFileType* g, const GifByteType* data, int n) {
  auto* out = static_cast<Bytes*>(g->UserData);
  out->insert(out->end(), data, data + n);
  return n;
}

// A GIF89a with a global palette (RGB triples, a power of two entries).
inline Bytes encode_gif(int screen_w, int screen_h, const std::vector<uint8_t>& palette,
                        const std::vector<GifFrame>& frames, int background = 0) {
  Bytes out;
  int err = 0;
  GifFileType* g = EGifOpen(&out, gif_write, &err);
  if (!g) throw std::runtime_error("EGifOpen");
  EGifSetGifVersion(g, true);
  const int n = static_cast<int>(palette.size() / 3);
  std::vector<GifColorType> colors(n);
  for (int i = 0; i < n; ++i) colors[i] = {palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]};
  ColorMapObject* cmap = GifMakeMapObject(n, colors.data());
  EGifPutScreenDesc(g, screen_w, screen_h, 8, background, cmap);
  for (const GifFrame& f : frames) {
    if (f.transparent >= 0) {
      const uint8_t gce[4] = {1, 0, 0, static_cast<uint8_t>(f.transparent)};
      EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, 4, gce);
    }
    EGifPutImageDesc(g, f.left, f.top, f.width, f.height, f.interlace, nullptr);
    if (f.interlace) {
      const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
      for (int p = 0; p < 4; ++p)
        for (int y = start[p]; y < f.height; y += step[p])
          EGifPutLine(g, const_cast<uint8_t*>(&f.indices[y * f.width]), f.width);
    } else {
      for (int y = 0; y < f.height; ++y)
        EGifPutLine(g, const_cast<uint8_t*>(&f.indices[y * f.width]), f.width);
    }
  }
  EGifCloseFile(g, &err);
  GifFreeMapObject(cmap);
  return out;
}

// libsndfile writing into memory.
struct MemorySound {
  Bytes data;
  sf_count_t pos = 0;
};

inline SF_VIRTUAL_IO memory_sound_io() {
  SF_VIRTUAL_IO io{};
  io.get_filelen = [](void* u) -> sf_count_t {
    return static_cast<sf_count_t>(static_cast<MemorySound*>(u)->data.size());
  };
  io.seek = [](sf_count_t off, int whence, void* u) -> sf_count_t {
    auto* m = static_cast<MemorySound*>(u);
    const sf_count_t base = whence == SEEK_SET   ? 0
                            : whence == SEEK_CUR ? m->pos
                                                 : sf_count_t(m->data.size());
    m->pos = base + off;
    return m->pos;
  };
  io.read = [](void* p, sf_count_t n, void* u) -> sf_count_t {
    auto* m = static_cast<MemorySound*>(u);
    const sf_count_t take =
        std::max<sf_count_t>(0, std::min<sf_count_t>(n, m->data.size() - m->pos));
    std::memcpy(p, m->data.data() + m->pos, take);
    m->pos += take;
    return take;
  };
  io.write = [](const void* p, sf_count_t n, void* u) -> sf_count_t {
    auto* m = static_cast<MemorySound*>(u);
    if (m->data.size() < size_t(m->pos + n)) m->data.resize(m->pos + n);
    std::memcpy(m->data.data() + m->pos, p, n);
    m->pos += n;
    return n;
  };
  io.tell = [](void* u) -> sf_count_t { return static_cast<MemorySound*>(u)->pos; };
  return io;
}

// Interleaved float frames -> encoded bytes; empty when libsndfile cannot write
// that format here.
inline Bytes encode_sound(const std::vector<float>& interleaved, int channels, int rate,
                          int format) {
  MemorySound mem;
  SF_VIRTUAL_IO io = memory_sound_io();
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* sf = sf_open_virtual(&io, SFM_WRITE, &info, &mem);
  if (!sf) return {};
  sf_writef_float(sf, interleaved.data(), interleaved.size() / channels);
  sf_close(sf);
  return mem.data;
}

inline std::vector<float> sine(int n, double freq, double rate, double amp) {
  std::vector<float> s(n);
  for (int i = 0; i < n; ++i) s[i] = static_cast<float>(amp * std::sin(2 * M_PI * freq * i / rate));
  return s;
}

// Fraction of the signal's energy at `freq` (Goertzel over the given range).
inline double tone_energy_fraction(const std::vector<float>& s, size_t begin, size_t end,
                                   double freq, double rate) {
  double re = 0, im = 0, total = 0;
  for (size_t i = begin; i < end; ++i) {
    const double ph = 2 * M_PI * freq * static_cast<double>(i) / rate;
    re += s[i] * std::cos(ph);
    im += s[i] * std::sin(ph);
    total += double(s[i]) * s[i];
  }
  const double n = static_cast<double>(end - begin);
  return total > 0 ? 2.0 * (re * re + im * im) / n / total : 0.0;
}

}  // namespace muse::media::test
