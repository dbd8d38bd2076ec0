#include "text/jinja_value.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "text/jinja_strings.h"
#include "text/utf8.h"

namespace muse::text::jinja {
namespace {

std::string with_line(const std::string& kind, const std::string& detail, int line) {
  std::string s = kind + ": " + detail;
  if (line > 0) s += " (template line " + std::to_string(line) + ")";
  return s;
}

const std::string& empty_string() {
  static const std::string s;
  return s;
}

void check_size(const std::string& out, size_t max_bytes) {
  if (out.size() > max_bytes)
    throw_error("LimitError", "string longer than " + std::to_string(max_bytes) + " bytes");
}

int child_depth(const Value& v) {
  return v.depth();
}

[[noreturn]] void too_deep() {
  throw_error("LimitError",
              "value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
}

// Exact comparison of an integer with a double, as Python does (no rounding).
int compare_int_double(int64_t i, double d) {
  if (std::isnan(d)) return 2;  // unordered
  if (d >= 9223372036854775808.0) return -1;
  if (d < -9223372036854775808.0) return 1;
  const double fl = std::floor(d);
  const auto di = static_cast<int64_t>(fl);
  if (i < di) return -1;
  if (i > di) return 1;
  return fl == d ? 0 : -1;  // i == floor(d) < d
}

// -1/0/1, or 2 when unordered (NaN).
int compare_numbers(const Value& a, const Value& b) {
  if (!a.is_float() && !b.is_float()) {
    const int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_float() && b.is_float()) {
    const double x = a.as_double(), y = b.as_double();
    if (std::isnan(x) || std::isnan(y)) return 2;
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_float()) {
    const int r = compare_int_double(b.as_int(), a.as_double());
    return r == 2 ? 2 : -r;
  }
  return compare_int_double(a.as_int(), b.as_double());
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  static const char* hex = "0123456789abcdef";
  auto u_escape = [&](unsigned v) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += hex[(v >> shift) & 0xF];
  };
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto byte = static_cast<unsigned char>(s[i]);
    if (byte < 0x80) {
      switch (byte) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (byte < 0x20 || (ensure_ascii && byte == 0x7F))
            u_escape(byte);
          else
            out += static_cast<char>(byte);
      }
      ++i;
      continue;
    }
    size_t len = 1;
    const char32_t cp = decode_utf8(s, i, &len);
    if (!ensure_ascii) {
      out.append(s.substr(i, len));
    } else if (cp >= 0x10000) {
      const char32_t v = cp - 0x10000;
      u_escape(0xD800 + static_cast<unsigned>(v >> 10));
      u_escape(0xDC00 + static_cast<unsigned>(v & 0x3FF));
    } else {
      u_escape(static_cast<unsigned>(cp));
    }
    i += len;
  }
  out += '"';
}

bool is_printable(char32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if (c < 0x300) return true;
  if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x1680 ||
      c == 0x180E)
    return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
      (c >= 0x205F && c <= 0x206F) || c == 0x3000)
    return false;
  if ((c >= 0xD800 && c <= 0xF8FF) || c == 0xFEFF || (c >= 0xFFF0 && c <= 0xFFFB) || c == 0xFFFE ||
      c == 0xFFFF)
    return false;
  if ((c >= 0xE0000 && c <= 0xE0FFF) || c >= 0xF0000) return false;
  return true;
}

void append_key_json(std::string& out, const Value& key, const JsonFormat& f) {
  switch (key.kind()) {
    case Kind::kString:
      append_json_string(out, key.str(), f.ensure_ascii);
      return;
    case Kind::kInt:
      out += '"' + std::to_string(key.as_int()) + '"';
      return;
    case Kind::kBool:
      out += key.as_bool() ? "\"true\"" : "\"false\"";
      return;
    case Kind::kNone:
      out += "\"null\"";
      return;
    case Kind::kFloat: {
      const double d = key.as_double();
      std::string s = std::isnan(d)   ? "NaN"
                      : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity")
                                      : float_repr(d);
      out += '"' + s + '"';
      return;
    }
    default:
      throw_type_error("keys must be str, int, float, bool or None, not " + key.type_name());
  }
}

