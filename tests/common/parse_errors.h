// Helpers of the file-parser tests: random input bytes, and the message of the
// muse::Error a call throws.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "muse/error.h"

namespace muse::test {

// n bytes from a generator seeded with `seed` (the same bytes for the same seed).
inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(rng());
  return v;
}

// What f() throws as a muse::Error, or "(no error)"; other exceptions propagate.
template <typename F>
std::string error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace muse::test
