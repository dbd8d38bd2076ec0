// Muse's error type. Every failure caused by input (a model file, a request, a
// media file, a template) is reported by throwing muse::Error with a message that
// names the problem; callers at API boundaries catch it and keep serving.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace muse {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates any streamable values into a string: str_cat("tensor ", name, " is ", n).
template <typename... Args>
std::string str_cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

// Throws muse::Error built from the arguments unless cond holds.
#define MUSE_CHECK(cond, ...)                               \
  do {                                                      \
    if (!(cond)) throw ::muse::Error(::muse::str_cat(__VA_ARGS__)); \
  } while (0)

}  // namespace muse
