// The part of every ISA's attention kernel that is not SIMD: picking the tile
// function for the cache's key/value formats, splitting the rows into even
// tiles, prefetching Q8_0 blocks. Templates (instantiated by each
// attention_<isa>.cpp with its own types, internal linkage there) and static
// helpers only, so no code compiled with one ISA's flags is shared with another.
//
// Parameters: MaxRows, the most query rows per tile; Tile<K, V, R>::run, one
// tile of R rows with keys in format K and values in format V; FloatKeys<E> and
// FloatValues<E>, the key and value formats of float elements E; Q8Keys,
// Q8Values; and the float element types F32Elems, F16Elems.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "kernels/attention.h"

namespace muse::kernels::attention_tiles {

using TileFn = void (*)(const AttnKv&, const AttnRow*, float);

template <int MaxRows>
using Tiles = std::array<TileFn, MaxRows>;

template <template <typename, typename, int> class Tile, typename K, typename V, int... I>
constexpr Tiles<sizeof...(I)> make(std::integer_sequence<int, I...>) {
  return {&Tile<K, V, I + 1>::run...};
}

template <int MaxRows, template <typename, typename, int> class Tile, typename K, typename V>
constexpr Tiles<MaxRows> kTiles = make<Tile, K, V>(std::make_integer_sequence<int, MaxRows>());

template <int MaxRows, template <typename, typename, int> class Tile, typename K,
          template <typename> class FloatValues, typename Q8Values, typename F32Elems,
          typename F16Elems>
const Tiles<MaxRows>& with_values(const AttnKv& kv) {
  return kv.v_elem == KvElem::Q8_0  ? kTiles<MaxRows, Tile, K, Q8Values>
         : kv.v_elem == KvElem::F16 ? kTiles<MaxRows, Tile, K, FloatValues<F16Elems>>
                                    : kTiles<MaxRows, Tile, K, FloatValues<F32Elems>>;
}

// The helpers below are not templates, so they are `static`: each ISA file gets
// its own copy, compiled with its own flags. The two prefetching ones are always
// inlined (GCC finds an out-of-line function that only prefetches free of side
// effects and deletes its calls) and use _mm_prefetch on x86, where GCC emits
// prefetcht0 (into L1, no faster here than no prefetch) for any locality of
// __builtin_prefetch.
[[gnu::always_inline]] static inline void prefetch_l2(const char* p) {
#if defined(__x86_64__)
  _mm_prefetch(p, _MM_HINT_T1);
#else
  __builtin_prefetch(p, 0, 2);
#endif
}

// The row's log-sum-exp (AttnRow::lse) from the online softmax's final running
// maximum m and sum l of exp(score - m), when the caller asked for it.
static inline void store_lse(const AttnRow& row, float m, float l) {
  if (row.lse != nullptr) *row.lse = l > 0.0f ? m + std::log(l) : -__builtin_inff();
}

// The positions a tile of rows visits: [lo, hi] holds every row's range;
// [max_lo, min_hi] are the positions every row sees (empty if max_lo > min_hi).
struct RowSpan {
  int32_t lo, hi, max_lo, min_hi;
};
static inline RowSpan span_of(const AttnRow* rows, int n_rows) {
  RowSpan s{rows[0].lo, rows[0].hi, rows[0].lo, rows[0].hi};
  for (int r = 1; r < n_rows; ++r) {
    s.lo = rows[r].lo < s.lo ? rows[r].lo : s.lo;
    s.hi = rows[r].hi > s.hi ? rows[r].hi : s.hi;
    s.max_lo = rows[r].lo > s.max_lo ? rows[r].lo : s.max_lo;
    s.min_hi = rows[r].hi < s.min_hi ? rows[r].hi : s.min_hi;
  }
  return s;
}

// Software prefetching of Q8_0 blocks: the key and value bytes per 16 positions
// to ask for ahead of use, 0 for float elements (read in address order, which
// the hardware prefetchers follow; asking for them as well only cost time).
// Without it the Q8_0 tiles ran about twice as slow from DRAM as from cache.
struct PrefetchBlocks {
  int64_t k, v;
};
static inline PrefetchBlocks prefetch_blocks(const AttnKv& kv) {
  auto bytes = [&kv](KvElem elem) {
    return elem == KvElem::Q8_0 ? attention_key_bytes(elem, kv.head_dim, 16) : 0;
  };
  return {bytes(kv.k_elem), bytes(kv.v_elem)};
}

// Asks for the Q8_0 keys and values of the 16 positions that come two tiles
// of `tile` positions after `pos` (nothing past `hi`) to be brought into L2,
// spread over the tile so the requests do not queue up at once. Two tiles
// ahead, rather than one, measured 0.83-0.85x instead of 0.77-0.82x for the
// decode step at 4096 positions against 128 (Q4_0 Qwen2.5-0.5B shapes, both
// threads reading their caches at once); four were no better.
[[gnu::always_inline]] static inline void prefetch_ahead(const AttnKv& kv,
                                                         const PrefetchBlocks& blocks, int32_t pos,
                                                         int tile, int32_t hi) {
  pos += 2 * tile;
  if (pos > hi) return;
  const char* k = static_cast<const char*>(kv.k) + (pos / 16) * blocks.k;
  const char* v = static_cast<const char*>(kv.v) + (pos / 16) * blocks.v;
  for (int64_t i = 0; i < blocks.k; i += 64) prefetch_l2(k + i);
  for (int64_t i = 0; i < blocks.v; i += 64) prefetch_l2(v + i);
}

// The AttentionFn of an ISA: runs `rows` as even tiles (7 rows as one tile of 7
// where MaxRows >= 7; 9 as 5 + 4 where it is 8).
template <int MaxRows, template <typename, typename, int> class Tile,
          template <typename> class FloatKeys, typename Q8Keys,
          template <typename> class FloatValues, typename Q8Values, typename F32Elems,
          typename F16Elems>
void run(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale) {
  const Tiles<MaxRows>& t =
      kv.k_elem == KvElem::Q8_0
          ? with_values<MaxRows, Tile, Q8Keys, FloatValues, Q8Values, F32Elems, F16Elems>(kv)
      : kv.k_elem == KvElem::F16 ? with_values<MaxRows, Tile, FloatKeys<F16Elems>, FloatValues,
                                               Q8Values, F32Elems, F16Elems>(kv)
                                 : with_values<MaxRows, Tile, FloatKeys<F32Elems>, FloatValues,
                                               Q8Values, F32Elems, F16Elems>(kv);
  const int n_tiles = (n_rows + MaxRows - 1) / MaxRows;
  for (int i = 0; i < n_tiles; ++i) {
    const int r0 = n_rows * i / n_tiles, r1 = n_rows * (i + 1) / n_tiles;
    t[static_cast<size_t>(r1 - r0 - 1)](kv, rows + r0, scale);
  }
}

}  // namespace muse::kernels::attention_tiles
