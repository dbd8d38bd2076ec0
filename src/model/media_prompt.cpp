#include "model/media_prompt.h"

#include <algorithm>

#include "muse/error.h"

namespace muse {

void validate_media_spans(const ModelConfig& c, std::span<const int32_t> tokens,
                          std::span<const MediaSpan> media) {
  int64_t end = 0;
  const auto n = static_cast<int64_t>(tokens.size());
  for (size_t i = 0; i < media.size(); ++i) {
    const MediaSpan& m = media[i];
    MUSE_CHECK(m.n_tokens > 0 && m.rows, "media item ", i, " has no embedding rows");
    MUSE_CHECK(m.start >= end && m.start <= n - m.n_tokens, "media item ", i, " at positions [",
               m.start, ", ", m.start + m.n_tokens, ") overlaps another or leaves the prompt (",
               n, " tokens)");
    const bool image = m.grid_h > 0 || m.grid_w > 0;
    if (image)
      MUSE_CHECK(m.grid_h > 0 && m.grid_w > 0 && m.grid_h * m.grid_w == m.n_tokens, "media item ",
                 i, ": a ", m.grid_h, "x", m.grid_w, " grid does not have ", m.n_tokens, " rows");
    const int32_t placeholder = image ? c.media_tokens.image : c.media_tokens.audio;
    if (placeholder >= 0)
      for (int64_t k = m.start; k < m.start + m.n_tokens; ++k)
        MUSE_CHECK(tokens[static_cast<size_t>(k)] == placeholder, "media item ", i, ": prompt token ",
                   k, " is ", tokens[static_cast<size_t>(k)], ", not the ",
                   image ? "image" : "audio", " placeholder ", placeholder);
    end = m.start + m.n_tokens;
  }
}

PromptPositions prompt_rope_positions(const ModelConfig& c, std::span<const int32_t> tokens,
                                      std::span<const MediaSpan> media) {
  PromptPositions out;
  const auto n = static_cast<int64_t>(tokens.size());
  if (c.mrope_sections.empty()) {
    out.next = static_cast<int32_t>(n);
    return out;
  }
  out.rows.reserve(static_cast<size_t>(n));
  int32_t next = 0;  // max position so far + 1
  size_t m = 0;
  for (int64_t i = 0; i < n;) {
    if (m < media.size() && media[m].start == i && media[m].grid_h > 0) {
      const MediaSpan& img = media[m++];
      const int32_t st = next;
      for (int64_t r = 0; r < img.grid_h; ++r)
        for (int64_t col = 0; col < img.grid_w; ++col)
          out.rows.push_back({st, static_cast<int32_t>(st + r), static_cast<int32_t>(st + col)});
      next = static_cast<int32_t>(st + std::max(img.grid_h, img.grid_w));
      i += img.n_tokens;
      continue;
    }
    if (m < media.size() && media[m].start == i) ++m;  // audio: sequential like text
    out.rows.push_back({next, next, next});
    ++next;
    ++i;
  }
  out.next = next;
  return out;
}

}  // namespace muse
