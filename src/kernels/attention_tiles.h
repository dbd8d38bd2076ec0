// The part of every ISA's attention kernel that is not SIMD: picking the tile
// function for the cache's key/value formats and splitting the rows into even
// tiles. Templates only, instantiated by each attention_<isa>.cpp with its own
// types (internal linkage there), so no code compiled with one ISA's flags is
// shared with another.
//
// Parameters: MaxRows, the most query rows per tile; Tile<K, V, R>::run, one
// tile of R rows with keys in format K and values in format V; FloatKeys<E>,
// the key format of float elements E; Q8Keys; and the float element types
// F32Elems, F16Elems (values, and keys through FloatKeys).
#pragma once

#include <array>
#include <cstddef>
#include <utility>

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

template <int MaxRows, template <typename, typename, int> class Tile, typename K, typename F32Elems,
          typename F16Elems>
const Tiles<MaxRows>& with_values(const AttnKv& kv) {
  return kv.v_elem == KvElem::F16 ? kTiles<MaxRows, Tile, K, F16Elems>
                                  : kTiles<MaxRows, Tile, K, F32Elems>;
}

// The AttentionFn of an ISA: runs `rows` as even tiles (7 rows as one tile of 7
// where MaxRows >= 7; 9 as 5 + 4 where it is 8).
template <int MaxRows, template <typename, typename, int> class Tile,
          template <typename> class FloatKeys, typename Q8Keys, typename F32Elems,
          typename F16Elems>
void run(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale) {
  const Tiles<MaxRows>& t =
      kv.k_elem == KvElem::Q8_0 ? with_values<MaxRows, Tile, Q8Keys, F32Elems, F16Elems>(kv)
      : kv.k_elem == KvElem::F16
          ? with_values<MaxRows, Tile, FloatKeys<F16Elems>, F32Elems, F16Elems>(kv)
          : with_values<MaxRows, Tile, FloatKeys<F32Elems>, F32Elems, F16Elems>(kv);
  const int n_tiles = (n_rows + MaxRows - 1) / MaxRows;
  for (int i = 0; i < n_tiles; ++i) {
    const int r0 = n_rows * i / n_tiles, r1 = n_rows * (i + 1) / n_tiles;
    t[static_cast<size_t>(r1 - r0 - 1)](kv, rows + r0, scale);
  }
}

}  // namespace muse::kernels::attention_tiles