void append_json_impl(std::string& out, const Value& v, const JsonFormat& f, size_t max_bytes,
                      int level) {
  check_size(out, max_bytes);
  auto newline_indent = [&](int n) {
    out += '\n';
    for (int i = 0; i < n; ++i) out += f.indent;
  };
  switch (v.kind()) {
    case Kind::kNone:
      out += "null";
      return;
    case Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Kind::kFloat: {
      const double d = v.as_double();
      if (std::isnan(d))
        out += "NaN";
      else if (std::isinf(d))
        out += d > 0 ? "Infinity" : "-Infinity";
      else
        out += float_repr(d);
      return;
    }
    case Kind::kString:
      append_json_string(out, v.str(), f.ensure_ascii);
      return;
    case Kind::kList: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += f.item_separator;
        if (f.indent_set) newline_indent(level + 1);
        append_json_impl(out, items[i], f, max_bytes, level + 1);
      }
      if (f.indent_set) newline_indent(level);
      out += ']';
      return;
    }
    case Kind::kDict: {
      const DictData& d = v.dict_data();
      if (d.entries.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> order;
      for (const auto& e : d.entries) order.push_back(&e);
      if (f.sort_keys) {
        std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
          return compare(a->first, b->first) < 0;
        });
      }
      out += '{';
      for (size_t i = 0; i < order.size(); ++i) {
        if (i > 0) out += f.item_separator;
        if (f.indent_set) newline_indent(level + 1);
        append_key_json(out, order[i]->first, f);
        out += f.key_separator;
        append_json_impl(out, order[i]->second, f, max_bytes, level + 1);
      }
      if (f.indent_set) newline_indent(level);
      out += '}';
      return;
    }
    case Kind::kUndefined:
      throw_type_error("Object of type Undefined is not JSON serializable");
    case Kind::kObject: {
      std::string type = v.obj().type_description();
      const size_t dot = type.rfind('.');
      if (dot != std::string::npos) type = type.substr(dot + 1);
      if (type.size() > 7 && type.compare(type.size() - 7, 7, " object") == 0)
        type.resize(type.size() - 7);
      throw_type_error("Object of type " + type + " is not JSON serializable");
    }
  }
}

}  // namespace

TemplateError::TemplateError(std::string kind, std::string detail, int line)
    : Error(with_line(kind, detail, line)),
      kind_(std::move(kind)),
      detail_(std::move(detail)),
      line_(line) {}

void throw_error(const char* kind, std::string detail) {
  throw TemplateError(kind, std::move(detail));
}

// ---- Value ----------------------------------------------------------------

Value Value::undefined(std::string message, bool security) {
  Value v(Kind::kUndefined);
  v.ptr_ = std::make_shared<UndefinedData>(UndefinedData{std::move(message), security});
  return v;
}

Value Value::boolean(bool b) {
  Value v(Kind::kBool);
  v.b_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v(Kind::kInt);
  v.i_ = i;
  return v;
}

Value Value::floating(double f) {
  Value v(Kind::kFloat);
  v.f_ = f;
  return v;
}

Value Value::string(std::string s, bool markup) {
  Value v(Kind::kString);
  v.markup_ = markup;
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items) {
  auto data = std::make_shared<ListData>();
  int depth = 0;
  for (const Value& item : items) depth = std::max(depth, child_depth(item));
  if (depth + 1 > kMaxValueDepth) too_deep();
  data->items = std::move(items);
  data->depth = depth + 1;
  Value v(Kind::kList);
  v.ptr_ = std::move(data);
  return v;
}

Value Value::tuple(std::vector<Value> items) {
  Value v = list(std::move(items));
  std::static_pointer_cast<ListData>(v.ptr_)->is_tuple = true;
  return v;
}

Value Value::dict(std::shared_ptr<const DictData> d) {
  Value v(Kind::kDict);
  if (!d) d = std::make_shared<const DictData>();
  if (d->depth > kMaxValueDepth) too_deep();
  v.ptr_ = std::const_pointer_cast<DictData>(std::move(d));
  return v;
}

Value Value::object(std::shared_ptr<Object> o) {
  Value v(Kind::kObject);
  v.ptr_ = std::move(o);
  return v;
}

static Value from_json_impl(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxValueDepth) too_deep();
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX))
        throw_error("OverflowError", "integer " + std::to_string(u) + " does not fit in 64 bits");
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::floating(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json_impl(e, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<DictData>();
      int child = 0;
      for (const auto& [k, e] : j.items()) {
        Value value = from_json_impl(e, depth + 1);
        child = std::max(child, value.depth());
        d->set(Value::string(k), std::move(value));
      }
      d->depth = child + 1;
      return Value::dict(std::move(d));
    }
    default:
      throw_type_error("unsupported JSON value (binary or discarded)");
  }
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  return from_json_impl(j, 1);
}

