#include "model/media_forward.h"

#include <algorithm>

#include "muse/error.h"

namespace muse {
namespace {

// [begin, end) runs of `id` in ids.
std::vector<std::pair<int64_t, int64_t>> runs_of(const std::vector<int32_t>& ids, int32_t id) {
  std::vector<std::pair<int64_t, int64_t>> runs;
  if (id < 0) return runs;
  for (size_t i = 0; i < ids.size();) {
    if (ids[i] != id) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < ids.size() && ids[j] == id) ++j;
    runs.emplace_back(static_cast<int64_t>(i), static_cast<int64_t>(j));
    i = j;
  }
  return runs;
}

}  // namespace

MultimodalOutputs run_multimodal(Decoder& decoder, const MediaEncoders& enc,
                                 const MultimodalInputs& in, int32_t seq) {
  const ModelConfig& c = decoder.config();
  const MediaTokenIds& mt = c.media_tokens;
  MultimodalOutputs out;
  std::vector<std::vector<float>> rows;  // per media item, kept alive for forward()
  std::vector<MediaSpan> spans;

  const auto image_runs = runs_of(in.ids, mt.image);
  MUSE_CHECK(image_runs.size() == in.images.size(), "the ids hold ", image_runs.size(),
             " image placeholder runs but ", in.images.size(), " images were given");
  if (!in.images.empty()) MUSE_CHECK(enc.vision, "this model has no vision encoder");
  for (size_t i = 0; i < in.images.size(); ++i) {
    const ImagePatches& img = in.images[i];
    auto e = enc.vision->encode(img, decoder.pool());
    const int64_t n = enc.vision->n_tokens(img);
    const auto [b, end] = image_runs[i];
    MUSE_CHECK(end - b == n, "image ", i, " gives ", n, " embedding rows but its placeholder run has ",
               end - b);
    MUSE_CHECK(enc.vision->n_embd_out() == c.n_embd, "the vision encoder's output width ",
               enc.vision->n_embd_out(), " is not the decoder's ", c.n_embd);
    out.image_embeds.insert(out.image_embeds.end(), e.begin(), e.end());
    // The merged grid: rows of embeddings in raster order.
    const int64_t merge = std::max<int64_t>(1, enc.vision->processor().merge_size);
    spans.push_back({b, n, nullptr, img.grid_h / merge, img.grid_w / merge});
    rows.push_back(std::move(e));
  }
  const auto audio_runs = runs_of(in.ids, mt.audio);
  MUSE_CHECK(audio_runs.size() == in.audios.size(), "the ids hold ", audio_runs.size(),
             " audio placeholder runs but ", in.audios.size(), " audio clips were given");
  if (!in.audios.empty()) MUSE_CHECK(enc.audio, "this model has no audio encoder");
  for (size_t i = 0; i < in.audios.size(); ++i) {
    auto e = enc.audio->encode(in.audios[i], decoder.pool());
    const int64_t n = enc.audio->n_tokens(in.audios[i].n_frames);
    const auto [b, end] = audio_runs[i];
    MUSE_CHECK(end - b == n, "audio ", i, " gives ", n, " embedding rows but its placeholder run has ",
               end - b);
    MUSE_CHECK(enc.audio->n_embd_out() == c.n_embd, "the audio encoder's output width ",
               enc.audio->n_embd_out(), " is not the decoder's ", c.n_embd);
    out.audio_embeds.insert(out.audio_embeds.end(), e.begin(), e.end());
    spans.push_back({b, n, nullptr, 0, 0});
    rows.push_back(std::move(e));
  }
  for (size_t i = 0; i < spans.size(); ++i) spans[i].rows = rows[i].data();
  // Spans sorted by position (images and audio interleave in the prompt).
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return spans[a].start < spans[b].start; });
  std::vector<MediaSpan> sorted;
  for (size_t i : order) sorted.push_back(spans[i]);
  validate_media_spans(c, in.ids, sorted);
  const PromptPositions pos = prompt_rope_positions(c, in.ids, sorted);

  const size_t n = in.ids.size();
  std::vector<BatchItem> batch(n);
  for (size_t i = 0; i < n; ++i) {
    batch[i] = {in.ids[i], static_cast<int32_t>(i), seq, true};
    if (!pos.rows.empty()) {
      batch[i].rope_explicit = true;
      std::copy(pos.rows[i].begin(), pos.rows[i].end(), batch[i].rope_pos);
    }
  }
  for (const MediaSpan& s : sorted)
    for (int64_t k = 0; k < s.n_tokens; ++k)
      batch[static_cast<size_t>(s.start + k)].embedding = s.rows + k * c.n_embd;
  if (pos.rows.empty()) {
    for (size_t i = 0; i < n; ++i) out.position_ids.push_back(static_cast<int32_t>(i));
  } else {
    out.position_ids.resize(3 * n);
    for (size_t r = 0; r < 3; ++r)
      for (size_t i = 0; i < n; ++i) out.position_ids[r * n + i] = pos.rows[i][r];
  }
  decoder.clear(seq);
  const auto logits = decoder.forward(batch);
  out.logits.assign(logits.begin(), logits.end());
  return out;
}

}  // namespace muse
