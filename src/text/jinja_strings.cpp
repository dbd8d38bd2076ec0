#include "text/jinja_strings.h"

#include <algorithm>

#include "text/utf8.h"

namespace muse::text::jinja {
namespace {

struct Decoded {
  std::vector<char32_t> cps;
  std::vector<size_t> offsets;  // byte offset of each code point, plus the end
};

Decoded decode(std::string_view s) {
  Decoded d;
  d.cps.reserve(s.size());
  d.offsets.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    d.offsets.push_back(i);
    d.cps.push_back(decode_utf8(s, i, &len));
    i += len;
  }
  d.offsets.push_back(s.size());
  return d;
}

// Appends code point i of s: its original bytes (keeps invalid bytes as they were).
void append_original(std::string& out, std::string_view s, const Decoded& d, size_t i) {
  out.append(s.substr(d.offsets[i], d.offsets[i + 1] - d.offsets[i]));
}

// Latin Extended-A: which code point of a case pair is the capital.
bool latin_ext_a_pair_upper_is_odd(char32_t c) {
  return (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
}
bool in_pair_ranges_cyrillic(char32_t c) {
  return (c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F);
}
// Latin Extended-B ranges where even code points are capitals.
bool in_pair_ranges_latin_ext_b(char32_t c) {
  return (c >= 0x1DE && c <= 0x1EF) || (c >= 0x1F8 && c <= 0x21F) || (c >= 0x222 && c <= 0x233) ||
         (c >= 0x246 && c <= 0x24F);
}

// Upper-case expansions of the Latin ligatures (U+FB00..U+FB06).
const char* ligature_upper(char32_t c) {
  switch (c) {
    case 0xFB00:
      return "FF";
    case 0xFB01:
      return "FI";
    case 0xFB02:
      return "FL";
    case 0xFB03:
      return "FFI";
    case 0xFB04:
      return "FFL";
    case 0xFB05:
    case 0xFB06:
      return "ST";
    default:
      return nullptr;
  }
}

const char* ligature_title(char32_t c) {
  switch (c) {
    case 0xFB00:
      return "Ff";
    case 0xFB01:
      return "Fi";
    case 0xFB02:
      return "Fl";
    case 0xFB03:
      return "Ffi";
    case 0xFB04:
      return "Ffl";
    case 0xFB05:
    case 0xFB06:
      return "St";
    default:
      return nullptr;
  }
}

// The DŽ/Dž/dž, LJ/Lj/lj, NJ/Nj/nj and DZ/Dz/dz triples: capital, title, small.
bool digraph_triple(char32_t c, char32_t* upper, char32_t* title, char32_t* lower) {
  char32_t base;
  if (c >= 0x1C4 && c <= 0x1CC) {
    base = 0x1C4 + (c - 0x1C4) / 3 * 3;
  } else if (c >= 0x1F1 && c <= 0x1F3) {
    base = 0x1F1;
  } else {
    return false;
  }
  *upper = base;
  *title = base + 1;
  *lower = base + 2;
  return true;
}

bool in_pair_ranges_latin_additional(char32_t c) {
  return (c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF);
}

void append_upper(std::string& out, char32_t c) {
  if (c == 0xDF) {  // ß upper-cases to two letters
    out += "SS";
    return;
  }
  if (const char* lig = ligature_upper(c)) {
    out += lig;
    return;
  }
  append_utf8(out, py_to_upper(c));
}

bool is_case_ignorable(char32_t c) {
  return c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xAD || c == 0x2019 ||
         (c >= 0x300 && c <= 0x36F);
}

// Σ lower-cases to final ς after a cased letter when no cased letter follows
// (Unicode's Final_Sigma condition, which Python applies).
bool is_final_sigma(const std::vector<char32_t>& cps, size_t i) {
  size_t j = i;
  bool before = false;
  while (j > 0) {
    const char32_t c = cps[--j];
    if (is_case_ignorable(c)) continue;
    before = is_cased(c);
    break;
  }
  if (!before) return false;
  for (size_t k = i + 1; k < cps.size(); ++k) {
    if (is_case_ignorable(cps[k])) continue;
    return !is_cased(cps[k]);
  }
  return true;
}

void append_lower(std::string& out, const std::vector<char32_t>& cps, size_t i) {
  const char32_t c = cps[i];
  if (c == 0x130) {  // İ lower-cases to i + combining dot above
    out += "i\xCC\x87";
    return;
  }
  if (c == 0x3A3 && is_final_sigma(cps, i)) {
    append_utf8(out, 0x3C2);
    return;
  }
  append_utf8(out, py_to_lower(c));
}

void append_title(std::string& out, char32_t c) {
  if (c == 0xDF) {
    out += "Ss";
    return;
  }
  if (const char* lig = ligature_title(c)) {
    out += lig;
    return;
  }
  char32_t upper, title, lower;
  if (digraph_triple(c, &upper, &title, &lower)) {
    append_utf8(out, title);
    return;
  }
  append_utf8(out, py_to_upper(c));
}

bool is_title_separator(char32_t c) {
  return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_py_space(c);
}

// The whitespace-run split of str.split()/str.rsplit() over decoded text.
std::vector<std::string> split_whitespace(std::string_view s, int64_t maxsplit, bool reverse) {
  const Decoded d = decode(s);
  const int64_t n = static_cast<int64_t>(d.cps.size());
  std::vector<std::string> parts;
  int64_t remaining = maxsplit < 0 ? INT64_MAX : maxsplit;
  auto piece = [&](int64_t a, int64_t b) {
    return std::string(s.substr(d.offsets[a], d.offsets[b] - d.offsets[a]));
  };
  if (!reverse) {
    int64_t i = 0;
    while (remaining-- > 0) {
      while (i < n && is_py_space(d.cps[i])) ++i;
      if (i == n) break;
      const int64_t j = i++;
      while (i < n && !is_py_space(d.cps[i])) ++i;
      parts.push_back(piece(j, i));
    }
    if (i < n) {
      while (i < n && is_py_space(d.cps[i])) ++i;
      if (i != n) parts.push_back(piece(i, n));
    }
    return parts;
  }
  int64_t i = n - 1;
  while (remaining-- > 0) {
    while (i >= 0 && is_py_space(d.cps[i])) --i;
    if (i < 0) break;
    const int64_t j = i--;
    while (i >= 0 && !is_py_space(d.cps[i])) --i;
    parts.push_back(piece(i + 1, j + 1));
  }
  if (i >= 0) {
    while (i >= 0 && is_py_space(d.cps[i])) --i;
    if (i >= 0) parts.push_back(piece(0, i + 1));
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

size_t byte_offset_of(const std::vector<size_t>& offsets, int64_t cp_index) {
  return offsets[static_cast<size_t>(cp_index)];
}

int64_t cp_index_of(const std::vector<size_t>& offsets, size_t byte) {
  return std::lower_bound(offsets.begin(), offsets.end(), byte) - offsets.begin();
}

}  // namespace

std::vector<size_t> char_offsets(std::string_view s) {
  return decode(s).offsets;
}

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

size_t py_len(std::string_view s) {
  if (is_ascii(s)) return s.size();
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    size_t len = 1;
    decode_utf8(s, i, &len);
    i += len;
  }
  return n;
}

bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

bool is_line_break(char32_t c) {
  return (c >= 0x0A && c <= 0x0D) || (c >= 0x1C && c <= 0x1E) || c == 0x85 || c == 0x2028 ||
         c == 0x2029;
}

char32_t py_to_upper(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  if (c == 0xB5) return 0x39C;
  if (c >= 0xE0 && c <= 0xFE && c != 0xF7) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if (c == 0x130 || c == 0x138 || c == 0x149 || c == 0x178) return c;
    if (latin_ext_a_pair_upper_is_odd(c)) return c % 2 == 0 ? c - 1 : c;
    return c % 2 == 1 ? c - 1 : c;
  }
  char32_t du, dt, dl;
  if (digraph_triple(c, &du, &dt, &dl)) return du;
  if (c >= 0x1CD && c <= 0x1DC) return c % 2 == 0 ? c - 1 : c;
  if (in_pair_ranges_latin_ext_b(c)) return c % 2 == 1 ? c - 1 : c;
  if (c >= 0x3B1 && c <= 0x3CB) return c == 0x3C2 ? 0x3A3 : c - 32;
  if (c == 0x3AC) return 0x386;
  if (c >= 0x3AD && c <= 0x3AF) return c - 37;
  if (c == 0x3CC) return 0x38C;
  if (c == 0x3CD || c == 0x3CE) return c - 63;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  if (in_pair_ranges_cyrillic(c)) return c % 2 == 1 ? c - 1 : c;
  if (c >= 0x4C1 && c <= 0x4CE) return c % 2 == 0 ? c - 1 : c;
  if (c == 0x4CF) return 0x4C0;
  if (c >= 0x561 && c <= 0x586) return c - 48;
  if (in_pair_ranges_latin_additional(c)) return c % 2 == 1 ? c - 1 : c;
  if (c >= 0xFF41 && c <= 0xFF5A) return c - 32;
  return c;
}

char32_t py_to_lower(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    if (c == 0x130) return 'i';
    if (c == 0x131 || c == 0x138 || c == 0x149 || c == 0x17F) return c;
    if (latin_ext_a_pair_upper_is_odd(c)) return c % 2 == 1 ? c + 1 : c;
    return c % 2 == 0 ? c + 1 : c;
  }
  char32_t du, dt, dl;
  if (digraph_triple(c, &du, &dt, &dl)) return dl;
  if (c >= 0x1CD && c <= 0x1DC) return c % 2 == 1 ? c + 1 : c;
  if (in_pair_ranges_latin_ext_b(c)) return c % 2 == 0 ? c + 1 : c;
  if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (in_pair_ranges_cyrillic(c)) return c % 2 == 0 ? c + 1 : c;
  if (c >= 0x4C1 && c <= 0x4CE) return c % 2 == 1 ? c + 1 : c;
  if (c == 0x4C0) return 0x4CF;
  if (c >= 0x531 && c <= 0x556) return c + 48;
  if (c == 0x1E9E) return 0xDF;
  if (in_pair_ranges_latin_additional(c)) return c % 2 == 0 ? c + 1 : c;
  if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
  return c;
}

