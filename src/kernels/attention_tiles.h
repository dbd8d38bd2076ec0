// The part of every ISA's attention kernel that is not SIMD: picking the tile
// function for the cache's key/value formats and splitting the rows into even
// tiles. Templates only, instantiated by each attention_<isa>.cpp with its own
// types (internal linkage there), so no code compiled with one ISA's flags is
// shared with another.
//
// `Isa` provides:
//   kMaxRows                          most query rows per tile;
//   template <K, V, R> tile(kv, rows, scale)   one tile of R rows;
//   F32Keys, F16Keys, Q8Keys          key formats (tile's K);
//   F32Values, F16Values              value formats (tile's V).
#pragma once

#include <array>
#include <cstddef>
#include <utility>

#include "kernels/attention.h"

namespace muse::kernels::attention_tiles {

using TileFn = void (*)(const AttnKv&, const AttnRow*, float);

template <typename Isa>
using Tiles = std::array<TileFn, Isa::kMaxRows>;

template <typename Isa, typename K, typename V, int... I>
constexpr Tiles<Isa> make(std::integer_sequence<int, I...>) {
  return {&Isa::template tile<K, V, I + 1>...};
}

template <typename Isa, typename K, typename V>
constexpr Tiles<Isa> kTiles = make<Isa, K, V>(std::make_integer_sequence<int, Isa::kMaxRows>());

template <typename Isa, typename K>
const Tiles<Isa>& with_values(const AttnKv& kv) {
  return kv.v_elem == KvElem::F16 ? kTiles<Isa, K, typename Isa::F16Values>
                                  : kTiles<Isa, K, typename Isa::F32Values>;
}

// Runs `rows` as even tiles (7 rows as one tile of 7 where kMaxRows >= 7; 9 as
// 5 + 4 where it is 8).
template <typename Isa>
void run(const AttnKv& kv, const AttnRow* rows, int n_rows, float scale) {
  const Tiles<Isa>& t = kv.k_elem == KvElem::Q8_0  ? with_values<Isa, typename Isa::Q8Keys>(kv)
                        : kv.k_elem == KvElem::F16 ? with_values<Isa, typename Isa::F16Keys>(kv)
                                                   : with_values<Isa, typename Isa::F32Keys>(kv);
  const int n_tiles = (n_rows + Isa::kMaxRows - 1) / Isa::kMaxRows;
  for (int i = 0; i < n_tiles; ++i) {
    const int r0 = n_rows * i / n_tiles, r1 = n_rows * (i + 1) / n_tiles;
    t[static_cast<size_t>(r1 - r0 - 1)](kv, rows + r0, scale);
  }
}

}  // namespace muse::kernels::attention_tiles
