// Python string formatting: printf-style `str % args` and `str.format(...)`
// with the format-spec mini-language for str, int and float.
#include <cmath>
#include <cstdio>
#include <optional>

#include "text/jinja_interp.h"
#include "text/jinja_strings.h"
#include "text/utf8.h"

namespace muse::text::jinja {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int64_t parse_count(const std::string& s, size_t* i) {
  int64_t n = 0;
  while (*i < s.size() && is_digit(s[*i])) {
    n = n * 10 + (s[*i] - '0');
    if (n > 100000000) throw_error("ValueError", "width or precision too large");
    ++*i;
  }
  return n;
}

std::string c_format_double(char type, int precision, bool alternate, double v) {
  if (precision > 100000) throw_error("LimitError", "format precision larger than 100000");
  char spec[16];
  std::snprintf(spec, sizeof spec, "%%%s.*%c", alternate ? "#" : "", type);
  char buf[512];
  const int n = std::snprintf(buf, sizeof buf, spec, precision, v);
  if (n < 0) throw_error("ValueError", "cannot format number");
  if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
  std::string big(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(big.data(), big.size(), spec, precision, v);
  big.resize(static_cast<size_t>(n));
  return big;
}

std::string int_digits(int64_t v, int base, bool upper) {
  if (v == 0) return "0";
  uint64_t u =
      v < 0 ? static_cast<uint64_t>(0) - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string out;
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  while (u > 0) {
    out.insert(out.begin(), digits[u % static_cast<uint64_t>(base)]);
    u /= static_cast<uint64_t>(base);
  }
  return out;
}

std::string group_digits(const std::string& digits, char sep) {
  // digits may carry a fraction/exponent: group only the integer part.
  size_t end = 0;
  while (end < digits.size() && is_digit(digits[end])) ++end;
  std::string out;
  for (size_t i = 0; i < end; ++i) {
    if (i > 0 && (end - i) % 3 == 0) out += sep;
    out += digits[i];
  }
  return out + digits.substr(end);
}

// Pads `body` (after its sign/prefix) to width, Python-style.
std::string pad(const std::string& sign, const std::string& body, int64_t width, char align,
                const std::string& fill) {
  const int64_t len = static_cast<int64_t>(py_len(sign) + py_len(body));
  if (width <= len) return sign + body;
  const int64_t margin = width - len;
  auto repeat = [&](int64_t n) {
    std::string s;
    for (int64_t i = 0; i < n; ++i) s += fill;
    return s;
  };
  switch (align) {
    case '<':
      return sign + body + repeat(margin);
    case '^':
      return repeat(margin / 2) + sign + body + repeat(margin - margin / 2);
    case '=':
      return sign + repeat(margin) + body;
    default:
      return repeat(margin) + sign + body;
  }
}

struct Spec {
  std::string fill = " ";
  char align = 0;
  char sign = '-';
  bool alternate = false;
  bool zero = false;
  int64_t width = 0;
  char grouping = 0;
  std::optional<int64_t> precision;
  char type = 0;
};

Spec parse_spec(const std::string& s) {
  Spec spec;
  size_t i = 0;
  // [[fill]align]
  size_t first_len = 1;
  if (!s.empty()) decode_utf8(s, 0, &first_len);
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (s.size() > first_len && is_align(s[first_len])) {
    spec.fill = s.substr(0, first_len);
    spec.align = s[first_len];
    i = first_len + 1;
  } else if (!s.empty() && is_align(s[0])) {
    spec.align = s[0];
    i = 1;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) spec.sign = s[i++];
  if (i < s.size() && s[i] == '#') {
    spec.alternate = true;
    ++i;
  }
  if (i < s.size() && s[i] == '0') {
    spec.zero = true;
    ++i;
  }
  spec.width = parse_count(s, &i);
  if (i < s.size() && (s[i] == ',' || s[i] == '_')) spec.grouping = s[i++];
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size() || !is_digit(s[i]))
      throw_error("ValueError", "Format specifier missing precision");
    spec.precision = parse_count(s, &i);
  }
  if (i < s.size()) spec.type = s[i++];
  if (i < s.size()) throw_error("ValueError", "Invalid format specifier '" + s + "'");
  if (spec.zero && !spec.align) {
    spec.fill.assign(1, '0');
    spec.align = '=';
  }
  return spec;
}

