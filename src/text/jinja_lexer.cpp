#include "text/jinja_lexer.h"

#include <cerrno>
#include <cstdlib>
#include <optional>

#include "text/jinja_strings.h"
#include "text/jinja_value.h"
#include "text/utf8.h"

namespace muse::text::jinja {
namespace {

[[noreturn]] void syntax_error(const std::string& message, int line) {
  throw TemplateError("TemplateSyntaxError", message, line);
}

// \r\n and \r become \n; one trailing newline is dropped.
std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool is_name_char(char c) {
  return is_name_start(c) || is_digit(c);
}

class Lexer {
 public:
  Lexer(std::string_view source, const LexerOptions& options)
      : src_(normalize_source(source)), options_(options) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) lex_root();
    push(Tok::kEof, "");
    return std::move(tokens_);
  }

 private:
  // Unicode whitespace at byte i (length in *len), or false.
  bool space_at(size_t i, size_t* len) const {
    if (i >= src_.size()) return false;
    const char32_t cp = decode_utf8(src_, i, len);
    return is_py_space(cp);
  }
  size_t skip_space(size_t i) const {
    size_t len;
    while (space_at(i, &len)) i += len;
    return i;
  }
  bool starts_with(size_t i, std::string_view s) const {
    return i <= src_.size() && src_.size() - i >= s.size() && src_.compare(i, s.size(), s) == 0;
  }
  void push(Tok type, std::string value) {
    Token t;
    t.type = type;
    t.line = line_;
    t.value = std::move(value);
    tokens_.push_back(std::move(t));
  }
  void advance_to(size_t end) {
    for (size_t i = pos_; i < end; ++i)
      if (src_[i] == '\n') ++line_;
    line_starting_ = end > pos_ && src_[end - 1] == '\n';
    pos_ = end;
  }
  void emit_data(std::string text) {
    if (text.empty()) return;
    push(Tok::kData, std::move(text));
  }

