// Grammar text -> GrammarImpl (see grammar.h for the syntax, grammar_impl.h for the form).
#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>

#include "muse/error.h"
#include "text/grammar_impl.h"
#include "text/utf8.h"

namespace muse::text {

CharSet CharSet::from_ranges(std::vector<std::pair<char32_t, char32_t>> in, bool negated) {
  // Remove surrogates (never valid scalar values), sort and merge.
  std::vector<std::pair<char32_t, char32_t>> split;
  for (auto [lo, hi] : in) {
    if (lo < 0xD800 && hi >= 0xD800) {
      if (hi > 0xDFFF) split.emplace_back(0xE000, hi);
      hi = 0xD7FF;
    } else if (lo >= 0xD800 && lo <= 0xDFFF) {
      if (hi <= 0xDFFF) continue;
      lo = 0xE000;
    }
    split.emplace_back(lo, hi);
  }
  std::sort(split.begin(), split.end());
  std::vector<std::pair<char32_t, char32_t>> merged;
  for (const auto& r : split) {
    if (!merged.empty() && r.first <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  CharSet set;
  if (negated) {
    char32_t next = 0;
    for (const auto& [lo, hi] : merged) {
      if (lo > next) set.ranges.emplace_back(next, lo - 1);
      next = hi + 1;
    }
    if (next <= kMaxCodePoint) set.ranges.emplace_back(next, kMaxCodePoint);
    // The complement may include surrogates again: remove them.
    if (!set.ranges.empty()) set = from_ranges(std::move(set.ranges), false);
    return set;
  }
  set.ranges = std::move(merged);
  for (const auto& [lo, hi] : set.ranges) {
    for (char32_t c = lo; c <= hi && c < 128; ++c) set.ascii[c >> 6] |= uint64_t{1} << (c & 63);
  }
  return set;
}

namespace {

constexpr size_t kMaxRepeat = 100000;
constexpr size_t kMaxElements = 4u << 20;

using Sequence = std::vector<GrammarElement>;
using Alternatives = std::vector<Sequence>;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

class GrammarParser {
 public:
  explicit GrammarParser(std::string_view text) : src_(text) {}

  std::unique_ptr<GrammarImpl> parse(std::string_view root) {
    skip_space();
    if (at_end()) fail("the grammar is empty (no rules)");
    while (!at_end()) {
      const size_t rule_pos = pos_;
      const std::string name = parse_name();
      skip_space();
      if (src_.substr(pos_, 3) != "::=") fail("expected '::=' after rule name '" + name + "'");
      pos_ += 3;
      const uint32_t id = rule_id(name, rule_pos);
      if (defined_[id]) fail_at(rule_pos, "rule '" + name + "' is defined twice");
      defined_[id] = true;
      bodies_[id] = parse_alternatives(name);
      skip_space();
    }
    for (size_t i = 0; i < names_.size(); ++i) {
      if (!defined_[i]) fail_at(first_use_[i], "rule '" + names_[i] + "' is not defined");
    }
    auto it = ids_.find(std::string(root));
    MUSE_CHECK(it != ids_.end(), "grammar: the start rule '", root, "' is not defined");
    check_productive();
    check_left_recursion();
    return flatten(it->second);
  }

 private:
  [[noreturn]] void fail_at(size_t at, const std::string& message) const {
    const size_t line =
        1 + std::count(src_.begin(), src_.begin() + std::min(at, src_.size()), '\n');
    throw Error(str_cat("grammar line ", line, ": ", message));
  }
  [[noreturn]] void fail(const std::string& message) const { fail_at(pos_, message); }

  bool at_end() const { return pos_ >= src_.size(); }
  char peek() const { return at_end() ? '\0' : src_[pos_]; }

  void skip_space() {
    while (!at_end()) {
      const char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && src_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (!at_end() && is_name_char(src_[pos_])) ++pos_;
    if (pos_ == start) fail(str_cat("expected a rule name, found '", peek(), "'"));
    return std::string(src_.substr(start, pos_ - start));
  }

  // Lookahead: does a rule definition ("name ::=") start here?
  bool at_definition() const {
    size_t p = pos_;
    while (p < src_.size() && is_name_char(src_[p])) ++p;
    if (p == pos_) return false;
    while (p < src_.size() && (src_[p] == ' ' || src_[p] == '\t')) ++p;
    return src_.substr(p, 3) == "::=";
  }

  uint32_t rule_id(const std::string& name, size_t used_at) {
    auto [it, inserted] = ids_.emplace(name, static_cast<uint32_t>(names_.size()));
    if (inserted) {
      names_.push_back(name);
      defined_.push_back(false);
      first_use_.push_back(used_at);
      bodies_.emplace_back();
    }
    return it->second;
  }

  // A generated rule (groups, repetitions), defined immediately.
  uint32_t new_rule(const std::string& hint, Alternatives body) {
    const uint32_t id = static_cast<uint32_t>(names_.size());
    names_.push_back(str_cat(hint, " (generated #", id, ")"));
    defined_.push_back(true);
    first_use_.push_back(pos_);
    for (const auto& alt : body) element_count_ += alt.size() + 1;
    if (element_count_ > kMaxElements) fail("the grammar is too large");
    bodies_.push_back(std::move(body));
    return id;
  }

  uint32_t charset_id(std::vector<std::pair<char32_t, char32_t>> ranges, bool negated) {
    CharSet set = CharSet::from_ranges(ranges, negated);
    if (set.ranges.empty()) fail("character class matches nothing");
    auto [it, inserted] = charset_ids_.emplace(set.ranges, static_cast<uint32_t>(charsets_.size()));
    if (inserted) charsets_.push_back(std::move(set));
    return it->second;
  }

  Alternatives parse_alternatives(const std::string& rule) {
    Alternatives alts;
    alts.push_back(parse_sequence(rule));
    skip_space();
    while (peek() == '|') {
      ++pos_;
      alts.push_back(parse_sequence(rule));
      skip_space();
    }
    return alts;
  }

  Sequence parse_sequence(const std::string& rule) {
    Sequence seq;
    while (true) {
      skip_space();
      if (at_end() || peek() == '|' || peek() == ')' || at_definition()) break;
      Sequence item = parse_primary(rule);
      while (true) {
        const char c = peek();
        if (c == '*') {
          ++pos_;
          item = repeat(rule, std::move(item), 0, SIZE_MAX);
        } else if (c == '+') {
          ++pos_;
          item = repeat(rule, std::move(item), 1, SIZE_MAX);
        } else if (c == '?') {
          ++pos_;
          item = repeat(rule, std::move(item), 0, 1);
        } else if (c == '{') {
          ++pos_;
          const size_t lo = parse_count();
          size_t hi = lo;
          if (peek() == ',') {
            ++pos_;
            hi = peek() == '}' ? SIZE_MAX : parse_count();
          }
          if (peek() != '}') fail("expected '}' to close a repetition");
          ++pos_;
          if (hi < lo) fail(str_cat("repetition {", lo, ",", hi, "} has max < min"));
          item = repeat(rule, std::move(item), lo, hi);
        } else {
          break;
        }
      }
      element_count_ += item.size();
      seq.insert(seq.end(), item.begin(), item.end());
    }
    return seq;
  }

  size_t parse_count() {
    skip_space();
    size_t n = 0;
    const size_t start = pos_;
    while (!at_end() && src_[pos_] >= '0' && src_[pos_] <= '9') {
      n = n * 10 + static_cast<size_t>(src_[pos_] - '0');
      if (n > kMaxRepeat) fail(str_cat("repetition count is larger than ", kMaxRepeat));
      ++pos_;
    }
    if (pos_ == start) fail("expected a number in a repetition");
    skip_space();
    return n;
  }

  Sequence repeat(const std::string& rule, Sequence item, size_t lo, size_t hi) {
    if (item.empty()) return item;  // repeating the empty string is the empty string
    GrammarElement one = item[0];
    if (item.size() > 1) one = {GrammarElement::kRule, new_rule(rule, {std::move(item)})};
    Sequence out(lo, one);
    if (hi == SIZE_MAX) {
      // star ::= one star | (empty)
      const uint32_t star = new_rule(rule, {});
      bodies_[star] = {{one, {GrammarElement::kRule, star}}, {}};
      out.push_back({GrammarElement::kRule, star});
    } else if (hi > lo) {
      // A chain of optionals: opt_k ::= one opt_{k-1} | (empty).
      Sequence tail;
      for (size_t k = 0; k < hi - lo; ++k) {
        Sequence first{one};
        first.insert(first.end(), tail.begin(), tail.end());
        const uint32_t opt = new_rule(rule, {std::move(first), {}});
        tail = {{GrammarElement::kRule, opt}};
      }
      out.insert(out.end(), tail.begin(), tail.end());
    }
    if (out.size() > kMaxElements) fail("the grammar is too large");
    return out;
  }

  Sequence parse_primary(const std::string& rule) {
    const char c = peek();
    if (c == '"') {
      ++pos_;
      Sequence seq;
      while (true) {
        if (at_end()) fail("unterminated string literal");
        if (peek() == '"') {
          ++pos_;
          break;
        }
        const char32_t cp = read_char(false);
        seq.push_back({GrammarElement::kChars, charset_id({{cp, cp}}, false)});
      }
      return seq;
    }
    if (c == '[') return {{GrammarElement::kChars, parse_class()}};
    if (c == '.') {
      ++pos_;
      return {{GrammarElement::kChars, charset_id({{0, kMaxCodePoint}}, false)}};
    }
    if (c == '(') {
      ++pos_;
      Alternatives alts = parse_alternatives(rule);
      if (peek() != ')') fail("expected ')' to close a group");
      ++pos_;
      if (alts.size() == 1) return std::move(alts[0]);
      return {{GrammarElement::kRule, new_rule(rule, std::move(alts))}};
    }
    if (is_name_char(c)) {
      const size_t at = pos_;
      const std::string name = parse_name();
      return {{GrammarElement::kRule, rule_id(name, at)}};
    }
    if (at_end()) fail("unexpected end of grammar");
    fail(str_cat("unexpected character '", c, "'"));
  }

  uint32_t parse_class() {
    ++pos_;  // '['
    bool negated = false;
    if (peek() == '^') {
      negated = true;
      ++pos_;
    }
    std::vector<std::pair<char32_t, char32_t>> ranges;
    while (true) {
      if (at_end()) fail("unterminated character class");
      if (peek() == ']') {
        ++pos_;
        break;
      }
      const char32_t lo = read_char(true);
      char32_t hi = lo;
      if (peek() == '-' && pos_ + 1 < src_.size() && src_[pos_ + 1] != ']') {
        ++pos_;
        hi = read_char(true);
        if (hi < lo) fail("character range is reversed");
      }
      ranges.emplace_back(lo, hi);
    }
    if (ranges.empty()) fail("empty character class");
    return charset_id(std::move(ranges), negated);
  }

  uint32_t parse_hex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = peek();
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) fail(str_cat("bad escape: expected ", digits, " hex digits"));
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    return v;
  }

  // One code point of a literal or class (raw UTF-8 or an escape).
  char32_t read_char(bool in_class) {
    const char c = peek();
    if (c == '\\') {
      ++pos_;
      if (at_end()) fail("bad escape at end of grammar");
      const char e = src_[pos_++];
      char32_t cp = 0;
      switch (e) {
        case 'n':
          return '\n';
        case 't':
          return '\t';
        case 'r':
          return '\r';
        case '"':
          return '"';
        case '\\':
          return '\\';
        case 'x':
          cp = parse_hex(2);
          break;
        case 'u':
          cp = parse_hex(4);
          break;
        case 'U':
          cp = parse_hex(8);
          break;
        case ']':
        case '[':
        case '-':
        case '^':
          if (in_class) return static_cast<char32_t>(e);
          [[fallthrough]];
        default:
          --pos_;
          fail(str_cat("bad escape '\\", e, "'"));
      }
      if (cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) {
        fail(str_cat("escape names an invalid code point U+", std::hex, static_cast<uint32_t>(cp)));
      }
      return cp;
    }
    if ((c == '\n' || c == '\r') && !in_class) fail("newline inside a string literal");
    size_t len = 0;
    const char32_t cp = decode_utf8(src_, pos_, &len);
    if (cp == 0xFFFD && src_.substr(pos_, 3) != "\xEF\xBF\xBD") fail("invalid UTF-8");
    pos_ += len;
    return cp;
  }

  // Every rule must be able to finish (derive some finite string).
  void check_productive() const {
    std::vector<bool> productive(bodies_.size(), false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < bodies_.size(); ++r) {
        if (productive[r]) continue;
        for (const auto& alt : bodies_[r]) {
          const bool ok = std::all_of(alt.begin(), alt.end(), [&](const GrammarElement& e) {
            return e.kind != GrammarElement::kRule || productive[e.index];
          });
          if (ok) {
            productive[r] = changed = true;
            break;
          }
        }
      }
    }
    for (size_t r = 0; r < bodies_.size(); ++r) {
      if (!productive[r]) {
        fail_at(first_use_[r], "rule '" + names_[r] + "' can never finish (infinite recursion)");
      }
    }
  }

  void check_left_recursion() const {
    const size_t n = bodies_.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const auto& alt : bodies_[r]) {
          const bool ok = std::all_of(alt.begin(), alt.end(), [&](const GrammarElement& e) {
            return e.kind == GrammarElement::kRule && nullable[e.index];
          });
          if (ok) {
            nullable[r] = changed = true;
            break;
          }
        }
      }
    }
    // Edges r -> s when s can be the first thing r expands to without consuming input.
    std::vector<std::vector<uint32_t>> left(n);
    for (size_t r = 0; r < n; ++r) {
      for (const auto& alt : bodies_[r]) {
        for (const auto& e : alt) {
          if (e.kind != GrammarElement::kRule) break;
          left[r].push_back(e.index);
          if (!nullable[e.index]) break;
        }
      }
    }
    // Iterative DFS cycle detection (generated rule chains can be long).
    std::vector<uint8_t> color(n, 0);  // 0 new, 1 on stack, 2 done
    std::vector<std::pair<uint32_t, size_t>> stack;
    for (uint32_t start = 0; start < n; ++start) {
      if (color[start]) continue;
      stack.emplace_back(start, 0);
      color[start] = 1;
      while (!stack.empty()) {
        auto& [r, next] = stack.back();
        if (next == left[r].size()) {
          color[r] = 2;
          stack.pop_back();
          continue;
        }
        const uint32_t s = left[r][next++];
        if (color[s] == 1) {
          fail_at(first_use_[s], "rule '" + names_[s] + "' is left-recursive");
        }
        if (color[s] == 0) {
          color[s] = 1;
          stack.emplace_back(s, 0);
        }
      }
    }
  }

  std::unique_ptr<GrammarImpl> flatten(uint32_t root) {
    auto g = std::make_unique<GrammarImpl>();
    g->charsets = std::move(charsets_);
    g->root = root;
    g->rules.resize(bodies_.size());
    for (size_t r = 0; r < bodies_.size(); ++r) {
      g->rules[r].name = names_[r];
      for (const auto& alt : bodies_[r]) {
        g->rules[r].alternatives.push_back(static_cast<uint32_t>(g->elements.size()));
        g->elements.insert(g->elements.end(), alt.begin(), alt.end());
        g->elements.push_back({GrammarElement::kEnd, 0});
      }
    }
    return g;
  }

  std::string_view src_;
  size_t pos_ = 0;
  size_t element_count_ = 0;
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<std::string> names_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  std::vector<Alternatives> bodies_;
  std::vector<CharSet> charsets_;
  std::map<std::vector<std::pair<char32_t, char32_t>>, uint32_t> charset_ids_;
};

}  // namespace

Grammar::Grammar(std::unique_ptr<GrammarImpl> impl) : impl_(std::move(impl)) {}
Grammar::~Grammar() = default;

std::shared_ptr<const Grammar> Grammar::parse(std::string_view text, std::string_view root) {
  GrammarParser parser(text);
  return std::make_shared<const Grammar>(parser.parse(root));
}

}  // namespace muse::text