bool is_cased(char32_t c) {
  return c == 0xDF || c == 0x138 || c == 0x149 || ligature_upper(c) != nullptr ||
         py_to_upper(c) != c || py_to_lower(c) != c;
}

bool is_py_alpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  if (is_cased(c) || c == 0xAA || c == 0xBA) return true;
  return (c >= 0x5D0 && c <= 0x5EA) || (c >= 0x620 && c <= 0x64A) || (c >= 0x904 && c <= 0x939) ||
         (c >= 0x3041 && c <= 0x3096) || (c >= 0x30A1 && c <= 0x30FA) ||
         (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7A3) ||
         (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xE01 && c <= 0xE30);
}

bool is_py_digit(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 0x660 && c <= 0x669) || (c >= 0x6F0 && c <= 0x6F9) ||
         (c >= 0x966 && c <= 0x96F) || (c >= 0xFF10 && c <= 0xFF19) || c == 0xB2 || c == 0xB3 ||
         c == 0xB9;
}

bool is_word_char(char32_t c) {
  if (c < 0x80) return c == '_' || is_py_alpha(c) || is_py_digit(c);
  if (is_py_space(c)) return false;
  // Punctuation and symbol blocks; everything else non-ASCII counts as a letter.
  if (c < 0xC0) return c == 0xAA || c == 0xB5 || c == 0xBA || is_py_digit(c);
  if (c == 0xD7 || c == 0xF7) return false;
  if ((c >= 0x2000 && c <= 0x2BFF) || (c >= 0x3000 && c <= 0x303F) ||
      (c >= 0xFF00 && c <= 0xFF0F) || (c >= 0xFE30 && c <= 0xFE4F) ||
      (c >= 0x1F000 && c <= 0x1FAFF) || c == 0xFFFD)
    return false;
  return true;
}

