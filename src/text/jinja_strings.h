// Python str semantics on UTF-8 strings, for the Jinja2 interpreter: lengths
// and indices count code points (an invalid byte counts as one), whitespace is
// what str.isspace() accepts, and case mapping covers Latin, Greek, Cyrillic and
// Armenian (other scripts pass through unchanged).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace muse::text::jinja {

// Byte offset of every code point of s, plus s.size() at the end.
std::vector<size_t> char_offsets(std::string_view s);
size_t py_len(std::string_view s);
bool is_ascii(std::string_view s);

bool is_py_space(char32_t c);
bool is_line_break(char32_t c);  // what str.splitlines() splits on
char32_t py_to_upper(char32_t c);
char32_t py_to_lower(char32_t c);
bool is_cased(char32_t c);
bool is_py_alpha(char32_t c);
bool is_py_digit(char32_t c);
bool is_word_char(char32_t c);  // regex \w

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);  // str.title()
std::string py_swapcase(std::string_view s);
std::string jinja_title(std::string_view s);  // Jinja's |title filter

// strip/lstrip/rstrip; chars unset means whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                     bool right);
// split/rsplit; sep unset means runs of whitespace. maxsplit < 0: no limit.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep,
                                   int64_t maxsplit);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
// replace; count < 0 replaces all. Fails (returns nullopt) when the result would exceed max_bytes.
std::optional<std::string> py_replace(std::string_view s, std::string_view old_sub,
                                      std::string_view new_sub, int64_t count, size_t max_bytes);
// Python slice bounds normalised to [0, len] (start/end given in code points).
void clamp_slice_bounds(int64_t len, std::optional<int64_t> start, std::optional<int64_t> end,
                        int64_t* lo, int64_t* hi);
// find/rfind/count over code points; returns -1 when absent.
int64_t py_find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
                std::optional<int64_t> end, bool reverse);
int64_t py_count(std::string_view s, std::string_view sub, std::optional<int64_t> start,
                 std::optional<int64_t> end);
// center/ljust/rjust with a one-character fill.
std::string py_pad(std::string_view s, int64_t width, std::string_view fill, char align);
std::string html_escape(std::string_view s);

}  // namespace muse::text::jinja
