// Image decoding: PNG (libpng), JPEG (libjpeg-turbo + libexif orientation), WebP
// (libwebp, animations through the demux API) and GIF (giflib, first frame).
//
// libpng and libjpeg report fatal errors by calling an error function that must not
// return. C++ exceptions must not travel through the C libraries' frames, so each
// library call that can fail runs inside a small function with only trivially
// destructible locals that does setjmp; the error callback records the message and
// longjmps back there, and the C++ caller then throws muse::Error. Image sizes are
// checked from the header before any pixel buffer is allocated.
// clang-format off
#include <cstdio>  // before jpeglib.h, which uses FILE without including it
// clang-format on

#include <gif_lib.h>
#include <jpeglib.h>
#include <libexif/exif-data.h>
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>

#include <algorithm>
#include <csetjmp>
#include <cstring>
#include <memory>

#include "media/image.h"

namespace muse::media {
namespace {

void check_dimensions(int64_t width, int64_t height, const ImageLimits& limits, const char* fmt) {
  MUSE_CHECK(width > 0 && height > 0, fmt, " image has an empty size (", width, "x", height, ")");
  if (width > limits.max_side || height > limits.max_side || width * height > limits.max_pixels) {
    throw MediaTooLarge(str_cat(fmt, " image is ", width, "x", height, " pixels, over the limit (",
                                limits.max_side, " per side, ", limits.max_pixels, " in total)"));
  }
}

// ---------------------------------------------------------------- PNG

struct PngSource {
  const uint8_t* data;
  size_t size, pos;
  std::jmp_buf jump;
  char message[256];
};

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* src = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(src->message, sizeof src->message, "%s", msg ? msg : "unknown error");
  std::longjmp(src->jump, 1);
}

void png_warning_fn(png_structp, png_const_charp) {}

void png_read_fn(png_structp png, png_bytep out, png_size_t n) {
  auto* src = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "truncated data");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

struct PngHeader {
  png_uint_32 width, height;
  int bit_depth, color_type, interlace;
};

// Reads the chunks before the image data. Returns false on error (message in src).
bool png_read_header(png_structp png, png_infop info, PngSource* src, PngHeader* hdr) {
  if (setjmp(src->jump)) return false;
  png_set_read_fn(png, src, png_read_fn);
  png_read_info(png, info);
  png_get_IHDR(png, info, &hdr->width, &hdr->height, &hdr->bit_depth, &hdr->color_type,
               &hdr->interlace, nullptr, nullptr);
  return true;
}

// Sets the transformations to 8- or 16-bit RGB / grey and reads all rows.
bool png_read_pixels(png_structp png, png_infop info, PngSource* src, const PngHeader* hdr,
                     png_bytepp rows, size_t row_bytes) {
  if (setjmp(src->jump)) return false;
  if (hdr->color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (hdr->color_type == PNG_COLOR_TYPE_GRAY && hdr->bit_depth < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  // 16-bit grey stays 16-bit (clipped below, as PIL's I;16 -> L); other 16-bit
  // images keep their high byte, as PIL's "RGB;16B" raw modes do.
  if (hdr->bit_depth == 16 && hdr->color_type != PNG_COLOR_TYPE_GRAY) png_set_strip_16(png);
  if (hdr->color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (hdr->bit_depth == 16 && hdr->color_type == PNG_COLOR_TYPE_GRAY) png_set_swap(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != row_bytes) {
    std::snprintf(src->message, sizeof src->message, "unexpected row layout");
    return false;
  }
  png_read_image(png, rows);
  return true;
}

struct PngHandles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngHandles() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

RgbImage decode_png(std::span<const uint8_t> bytes, const ImageLimits& limits) {
  // The size from IHDR (always the first chunk) before libpng reads further: a
  // header-only decompression bomb is refused as too large, not as truncated.
  if (bytes.size() >= 24 && std::memcmp(bytes.data() + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t at) {
      return static_cast<int64_t>(bytes[at]) << 24 | static_cast<int64_t>(bytes[at + 1]) << 16 |
             static_cast<int64_t>(bytes[at + 2]) << 8 | bytes[at + 3];
    };
    check_dimensions(be32(16), be32(20), limits, "PNG");
  }
  PngSource src{bytes.data(), bytes.size(), 0, {}, {}};
  PngHandles h;
  h.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_error_fn, png_warning_fn);
  MUSE_CHECK(h.png, "PNG: cannot create the decoder");
  h.info = png_create_info_struct(h.png);
  MUSE_CHECK(h.info, "PNG: cannot create the decoder");
  // Corrupt ancillary chunks and CRCs are errors, as in PIL (no silent guessing).
  PngHeader hdr{};
  MUSE_CHECK(png_read_header(h.png, h.info, &src, &hdr), "PNG: ", src.message);
  check_dimensions(hdr.width, hdr.height, limits, "PNG");

  const bool grey16 = hdr.bit_depth == 16 && hdr.color_type == PNG_COLOR_TYPE_GRAY;
  const bool grey = (hdr.color_type & PNG_COLOR_MASK_COLOR) == 0;
  const int64_t channels = grey ? 1 : 3;
  const int64_t sample_bytes = grey16 ? 2 : 1;
  const int64_t row_bytes = static_cast<int64_t>(hdr.width) * channels * sample_bytes;
  std::vector<uint8_t> raw(static_cast<size_t>(row_bytes) * hdr.height);
  std::vector<png_bytep> rows(hdr.height);
  for (png_uint_32 y = 0; y < hdr.height; ++y) rows[y] = raw.data() + y * row_bytes;
  MUSE_CHECK(png_read_pixels(h.png, h.info, &src, &hdr, rows.data(), row_bytes),
             "PNG: ", src.message);

  RgbImage img;
  img.width = hdr.width;
  img.height = hdr.height;
  const int64_t n = img.width * img.height;
  if (channels == 3) {
    img.rgb = std::move(raw);
    return img;
  }
  img.rgb.resize(static_cast<size_t>(n) * 3);
  for (int64_t i = 0; i < n; ++i) {
    uint8_t v = raw[i];
    if (grey16) {
      uint16_t w;
      std::memcpy(&w, &raw[2 * i], 2);
      v = static_cast<uint8_t>(std::min<uint16_t>(w, 255));
    }
    img.rgb[3 * i] = img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = v;
  }
  return img;
}

// ---------------------------------------------------------------- JPEG

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  cinfo->err->format_message(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void jpeg_quiet(j_common_ptr) {}

bool jpeg_read_header_safe(jpeg_decompress_struct* cinfo, JpegError* err, const uint8_t* data,
                           size_t size) {
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(cinfo, TRUE);
  return true;
}

bool jpeg_read_pixels(jpeg_decompress_struct* cinfo, JpegError* err, uint8_t* out, size_t row_bytes,
                      size_t max_rows) {
  if (setjmp(err->jump)) return false;
  if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
    cinfo->out_color_space = JCS_CMYK;
  } else {
    cinfo->out_color_space = JCS_RGB;
  }
  jpeg_start_decompress(cinfo);
  if (static_cast<size_t>(cinfo->output_width) * cinfo->output_components > row_bytes ||
      cinfo->output_height > max_rows) {
    std::snprintf(err->message, sizeof err->message, "output size differs from the header");
    return false;
  }
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out + static_cast<size_t>(cinfo->output_scanline) * row_bytes;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

// EXIF orientation (1..8) from the APP1 "Exif" marker, 1 when absent or unreadable.
int jpeg_exif_orientation(const jpeg_decompress_struct& cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 || std::memcmp(m->data, "Exif\0\0", 6))
      continue;
    ExifData* ed = exif_data_new_from_data(m->data, m->data_length);
    if (!ed) return 1;
    int orientation = 1;
    if (ExifEntry* e = exif_data_get_entry(ed, EXIF_TAG_ORIENTATION);
        e && e->format == EXIF_FORMAT_SHORT && e->components >= 1 && e->size >= 2) {
      orientation = exif_get_short(e->data, exif_data_get_byte_order(ed));
    }
    exif_data_unref(ed);
    return orientation >= 1 && orientation <= 8 ? orientation : 1;
  }
  return 1;
}

// Applies an EXIF orientation so that the result is the image as it is meant to be seen.
RgbImage apply_orientation(const RgbImage& in, int orientation) {
  if (orientation == 1) return in;
  const int64_t W = in.width, H = in.height;
  const bool swap = orientation >= 5;
  RgbImage out;
  out.width = swap ? H : W;
  out.height = swap ? W : H;
  out.rgb.resize(in.rgb.size());
  for (int64_t y = 0; y < out.height; ++y) {
    for (int64_t x = 0; x < out.width; ++x) {
      int64_t sx = x, sy = y;
      switch (orientation) {
        case 2:
          sx = W - 1 - x;
          break;  // mirrored horizontally
        case 3:
          sx = W - 1 - x;
          sy = H - 1 - y;
          break;  // rotated 180
        case 4:
          sy = H - 1 - y;
          break;  // mirrored vertically
        case 5:
          sx = y;
          sy = x;
          break;  // transposed
        case 6:
          sx = y;
          sy = H - 1 - x;
          break;  // needs 90 clockwise
        case 7:
          sx = W - 1 - y;
          sy = H - 1 - x;
          break;  // transversed
        case 8:
          sx = W - 1 - y;
          sy = x;
          break;  // needs 90 counter-clockwise
      }
      std::memcpy(&out.rgb[(y * out.width + x) * 3], &in.rgb[(sy * W + sx) * 3], 3);
    }
  }
  return out;
}

RgbImage decode_jpeg(std::span<const uint8_t> bytes, const ImageLimits& limits) {
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.output_message = jpeg_quiet;
  struct Destroy {
    jpeg_decompress_struct* c;
    ~Destroy() { jpeg_destroy_decompress(c); }
  } destroy{&cinfo};
  MUSE_CHECK(jpeg_read_header_safe(&cinfo, &err, bytes.data(), bytes.size()),
             "JPEG: ", err.message);
  check_dimensions(cinfo.image_width, cinfo.image_height, limits, "JPEG");
  // Read now: the saved markers are freed by jpeg_finish_decompress.
  const int orientation = jpeg_exif_orientation(cinfo);
  const bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  const size_t comps = cmyk ? 4 : 3;
  const size_t row_bytes = comps * cinfo.image_width;
  std::vector<uint8_t> raw(row_bytes * cinfo.image_height);
  MUSE_CHECK(jpeg_read_pixels(&cinfo, &err, raw.data(), row_bytes, cinfo.image_height),
             "JPEG: ", err.message);
  RgbImage img;
  img.width = cinfo.output_width;
  img.height = cinfo.output_height;
  if (cmyk) {
    // Adobe CMYK JPEGs store inverted ink values; R = C' * K' / 255 (as PIL does).
    img.rgb.resize(static_cast<size_t>(img.width * img.height) * 3);
    for (int64_t i = 0; i < img.width * img.height; ++i) {
      const uint8_t* p = &raw[4 * i];
      for (int c = 0; c < 3; ++c) img.rgb[3 * i + c] = static_cast<uint8_t>(p[c] * p[3] / 255);
    }
  } else {
    img.rgb = std::move(raw);
  }
  return apply_orientation(img, orientation);
}

// ---------------------------------------------------------------- WebP

RgbImage decode_webp(std::span<const uint8_t> bytes, const ImageLimits& limits) {
  WebPBitstreamFeatures features;
  MUSE_CHECK(WebPGetFeatures(bytes.data(), bytes.size(), &features) == VP8_STATUS_OK,
             "WebP: cannot read the header (truncated or corrupt data)");
  check_dimensions(features.width, features.height, limits, "WebP");
  RgbImage img;
  img.width = features.width;
  img.height = features.height;
  img.rgb.resize(static_cast<size_t>(img.width * img.height) * 3);
  if (!features.has_animation) {
    const uint8_t* ok = WebPDecodeRGBInto(bytes.data(), bytes.size(), img.rgb.data(),
                                          img.rgb.size(), static_cast<int>(img.width * 3));
    MUSE_CHECK(ok, "WebP: cannot decode the image (truncated or corrupt data)");
    return img;
  }
  // Animation: the first frame composited on the canvas, as PIL shows frame 0.
  WebPData data{bytes.data(), bytes.size()};
  WebPAnimDecoderOptions opts;
  MUSE_CHECK(WebPAnimDecoderOptionsInit(&opts), "WebP: decoder version mismatch");
  opts.color_mode = MODE_RGBA;
  opts.use_threads = 0;
  std::unique_ptr<WebPAnimDecoder, void (*)(WebPAnimDecoder*)> dec(WebPAnimDecoderNew(&data, &opts),
                                                                   WebPAnimDecoderDelete);
  MUSE_CHECK(dec, "WebP: cannot read the animation (truncated or corrupt data)");
  WebPAnimInfo info;
  MUSE_CHECK(WebPAnimDecoderGetInfo(dec.get(), &info) && info.canvas_width == img.width &&
                 info.canvas_height == img.height,
             "WebP: inconsistent animation header");
  uint8_t* rgba = nullptr;
  int timestamp = 0;
  MUSE_CHECK(WebPAnimDecoderHasMoreFrames(dec.get()) &&
                 WebPAnimDecoderGetNext(dec.get(), &rgba, &timestamp) && rgba,
             "WebP: cannot decode the first animation frame");
  for (int64_t i = 0; i < img.width * img.height; ++i)
    std::memcpy(&img.rgb[3 * i], rgba + 4 * i, 3);
  return img;
}

// ---------------------------------------------------------------- GIF

struct GifSource {
  const uint8_t* data;
  size_t size, pos;
};

int gif_read_fn(GifFileType* gif, GifByteType* out, int n) {
  auto* src = static_cast<GifSource*>(gif->UserData);
  const size_t take = std::min(static_cast<size_t>(std::max(n, 0)), src->size - src->pos);
  std::memcpy(out, src->data + src->pos, take);
  src->pos += take;
  return static_cast<int>(take);
}

std::string gif_error(int code) {
  const char* s = GifErrorString(code);
  return s ? s : "unknown error";
}

RgbImage decode_gif(std::span<const uint8_t> bytes, const ImageLimits& limits) {
  GifSource src{bytes.data(), bytes.size(), 0};
  int code = 0;
  std::unique_ptr<GifFileType, void (*)(GifFileType*)> gif(
      DGifOpen(&src, gif_read_fn, &code), [](GifFileType* g) { DGifCloseFile(g, nullptr); });
  MUSE_CHECK(gif, "GIF: cannot read the header: ", gif_error(code));
  GifFileType* g = gif.get();
  check_dimensions(g->SWidth, g->SHeight, limits, "GIF");

  int transparent = -1;
  for (;;) {
    GifRecordType type;
    MUSE_CHECK(DGifGetRecordType(g, &type) == GIF_OK, "GIF: ", gif_error(g->Error));
    if (type == TERMINATE_RECORD_TYPE) throw Error("GIF: the file holds no image");
    if (type == EXTENSION_RECORD_TYPE) {
      int ext_code = 0;
      GifByteType* ext = nullptr;
      MUSE_CHECK(DGifGetExtension(g, &ext_code, &ext) == GIF_OK, "GIF: ", gif_error(g->Error));
      if (ext_code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4 && (ext[1] & 1))
        transparent = ext[4];
      while (ext) {
        MUSE_CHECK(DGifGetExtensionNext(g, &ext) == GIF_OK, "GIF: ", gif_error(g->Error));
      }
      continue;
    }
    MUSE_CHECK(type == IMAGE_DESC_RECORD_TYPE, "GIF: unexpected record");
    break;
  }
  MUSE_CHECK(DGifGetImageDesc(g) == GIF_OK, "GIF: ", gif_error(g->Error));
  const GifImageDesc& d = g->Image;
  MUSE_CHECK(d.Width > 0 && d.Height > 0, "GIF: empty frame");
  check_dimensions(d.Width, d.Height, limits, "GIF frame");
  const ColorMapObject* cmap = d.ColorMap ? d.ColorMap : g->SColorMap;
  MUSE_CHECK(cmap && cmap->Colors && cmap->ColorCount > 0, "GIF: no colour table");

  std::vector<GifPixelType> frame(static_cast<size_t>(d.Width) * d.Height);
  if (d.Interlace) {
    static constexpr int kStart[4] = {0, 4, 2, 1}, kStep[4] = {8, 8, 4, 2};
    for (int pass = 0; pass < 4; ++pass)
      for (int y = kStart[pass]; y < d.Height; y += kStep[pass])
        MUSE_CHECK(DGifGetLine(g, &frame[static_cast<size_t>(y) * d.Width], d.Width) == GIF_OK,
                   "GIF: ", gif_error(g->Error));
  } else {
    for (int y = 0; y < d.Height; ++y)
      MUSE_CHECK(DGifGetLine(g, &frame[static_cast<size_t>(y) * d.Width], d.Width) == GIF_OK,
                 "GIF: ", gif_error(g->Error));
  }

  // The logical screen starts as the transparent index (or the background colour)
  // and the first frame is drawn at its offset, clipped to the screen.
  auto colour = [&](int index, uint8_t* out) {
    if (index < 0 || index >= cmap->ColorCount) {
      out[0] = out[1] = out[2] = 0;
      return;
    }
    out[0] = cmap->Colors[index].Red;
    out[1] = cmap->Colors[index].Green;
    out[2] = cmap->Colors[index].Blue;
  };
  RgbImage img;
  img.width = g->SWidth;
  img.height = g->SHeight;
  img.rgb.resize(static_cast<size_t>(img.width * img.height) * 3);
  uint8_t fill[3];
  colour(transparent >= 0 ? transparent : g->SBackGroundColor, fill);
  for (int64_t i = 0; i < img.width * img.height; ++i) std::memcpy(&img.rgb[3 * i], fill, 3);
  for (int y = 0; y < d.Height; ++y) {
    const int64_t sy = static_cast<int64_t>(d.Top) + y;
    if (sy < 0 || sy >= img.height) continue;
    for (int x = 0; x < d.Width; ++x) {
      const int64_t sx = static_cast<int64_t>(d.Left) + x;
      if (sx < 0 || sx >= img.width) continue;
      colour(frame[static_cast<size_t>(y) * d.Width + x], &img.rgb[(sy * img.width + sx) * 3]);
    }
  }
  return img;
}

bool starts_with(std::span<const uint8_t> b, const char* magic, size_t n, size_t at = 0) {
  return b.size() >= at + n && std::memcmp(b.data() + at, magic, n) == 0;
}

}  // namespace

RgbImage decode_image(std::span<const uint8_t> bytes, const ImageLimits& limits) {
  if (static_cast<int64_t>(bytes.size()) > limits.max_bytes) {
    throw MediaTooLarge(
        str_cat("image is ", bytes.size(), " bytes, over the limit of ", limits.max_bytes));
  }
  MUSE_CHECK(!bytes.empty(), "image: empty data");
  if (starts_with(bytes, "\x89PNG\r\n\x1a\n", 8)) return decode_png(bytes, limits);
  if (starts_with(bytes, "\xff\xd8\xff", 3)) return decode_jpeg(bytes, limits);
  if (starts_with(bytes, "RIFF", 4) && starts_with(bytes, "WEBP", 4, 8))
    return decode_webp(bytes, limits);
  if (starts_with(bytes, "GIF87a", 6) || starts_with(bytes, "GIF89a", 6))
    return decode_gif(bytes, limits);
  throw Error("image: unsupported or unrecognised format (expected PNG, JPEG, WebP or GIF)");
}

}  // namespace muse::media
