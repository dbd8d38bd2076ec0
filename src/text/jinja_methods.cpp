// Methods of Python's str, list and dict that templates call (`s.strip()`,
// `d.items()`, ...). Mutating list/dict methods are refused as the immutable
// sandbox refuses them.
#include <algorithm>
#include <optional>
#include <unordered_map>

#include "text/jinja_interp.h"
#include "text/jinja_strings.h"
#include "text/utf8.h"

namespace muse::text::jinja {

std::string format_value(Interpreter& interp, const Value& v, const std::string& spec);

namespace {

using MethodFn = Value (*)(Interpreter&, const Value& self, CallArgs& args);
using MethodTable = std::unordered_map<std::string, MethodFn>;

std::optional<std::string> optional_string(const ArgBinder& a, size_t i, const char* what) {
  if (!a.has(i) || a.get(i).is_none()) return std::nullopt;
  if (!a.get(i).is_string()) throw_type_error(std::string(what) + " arg must be None or str");
  return a.get(i).str();
}

std::optional<int64_t> optional_index(const ArgBinder& a, size_t i) {
  if (!a.has(i) || a.get(i).is_none()) return std::nullopt;
  return to_index(a.get(i), "integer");
}

const std::string& string_arg(const ArgBinder& a, size_t i, const char* fn) {
  const Value& v = a.get(i);
  if (!v.is_string())
    throw_type_error(std::string(fn) + "() argument must be str, not " + v.type_name());
  return v.str();
}

Value string_list(Interpreter& interp, const std::vector<std::string>& parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (const auto& p : parts) items.push_back(interp.make_string(p));
  return Value::list(std::move(items));
}

template <bool kStart>
Value affix_test(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a(kStart ? "startswith" : "endswith", args, {"prefix", "start", "end"});
  const std::string& s = self.str();
  std::string_view window = s;
  if (a.has(1) || a.has(2)) {
    const std::vector<size_t> offsets = char_offsets(s);
    int64_t lo, hi;
    clamp_slice_bounds(static_cast<int64_t>(offsets.size()) - 1, optional_index(a, 1),
                       optional_index(a, 2), &lo, &hi);
    if (lo > hi) return Value::boolean(false);
    window = std::string_view(s).substr(offsets[lo], offsets[hi] - offsets[lo]);
  }
  auto matches = [&](const Value& affix) {
    if (!affix.is_string())
      throw_type_error(std::string(kStart ? "startswith" : "endswith") +
                       " first arg must be str or a tuple of str, not " + affix.type_name());
    const std::string& x = affix.str();
    if (x.size() > window.size()) return false;
    return kStart ? window.compare(0, x.size(), x) == 0
                  : window.compare(window.size() - x.size(), x.size(), x) == 0;
  };
  const Value& affix = a.get(0);
  if (affix.is_tuple()) {
    for (const Value& v : affix.items())
      if (matches(v)) return Value::boolean(true);
    return Value::boolean(false);
  }
  return Value::boolean(matches(affix));
}

template <bool kLeft, bool kRight>
Value strip_method(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a(kLeft && kRight ? "strip" : (kLeft ? "lstrip" : "rstrip"), args, {"chars"});
  return interp.make_string(py_strip(self.str(), optional_string(a, 0, "strip"), kLeft, kRight));
}

template <bool kReverse>
Value split_method(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a(kReverse ? "rsplit" : "split", args, {"sep", "maxsplit"});
  const auto sep = optional_string(a, 0, "must be str or None, not");
  if (sep && sep->empty()) throw_error("ValueError", "empty separator");
  const int64_t maxsplit = a.get_int(1, -1);
  return string_list(interp, kReverse ? py_rsplit(self.str(), sep, maxsplit)
                                      : py_split(self.str(), sep, maxsplit));
}

template <bool kReverse, bool kRaise>
Value find_method(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a(kReverse ? (kRaise ? "rindex" : "rfind") : (kRaise ? "index" : "find"), args,
              {"sub", "start", "end"});
  const int64_t r = py_find(self.str(), string_arg(a, 0, "find"), optional_index(a, 1),
                            optional_index(a, 2), kReverse);
  if (kRaise && r < 0) throw_error("ValueError", "substring not found");
  return Value::integer(r);
}

template <char kAlign>
Value pad_method(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a(kAlign == '^' ? "center" : (kAlign == '<' ? "ljust" : "rjust"), args,
              {"width", "fillchar"});
  const int64_t width = a.get_int(0, 0);
  std::string fill = " ";
  if (a.has(1)) {
    if (!a.get(1).is_string() || py_len(a.get(1).str()) != 1)
      throw_type_error("The fill character must be exactly one character long");
    fill = a.get(1).str();
  }
  if (width > static_cast<int64_t>(interp.limits().max_output_bytes)) interp.string_too_long();
  return interp.make_string(py_pad(self.str(), width, fill, kAlign));
}

template <std::string (*kFn)(std::string_view)>
Value case_method(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a("str method", args, {});
  return interp.make_string(kFn(self.str()));
}

template <bool (*kPred)(char32_t)>
Value char_class_method(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a("str method", args, {});
  const std::string& s = self.str();
  if (s.empty()) return Value::boolean(false);
  const std::vector<size_t> offsets = char_offsets(s);
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    size_t len;
    if (!kPred(decode_utf8(s, offsets[i], &len))) return Value::boolean(false);
  }
  return Value::boolean(true);
}

bool is_alnum_cp(char32_t c) {
  return is_py_alpha(c) || is_py_digit(c);
}

Value case_check(const std::string& s, bool want_lower) {
  bool cased = false;
  const std::vector<size_t> offsets = char_offsets(s);
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    size_t len;
    const char32_t c = decode_utf8(s, offsets[i], &len);
    if (py_to_upper(c) != c && want_lower) cased = true;
    if (py_to_lower(c) != c && !want_lower) cased = true;
    if (want_lower && py_to_lower(c) != c) return Value::boolean(false);
    if (!want_lower && py_to_upper(c) != c) return Value::boolean(false);
  }
  return Value::boolean(cased);
}

