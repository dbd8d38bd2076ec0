// UTF-8 helpers shared by the tokenizers and the template engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace muse::text {

// Decodes the code point at s[i]; sets `len` to the bytes consumed (1 for an
// invalid or truncated sequence, which decodes as U+FFFD).
char32_t decode_utf8(std::string_view s, size_t i, size_t* len);
void append_utf8(std::string& out, char32_t cp);
bool is_valid_utf8(std::string_view s);
// Bytes at the end of s that start an incomplete (but so far valid) sequence:
// a streaming detokenizer holds these back until the rest arrives.
size_t incomplete_utf8_tail(std::string_view s);

}  // namespace muse::text