std::string py_upper(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
    return out;
  }
  const Decoded d = decode(s);
  for (size_t i = 0; i < d.cps.size(); ++i) {
    if (d.cps[i] == 0xFFFD)
      append_original(out, s, d, i);
    else
      append_upper(out, d.cps[i]);
  }
  return out;
}

std::string py_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  if (is_ascii(s)) {
    for (char c : s) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    return out;
  }
  const Decoded d = decode(s);
  for (size_t i = 0; i < d.cps.size(); ++i) {
    if (d.cps[i] == 0xFFFD)
      append_original(out, s, d, i);
    else
      append_lower(out, d.cps, i);
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  const Decoded d = decode(s);
  std::string out;
  for (size_t i = 0; i < d.cps.size(); ++i) {
    if (d.cps[i] == 0xFFFD)
      append_original(out, s, d, i);
    else if (i == 0)
      append_title(out, d.cps[i]);
    else
      append_lower(out, d.cps, i);
  }
  return out;
}

std::string py_title(std::string_view s) {
  const Decoded d = decode(s);
  std::string out;
  bool previous_cased = false;
  for (size_t i = 0; i < d.cps.size(); ++i) {
    const char32_t c = d.cps[i];
    if (c == 0xFFFD)
      append_original(out, s, d, i);
    else if (previous_cased)
      append_lower(out, d.cps, i);
    else
      append_title(out, c);
    previous_cased = is_cased(c);
  }
  return out;
}