Value str_join(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a("join", args, {"iterable"});
  std::string out;
  size_t i = 0;
  for (const Value& v : interp.iterate(a.get(0))) {
    if (!v.is_string())
      throw_type_error("sequence item " + std::to_string(i) + ": expected str instance, " +
                       v.type_name() + " found");
    if (i++ > 0) out += self.str();
    out += v.str();
    if (out.size() > interp.limits().max_output_bytes) interp.string_too_long();
  }
  return interp.make_string(std::move(out));
}

Value str_replace(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a("replace", args, {"old", "new", "count"});
  auto r = py_replace(self.str(), string_arg(a, 0, "replace"), string_arg(a, 1, "replace"),
                      a.get_int(2, -1), interp.limits().max_output_bytes);
  if (!r) interp.string_too_long();
  return interp.make_string(std::move(*r));
}

Value str_count(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a("count", args, {"sub", "start", "end"});
  return Value::integer(
      py_count(self.str(), string_arg(a, 0, "count"), optional_index(a, 1), optional_index(a, 2)));
}

Value str_format_method(Interpreter& interp, const Value& self, CallArgs& args) {
  return interp.make_string(str_format(interp, self.str(), args), self.is_markup());
}

Value str_format_map(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a("format_map", args, {"mapping"});
  if (!a.get(0).is_dict()) throw_type_error("format_map() argument must be a mapping");
  CallArgs kw;
  for (const auto& [k, v] : a.get(0).dict_data().entries)
    if (k.is_string()) kw.keyword.emplace_back(k.str(), v);
  return interp.make_string(str_format(interp, self.str(), kw));
}

template <bool kReverse>
Value partition_method(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a(kReverse ? "rpartition" : "partition", args, {"sep"});
  const std::string& sep = string_arg(a, 0, "partition");
  if (sep.empty()) throw_error("ValueError", "empty separator");
  const std::string& s = self.str();
  const size_t hit = kReverse ? s.rfind(sep) : s.find(sep);
  if (hit == std::string::npos) {
    return kReverse ? Value::tuple({Value::string(""), Value::string(""), self})
                    : Value::tuple({self, Value::string(""), Value::string("")});
  }
  return Value::tuple({Value::string(s.substr(0, hit)), Value::string(sep),
                       Value::string(s.substr(hit + sep.size()))});
}

