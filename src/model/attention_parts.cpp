#include "model/attention_parts.h"

#include <algorithm>

namespace muse {

AttentionParts attention_parts(int64_t n_jobs, int64_t positions, int n_threads) {
  const int64_t want_items = kAttentionItemsPerThread * n_threads;
  if (n_threads <= 1 || n_jobs <= 0 || n_jobs >= want_items) return {};
  // Parts per job for want_items items in all (n_jobs < want_items, so
  // n_jobs x parts < want_items + n_jobs < 2 x want_items), no shorter than the
  // minimum part.
  const int64_t parts =
      std::min((want_items + n_jobs - 1) / n_jobs, positions / kAttentionMinPartPositions);
  if (parts <= 1) return {};
  const int64_t span = ((positions + parts - 1) / parts + 63) / 64 * 64;
  return {(positions + span - 1) / span, static_cast<int32_t>(span)};
}

}  // namespace muse