std::string py_swapcase(std::string_view s) {
  const Decoded d = decode(s);
  std::string out;
  for (size_t i = 0; i < d.cps.size(); ++i) {
    const char32_t c = d.cps[i];
    char32_t upper, title, lower;
    const bool is_title_digraph = digraph_triple(c, &upper, &title, &lower) && c == title;
    if (c == 0xFFFD || is_title_digraph)
      append_original(out, s, d, i);
    else if (py_to_lower(c) != c || c == 0x130)
      append_lower(out, d.cps, i);
    else
      append_upper(out, c);
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  // Jinja splits at runs of [-\s({[<] (keeping them) and, in every piece,
  // upper-cases the first character and lower-cases the rest.
  const Decoded d = decode(s);
  std::string out;
  size_t i = 0;
  while (i < d.cps.size()) {
    const bool separator = is_title_separator(d.cps[i]);
    size_t j = i + 1;
    while (j < d.cps.size() && is_title_separator(d.cps[j]) == separator) ++j;
    std::string_view first = s.substr(d.offsets[i], d.offsets[i + 1] - d.offsets[i]);
    out += py_upper(first);
    out += py_lower(s.substr(d.offsets[i + 1], d.offsets[j] - d.offsets[i + 1]));
    i = j;
  }
  return out;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                     bool right) {
  const Decoded d = decode(s);
  std::vector<char32_t> set;
  if (chars) {
    const Decoded c = decode(*chars);
    set = c.cps;
  }
  auto strip_it = [&](char32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : is_py_space(c);
  };
  size_t a = 0, b = d.cps.size();
  if (left)
    while (a < b && strip_it(d.cps[a])) ++a;
  if (right)
    while (b > a && strip_it(d.cps[b - 1])) --b;
  return std::string(s.substr(d.offsets[a], d.offsets[b] - d.offsets[a]));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep,
                                  int64_t maxsplit) {
  if (!sep) return split_whitespace(s, maxsplit, false);
  std::vector<std::string> parts;
  int64_t remaining = maxsplit < 0 ? INT64_MAX : maxsplit;
  size_t start = 0;
  while (remaining-- > 0) {
    const size_t hit = s.find(*sep, start);
    if (hit == std::string_view::npos) break;
    parts.emplace_back(s.substr(start, hit - start));
    start = hit + sep->size();
  }
  parts.emplace_back(s.substr(start));
  return parts;
}

std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep,
                                   int64_t maxsplit) {
  if (!sep) return split_whitespace(s, maxsplit, true);
  std::vector<std::string> parts;
  int64_t remaining = maxsplit < 0 ? INT64_MAX : maxsplit;
  size_t end = s.size();
  while (remaining-- > 0 && end >= sep->size()) {
    const size_t hit = s.rfind(*sep, end - sep->size());
    if (hit == std::string_view::npos) break;
    parts.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
    end = hit;
  }
  parts.emplace_back(s.substr(0, end));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  const Decoded d = decode(s);
  std::vector<std::string> lines;
  size_t start = 0, i = 0;
  const size_t n = d.cps.size();
  while (i < n) {
    if (!is_line_break(d.cps[i])) {
      ++i;
      continue;
    }
    size_t eol = i + 1;
    if (d.cps[i] == '\r' && eol < n && d.cps[eol] == '\n') ++eol;
    const size_t end = keepends ? eol : i;
    lines.emplace_back(s.substr(d.offsets[start], d.offsets[end] - d.offsets[start]));
    start = i = eol;
  }
  if (start < n) lines.emplace_back(s.substr(d.offsets[start]));
  return lines;
}