template <bool kPrefix>
Value remove_affix(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a(kPrefix ? "removeprefix" : "removesuffix", args, {"affix"});
  const std::string& x = string_arg(a, 0, kPrefix ? "removeprefix" : "removesuffix");
  const std::string& s = self.str();
  if (x.size() <= s.size()) {
    if (kPrefix && s.compare(0, x.size(), x) == 0) return Value::string(s.substr(x.size()));
    if (!kPrefix && s.compare(s.size() - x.size(), x.size(), x) == 0)
      return Value::string(s.substr(0, s.size() - x.size()));
  }
  return self;
}

Value str_splitlines(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a("splitlines", args, {"keepends"});
  return string_list(interp, py_splitlines(self.str(), a.get_bool(0, false)));
}

Value str_zfill(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a("zfill", args, {"width"});
  const int64_t width = a.get_int(0, 0);
  const std::string& s = self.str();
  const auto len = static_cast<int64_t>(py_len(s));
  if (width <= len) return self;
  if (width > static_cast<int64_t>(interp.limits().max_output_bytes)) interp.string_too_long();
  const bool signed_ = !s.empty() && (s[0] == '+' || s[0] == '-');
  std::string out = signed_ ? s.substr(0, 1) : "";
  out += std::string(static_cast<size_t>(width - len), '0');
  out += signed_ ? s.substr(1) : s;
  return interp.make_string(std::move(out));
}

Value str_expandtabs(Interpreter& interp, const Value& self, CallArgs& args) {
  ArgBinder a("expandtabs", args, {"tabsize"});
  const int64_t tab = a.get_int(0, 8);
  std::string out;
  int64_t column = 0;
  const std::string& s = self.str();
  const std::vector<size_t> offsets = char_offsets(s);
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    const std::string_view ch(s.data() + offsets[i], offsets[i + 1] - offsets[i]);
    if (ch == "\t") {
      if (tab > 0) {
        const int64_t spaces = tab - column % tab;
        if (spaces > static_cast<int64_t>(interp.limits().max_output_bytes))
          interp.string_too_long();
        out.append(static_cast<size_t>(spaces), ' ');
        column += spaces;
      }
    } else {
      out += ch;
      column = (ch == "\n" || ch == "\r") ? 0 : column + 1;
    }
    if (out.size() > interp.limits().max_output_bytes) interp.string_too_long();
  }
  return interp.make_string(std::move(out));
}

const MethodTable& string_methods() {
  static const MethodTable table = {
      {"startswith", affix_test<true>},
      {"endswith", affix_test<false>},
      {"strip", strip_method<true, true>},
      {"lstrip", strip_method<true, false>},
      {"rstrip", strip_method<false, true>},
      {"split", split_method<false>},
      {"rsplit", split_method<true>},
      {"find", find_method<false, false>},
      {"rfind", find_method<true, false>},
      {"index", find_method<false, true>},
      {"rindex", find_method<true, true>},
      {"center", pad_method<'^'>},
      {"ljust", pad_method<'<'>},
      {"rjust", pad_method<'>'>},
      {"upper", case_method<py_upper>},
      {"lower", case_method<py_lower>},
      {"casefold", case_method<py_lower>},
      {"title", case_method<py_title>},
      {"capitalize", case_method<py_capitalize>},
      {"swapcase", case_method<py_swapcase>},
      {"isalpha", char_class_method<is_py_alpha>},
      {"isalnum", char_class_method<is_alnum_cp>},
      {"isdigit", char_class_method<is_py_digit>},
      {"isdecimal", char_class_method<is_py_digit>},
      {"isnumeric", char_class_method<is_py_digit>},
      {"isspace", char_class_method<is_py_space>},
      {"isascii",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("isascii", args, {});
         return Value::boolean(is_ascii(self.str()));
       }},
      {"islower",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("islower", args, {});
         return case_check(self.str(), true);
       }},
      {"isupper",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("isupper", args, {});
         return case_check(self.str(), false);
       }},
      {"istitle",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("istitle", args, {});
         const std::string& s = self.str();
         return Value::boolean(!s.empty() && py_title(s) == s &&
                               (py_lower(s) != s || py_upper(s) != s));
       }},
      {"isidentifier",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("isidentifier", args, {});
         const std::string& s = self.str();
         bool ok = !s.empty() && !(s[0] >= '0' && s[0] <= '9');
         for (char c : s)
           ok = ok && (c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                       (c >= 'A' && c <= 'Z') || static_cast<unsigned char>(c) >= 0x80);
         return Value::boolean(ok);
       }},
      {"join", str_join},
      {"replace", str_replace},
      {"count", str_count},
      {"format", str_format_method},
      {"format_map", str_format_map},
      {"partition", partition_method<false>},
      {"rpartition", partition_method<true>},
      {"removeprefix", remove_affix<true>},
      {"removesuffix", remove_affix<false>},
      {"splitlines", str_splitlines},
      {"zfill", str_zfill},
      {"expandtabs", str_expandtabs},
  };
  return table;
}