std::string format_number(const Value& v, const Spec& spec) {
  char type = spec.type;
  std::string body;
  bool negative = false;
  if (!v.is_float() && (type == 0 || type == 'd' || type == 'n' || type == 'b' || type == 'o' ||
                        type == 'x' || type == 'X' || type == 'c')) {
    const int64_t i = v.as_int();
    if (spec.precision)
      throw_error("ValueError", "Precision not allowed in integer format specifier");
    negative = i < 0;
    if (type == 'c') {
      if (i < 0 || i > 0x10FFFF) throw_error("OverflowError", "%c arg not in range(0x110000)");
      body.clear();
      append_utf8(body, static_cast<char32_t>(i));
      negative = false;
    } else {
      const int base = type == 'b' ? 2 : type == 'o' ? 8 : (type == 'x' || type == 'X') ? 16 : 10;
      body = int_digits(i, base, type == 'X');
      if (spec.grouping) body = group_digits(body, spec.grouping);
      if (spec.alternate && base != 10)
        body = std::string("0") +
               (base == 2   ? "b"
                : base == 8 ? "o"
                            : (type == 'X' ? "X" : "x")) +
               body;
    }
  } else {
    if (type != 0 && std::string("eEfFgG%n").find(type) == std::string::npos)
      throw_error("ValueError", std::string("Unknown format code '") + type +
                                    "' for object of type '" + v.type_name() + "'");
    double d = v.as_double();
    negative = std::signbit(d) && !std::isnan(d);
    d = std::fabs(d);
    if (type == 0 && !spec.precision) {
      body = float_repr(d);
    } else if (type == 0 || type == 'n') {
      body = c_format_double('g', static_cast<int>(spec.precision.value_or(6)), spec.alternate, d);
      if (type == 0 && body.find_first_of(".e") == std::string::npos && std::isfinite(d))
        body += ".0";
    } else if (type == '%') {
      body = c_format_double('f', static_cast<int>(spec.precision.value_or(6)), spec.alternate,
                             d * 100) +
             "%";
    } else {
      body = c_format_double(type, static_cast<int>(spec.precision.value_or(6)), spec.alternate, d);
    }
    if (spec.grouping) body = group_digits(body, spec.grouping);
  }
  std::string sign = negative ? "-" : (spec.sign == '+' ? "+" : (spec.sign == ' ' ? " " : ""));
  return pad(sign, body, spec.width, spec.align ? spec.align : '>', spec.fill);
}

}  // namespace

// format(v, spec) as Python's __format__ does for str, int, float and bool.
std::string format_value(Interpreter& interp, const Value& v, const std::string& spec_text) {
  if (spec_text.empty()) return interp.to_string(v);
  const Spec spec = parse_spec(spec_text);
  if (v.is_string()) {
    if (spec.type != 0 && spec.type != 's')
      throw_error("ValueError",
                  std::string("Unknown format code '") + spec.type + "' for object of type 'str'");
    std::string s = v.str();
    if (spec.precision) {
      const std::vector<size_t> offsets = char_offsets(s);
      if (static_cast<size_t>(*spec.precision) + 1 < offsets.size())
        s.resize(offsets[static_cast<size_t>(*spec.precision)]);
    }
    if (spec.width > static_cast<int64_t>(interp.limits().max_output_bytes))
      interp.string_too_long();
    return pad("", s, spec.width, spec.align ? spec.align : '<', spec.fill);
  }
  if (v.is_number()) {
    if (spec.width > static_cast<int64_t>(interp.limits().max_output_bytes))
      interp.string_too_long();
    return format_number(v, spec);
  }
  throw_type_error("unsupported format string passed to " + v.type_name() + ".__format__");
}