bool Value::is_tuple() const {
  return kind_ == Kind::kList && static_cast<const ListData*>(ptr_.get())->is_tuple;
}

double Value::as_double() const {
  if (kind_ == Kind::kFloat) return f_;
  return static_cast<double>(as_int());
}

const std::string& Value::str() const {
  if (kind_ != Kind::kString) return empty_string();
  return *static_cast<const std::string*>(ptr_.get());
}

const std::vector<Value>& Value::items() const {
  static const std::vector<Value> empty;
  if (kind_ != Kind::kList) return empty;
  return static_cast<const ListData*>(ptr_.get())->items;
}

const DictData& Value::dict_data() const {
  static const DictData empty;
  if (kind_ != Kind::kDict) return empty;
  return *static_cast<const DictData*>(ptr_.get());
}

Object& Value::obj() const {
  return *static_cast<Object*>(ptr_.get());
}

std::shared_ptr<Object> Value::obj_ptr() const {
  return std::static_pointer_cast<Object>(ptr_);
}

const std::string& Value::undefined_message() const {
  static const std::string plain = "undefined value";
  if (kind_ != Kind::kUndefined || !ptr_) return plain;
  return static_cast<const UndefinedData*>(ptr_.get())->message;
}

bool Value::undefined_is_security() const {
  return kind_ == Kind::kUndefined && ptr_ &&
         static_cast<const UndefinedData*>(ptr_.get())->security;
}

int Value::depth() const {
  if (kind_ == Kind::kList) return static_cast<const ListData*>(ptr_.get())->depth;
  if (kind_ == Kind::kDict) return static_cast<const DictData*>(ptr_.get())->depth;
  return 0;
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return b_;
    case Kind::kInt:
      return i_ != 0;
    case Kind::kFloat:
      return f_ != 0.0;
    case Kind::kString:
      return !str().empty();
    case Kind::kList:
      return !items().empty();
    case Kind::kDict:
      return !dict_data().entries.empty();
    case Kind::kObject:
      return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return markup_ ? "Markup" : "str";
    case Kind::kList:
      return is_tuple() ? "tuple" : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kObject: {
      std::string t = obj().type_description();
      if (t.size() > 7 && t.compare(t.size() - 7, 7, " object") == 0) t.resize(t.size() - 7);
      const size_t dot = t.rfind('.');
      return dot == std::string::npos ? t : t.substr(dot + 1);
    }
  }
  return "object";
}

// ---- DictData -------------------------------------------------------------

const Value* DictData::find(const Value& key) const {
  const auto it = index.find(hash_key(key));
  return it == index.end() ? nullptr : &entries[it->second].second;
}

void DictData::set(Value key, Value value) {
  const std::string h = hash_key(key);
  const auto it = index.find(h);
  if (it != index.end()) {
    entries[it->second].second = std::move(value);
    return;
  }
  index.emplace(h, entries.size());
  entries.emplace_back(std::move(key), std::move(value));
}

// ---- Object ---------------------------------------------------------------

void Object::append_repr(std::string& out, size_t max_bytes) const {
  out += '<';
  out += type_description();
  out += '>';
  check_size(out, max_bytes);
}

Value Object::attribute(const std::string& name, const Value&) const {
  return Value::undefined("'" + type_description() + "' has no attribute " + string_repr(name));
}

Value Object::call_method(Interpreter&, const std::string&, CallArgs&, bool* found) {
  *found = false;
  return Value();
}

Value Object::call(Interpreter&, CallArgs&) {
  std::string message = "'";
  message += type_description();
  message += "' is not callable";
  throw_type_error(std::move(message));
}

// ---- hashing, equality, ordering ------------------------------------------