std::optional<std::string> py_replace(std::string_view s, std::string_view old_sub,
                                      std::string_view new_sub, int64_t count, size_t max_bytes) {
  std::string out;
  int64_t remaining = count < 0 ? INT64_MAX : count;
  if (old_sub.empty()) {
    // Inserts new_sub before every character and at the end.
    const std::vector<size_t> offsets = char_offsets(s);
    for (size_t i = 0; i + 1 < offsets.size(); ++i) {
      if (remaining > 0) {
        out += new_sub;
        --remaining;
      }
      out.append(s.substr(offsets[i], offsets[i + 1] - offsets[i]));
      if (out.size() > max_bytes) return std::nullopt;
    }
    if (remaining > 0) out += new_sub;
    if (out.size() > max_bytes) return std::nullopt;
    return out;
  }
  size_t start = 0;
  while (remaining-- > 0) {
    const size_t hit = s.find(old_sub, start);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(start, hit - start));
    out.append(new_sub);
    start = hit + old_sub.size();
    if (out.size() > max_bytes) return std::nullopt;
  }
  out.append(s.substr(start));
  if (out.size() > max_bytes) return std::nullopt;
  return out;
}

void clamp_slice_bounds(int64_t len, std::optional<int64_t> start, std::optional<int64_t> end,
                        int64_t* lo, int64_t* hi) {
  int64_t a = start.value_or(0), b = end.value_or(len);
  if (a < 0) a = std::max<int64_t>(0, a + len);
  if (b < 0) b = std::max<int64_t>(0, b + len);
  *lo = std::min(a, len);
  *hi = std::min(b, len);
}

int64_t py_find(std::string_view s, std::string_view sub, std::optional<int64_t> start,
                std::optional<int64_t> end, bool reverse) {
  const std::vector<size_t> offsets = char_offsets(s);
  const int64_t len = static_cast<int64_t>(offsets.size()) - 1;
  int64_t raw_start = start.value_or(0);
  if (raw_start < 0) raw_start = std::max<int64_t>(0, raw_start + len);
  if (raw_start > len) return -1;
  int64_t lo, hi;
  clamp_slice_bounds(len, start, end, &lo, &hi);
  if (hi < lo) return -1;
  const std::string_view window = s.substr(
      byte_offset_of(offsets, lo), byte_offset_of(offsets, hi) - byte_offset_of(offsets, lo));
  const size_t hit = reverse ? window.rfind(sub) : window.find(sub);
  if (hit == std::string_view::npos) return -1;
  return cp_index_of(offsets, byte_offset_of(offsets, lo) + hit);
}

int64_t py_count(std::string_view s, std::string_view sub, std::optional<int64_t> start,
                 std::optional<int64_t> end) {
  const std::vector<size_t> offsets = char_offsets(s);
  const int64_t len = static_cast<int64_t>(offsets.size()) - 1;
  int64_t raw_start = start.value_or(0);
  if (raw_start < 0) raw_start = std::max<int64_t>(0, raw_start + len);
  if (raw_start > len) return 0;
  int64_t lo, hi;
  clamp_slice_bounds(len, start, end, &lo, &hi);
  if (hi < lo) return 0;
  if (sub.empty()) return hi - lo + 1;
  const std::string_view window = s.substr(
      byte_offset_of(offsets, lo), byte_offset_of(offsets, hi) - byte_offset_of(offsets, lo));
  int64_t n = 0;
  for (size_t pos = window.find(sub); pos != std::string_view::npos;
       pos = window.find(sub, pos + sub.size()))
    ++n;
  return n;
}

std::string py_pad(std::string_view s, int64_t width, std::string_view fill, char align) {
  const int64_t len = static_cast<int64_t>(py_len(s));
  if (width <= len) return std::string(s);
  const int64_t margin = width - len;
  int64_t left = 0;
  if (align == '>') left = margin;
  if (align == '^') left = margin / 2 + (margin & width & 1);
  const int64_t right = margin - left;
  std::string out;
  out.reserve(s.size() + static_cast<size_t>(margin) * fill.size());
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < right; ++i) out += fill;
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace muse::text::jinja