std::string percent_format(Interpreter& interp, const std::string& fmt, const Value& args) {
  std::vector<Value> positional;
  const bool is_tuple = args.is_tuple();
  if (is_tuple) {
    positional = args.items();
  } else {
    positional.push_back(args);
  }
  size_t next_arg = 0;
  bool used_mapping = false;
  std::string out;
  auto take = [&]() -> Value {
    if (next_arg >= positional.size()) throw_type_error("not enough arguments for format string");
    return positional[next_arg++];
  };
  for (size_t i = 0; i < fmt.size();) {
    if (fmt[i] != '%') {
      out += fmt[i++];
      continue;
    }
    ++i;
    if (i >= fmt.size()) throw_error("ValueError", "incomplete format");
    std::optional<Value> mapped;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) throw_error("ValueError", "incomplete format key");
      if (!args.is_dict()) throw_type_error("format requires a mapping");
      const Value* v = args.dict_data().find(Value::string(fmt.substr(i + 1, close - i - 1)));
      if (!v) throw_error("KeyError", string_repr(fmt.substr(i + 1, close - i - 1)));
      mapped = *v;
      used_mapping = true;
      i = close + 1;
    }
    Spec spec;
    spec.align = '>';
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) {
      switch (fmt[i]) {
        case '-':
          spec.align = '<';
          break;
        case '+':
          spec.sign = '+';
          break;
        case ' ':
          if (spec.sign != '+') spec.sign = ' ';
          break;
        case '#':
          spec.alternate = true;
          break;
        case '0':
          spec.zero = true;
          break;
      }
      ++i;
    }
    if (i < fmt.size() && fmt[i] == '*') {
      spec.width = to_index(take(), "integer");
      ++i;
    } else {
      spec.width = parse_count(fmt, &i);
    }
    if (spec.width < 0) {
      spec.align = '<';
      spec.width = -spec.width;
    }
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      if (i < fmt.size() && fmt[i] == '*') {
        spec.precision = std::max<int64_t>(0, to_index(take(), "integer"));
        ++i;
      } else {
        spec.precision = parse_count(fmt, &i);
      }
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) throw_error("ValueError", "incomplete format");
    const char type = fmt[i++];
    if (type == '%') {
      out += '%';
      continue;
    }
    const Value v = mapped ? *mapped : take();
    if (spec.width > static_cast<int64_t>(interp.limits().max_output_bytes))
      interp.string_too_long();
    if (spec.zero && spec.align != '<') {
      spec.fill.assign(1, '0');
      spec.align = '=';
    }
    switch (type) {
      case 's':
      case 'r':
      case 'a': {
        std::string s =
            type == 's' ? interp.to_string(v) : to_repr(v, interp.limits().max_output_bytes);
        if (spec.precision) {
          const std::vector<size_t> offsets = char_offsets(s);
          if (static_cast<size_t>(*spec.precision) + 1 < offsets.size())
            s.resize(offsets[static_cast<size_t>(*spec.precision)]);
        }
        out += pad("", s, spec.width, spec.align == '=' ? '>' : spec.align, " ");
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'o':
      case 'x':
      case 'X': {
        if (v.is_undefined()) raise_undefined(v);
        if (!v.is_number()) {
          throw_type_error(
              std::string("%") + type + " format: " +
              (type == 'd' || type == 'i' || type == 'u' ? "a real number" : "an integer") +
              " is required, not " + v.type_name());
        }
        if (v.is_float() && type != 'd' && type != 'i' && type != 'u')
          throw_type_error(std::string("%") + type + " format: an integer is required, not float");
        const double d = v.as_double();
        if (v.is_float() && (std::isnan(d) || std::isinf(d)))
          throw_error("ValueError", "cannot convert float to integer");
        if (v.is_float() && !(std::fabs(d) < 9.2e18))
          throw_error("OverflowError", "integer does not fit in 64 bits");
        const Value as_int = v.is_float() ? Value::integer(static_cast<int64_t>(std::trunc(d)))
                                          : Value::integer(v.as_int());
        Spec s = spec;
        s.type = (type == 'i' || type == 'u') ? 'd' : type;
        s.precision.reset();
        if (spec.precision && *spec.precision > 0) {
          // %.Nd: the digits are zero-padded to N, then the field to its width.
          const int64_t iv = as_int.as_int();
          std::string digits = format_number(Value::integer(iv < 0 ? -iv : iv), Spec{});
          if (type == 'x' || type == 'X' || type == 'o') {
            Spec bare;
            bare.type = type;
            digits = format_number(Value::integer(iv < 0 ? -iv : iv), bare);
          }
          if (static_cast<int64_t>(digits.size()) < *spec.precision)
            digits.insert(0, static_cast<size_t>(*spec.precision) - digits.size(), '0');
          if (spec.alternate && (type == 'x' || type == 'X' || type == 'o'))
            digits = std::string("0") + (type == 'o' ? "o" : (type == 'X' ? "X" : "x")) + digits;
          const std::string sign =
              iv < 0 ? "-" : (spec.sign == '+' ? "+" : (spec.sign == ' ' ? " " : ""));
          out += pad(sign, digits, spec.width, spec.align == '=' ? '>' : spec.align, " ");
          break;
        }
        std::string r = format_number(as_int, s);
        out += r;
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (v.is_undefined()) raise_undefined(v);
        if (!v.is_number()) throw_type_error("must be real number, not " + v.type_name());
        Spec s = spec;
        s.type = type;
        if (!s.precision) s.precision = 6;
        out += format_number(Value::floating(v.as_double()), s);
        break;
      }
      case 'c': {
        std::string ch;
        if (v.is_int() || v.is_bool()) {
          if (v.as_int() < 0 || v.as_int() > 0x10FFFF)
            throw_error("OverflowError", "%c arg not in range(0x110000)");
          append_utf8(ch, static_cast<char32_t>(v.as_int()));
        } else if (v.is_string() && py_len(v.str()) == 1) {
          ch = v.str();
        } else {
          throw_type_error("%c requires int or char");
        }
        out += pad("", ch, spec.width, spec.align == '=' ? '>' : spec.align, " ");
        break;
      }
      default: {
        char buf[96];
        std::snprintf(buf, sizeof buf, "unsupported format character '%c' (0x%x) at index %zu",
                      type, static_cast<unsigned char>(type), i - 1);
        throw_error("ValueError", buf);
      }
    }
    if (out.size() > interp.limits().max_output_bytes) interp.string_too_long();
  }
  // Python accepts unused arguments when the single argument is a mapping
  // (anything with __getitem__: dict, list, str is not one, Undefined is).
  const bool mapping_like = !is_tuple && (args.is_dict() || args.is_list() || args.is_undefined());
  if (!used_mapping && next_arg < positional.size() && !mapping_like)
    throw_type_error("not all arguments converted during string formatting");
  return out;
}