std::string hash_key(const Value& v) {
  switch (v.kind()) {
    case Kind::kString:
      return "s" + v.str();
    case Kind::kNone:
      return "N";
    case Kind::kBool:
    case Kind::kInt:
      return "n" + std::to_string(v.as_int());
    case Kind::kFloat: {
      const double d = v.as_double();
      if (std::floor(d) == d && std::fabs(d) < 9.2e18)
        return "n" + std::to_string(static_cast<int64_t>(d));
      return "f" + float_repr(d);
    }
    case Kind::kList:
      if (v.is_tuple()) {
        std::string h = "t(";
        for (const Value& item : v.items())
          h += std::to_string(hash_key(item).size()) + ":" + hash_key(item);
        return h + ")";
      }
      throw_type_error("unhashable type: 'list'");
    case Kind::kDict:
      throw_type_error("unhashable type: 'dict'");
    case Kind::kUndefined:
      return "U";
    case Kind::kObject: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "o%p", static_cast<void*>(&v.obj()));
      return buf;
    }
  }
  return "?";
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) return compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.str() == b.str();
    case Kind::kList: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Kind::kDict: {
      const DictData &x = a.dict_data(), &y = b.dict_data();
      if (x.size() != y.size()) return false;
      for (const auto& [k, value] : x.entries) {
        const Value* other = y.find(k);
        if (!other || !equals(value, *other)) return false;
      }
      return true;
    }
    case Kind::kObject:
      return &a.obj() == &b.obj();
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined()) throw_error("UndefinedError", a.undefined_message());
  if (b.is_undefined()) throw_error("UndefinedError", b.undefined_message());
  if (a.is_number() && b.is_number()) {
    const int r = compare_numbers(a, b);
    return r == 2 ? 0 : r;
  }
  if (a.is_string() && b.is_string()) {
    const int r = a.str().compare(b.str());
    return r < 0 ? -1 : (r > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(x[i], y[i], op);
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  throw_type_error(std::string("'") + op + "' not supported between instances of '" +
                   a.type_name() + "' and '" + b.type_name() + "'");
}

// ---- printing -------------------------------------------------------------

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci is [-]D[.DDD]e[+-]XX: split into digits and decimal exponent.
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  const int exponent = std::stoi(sci.substr(e + 1));
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int decpt = exponent + 1;  // value = 0.DIGITS * 10^decpt
  std::string out = sign;
  if (decpt > 16 || decpt < -3) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp_buf;
  }
  if (decpt <= 0) return out + "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  if (static_cast<size_t>(decpt) >= digits.size())
    return out + digits + std::string(static_cast<size_t>(decpt) - digits.size(), '0') + ".0";
  return out + digits.substr(0, static_cast<size_t>(decpt)) + "." +
         digits.substr(static_cast<size_t>(decpt));
}

std::string string_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const char32_t cp = decode_utf8(s, i, &len);
    const bool invalid = cp == 0xFFFD && !(len == 3 && s.substr(i, 3) == "\xEF\xBF\xBD");
    char buf[16];
    if (invalid) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(s[i]));
      out += buf;
    } else if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!is_printable(cp)) {
      if (cp < 0x100)
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
      else if (cp < 0x10000)
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
      out += buf;
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  out += quote;
  return out;
}

void append_repr(std::string& out, const Value& v, size_t max_bytes) {
  check_size(out, max_bytes);
  switch (v.kind()) {
    case Kind::kUndefined:
      out += "Undefined";
      return;
    case Kind::kString:
      out += string_repr(v.str());
      break;
    case Kind::kList: {
      const bool tuple = v.is_tuple();
      out += tuple ? '(' : '[';
      const auto& items = v.items();
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += ", ";
        append_repr(out, items[i], max_bytes);
      }
      if (tuple && items.size() == 1) out += ',';
      out += tuple ? ')' : ']';
      break;
    }
    case Kind::kDict: {
      out += '{';
      bool first = true;
      for (const auto& [k, value] : v.dict_data().entries) {
        if (!first) out += ", ";
        first = false;
        append_repr(out, k, max_bytes);
        out += ": ";
        append_repr(out, value, max_bytes);
      }
      out += '}';
      break;
    }
    case Kind::kObject:
      v.obj().append_repr(out, max_bytes);
      break;
    default:
      append_str(out, v, max_bytes);
      return;
  }
  check_size(out, max_bytes);
}

void append_str(std::string& out, const Value& v, size_t max_bytes) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return;
    case Kind::kNone:
      out += "None";
      break;
    case Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      break;
    case Kind::kInt:
      out += std::to_string(v.as_int());
      break;
    case Kind::kFloat:
      out += float_repr(v.as_double());
      break;
    case Kind::kString:
      out += v.str();
      break;
    default:
      append_repr(out, v, max_bytes);
      return;
  }
  check_size(out, max_bytes);
}

std::string to_str(const Value& v, size_t max_bytes) {
  if (v.is_string()) return v.str();
  std::string out;
  append_str(out, v, max_bytes);
  return out;
}

std::string to_repr(const Value& v, size_t max_bytes) {
  std::string out;
  append_repr(out, v, max_bytes);
  return out;
}

void append_json(std::string& out, const Value& v, const JsonFormat& format, size_t max_bytes) {
  append_json_impl(out, v, format, max_bytes, 0);
  check_size(out, max_bytes);
}

}  // namespace muse::text::jinja
