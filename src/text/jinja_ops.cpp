// Python arithmetic, concatenation, repetition and membership for template values.
#include <cmath>

#include "text/jinja_interp.h"
#include "text/jinja_strings.h"

namespace muse::text::jinja {
namespace {

[[noreturn]] void overflow() {
  throw_error("OverflowError", "integer result does not fit in 64 bits");
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  throw_type_error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
                   b.type_name() + "'");
}

bool is_integral(const Value& v) {
  return v.is_int() || v.is_bool();
}

Value int_result(int64_t v) {
  return Value::integer(v);
}

// Python's float floor division and modulo (divmod semantics).
void float_divmod(double a, double b, double* floordiv, double* mod) {
  double m = std::fmod(a, b);
  double div = (a - m) / b;
  if (m != 0) {
    if ((b < 0) != (m < 0)) {
      m += b;
      div -= 1.0;
    }
  } else {
    m = std::copysign(0.0, b);
  }
  double fd;
  if (div != 0) {
    fd = std::floor(div);
    if (div - fd > 0.5) fd += 1.0;
  } else {
    fd = std::copysign(0.0, a / b);
  }
  *floordiv = fd;
  *mod = m;
}

Value repeat(Interpreter& interp, const Value& seq, int64_t times) {
  if (times <= 0 || (seq.is_string() && seq.str().empty()) ||
      (seq.is_list() && seq.items().empty()))
    return seq.is_string() ? Value::string("")
                           : (seq.is_tuple() ? Value::tuple({}) : Value::list({}));
  if (seq.is_string()) {
    const std::string& s = seq.str();
    const double total = static_cast<double>(s.size()) * static_cast<double>(times);
    if (total > static_cast<double>(interp.limits().max_output_bytes)) interp.string_too_long();
    std::string out;
    out.reserve(static_cast<size_t>(total));
    for (int64_t i = 0; i < times; ++i) out += s;
    return interp.make_string(std::move(out), seq.is_markup());
  }
  const auto& items = seq.items();
  const double total = static_cast<double>(items.size()) * static_cast<double>(times);
  if (total > 1e7) throw_error("LimitError", "list repetition of more than 10000000 items");
  interp.charge(static_cast<size_t>(total) * sizeof(Value));
  std::vector<Value> out;
  out.reserve(static_cast<size_t>(total));
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

Value add(Interpreter& interp, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return Value::floating(a.as_double() + b.as_double());
    int64_t r;
    if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) overflow();
    return int_result(r);
  }
  if (a.is_string() && b.is_string()) {
    // Markup + str escapes the plain side (markupsafe semantics).
    const bool markup = a.is_markup() || b.is_markup();
    std::string left = a.is_markup() || !markup ? a.str() : html_escape(a.str());
    const std::string right = b.is_markup() || !markup ? b.str() : html_escape(b.str());
    interp.charge(left.size() + right.size());
    left += right;
    return Value::string(std::move(left), markup);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    std::vector<Value> items = a.items();
    items.insert(items.end(), b.items().begin(), b.items().end());
    interp.charge(items.size() * sizeof(Value));
    return a.is_tuple() ? Value::tuple(std::move(items)) : Value::list(std::move(items));
  }
  if (a.is_markup() || b.is_markup()) unsupported("+", a, b);
  if (a.is_string() || a.is_list())
    throw_type_error("can only concatenate " + a.type_name() + " (not \"" + b.type_name() +
                     "\") to " + a.type_name());
  unsupported("+", a, b);
}

Value multiply(Interpreter& interp, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return Value::floating(a.as_double() * b.as_double());
    int64_t r;
    if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) overflow();
    return int_result(r);
  }
  const bool a_seq = a.is_string() || a.is_list();
  const bool b_seq = b.is_string() || b.is_list();
  if (a_seq && is_integral(b)) return repeat(interp, a, b.as_int());
  if (b_seq && is_integral(a)) return repeat(interp, b, a.as_int());
  if (a_seq && !b.is_object())
    throw_type_error("can't multiply sequence by non-int of type '" + b.type_name() + "'");
  if (b_seq && !a.is_object())
    throw_type_error("can't multiply sequence by non-int of type '" + a.type_name() + "'");
  unsupported("*", a, b);
}

