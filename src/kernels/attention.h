// Attention over a KV cache: out = softmax(scale * q K^T) V for query rows that
// share one key/value head, computed flash-attention style: the keys and values
// are visited once per tile of query rows, block by block (64 positions), with
// an online softmax (running max and sum per row), so no score row of the full
// context length is ever materialised and the cost per position stays flat.
//
// Cache layout of one (sequence, kv head), head dimension hd:
//   keys    in blocks of 16 positions, each block transposed: [n_ctx/16][hd][16]
//           (position p, dimension d at k[(p / 16) * hd * 16 + d * 16 + p % 16]),
//           so 16 positions' scores come from hd FMAs with no reductions;
//   values  row per position: [n_ctx][hd].
// Elements are f32, or IEEE f16 (half the memory and bandwidth; each value
// rounded to nearest once when stored).
// Plain declarations and data only (included by files built with ISA flags).
#pragma once

#include <cstdint>

namespace muse::kernels {

struct KernelTable;

// Keys/values of one (sequence, kv head); n_ctx must be a multiple of 16.
struct AttnKv {
  const void* k;
  const void* v;
  int64_t head_dim;
  bool f16;  // elements are f16 (uint16_t) rather than f32
};

// One query row: q (head_dim floats), the visible positions [lo, hi] (inclusive),
// and where its head_dim outputs go.
struct AttnRow {
  const float* q;
  float* out;
  int32_t lo, hi;
};

using AttentionFn = void (*)(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale);

// Runs `rows` (any number; a row with lo > hi gets zeros) with the attention
// kernel of `kernels` (the scalar reference when the ISA has none or head_dim is
// not a multiple of 16 up to 256).
void attention(const KernelTable& kernels, const AttnKv& kv, const AttnRow* rows, int n_rows,
               float scale);

// Write the key / value vector (head_dim floats) of position pos into the caches
// of one (sequence, kv head), as f16 when `f16`.
void attention_store_key(void* k_cache, int64_t head_dim, int64_t pos, const float* k, bool f16);
void attention_store_value(void* v_cache, int64_t head_dim, int64_t pos, const float* v, bool f16);

namespace reference {
void attention(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale);
}  // namespace reference

}  // namespace muse::kernels
