// How the decoder cuts one layer's attention into work items for its threads.
// A job is one (KV head, token): that KV head's query heads over the token's
// visible positions. Prefill has hundreds of jobs; decoding one sequence has as
// many as KV heads (two for Qwen2.5-0.5B), so on its own it would keep two
// threads busy whatever the machine has, and a core that runs slower for a
// while (a shared machine's neighbour) leaves the other waiting at the layer's
// end. With few jobs and a long context, each job's positions are therefore cut
// into parts (flash-decoding's split over the sequence): part c covers positions
// [c * span, (c + 1) * span), each part's attention comes with its
// log-sum-exp, and the parts merge exactly (kernels::attention_merge).
#pragma once

#include <cstdint>

namespace muse {

struct AttentionParts {
  int64_t parts = 1;  // per job; 1: no split
  int32_t span = 0;   // positions per part, a multiple of 64 (whole kernel tiles)
};

// Items per thread the split aims for, so that work stealing can even the
// threads out; and the shortest part, below which a part's fixed cost (query
// preparation, the partial output and its merge) stops being small.
inline constexpr int64_t kAttentionItemsPerThread = 8;
inline constexpr int64_t kAttentionMinPartPositions = 256;

// The split for n_jobs jobs whose visible positions all lie in [0, positions)
// on n_threads threads. Never more than 2 * kAttentionItemsPerThread *
// n_threads items (jobs x parts) when it splits, so scratch for the partial
// outputs can be sized once (attention_part_items_max).
AttentionParts attention_parts(int64_t n_jobs, int64_t positions, int n_threads);

// The most items (jobs x parts) of a split, for scratch sizing.
inline int64_t attention_part_items_max(int n_threads) {
  return 2 * kAttentionItemsPerThread * n_threads;
}

}  // namespace muse
