// Jinja2's built-in filters, with the argument names and defaults of Jinja2 3.1.
// `tojson` is Hugging Face's override: json.dumps(x, ensure_ascii=False,
// indent=None, separators=None, sort_keys=False).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>
#include <unordered_set>

#include "text/jinja_interp.h"
#include "text/jinja_parser.h"
#include "text/jinja_strings.h"
#include "text/utf8.h"

namespace muse::text::jinja {
namespace {

[[noreturn]] void filter_argument_error(const std::string& message) {
  throw_error("FilterArgumentError", message);
}

Value lower_if_string(Interpreter& interp, const Value& v) {
  return v.is_string() ? interp.make_string(py_lower(v.str())) : v;
}

// make_attrgetter: "a.b.0" looked up item by item (getitem, as Jinja does).
Value lookup_path(Interpreter& interp, const Value& item, const Value& attribute,
                  const Value* fallback) {
  Value v = item;
  if (attribute.is_string()) {
    const std::string& path = attribute.str();
    size_t start = 0;
    while (true) {
      const size_t dot = path.find('.', start);
      const std::string part =
          path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
        return c >= '0' && c <= '9';
      });
      v = interp.get_item(
          v, numeric && part.size() < 18 ? Value::integer(std::stoll(part)) : Value::string(part));
      if (fallback && v.is_undefined()) {
        v = *fallback;
        break;
      }
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  } else {
    v = interp.get_item(v, attribute);
    if (fallback && v.is_undefined()) v = *fallback;
  }
  return v;
}

std::vector<Value> sorted_values(std::vector<Value> items, const std::vector<Value>& keys,
                                 bool reverse) {
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return reverse ? compare(keys[b], keys[a]) < 0 : compare(keys[a], keys[b]) < 0;
  });
  std::vector<Value> out;
  out.reserve(items.size());
  for (size_t i : order) out.push_back(std::move(items[i]));
  return out;
}

Value f_abs(Interpreter&, const Value& v, CallArgs& args) {
  ArgBinder a("abs", args, {});
  if (v.is_float()) return Value::floating(std::fabs(v.as_double()));
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == INT64_MIN)
      throw_error("OverflowError", "integer result does not fit in 64 bits");
    return Value::integer(std::llabs(v.as_int()));
  }
  throw_type_error("bad operand type for abs(): '" + v.type_name() + "'");
}

Value f_attr(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("attr", args, {"name"});
  const std::string name = interp.to_string(a.get(0));
  if (v.is_dict() && !has_method(v, name) && !is_mutating_method(v, name))
    return Value::undefined("'dict object' has no attribute " + string_repr(name));
  return interp.get_attr(v, name);
}

Value f_batch(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("batch", args, {"linecount", "fill_with"});
  const int64_t count = a.get_int(0, 0);
  const bool fill = a.has(1) && !a.get(1).is_none();
  if (fill && count > 1000000) throw_error("LimitError", "batch size larger than 1000000");
  std::vector<Value> out, tmp;
  for (const Value& item : interp.iterate(v)) {
    if (static_cast<int64_t>(tmp.size()) == count) {
      out.push_back(Value::list(std::move(tmp)));
      tmp.clear();
    }
    tmp.push_back(item);
  }
  if (!tmp.empty()) {
    if (fill)
      while (static_cast<int64_t>(tmp.size()) < count) tmp.push_back(a.get(1));
    out.push_back(Value::list(std::move(tmp)));
  }
  return Value::list(std::move(out));
}

Value f_capitalize(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("capitalize", args, {});
  return interp.make_string(py_capitalize(interp.to_string(v)), v.is_markup());
}

Value f_center(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("center", args, {"width"});
  const int64_t width = a.get_int(0, 80);
  if (width > static_cast<int64_t>(interp.limits().max_output_bytes)) interp.string_too_long();
  return interp.make_string(py_pad(interp.to_string(v), width, " ", '^'), v.is_markup());
}