Value list_copy(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a("copy", args, {});
  return Value::list(self.items());
}

Value list_count(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a("count", args, {"value"});
  int64_t n = 0;
  for (const Value& v : self.items()) n += equals(v, a.get(0)) ? 1 : 0;
  return Value::integer(n);
}

Value list_index(Interpreter&, const Value& self, CallArgs& args) {
  ArgBinder a("index", args, {"value", "start", "stop"});
  const auto& items = self.items();
  int64_t lo, hi;
  clamp_slice_bounds(static_cast<int64_t>(items.size()), optional_index(a, 1), optional_index(a, 2),
                     &lo, &hi);
  for (int64_t i = lo; i < hi; ++i)
    if (equals(items[static_cast<size_t>(i)], a.get(0))) return Value::integer(i);
  throw_error("ValueError", to_repr(a.get(0), 4096) + " is not in list");
}

const MethodTable& list_methods() {
  static const MethodTable table = {
      {"copy", list_copy}, {"count", list_count}, {"index", list_index}};
  return table;
}

Value dict_view(const Value& self, int which) {
  std::vector<Value> items;
  for (const auto& [k, v] : self.dict_data().entries) {
    if (which == 0) items.push_back(k);
    if (which == 1) items.push_back(v);
    if (which == 2) items.push_back(Value::tuple({k, v}));
  }
  return Value::list(std::move(items));
}

const MethodTable& dict_methods() {
  static const MethodTable table = {
      {"items",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("items", args, {});
         return dict_view(self, 2);
       }},
      {"keys",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("keys", args, {});
         return dict_view(self, 0);
       }},
      {"values",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("values", args, {});
         return dict_view(self, 1);
       }},
      {"get",
       [](Interpreter&, const Value& self, CallArgs& args) {
         if (!args.keyword.empty()) throw_type_error("get() takes no keyword arguments");
         ArgBinder a("get", args, {"key", "default"});
         if (!a.has(0)) throw_type_error("get expected at least 1 argument, got 0");
         if (const Value* v = self.dict_data().find(a.get(0))) return *v;
         return a.get_or(1, Value::none());
       }},
      {"copy",
       [](Interpreter&, const Value& self, CallArgs& args) {
         ArgBinder a("copy", args, {});
         return self;  // dicts are immutable here, so a copy is the same value
       }},
  };
  return table;
}

const MethodTable* table_for(const Value& v) {
  if (v.is_string()) return &string_methods();
  if (v.is_list()) return v.is_tuple() ? nullptr : &list_methods();
  if (v.is_dict()) return &dict_methods();
  return nullptr;
}

}  // namespace

bool has_method(const Value& v, const std::string& name) {
  if (v.is_tuple()) return name == "count" || name == "index";
  const MethodTable* t = table_for(v);
  return t && t->count(name) > 0;
}

bool is_mutating_method(const Value& v, const std::string& name) {
  if (v.is_list() && !v.is_tuple()) {
    return name == "append" || name == "clear" || name == "extend" || name == "insert" ||
           name == "pop" || name == "remove" || name == "reverse" || name == "sort";
  }
  if (v.is_dict()) {
    return name == "clear" || name == "pop" || name == "popitem" || name == "setdefault" ||
           name == "update";
  }
  return false;
}

Value call_method(Interpreter& interp, const Value& v, const std::string& name, CallArgs& args,
                  bool* found) {
  const MethodTable* t = v.is_tuple() ? &list_methods() : table_for(v);
  if (!t || (v.is_tuple() && name == "copy")) {
    *found = false;
    return Value();
  }
  const auto it = t->find(name);
  if (it == t->end()) {
    *found = false;
    return Value();
  }
  *found = true;
  return it->second(interp, v, args);
}

}  // namespace muse::text::jinja
