// A minimal PNG line plot for reports (win rate over time): white background, axes,
// horizontal grid lines with their values drawn in a tiny built-in digit font, an
// optional dashed reference line, and the series as a line with point markers.
// Encoded with libpng (8-bit RGB).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace muse::platform {

struct LinePlot {
  std::vector<double> values;  // y of points 0..n-1, spaced evenly along x
  double y_min = 0, y_max = 1;
  int y_ticks = 4;                  // grid intervals between y_min and y_max
  std::optional<double> reference;  // e.g. 0.5 for a win rate
  int width = 640, height = 360;
};

// RGB pixels (row-major, 3 bytes per pixel) of the plot.
std::vector<uint8_t> render_line_plot(const LinePlot& plot);
// Encodes RGB pixels as PNG bytes; throws muse::Error on bad sizes.
std::vector<uint8_t> encode_png_rgb(const std::vector<uint8_t>& rgb, int width, int height);
// Renders and writes the plot to `path`; throws muse::Error when it cannot write.
void write_line_plot_png(const std::string& path, const LinePlot& plot);

}  // namespace muse::platform
