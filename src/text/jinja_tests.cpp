// Jinja2's built-in tests (`x is defined`, `x is divisibleby 3`, `x is eq y`...).
#include <cmath>
#include <unordered_map>

#include "text/jinja_interp.h"
#include "text/jinja_parser.h"
#include "text/jinja_strings.h"

namespace muse::text::jinja {
namespace {

const Value& arg(CallArgs& args, const char* test, const char* name) {
  if (!args.positional.empty()) return args.positional[0];
  for (const auto& [k, v] : args.keyword)
    if (k == name) return v;
  throw_type_error(std::string(test) + "() missing 1 required positional argument: '" + name + "'");
}

void no_args(CallArgs& args, const char* test) {
  if (!args.positional.empty() || !args.keyword.empty())
    throw_type_error(std::string(test) + "() takes 1 positional argument but " +
                     std::to_string(1 + args.positional.size() + args.keyword.size()) +
                     " were given");
}

bool t_defined(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "defined");
  return !v.is_undefined();
}
bool t_undefined(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "undefined");
  return v.is_undefined();
}
bool t_none(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "none");
  return v.is_none();
}
bool t_boolean(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "boolean");
  return v.is_bool();
}
bool t_true(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "true");
  return v.is_bool() && v.as_bool();
}
bool t_false(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "false");
  return v.is_bool() && !v.as_bool();
}
bool t_integer(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "integer");
  return v.is_int();
}
bool t_float(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "float");
  return v.is_float();
}
bool t_number(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "number");
  return v.is_number();
}
bool t_string(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "string");
  return v.is_string();
}
bool t_mapping(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "mapping");
  return v.is_dict();
}
bool t_sequence(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "sequence");
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}
bool t_iterable(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "iterable");
  return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined();
}
bool t_callable(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "callable");
  return v.is_undefined() || (v.is_object() && v.obj().callable());
}
bool t_escaped(Interpreter&, const Value& v, CallArgs& a) {
  no_args(a, "escaped");
  return v.is_markup();
}
bool t_lower(Interpreter& interp, const Value& v, CallArgs& a) {
  no_args(a, "lower");
  const std::string s = interp.to_string(v);
  return py_lower(s) == s && py_upper(s) != s;
}
bool t_upper(Interpreter& interp, const Value& v, CallArgs& a) {
  no_args(a, "upper");
  const std::string s = interp.to_string(v);
  return py_upper(s) == s && py_lower(s) != s;
}

bool modulo_is(Interpreter& interp, const Value& v, const Value& n, int64_t want) {
  const Value r = binary_op(interp, "%", v, n);
  return equals(r, Value::integer(want));
}
bool t_odd(Interpreter& interp, const Value& v, CallArgs& a) {
  no_args(a, "odd");
  return modulo_is(interp, v, Value::integer(2), 1);
}
bool t_even(Interpreter& interp, const Value& v, CallArgs& a) {
  no_args(a, "even");
  return modulo_is(interp, v, Value::integer(2), 0);
}
bool t_divisibleby(Interpreter& interp, const Value& v, CallArgs& a) {
  return modulo_is(interp, v, arg(a, "divisibleby", "num"), 0);
}

bool t_eq(Interpreter&, const Value& v, CallArgs& a) {
  return equals(v, arg(a, "eq", "b"));
}
bool t_ne(Interpreter&, const Value& v, CallArgs& a) {
  return !equals(v, arg(a, "ne", "b"));
}
bool t_lt(Interpreter&, const Value& v, CallArgs& a) {
  return compare(v, arg(a, "lt", "b"), "<") < 0;
}
bool t_le(Interpreter&, const Value& v, CallArgs& a) {
  return compare(v, arg(a, "le", "b"), "<=") <= 0;
}
bool t_gt(Interpreter&, const Value& v, CallArgs& a) {
  return compare(v, arg(a, "gt", "b"), ">") > 0;
}
bool t_ge(Interpreter&, const Value& v, CallArgs& a) {
  return compare(v, arg(a, "ge", "b"), ">=") >= 0;
}
bool t_in(Interpreter&, const Value& v, CallArgs& a) {
  return contains(arg(a, "in", "seq"), v);
}

bool t_sameas(Interpreter&, const Value& v, CallArgs& a) {
  const Value& other = arg(a, "sameas", "other");
  if (v.kind() != other.kind()) return false;
  switch (v.kind()) {
    case Kind::kNone:
    case Kind::kUndefined:
      return true;
    case Kind::kBool:
      return v.as_bool() == other.as_bool();
    case Kind::kInt:
      return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    case Kind::kString:
      return v.str().data() == other.str().data();
    case Kind::kList:
      return &v.items() == &other.items();
    case Kind::kDict:
      return &v.dict_data() == &other.dict_data();
    case Kind::kObject:
      return &v.obj() == &other.obj();
    default:
      return false;
  }
}

bool t_filter(Interpreter& interp, const Value& v, CallArgs& a) {
  no_args(a, "filter");
  return v.is_string() && find_filter(interp.to_string(v)) != nullptr;
}
bool t_test(Interpreter& interp, const Value& v, CallArgs& a) {
  no_args(a, "test");
  return v.is_string() && find_test(interp.to_string(v)) != nullptr;
}

const std::unordered_map<std::string_view, TestFn>& tests() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"defined", t_defined},
      {"undefined", t_undefined},
      {"none", t_none},
      {"boolean", t_boolean},
      {"true", t_true},
      {"false", t_false},
      {"integer", t_integer},
      {"float", t_float},
      {"number", t_number},
      {"string", t_string},
      {"mapping", t_mapping},
      {"sequence", t_sequence},
      {"iterable", t_iterable},
      {"callable", t_callable},
      {"escaped", t_escaped},
      {"lower", t_lower},
      {"upper", t_upper},
      {"odd", t_odd},
      {"even", t_even},
      {"divisibleby", t_divisibleby},
      {"eq", t_eq},
      {"equalto", t_eq},
      {"==", t_eq},
      {"ne", t_ne},
      {"!=", t_ne},
      {"lt", t_lt},
      {"lessthan", t_lt},
      {"<", t_lt},
      {"le", t_le},
      {"<=", t_le},
      {"gt", t_gt},
      {"greaterthan", t_gt},
      {">", t_gt},
      {"ge", t_ge},
      {">=", t_ge},
      {"in", t_in},
      {"sameas", t_sameas},
      {"filter", t_filter},
      {"test", t_test},
  };
  return table;
}

}  // namespace

TestFn find_test(std::string_view name) {
  const auto& table = tests();
  const auto it = table.find(name);
  return it == table.end() ? nullptr : it->second;
}

}  // namespace muse::text::jinja
