// Image decoding (PNG, JPEG, WebP, GIF first frame) and the per-model image
// processors that turn a decoded image into encoder patches.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "media/media_error.h"
#include "model/media_encoder.h"

namespace muse::media {

// 8-bit RGB, row-major, 3 bytes per pixel, EXIF orientation already applied.
struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

struct ImageLimits {
  int64_t max_bytes = 20 << 20;        // encoded size
  int64_t max_pixels = 40'000'000;     // width * height, checked from the header before decoding
  int64_t max_side = 16384;
};

// Detects the format from the bytes (not from a name or a MIME type). Alpha is
// dropped (as PIL's convert("RGB")), grey and palette images expand to RGB.
// Throws MediaTooLarge when a limit is exceeded (checked from the header, before
// the pixels are decoded: decompression bombs never allocate), muse::Error for
// anything unreadable or of an unsupported format.
RgbImage decode_image(std::span<const uint8_t> bytes, const ImageLimits& limits = {});

// The output size (height, width) the processor resizes an image to.
struct ResizeTarget {
  int64_t height = 0, width = 0;
};
ResizeTarget processor_target_size(int64_t height, int64_t width, const ImageProcessorSpec& spec);

// Resize, rescale, normalise and patchify, in the reference processor's layout
// (pixel_values and grid as the Hugging Face processor returns them).
ImagePatches preprocess_image(const RgbImage& image, const ImageProcessorSpec& spec);

}  // namespace muse::media