Value f_length(Interpreter&, const Value& v, CallArgs& args) {
  ArgBinder a("length", args, {});
  switch (v.kind()) {
    case Kind::kUndefined:
      return Value::integer(0);
    case Kind::kString:
      return Value::integer(static_cast<int64_t>(py_len(v.str())));
    case Kind::kList:
      return Value::integer(static_cast<int64_t>(v.items().size()));
    case Kind::kDict:
      return Value::integer(static_cast<int64_t>(v.dict_data().size()));
    default:
      throw_type_error("object of type '" + v.type_name() + "' has no len()");
  }
}

Value f_default(Interpreter&, const Value& v, CallArgs& args) {
  ArgBinder a("default", args, {"default_value", "boolean"});
  const bool boolean = a.get_bool(1, false);
  if (v.is_undefined() || (boolean && !v.truthy())) return a.get_or(0, Value::string(""));
  return v;
}

Value f_dictsort(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("dictsort", args, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) throw_error("FilterArgumentError", "dictsort requires a mapping");
  const bool case_sensitive = a.get_bool(0, false);
  const std::string by = a.has(1) ? interp.to_string(a.get(1)) : "key";
  if (by != "key" && by != "value")
    filter_argument_error("You can only sort by either \"key\" or \"value\"");
  std::vector<Value> items, keys;
  for (const auto& [k, value] : v.dict_data().entries) {
    items.push_back(Value::tuple({k, value}));
    const Value& key = by == "key" ? k : value;
    keys.push_back(case_sensitive ? key : lower_if_string(interp, key));
  }
  return Value::list(sorted_values(std::move(items), keys, a.get_bool(2, false)));
}

Value f_escape(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("escape", args, {});
  if (v.is_markup()) return v;
  return interp.make_string(html_escape(interp.to_string(v)), true);
}

Value f_forceescape(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("forceescape", args, {});
  return interp.make_string(html_escape(interp.to_string(v)), true);
}

