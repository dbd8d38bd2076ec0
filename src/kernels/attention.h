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
// Keys and values may instead be Q8_0 (llama.cpp's `-ctk q8_0 -ctv q8_0`:
// blocks of 32 dimensions as int8 with one f32 scale, d = max|x| / 127,
// x = d * round(x / d), ties to even), for hd a multiple of 32. A 16-position
// block is then 18 * hd bytes: 16 * hd quant bytes, then the scales as f32,
// [hd/32][16 positions].
//   Q8_0 keys: the quants stored biased (k + 128, as uint8) in groups of 4
//   dimensions, [hd/4][16 positions][4], so one 64-byte line feeds an unsigned x
//   signed 8-bit dot product of 4 dimensions for 16 positions. The query is
//   quantized the same way per row (Q8_0 of q), and a score is sum over blocks
//   of d_q * d_k * (integer dot product) — what llama.cpp computes for a q8_0
//   key cache.
//   Q8_0 values: the quants (signed) in groups of 4 positions, [4][hd][4
//   positions], so one 64-byte line holds 4 positions x 16 dimensions. The
//   kernels multiply them by integer weights: per tile of up to 64 positions
//   and 32-dimension block, w = p * d_v / max(d_v) (probability, at most 1,
//   times the value scale over the tile's largest) rounded to
//   0..kValueWeightMax, products summed in int32 (16-bit multiply-adds:
//   vpdpwssd, vpmaddwd, smlal) and scaled by max(d_v) / kValueWeightMax once
//   per tile. The output is attention over the Q8_0-rounded values up to that
//   rounding of the weights (at most max|v| / 65534 per position); the
//   reference computes with the exact weights.
// Plain declarations and data only (included by files built with ISA flags).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace muse::kernels {

struct KernelTable;

enum class KvElem : uint8_t { F32, F16, Q8_0 };

// The largest rounded weight of a Q8_0 value cache (above): 15 bits, so a
// weight times a value byte (at most 127 in magnitude) and 64 such products
// stay within int32.
inline constexpr float kValueWeightMax = 32767.0f;

// The key and value element types of a KV cache type as the decoder names it
// (DecoderOptions::kv_type): F32 -> f32/f32, F16 -> f16/f16, Q8_0 -> Q8_0/Q8_0;
// false for any other type.
struct KvElems {
  KvElem k, v;
};
bool kv_elems_of(DType kv_type, KvElems& out);

// Bytes of a key / value cache of n_ctx positions (a multiple of 16).
int64_t attention_key_bytes(KvElem elem, int64_t head_dim, int64_t n_ctx);
int64_t attention_value_bytes(KvElem elem, int64_t head_dim, int64_t n_ctx);

// Keys/values of one (sequence, kv head); n_ctx must be a multiple of 16.
struct AttnKv {
  const void* k;
  const void* v;
  int64_t head_dim;
  KvElem k_elem;
  KvElem v_elem;
};

// One query row: q (head_dim floats), the visible positions [lo, hi] (inclusive),
// and where its head_dim outputs go. With `lse` set the kernel also writes there
// the log-sum-exp of the row's scaled scores, ln(sum over [lo, hi] of
// exp(scale * q . k_p)) (-inf for an empty range), so that attention over
// disjoint position ranges can be merged exactly (attention_merge): a long
// context is split over threads that way.
struct AttnRow {
  const float* q;
  float* out;
  int32_t lo, hi;
  float* lse = nullptr;
};

using AttentionFn = void (*)(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale);

// Runs `rows` (any number; a row with lo > hi gets zeros) with the attention
// kernel of `kernels` (the scalar reference when the ISA has none or head_dim is
// not a multiple of 16 up to 256).
void attention(const KernelTable& kernels, const AttnKv& kv, const AttnRow* rows, int n_rows,
               float scale);

// Merges the attention of one query row over disjoint position ranges: part i's
// output (head_dim floats, normalised over its range) at outs + i * out_stride
// and its log-sum-exp at lse[i * lse_stride] (AttnRow::lse). out = sum_i
// w_i out_i / sum_i w_i with w_i = exp(lse_i - max lse); zeros when every part
// is empty (-inf).
void attention_merge(const float* outs, int64_t out_stride, const float* lse, int64_t lse_stride,
                     int n_parts, int64_t head_dim, float* out);

// Write the key / value vector (head_dim floats) of position pos into the caches
// of one (sequence, kv head), stored as `elem`.
void attention_store_key(void* k_cache, int64_t head_dim, int64_t pos, const float* k, KvElem elem);
void attention_store_value(void* v_cache, int64_t head_dim, int64_t pos, const float* v,
                           KvElem elem);

// A query row quantized for a Q8_0 key cache: per 32-dimension block b, the
// scale d[b] and 32 int8 values; `bias[b]` = 128 * sum of the block's values,
// which removes the +128 of the stored keys from an unsigned x signed product;
// `d_scaled[b]` = d[b] x the softmax scale, as the kernels apply it.
struct QueryQ8 {
  static constexpr int kMaxDim = 256;
  alignas(64) int8_t q[kMaxDim];
  float d[kMaxDim / 32];
  float d_scaled[kMaxDim / 32];
  int32_t bias[kMaxDim / 32];
};
// Quantizes q (head_dim floats, head_dim a multiple of 32 up to 256).
void quantize_query_q8(const float* q, int64_t head_dim, float softmax_scale, QueryQ8& out);

namespace reference {
void attention(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale);
}  // namespace reference

}  // namespace muse::kernels