std::string str_format(Interpreter& interp, const std::string& fmt, CallArgs& args) {
  std::string out;
  int auto_index = 0;
  bool used_auto = false, used_manual = false;
  auto lookup = [&](const std::string& field) -> Value {
    size_t i = 0;
    while (i < field.size() && field[i] != '.' && field[i] != '[') ++i;
    const std::string head = field.substr(0, i);
    Value v;
    if (head.empty()) {
      if (used_manual)
        throw_error("ValueError",
                    "cannot switch from manual field specification to automatic field numbering");
      used_auto = true;
      const auto idx = static_cast<size_t>(auto_index++);
      if (idx >= args.positional.size())
        throw_error("IndexError", "Replacement index " + std::to_string(idx) +
                                      " out of range for positional args tuple");
      v = args.positional[idx];
    } else if (std::all_of(head.begin(), head.end(), is_digit)) {
      if (used_auto)
        throw_error("ValueError",
                    "cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      const size_t idx = std::stoul(head.size() > 9 ? "999999999" : head);
      if (idx >= args.positional.size())
        throw_error("IndexError",
                    "Replacement index " + head + " out of range for positional args tuple");
      v = args.positional[idx];
    } else {
      auto it = std::find_if(args.keyword.begin(), args.keyword.end(),
                             [&](const auto& kw) { return kw.first == head; });
      if (it == args.keyword.end()) throw_error("KeyError", string_repr(head));
      v = it->second;
    }
    while (i < field.size()) {
      if (field[i] == '.') {
        size_t j = ++i;
        while (j < field.size() && field[j] != '.' && field[j] != '[') ++j;
        v = interp.get_attr(v, field.substr(i, j - i));
        i = j;
      } else {
        const size_t close = field.find(']', i);
        if (close == std::string::npos) throw_error("ValueError", "Missing ']' in format string");
        const std::string key = field.substr(i + 1, close - i - 1);
        const bool numeric = !key.empty() && std::all_of(key.begin(), key.end(), is_digit);
        v = interp.get_item(
            v, numeric ? Value::integer(std::stoll(key.size() > 15 ? "999999999999999" : key))
                       : Value::string(key));
        i = close + 1;
      }
    }
    return v;
  };
  for (size_t i = 0; i < fmt.size();) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        i += 2;
        continue;
      }
      throw_error("ValueError", "Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      ++i;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      i += 2;
      continue;
    }
    // Replacement field, with one level of nested fields in the spec.
    size_t j = i + 1;
    int depth = 1;
    while (j < fmt.size() && depth > 0) {
      if (fmt[j] == '{') ++depth;
      if (fmt[j] == '}') --depth;
      if (depth > 0) ++j;
    }
    if (j >= fmt.size())
      throw_error("ValueError", depth == 1 && fmt.find('}', i) == std::string::npos
                                    ? "Single '{' encountered in format string"
                                    : "expected '}' before end of string");
    const std::string field_text = fmt.substr(i + 1, j - i - 1);
    i = j + 1;
    size_t k = 0;
    while (k < field_text.size() && field_text[k] != '!' && field_text[k] != ':') {
      if (field_text[k] == '[') {
        const size_t close = field_text.find(']', k);
        k = close == std::string::npos ? field_text.size() : close + 1;
      } else {
        ++k;
      }
    }
    const std::string name = field_text.substr(0, k);
    char conversion = 0;
    if (k < field_text.size() && field_text[k] == '!') {
      if (k + 1 >= field_text.size())
        throw_error("ValueError", "end of string while looking for conversion specifier");
      conversion = field_text[k + 1];
      k += 2;
      if (k < field_text.size() && field_text[k] != ':')
        throw_error("ValueError", "expected ':' after conversion specifier");
    }
    std::string spec = k < field_text.size() ? field_text.substr(k + 1) : "";
    if (spec.find('{') != std::string::npos) {
      std::string nested;
      for (size_t a = 0; a < spec.size();) {
        if (spec[a] == '{') {
          const size_t b = spec.find('}', a);
          if (b == std::string::npos) throw_error("ValueError", "unmatched '{' in format spec");
          nested += interp.to_string(lookup(spec.substr(a + 1, b - a - 1)));
          a = b + 1;
        } else {
          nested += spec[a++];
        }
      }
      spec = nested;
    }
    Value v = lookup(name);
    if (conversion == 'r' || conversion == 'a') {
      v = Value::string(to_repr(v, interp.limits().max_output_bytes));
    } else if (conversion == 's') {
      v = Value::string(interp.to_string(v));
    } else if (conversion != 0) {
      throw_error("ValueError", std::string("Unknown conversion specifier ") + conversion);
    }
    out += format_value(interp, v, spec);
    if (out.size() > interp.limits().max_output_bytes) interp.string_too_long();
  }
  return out;
}

}  // namespace muse::text::jinja