Value f_filesizeformat(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("filesizeformat", args, {"binary"});
  const bool binary = a.get_bool(0, false);
  double bytes;
  if (v.is_number()) {
    bytes = v.as_double();
  } else {
    CallArgs none;
    bytes = interp.apply_filter("float", v, none).as_double();
  }
  const double base = binary ? 1024 : 1000;
  static const char* const kBinary[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
  static const char* const kDecimal[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  if (bytes == 1) return Value::string("1 Byte");
  char buf[400];
  if (bytes < base) {
    std::snprintf(buf, sizeof buf, "%.0f Bytes", std::trunc(bytes));
    return Value::string(buf);
  }
  for (int i = 0; i < 8; ++i) {
    const double unit = std::pow(base, i + 2);
    if (bytes < unit || i == 7) {
      std::snprintf(buf, sizeof buf, "%.1f %s", base * bytes / unit,
                    binary ? kBinary[i] : kDecimal[i]);
      break;
    }
  }
  return Value::string(buf);
}

Value f_first(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("first", args, {});
  if (v.is_list()) {
    if (v.items().empty()) return Value::undefined("No first item, sequence was empty.");
    return v.items().front();
  }
  const std::vector<Value> items = interp.iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("last", args, {});
  const std::vector<Value> items = interp.iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

// Python float() of a string; nullopt when it does not parse.
std::optional<double> parse_float(std::string s) {
  s = py_strip(s, std::nullopt, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  std::string lower = py_lower(s);
  const char* body = lower.c_str();
  if (*body == '+' || *body == '-') ++body;
  const std::string b = body;
  if (b == "inf" || b == "infinity" || b == "nan") {
    const double r = b == "nan" ? NAN : INFINITY;
    return lower[0] == '-' ? -r : r;
  }
  if (b.find_first_not_of("0123456789.e+-") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

Value f_float(Interpreter&, const Value& v, CallArgs& args) {
  ArgBinder a("float", args, {"default"});
  if (v.is_undefined()) raise_undefined(v);
  if (v.is_number()) return Value::floating(v.as_double());
  if (v.is_string()) {
    if (auto d = parse_float(v.str())) return Value::floating(*d);
  }
  return a.get_or(0, Value::floating(0.0));
}

Value f_int(Interpreter&, const Value& v, CallArgs& args) {
  ArgBinder a("int", args, {"default", "base"});
  const Value fallback = a.get_or(0, Value::integer(0));
  if (v.is_undefined()) raise_undefined(v);
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) {
    const double d = v.as_double();
    if (std::isnan(d) || std::isinf(d) || std::fabs(d) >= 9.2e18) return fallback;
    return Value::integer(static_cast<int64_t>(std::trunc(d)));
  }
  if (v.is_string()) {
    const int64_t base = a.get_int(1, 10);
    std::string s = py_strip(v.str(), std::nullopt, true, true);
    std::string digits = s;
    bool negative = false;
    if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
      negative = digits[0] == '-';
      digits.erase(0, 1);
    }
    int b = static_cast<int>(base);
    if (digits.size() > 2 && digits[0] == '0') {
      const char p = static_cast<char>(digits[1] | 0x20);
      if ((p == 'x' && (b == 16 || b == 0)) || (p == 'o' && (b == 8 || b == 0)) ||
          (p == 'b' && (b == 2 || b == 0))) {
        b = p == 'x' ? 16 : (p == 'o' ? 8 : 2);
        digits.erase(0, 2);
      }
    }
    if (b == 0) b = 10;
    bool ok = !digits.empty() && b >= 2 && b <= 36 && digits.front() != '_' && digits.back() != '_';
    std::string clean;
    for (size_t i = 0; ok && i < digits.size(); ++i) {
      if (digits[i] == '_') {
        if (digits[i + 1] == '_') ok = false;
        continue;
      }
      clean += digits[i];
    }
    if (ok) {
      char* end = nullptr;
      errno = 0;
      const long long r = std::strtoll(clean.c_str(), &end, b);
      if (errno == 0 && end == clean.c_str() + clean.size() && !clean.empty() &&
          clean.find_first_of("+- ") == std::string::npos)
        return Value::integer(negative ? -r : r);
    }
    // "42.23"|int gives 42: Jinja falls back to int(float(value)).
    if (auto d = parse_float(v.str())) {
      if (std::isfinite(*d) && std::fabs(*d) < 9.2e18)
        return Value::integer(static_cast<int64_t>(std::trunc(*d)));
    }
    return fallback;
  }
  return fallback;
}

Value f_format(Interpreter& interp, const Value& v, CallArgs& args) {
  if (!args.positional.empty() && !args.keyword.empty())
    filter_argument_error("can't handle positional and keyword arguments at the same time");
  Value operand;
  if (!args.keyword.empty()) {
    auto d = std::make_shared<DictData>();
    for (auto& [k, value] : args.keyword) d->set(Value::string(k), value);
    operand = Value::dict(std::move(d));
  } else {
    operand = Value::tuple(args.positional);
  }
  return interp.make_string(percent_format(interp, interp.to_string(v), operand), v.is_markup());
}

Value f_groupby(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("groupby", args, {"attribute", "default", "case_sensitive"});
  const Value fallback = a.get(1);
  const bool case_sensitive = a.get_bool(2, false);
  std::vector<Value> items = interp.iterate(v), keys;
  for (const Value& item : items) {
    Value key = lookup_path(interp, item, a.get(0), a.has(1) ? &fallback : nullptr);
    keys.push_back(case_sensitive ? key : lower_if_string(interp, key));
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return compare(keys[x], keys[y]) < 0; });
  std::vector<Value> groups;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    std::vector<Value> members;
    while (j < order.size() && equals(keys[order[j]], keys[order[i]]))
      members.push_back(items[order[j++]]);
    Value grouper = lookup_path(interp, items[order[i]], a.get(0), a.has(1) ? &fallback : nullptr);
    groups.push_back(
        Value::tuple({case_sensitive ? grouper : keys[order[i]], Value::list(std::move(members))}));
    i = j;
  }
  return Value::list(std::move(groups));
}

Value f_indent(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("indent", args, {"width", "first", "blank"});
  std::string indention;
  if (a.has(0) && a.get(0).is_string()) {
    indention = a.get(0).str();
  } else {
    const int64_t width = a.get_int(0, 4);
    if (width > static_cast<int64_t>(interp.limits().max_output_bytes)) interp.string_too_long();
    indention = std::string(static_cast<size_t>(std::max<int64_t>(0, width)), ' ');
  }
  const bool first = a.get_bool(1, false), blank = a.get_bool(2, false);
  // Jinja appends "\n" to the value itself: only strings work.
  if (v.is_undefined()) raise_undefined(v);
  if (v.is_list() && !v.is_tuple())
    throw_error("AttributeError", "'list' object has no attribute 'splitlines'");
  if (!v.is_string())
    throw_type_error("unsupported operand type(s) for +=: '" + v.type_name() + "' and 'str'");
  const std::string s = v.str() + "\n";
  const std::vector<std::string> lines = py_splitlines(s, false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += '\n';
      if (blank || !lines[i].empty()) out += indention;
    }
    out += lines[i];
    if (out.size() > interp.limits().max_output_bytes) interp.string_too_long();
  }
  if (first) out = indention + out;
  return interp.make_string(std::move(out), v.is_markup());
}

Value f_items(Interpreter&, const Value& v, CallArgs& args) {
  ArgBinder a("items", args, {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) throw_type_error("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, value] : v.dict_data().entries) out.push_back(Value::tuple({k, value}));
  return Value::list(std::move(out));
}

Value f_join(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("join", args, {"d", "attribute"});
  const std::string sep = a.has(0) ? interp.to_string(a.get(0)) : "";
  std::string out;
  bool first = true;
  for (const Value& item : interp.iterate(v)) {
    if (!first) out += sep;
    first = false;
    append_str(out, a.has(1) ? lookup_path(interp, item, a.get(1), nullptr) : item,
               interp.limits().max_output_bytes);
    if (out.size() > interp.limits().max_output_bytes) interp.string_too_long();
  }
  return interp.make_string(std::move(out));
}

Value f_list(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("list", args, {});
  return Value::list(interp.iterate(v));
}

Value f_lower(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("lower", args, {});
  return interp.make_string(py_lower(interp.to_string(v)), v.is_markup());
}

Value f_upper(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("upper", args, {});
  return interp.make_string(py_upper(interp.to_string(v)), v.is_markup());
}

Value f_title(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("title", args, {});
  return interp.make_string(jinja_title(interp.to_string(v)));
}

Value f_map(Interpreter& interp, const Value& v, CallArgs& args) {
  std::vector<Value> out;
  if (!v.truthy()) return Value::list({});  // Jinja skips falsy inputs entirely
  if (args.positional.empty()) {
    Value attribute, fallback = Value::none();
    bool has_attribute = false;
    for (auto& [k, value] : args.keyword) {
      if (k == "attribute") {
        attribute = value;
        has_attribute = true;
      } else if (k == "default") {
        fallback = value;
      } else {
        filter_argument_error("Unexpected keyword argument " + string_repr(k));
      }
    }
    if (!has_attribute) filter_argument_error("map requires a filter argument");
    const bool use_default = std::any_of(args.keyword.begin(), args.keyword.end(),
                                         [](const auto& kw) { return kw.first == "default"; });
    for (const Value& item : interp.iterate(v))
      out.push_back(lookup_path(interp, item, attribute, use_default ? &fallback : nullptr));
    return Value::list(std::move(out));
  }
  const std::string name = interp.to_string(args.positional[0]);
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : interp.iterate(v)) {
    CallArgs call = rest;
    out.push_back(interp.apply_filter(name, item, call));
  }
  return Value::list(std::move(out));
}

Value select_or_reject(Interpreter& interp, const Value& v, CallArgs& args, bool select,
                       bool lookup_attr) {
  if (!v.truthy()) return Value::list({});  // Jinja skips falsy inputs entirely
  size_t off = 0;
  Value attribute;
  if (lookup_attr) {
    if (args.positional.empty()) filter_argument_error("Missing parameter for attribute name");
    attribute = args.positional[0];
    off = 1;
  }
  std::string test;
  const bool has_test = args.positional.size() > off;
  if (has_test) test = interp.to_string(args.positional[off]);
  CallArgs rest;
  if (has_test)
    rest.positional.assign(args.positional.begin() + static_cast<long>(off) + 1,
                           args.positional.end());
  rest.keyword = args.keyword;
  std::vector<Value> out;
  for (const Value& item : interp.iterate(v)) {
    const Value probe = lookup_attr ? lookup_path(interp, item, attribute, nullptr) : item;
    bool ok;
    if (has_test) {
      CallArgs call = rest;
      ok = interp.apply_test(test, probe, call);
    } else {
      ok = probe.truthy();
    }
    if (ok == select) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_select(Interpreter& i, const Value& v, CallArgs& a) {
  return select_or_reject(i, v, a, true, false);
}
Value f_reject(Interpreter& i, const Value& v, CallArgs& a) {
  return select_or_reject(i, v, a, false, false);
}
Value f_selectattr(Interpreter& i, const Value& v, CallArgs& a) {
  return select_or_reject(i, v, a, true, true);
}
Value f_rejectattr(Interpreter& i, const Value& v, CallArgs& a) {
  return select_or_reject(i, v, a, false, true);
}

Value min_or_max(Interpreter& interp, const Value& v, CallArgs& args, bool want_max) {
  ArgBinder a(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
  const std::vector<Value> items = interp.iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const bool case_sensitive = a.get_bool(0, false);
  auto key = [&](const Value& item) {
    Value k = a.has(1) && !a.get(1).is_none() ? lookup_path(interp, item, a.get(1), nullptr) : item;
    return case_sensitive ? k : lower_if_string(interp, k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    const int c = compare(k, best_key, want_max ? ">" : "<");
    if (want_max ? c > 0 : c < 0) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}

Value f_min(Interpreter& i, const Value& v, CallArgs& a) {
  return min_or_max(i, v, a, false);
}
Value f_max(Interpreter& i, const Value& v, CallArgs& a) {
  return min_or_max(i, v, a, true);
}

Value f_pprint(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("pprint", args, {});
  return interp.make_string(to_repr(v, interp.limits().max_output_bytes));
}

Value f_replace(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("replace", args, {"old", "new", "count"});
  const int64_t count = a.has(2) && !a.get(2).is_none() ? a.get_int(2, -1) : -1;
  auto r = py_replace(interp.to_string(v), interp.to_string(a.get(0)), interp.to_string(a.get(1)),
                      count, interp.limits().max_output_bytes);
  if (!r) interp.string_too_long();
  return interp.make_string(std::move(*r));
}

Value f_reverse(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("reverse", args, {});
  if (v.is_string()) {
    const std::vector<size_t> offsets = char_offsets(v.str());
    std::string out;
    for (size_t i = offsets.size() - 1; i > 0; --i)
      out.append(v.str(), offsets[i - 1], offsets[i] - offsets[i - 1]);
    return interp.make_string(std::move(out));
  }
  std::vector<Value> items = interp.iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_round(Interpreter&, const Value& v, CallArgs& args) {
  ArgBinder a("round", args, {"precision", "method"});
  const int64_t precision = a.get_int(0, 0);
  const std::string method = a.has(1) ? to_str(a.get(1)) : "common";
  if (method != "common" && method != "ceil" && method != "floor")
    filter_argument_error("method must be common, ceil or floor");
  if (v.is_undefined()) raise_undefined(v);
  if (!v.is_number())
    throw_type_error("type " + v.type_name() + " doesn't define __round__ method");
  if (method == "common") {
    if (!v.is_float()) {
      if (precision >= 0) return Value::integer(v.as_int());
      const double scale = std::pow(10.0, static_cast<double>(-precision));
      const double r = std::nearbyint(static_cast<double>(v.as_int()) / scale) * scale;
      if (!(std::fabs(r) < 9.2e18))
        throw_error("OverflowError", "rounded integer does not fit in 64 bits");
      return Value::integer(static_cast<int64_t>(r));
    }
    const double d = v.as_double();
    if (!std::isfinite(d)) return v;
    if (precision >= 0 && precision < 300) {
      char buf[400];
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), d);
      return Value::floating(std::strtod(buf, nullptr));
    }
    const double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value::floating(std::nearbyint(d / scale) * scale);
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_double() * scale;
  return Value::floating((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("safe", args, {});
  if (v.is_markup()) return v;
  return interp.make_string(interp.to_string(v), true);
}

Value f_slice(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("slice", args, {"slices", "fill_with"});
  const int64_t slices = a.get_int(0, 0);
  if (slices <= 0) throw_error("ZeroDivisionError", "integer division or modulo by zero");
  const std::vector<Value> seq = interp.iterate(v);
  const auto length = static_cast<int64_t>(seq.size());
  const int64_t per = length / slices, extra = length % slices;
  int64_t offset = 0;
  std::vector<Value> out;
  for (int64_t n = 0; n < slices && n < 100000; ++n) {
    const int64_t start = offset + n * per;
    if (n < extra) ++offset;
    const int64_t end = offset + (n + 1) * per;
    std::vector<Value> part(seq.begin() + start, seq.begin() + end);
    if (a.has(1) && !a.get(1).is_none() && n >= extra) part.push_back(a.get(1));
    out.push_back(Value::list(std::move(part)));
  }
  return Value::list(std::move(out));
}

Value f_sort(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("sort", args, {"reverse", "case_sensitive", "attribute"});
  std::vector<Value> items = interp.iterate(v), keys;
  const bool case_sensitive = a.get_bool(1, false);
  for (const Value& item : items) {
    Value k = a.has(2) && !a.get(2).is_none() ? lookup_path(interp, item, a.get(2), nullptr) : item;
    keys.push_back(case_sensitive ? k : lower_if_string(interp, k));
  }
  return Value::list(sorted_values(std::move(items), keys, a.get_bool(0, false)));
}

Value f_string(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("string", args, {});
  if (v.is_string()) return v;
  return interp.make_string(interp.to_string(v));
}

Value f_striptags(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("striptags", args, {});
  const std::string s = interp.to_string(v);
  std::string text;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, "<!--") == 0) {
      const size_t end = s.find("-->", i + 4);
      if (end == std::string::npos) break;
      i = end + 3;
    } else if (s[i] == '<') {
      const size_t end = s.find('>', i + 1);
      if (end == std::string::npos) {
        text += s.substr(i);
        break;
      }
      i = end + 1;
    } else {
      text += s[i++];
    }
  }
  std::string joined;
  for (const std::string& w : py_split(text, std::nullopt, -1)) {
    if (!joined.empty()) joined += ' ';
    joined += w;
  }
  static const std::pair<const char*, const char*> kEntities[] = {{"&lt;", "<"},    {"&gt;", ">"},
                                                                  {"&quot;", "\""}, {"&#34;", "\""},
                                                                  {"&#39;", "'"},   {"&amp;", "&"}};
  for (const auto& [from, to] : kEntities) joined = *py_replace(joined, from, to, -1, SIZE_MAX);
  return interp.make_string(std::move(joined));
}

Value f_sum(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("sum", args, {"attribute", "start"});
  Value total = a.get_or(1, Value::integer(0));
  if (total.is_string()) throw_type_error("sum() can't sum strings [use ''.join(seq) instead]");
  for (const Value& item : interp.iterate(v)) {
    const Value x =
        a.has(0) && !a.get(0).is_none() ? lookup_path(interp, item, a.get(0), nullptr) : item;
    total = binary_op(interp, "+", total, x);
  }
  return total;
}

Value f_tojson(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonFormat format;
  format.ensure_ascii = a.get_bool(0, false);
  if (a.has(1) && !a.get(1).is_none()) {
    format.indent_set = true;
    const Value& indent = a.get(1);
    if (indent.is_string()) {
      format.indent = indent.str();
    } else {
      const int64_t n = to_index(indent, "integer");
      if (n > 1000) throw_error("LimitError", "tojson indent larger than 1000");
      format.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, n)), ' ');
    }
    format.item_separator = ",";
  }
  if (a.has(2) && !a.get(2).is_none()) {
    const std::vector<Value> seps = interp.iterate(a.get(2));
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
      throw_error("ValueError", "separators must be a pair of strings");
    format.item_separator = seps[0].str();
    format.key_separator = seps[1].str();
  }
  format.sort_keys = a.get_bool(3, false);
  std::string out;
  append_json(out, v, format, interp.limits().max_output_bytes);
  return interp.make_string(std::move(out));
}

Value f_trim(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("trim", args, {"chars"});
  std::optional<std::string> chars;
  if (a.has(0) && !a.get(0).is_none()) chars = interp.to_string(a.get(0));
  return interp.make_string(py_strip(interp.to_string(v), chars, true, true), v.is_markup());
}

Value f_truncate(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("truncate", args, {"length", "killwords", "end", "leeway"});
  if (!v.is_string()) {
    // Jinja measures the value itself; only short sized values pass through.
    CallArgs none;
    const int64_t size = f_length(interp, v, none).as_int();
    if (size <= a.get_int(0, 255) + (a.has(3) && !a.get(3).is_none() ? a.get_int(3, 5) : 5))
      return v;
    throw_error("AttributeError", "'" + v.type_name() + "' object has no attribute 'rsplit'");
  }
  const std::string s = v.str();
  const int64_t length = a.get_int(0, 255);
  const bool killwords = a.get_bool(1, false);
  const std::string end = a.has(2) ? interp.to_string(a.get(2)) : "...";
  const int64_t leeway = a.has(3) && !a.get(3).is_none() ? a.get_int(3, 5) : 5;
  const auto end_len = static_cast<int64_t>(py_len(end));
  if (length < end_len)
    throw_error("AssertionError", "expected length >= " + std::to_string(end_len) + ", got " +
                                      std::to_string(length));
  if (leeway < 0)
    throw_error("AssertionError", "expected leeway >= 0, got " + std::to_string(leeway));
  const std::vector<size_t> offsets = char_offsets(s);
  const auto len = static_cast<int64_t>(offsets.size()) - 1;
  if (len <= length + leeway) return v.is_string() ? v : interp.make_string(s);
  std::string head = s.substr(0, offsets[static_cast<size_t>(length - end_len)]);
  if (!killwords) {
    const size_t space = head.rfind(' ');
    if (space != std::string::npos) head.resize(space);
  }
  return interp.make_string(head + end);
}

Value f_unique(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("unique", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = a.get_bool(0, false);
  std::unordered_set<std::string> seen;
  std::vector<Value> out;
  for (const Value& item : interp.iterate(v)) {
    Value k = a.has(1) && !a.get(1).is_none() ? lookup_path(interp, item, a.get(1), nullptr) : item;
    if (!case_sensitive) k = lower_if_string(interp, k);
    if (seen.insert(hash_key(k)).second) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_wordcount(Interpreter& interp, const Value& v, CallArgs& args) {
  ArgBinder a("wordcount", args, {});
  const std::string s = interp.to_string(v);
  int64_t words = 0;
  bool in_word = false;
  for (size_t i = 0; i < s.size();) {
    size_t len = 1;
    const bool w = is_word_char(decode_utf8(s, i, &len));
    if (w && !in_word) ++words;
    in_word = w;
    i += len;
  }
  return Value::integer(words);
}

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"abs", f_abs},
      {"attr", f_attr},
      {"batch", f_batch},
      {"capitalize", f_capitalize},
      {"center", f_center},
      {"count", f_length},
      {"d", f_default},
      {"default", f_default},
      {"dictsort", f_dictsort},
      {"e", f_escape},
      {"escape", f_escape},
      {"filesizeformat", f_filesizeformat},
      {"first", f_first},
      {"float", f_float},
      {"forceescape", f_forceescape},
      {"format", f_format},
      {"groupby", f_groupby},
      {"indent", f_indent},
      {"int", f_int},
      {"items", f_items},
      {"join", f_join},
      {"last", f_last},
      {"length", f_length},
      {"list", f_list},
      {"lower", f_lower},
      {"map", f_map},
      {"max", f_max},
      {"min", f_min},
      {"pprint", f_pprint},
      {"reject", f_reject},
      {"rejectattr", f_rejectattr},
      {"replace", f_replace},
      {"reverse", f_reverse},
      {"round", f_round},
      {"safe", f_safe},
      {"select", f_select},
      {"selectattr", f_selectattr},
      {"slice", f_slice},
      {"sort", f_sort},
      {"string", f_string},
      {"striptags", f_striptags},
      {"sum", f_sum},
      {"title", f_title},
      {"tojson", f_tojson},
      {"trim", f_trim},
      {"truncate", f_truncate},
      {"unique", f_unique},
      {"upper", f_upper},
      {"wordcount", f_wordcount},
  };
  return table;
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  const auto& table = filters();
  const auto it = table.find(name);
  return it == table.end() ? nullptr : it->second;
}

}  // namespace muse::text::jinja
