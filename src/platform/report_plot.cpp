// PNG line plot (see report_plot.h).
#include "platform/report_plot.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>

#include "muse/error.h"

namespace muse::platform {
namespace {

struct Rgb {
  uint8_t r, g, b;
};

constexpr Rgb kAxis{40, 40, 40}, kGrid{220, 220, 220}, kReference{200, 80, 80}, kLine{30, 90, 200},
    kText{60, 60, 60};

// 3x5 glyphs for "0123456789.-", one row per 3-bit number (MSB = left column).
constexpr uint8_t kGlyphs[12][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7},
                                    {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7},
                                    {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7},
                                    {7, 5, 7, 1, 7}, {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0}};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<size_t>(w) * h * 3, 255) {}

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    uint8_t* p = &px_[(static_cast<size_t>(y) * w_ + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void hline(int x0, int x1, int y, Rgb c, int dash = 0) {
    for (int x = x0; x <= x1; ++x)
      if (dash == 0 || (x / dash) % 2 == 0) set(x, y, c);
  }
  void vline(int x, int y0, int y1, Rgb c) {
    for (int y = y0; y <= y1; ++y) set(x, y, c);
  }
  // Bresenham, 2 pixels thick.
  void line(int x0, int y0, int x1, int y1, Rgb c) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      set(x0, y0, c), set(x0 + 1, y0, c), set(x0, y0 + 1, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  void dot(int cx, int cy, int r, Rgb c) {
    for (int y = -r; y <= r; ++y)
      for (int x = -r; x <= r; ++x)
        if (x * x + y * y <= r * r) set(cx + x, cy + y, c);
  }
  // Draws digits, '.' and '-' at scale 2; returns the width used.
  int text(int x, int y, const std::string& s, Rgb c) {
    const int scale = 2;
    int cx = x;
    for (char ch : s) {
      int g = ch >= '0' && ch <= '9' ? ch - '0' : ch == '.' ? 10 : ch == '-' ? 11 : -1;
      if (g >= 0)
        for (int row = 0; row < 5; ++row)
          for (int col = 0; col < 3; ++col)
            if (kGlyphs[g][row] & (4 >> col))
              for (int sy = 0; sy < scale; ++sy)
                for (int sx = 0; sx < scale; ++sx)
                  set(cx + col * scale + sx, y + row * scale + sy, c);
      cx += 4 * scale;
    }
    return cx - x;
  }
  std::vector<uint8_t> take() { return std::move(px_); }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

void append_png(png_structp png, png_bytep data, png_size_t size) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + size);
}

}  // namespace

std::vector<uint8_t> render_line_plot(const LinePlot& plot) {
  MUSE_CHECK(plot.width >= 64 && plot.height >= 48 && plot.width <= 8192 && plot.height <= 8192,
             "plot size ", plot.width, "x", plot.height, " is out of range");
  MUSE_CHECK(plot.y_max > plot.y_min, "plot y range is empty");
  Canvas c(plot.width, plot.height);
  const int left = 56, right = plot.width - 16, top = 16, bottom = plot.height - 24;
  auto y_px = [&](double v) {
    const double t =
        (std::clamp(v, plot.y_min, plot.y_max) - plot.y_min) / (plot.y_max - plot.y_min);
    return bottom - static_cast<int>(std::lround(t * (bottom - top)));
  };
  const int ticks = std::max(1, plot.y_ticks);
  for (int i = 0; i <= ticks; ++i) {
    const double v = plot.y_min + (plot.y_max - plot.y_min) * i / ticks;
    const int y = y_px(v);
    c.hline(left, right, y, kGrid);
    c.text(4, y - 5, tick_label(v), kText);
  }
  if (plot.reference) c.hline(left, right, y_px(*plot.reference), kReference, 6);
  c.vline(left, top, bottom, kAxis);
  c.hline(left, right, bottom, kAxis);

  const size_t n = plot.values.size();
  auto x_px = [&](size_t i) {
    if (n <= 1) return (left + right) / 2;
    return left + 8 + static_cast<int>(i * static_cast<size_t>(right - left - 16) / (n - 1));
  };
  for (size_t i = 0; i < n; ++i) {
    c.vline(x_px(i), bottom, bottom + 4, kAxis);  // x tick per point
    if (i + 1 < n)
      c.line(x_px(i), y_px(plot.values[i]), x_px(i + 1), y_px(plot.values[i + 1]), kLine);
  }
  for (size_t i = 0; i < n; ++i) c.dot(x_px(i), y_px(plot.values[i]), 3, kLine);
  if (n > 0) {  // number of points under the x axis, at the right end
    c.text(right - 8 * static_cast<int>(std::to_string(n).size()), bottom + 8, std::to_string(n),
           kText);
  }
  return c.take();
}

std::vector<uint8_t> encode_png_rgb(const std::vector<uint8_t>& rgb, int width, int height) {
  MUSE_CHECK(width > 0 && height > 0 &&
                 rgb.size() == static_cast<size_t>(width) * static_cast<size_t>(height) * 3,
             "PNG encoding: ", rgb.size(), " bytes do not hold ", width, "x", height, " RGB");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  MUSE_CHECK(png != nullptr, "PNG encoding: out of memory");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    throw Error("PNG encoding: out of memory");
  }
  std::vector<uint8_t> out;
  // libpng reports errors by longjmp; nothing with a destructor is created below.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error("PNG encoding failed");
  }
  png_set_write_fn(png, &out, append_png, nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y)
    png_write_row(png, const_cast<png_bytep>(&rgb[static_cast<size_t>(y) * width * 3]));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_line_plot_png(const std::string& path, const LinePlot& plot) {
  const std::vector<uint8_t> png = encode_png_rgb(render_line_plot(plot), plot.width, plot.height);
  FILE* f = std::fopen(path.c_str(), "wb");
  MUSE_CHECK(f != nullptr, "cannot write '", path, "'");
  const size_t written = std::fwrite(png.data(), 1, png.size(), f);
  const bool closed = std::fclose(f) == 0;
  MUSE_CHECK(written == png.size() && closed, "cannot write '", path, "'");
}

}  // namespace muse::platform