  // The text before a tag, after `-` stripping or lstrip_blocks.
  std::string strip_before_tag(std::string_view text, char sign, bool lstrip_allowed) const {
    if (sign == '-') return py_strip(text, std::nullopt, false, true);
    if (sign != '+' && options_.lstrip_blocks && lstrip_allowed) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if (l_pos > 0 || line_starting_) {
        const std::string_view tail = text.substr(l_pos);
        if (!tail.empty() && py_strip(tail, std::nullopt, true, true).empty())
          return std::string(text.substr(0, l_pos));
      }
    }
    return std::string(text);
  }

  // Length of `{%[-+]?\s*raw\s*(-%}\s*|%})` at i, or 0.
  size_t match_raw_begin(size_t i, char* sign) const {
    if (!starts_with(i, "{%")) return 0;
    size_t j = i + 2;
    *sign = 0;
    if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) *sign = src_[j++];
    j = skip_space(j);
    if (!starts_with(j, "raw")) return 0;
    j = skip_space(j + 3);
    if (starts_with(j, "-%}")) return skip_space(j + 3) - i;
    if (starts_with(j, "%}")) return j + 2 - i;
    return 0;
  }

  void lex_root() {
    // Find the next tag start.
    size_t p = pos_;
    for (;; ++p) {
      p = src_.find('{', p);
      if (p == std::string::npos || p + 1 >= src_.size()) {
        emit_data(src_.substr(pos_));
        advance_to(src_.size());
        return;
      }
      const char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') break;
    }
    const std::string_view text(src_.data() + pos_, p - pos_);
    const char kind = src_[p + 1];
    char sign = 0;
    if (p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+')) sign = src_[p + 2];
    char raw_sign = 0;
    const size_t raw_len = kind == '%' ? match_raw_begin(p, &raw_sign) : 0;
    if (raw_len > 0) sign = raw_sign;
    emit_data(strip_before_tag(text, sign, kind != '{'));
    if (raw_len > 0) {
      advance_to(p + raw_len);
      lex_raw();
      return;
    }
    advance_to(p + 2 + (sign ? 1 : 0));
    line_starting_ = false;
    if (kind == '#') {
      lex_comment();
    } else if (kind == '{') {
      push(Tok::kVarBegin, "");
      lex_tag(false);
    } else {
      push(Tok::kBlockBegin, "");
      lex_tag(true);
    }
  }

  void lex_comment() {
    const int start_line = line_;
    for (size_t q = src_.find("#}", pos_); q != std::string::npos; q = src_.find("#}", q + 1)) {
      size_t end = q + 2;
      if (q > pos_ && src_[q - 1] == '-') {
        end = skip_space(end);
      } else if (q > pos_ && src_[q - 1] == '+') {
        // keeps the newline
      } else if (options_.trim_blocks && end < src_.size() && src_[end] == '\n') {
        ++end;
      }
      advance_to(end);
      return;
    }
    syntax_error("Missing end of comment tag", start_line);
  }

  void lex_raw() {
    const int start_line = line_;
    for (size_t q = src_.find("{%", pos_); q != std::string::npos; q = src_.find("{%", q + 1)) {
      size_t j = q + 2;
      char sign = 0;
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) sign = src_[j++];
      j = skip_space(j);
      if (!starts_with(j, "endraw")) continue;
      j = skip_space(j + 6);
      size_t end;
      if (starts_with(j, "+%}")) {
        end = j + 3;
      } else if (starts_with(j, "-%}")) {
        end = skip_space(j + 3);
      } else if (starts_with(j, "%}")) {
        end = j + 2;
        if (options_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      emit_data(strip_before_tag(std::string_view(src_).substr(pos_, q - pos_), sign, true));
      advance_to(end);
      return;
    }
    syntax_error("Missing end of raw directive", start_line);
  }

  // Tokens of a {% %} (block) or {{ }} (variable) tag up to its end.
  void lex_tag(bool block) {
    std::vector<char> balance;
    while (true) {
      if (pos_ >= src_.size()) return;  // the parser reports the missing end
      if (balance.empty()) {
        if (block) {
          if (starts_with(pos_, "+%}")) {
            advance_to(pos_ + 3);
            push(Tok::kBlockEnd, "");
            return;
          }
          if (starts_with(pos_, "-%}")) {
            advance_to(skip_space(pos_ + 3));
            push(Tok::kBlockEnd, "");
            return;
          }
          if (starts_with(pos_, "%}")) {
            size_t end = pos_ + 2;
            if (options_.trim_blocks && end < src_.size() && src_[end] == '\n') ++end;
            advance_to(end);
            push(Tok::kBlockEnd, "");
            return;
          }
        } else {
          if (starts_with(pos_, "-}}")) {
            advance_to(skip_space(pos_ + 3));
            push(Tok::kVarEnd, "");
            return;
          }
          if (starts_with(pos_, "}}")) {
            advance_to(pos_ + 2);
            push(Tok::kVarEnd, "");
            return;
          }
        }
      }
      const size_t after_space = skip_space(pos_);
      if (after_space > pos_) {
        advance_to(after_space);
        continue;
      }
      if (lex_number() || lex_name() || lex_string()) continue;
      lex_operator(&balance);
    }
  }

  // Digits with single '_' separators; returns the end or npos when none.
  size_t digit_run(size_t i, bool (*ok)(char)) const {
    if (i >= src_.size() || !ok(src_[i])) return std::string::npos;
    ++i;
    while (i < src_.size()) {
      if (ok(src_[i])) {
        ++i;
      } else if (src_[i] == '_' && i + 1 < src_.size() && ok(src_[i + 1])) {
        i += 2;
      } else {
        break;
      }
    }
    return i;
  }

  bool lex_number() {
    const size_t start = pos_;
    if (!is_digit(src_[start])) return false;
    auto dec = [](char c) { return is_digit(c); };
    // Float: digits then (.digits)?e[+-]?digits or .digits; not right after a '.'.
    if (start == 0 || src_[start - 1] != '.') {
      const size_t int_end = digit_run(start, dec);
      size_t end = std::string::npos;
      size_t frac_end = std::string::npos;
      if (int_end < src_.size() && src_[int_end] == '.') frac_end = digit_run(int_end + 1, dec);
      const size_t mantissa_end = frac_end != std::string::npos ? frac_end : int_end;
      if (mantissa_end < src_.size() && (src_[mantissa_end] == 'e' || src_[mantissa_end] == 'E')) {
        size_t k = mantissa_end + 1;
        if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
        end = digit_run(k, dec);
      }
      if (end == std::string::npos) end = frac_end;
      if (end != std::string::npos) {
        std::string text;
        for (size_t i = start; i < end; ++i)
          if (src_[i] != '_') text += src_[i];
        Token t;
        t.type = Tok::kFloat;
        t.line = line_;
        t.float_value = std::strtod(text.c_str(), nullptr);
        tokens_.push_back(std::move(t));
        advance_to(end);
        return true;
      }
    }
    // Integer: 0b/0o/0x prefixes, decimal with '_' separators.
    int base = 10;
    size_t digits_start = start, end;
    if (src_[start] == '0' && start + 1 < src_.size()) {
      const char p = static_cast<char>(src_[start + 1] | 0x20);
      if (p == 'b' || p == 'o' || p == 'x') base = p == 'b' ? 2 : (p == 'o' ? 8 : 16);
    }
    if (base != 10) {
      // The prefix may be followed by '_' before the first digit.
      size_t i = start + 2;
      auto ok = base == 2   ? +[](char c) { return c == '0' || c == '1'; }
                : base == 8 ? +[](char c) { return c >= '0' && c <= '7'; }
                            : +[](char c) {
                                return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
                              };
      if (i < src_.size() && src_[i] == '_') ++i;
      end = digit_run(i, ok);
      if (end == std::string::npos) {
        base = 10;
      } else {
        digits_start = start + 2;
      }
    }
    if (base == 10) {
      if (src_[start] == '0') {
        // "0(_?0)*"
        end = start + 1;
        while (end < src_.size()) {
          if (src_[end] == '0') {
            ++end;
          } else if (src_[end] == '_' && end + 1 < src_.size() && src_[end + 1] == '0') {
            end += 2;
          } else {
            break;
          }
        }
      } else {
        end = digit_run(start, dec);
      }
    }
    std::string text;
    for (size_t i = digits_start; i < end; ++i)
      if (src_[i] != '_') text += src_[i];
    errno = 0;
    char* parse_end = nullptr;
    const unsigned long long v = std::strtoull(text.c_str(), &parse_end, base);
    if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX))
      syntax_error("integer literal " + text + " does not fit in 64 bits", line_);
    Token t;
    t.type = Tok::kInteger;
    t.line = line_;
    t.int_value = static_cast<int64_t>(v);
    tokens_.push_back(std::move(t));
    advance_to(end);
    return true;
  }

  bool lex_name() {
    if (!is_name_start(src_[pos_])) return false;
    size_t end = pos_ + 1;
    while (end < src_.size() && is_name_char(src_[end])) ++end;
    push(Tok::kName, src_.substr(pos_, end - pos_));
    advance_to(end);
    return true;
  }

  static int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    const char l = static_cast<char>(c | 0x20);
    if (l >= 'a' && l <= 'f') return l - 'a' + 10;
    return -1;
  }

  // Decodes Python's unicode-escape sequences in a string literal body.
  std::string unescape(std::string_view body, int line) const {
    std::string out;
    for (size_t i = 0; i < body.size();) {
      if (body[i] != '\\' || i + 1 >= body.size()) {
        out += body[i++];
        continue;
      }
      const char c = body[i + 1];
      i += 2;
      auto hex_escape = [&](int digits, const char* what) {
        uint32_t v = 0;
        for (int k = 0; k < digits; ++k) {
          const int h = i < body.size() ? hex_value(body[i]) : -1;
          if (h < 0) syntax_error(std::string("truncated ") + what + " escape", line);
          v = v * 16 + static_cast<uint32_t>(h);
          ++i;
        }
        if (v > 0x10FFFF) syntax_error("illegal Unicode character", line);
        append_utf8(out, v);
      };
      switch (c) {
        case '\n':
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
          hex_escape(2, "\\xXX");
          break;
        case 'u':
          hex_escape(4, "\\uXXXX");
          break;
        case 'U':
          hex_escape(8, "\\UXXXXXXXX");
          break;
        case 'N':
          syntax_error("named Unicode escapes (\\N{...}) are not supported", line);
        default:
          if (c >= '0' && c <= '7') {
            uint32_t v = static_cast<uint32_t>(c - '0');
            for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k)
              v = v * 8 + static_cast<uint32_t>(body[i++] - '0');
            append_utf8(out, v);
          } else if (static_cast<unsigned char>(c) >= 0x80) {
            // Python escapes non-ASCII characters first (backslashreplace), so a
            // backslash before one yields a literal backslash and its escape text.
            size_t len = 1;
            const char32_t cp = decode_utf8(body, i - 1, &len);
            char buf[16];
            if (cp < 0x100)
              std::snprintf(buf, sizeof buf, "x%02x", static_cast<unsigned>(cp));
            else if (cp < 0x10000)
              std::snprintf(buf, sizeof buf, "u%04x", static_cast<unsigned>(cp));
            else
              std::snprintf(buf, sizeof buf, "U%08x", static_cast<unsigned>(cp));
            out += '\\';
            out += buf;
            i = i - 1 + len;
          } else {
            out += '\\';
            out += c;
          }
      }
    }
    return out;
  }

  bool lex_string() {
    const char quote = src_[pos_];
    if (quote != '\'' && quote != '"') return false;
    size_t i = pos_ + 1;
    while (i < src_.size() && src_[i] != quote) i += src_[i] == '\\' ? 2 : 1;
    if (i >= src_.size()) return false;  // unterminated: reported as an unexpected char
    const int line = line_;
    std::string value = unescape(std::string_view(src_).substr(pos_ + 1, i - pos_ - 1), line);
    push(Tok::kString, std::move(value));
    tokens_.back().line = line;
    advance_to(i + 1);
    return true;
  }

  void lex_operator(std::vector<char>* balance) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (starts_with(pos_, op)) {
        push(Tok::kOperator, op);
        advance_to(pos_ + 2);
        return;
      }
    }
    const char c = src_[pos_];
    static const std::string_view kOne = "+-/*%~[](){}=.:|,;<>";
    if (kOne.find(c) == std::string_view::npos) {
      std::string shown = string_repr(std::string_view(src_).substr(pos_, 1));
      syntax_error("unexpected char " + shown + " at " + std::to_string(pos_), line_);
    }
    if (c == '(' || c == '[' || c == '{') {
      balance->push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance->empty()) syntax_error(std::string("unexpected '") + c + "'", line_);
      const char expected = balance->back();
      balance->pop_back();
      if (expected != c)
        syntax_error(std::string("unexpected '") + c + "', expected '" + expected + "'", line_);
    }
    push(Tok::kOperator, std::string(1, c));
    advance_to(pos_ + 1);
  }

  std::string src_;
  LexerOptions options_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexerOptions& options) {
  return Lexer(source, options).run();
}

}  // namespace muse::text::jinja