Value power(const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported("** or pow()", a, b);
  if (!a.is_float() && !b.is_float() && b.as_int() >= 0) {
    int64_t base = a.as_int(), e = b.as_int(), r = 1;
    while (e > 0) {
      if (e & 1)
        if (__builtin_mul_overflow(r, base, &r)) overflow();
      e >>= 1;
      if (e > 0 && __builtin_mul_overflow(base, base, &base)) overflow();
    }
    return int_result(r);
  }
  const double x = a.as_double(), y = b.as_double();
  if (x == 0 && y < 0) throw_error("ZeroDivisionError", "0.0 cannot be raised to a negative power");
  if (x < 0 && std::floor(y) != y) throw_type_error("complex results of ** are not supported");
  const double r = std::pow(x, y);
  if (std::isinf(r) && !std::isinf(x) && !std::isinf(y))
    throw_error("OverflowError", "(34, 'Numerical result out of range')");
  return Value::floating(r);
}

}  // namespace

Value binary_op(Interpreter& interp, const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) raise_undefined(a);
  if (op == "%" && a.is_string()) {
    // str % undefined formats it like a mapping (Undefined has __getitem__).
    return interp.make_string(percent_format(interp, a.str(), b), a.is_markup());
  }
  if (b.is_undefined()) raise_undefined(b);
  if (op == "+") return add(interp, a, b);
  if (op == "*") return multiply(interp, a, b);
  if (op == "**") return power(a, b);
  if (!a.is_number() || !b.is_number()) unsupported(op, a, b);
  const bool floats = a.is_float() || b.is_float();
  if (op == "-") {
    if (floats) return Value::floating(a.as_double() - b.as_double());
    int64_t r;
    if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) overflow();
    return int_result(r);
  }
  if (op == "/") {
    if (b.as_double() == 0)
      throw_error("ZeroDivisionError", floats ? "float division by zero" : "division by zero");
    return Value::floating(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    const bool floor_div = op == "//";
    if (floats) {
      if (b.as_double() == 0)
        throw_error("ZeroDivisionError",
                    floor_div ? "float floor division by zero" : "float modulo");
      double fd, mod;
      float_divmod(a.as_double(), b.as_double(), &fd, &mod);
      return Value::floating(floor_div ? fd : mod);
    }
    const int64_t x = a.as_int(), y = b.as_int();
    if (y == 0)
      throw_error("ZeroDivisionError",
                  floor_div ? "integer division or modulo by zero" : "integer modulo by zero");
    if (x == INT64_MIN && y == -1) {
      if (floor_div) overflow();
      return int_result(0);
    }
    int64_t q = x / y, r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) {
      q -= 1;
      r += y;
    }
    return int_result(floor_div ? q : r);
  }
  unsupported(op, a, b);
}

Value unary_minus(const Value& v, bool negate) {
  if (v.is_undefined()) raise_undefined(v);
  if (v.is_float()) return Value::floating(negate ? -v.as_double() : v.as_double());
  if (v.is_int() || v.is_bool()) {
    if (!negate) return Value::integer(v.as_int());
    if (v.as_int() == INT64_MIN) overflow();
    return Value::integer(-v.as_int());
  }
  throw_type_error(std::string("bad operand type for unary ") + (negate ? "-" : "+") + ": '" +
                   v.type_name() + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Kind::kUndefined:
      return false;
    case Kind::kString:
      if (!item.is_string())
        throw_type_error("'in <string>' requires string as left operand, not " + item.type_name());
      return container.str().find(item.str()) != std::string::npos;
    case Kind::kList:
      for (const Value& v : container.items())
        if (equals(v, item)) return true;
      return false;
    case Kind::kDict:
      return container.dict_data().find(item) != nullptr;
    default:
      throw_type_error("argument of type '" + container.type_name() + "' is not iterable");
  }
}

}  // namespace muse::text::jinja
