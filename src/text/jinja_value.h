// Values of the Jinja2 interpreter, with Python semantics: truthiness, equality
// (1 == 1.0 == True), ordering, str()/repr() printing, insertion-ordered dicts, and
// the HF `tojson` serialisation (json.dumps with ensure_ascii=False).
//
// Lists, tuples and dicts are immutable once built (Hugging Face renders in
// Jinja2's ImmutableSandboxedEnvironment, which forbids append/update/pop), so
// they are shared by pointer and their nesting depth is fixed at construction.
// Objects (namespaces, loops, macros, functions) are reference types.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "muse/error.h"

namespace muse::text::jinja {

// Any failure while parsing or rendering a template. `kind` names the Python
// exception Jinja2 raises in the same situation (UndefinedError, TypeError,
// TemplateSyntaxError, TemplateError from raise_exception, ...), `detail` its
// message; what() is "kind: detail" plus the template line when known.
class TemplateError : public Error {
 public:
  TemplateError(std::string kind, std::string detail, int line = 0);
  const std::string& kind() const { return kind_; }
  const std::string& detail() const { return detail_; }
  int line() const { return line_; }
  // "kind: detail", the way Python prints the exception.
  std::string python_message() const { return kind_ + ": " + detail_; }

 private:
  std::string kind_;
  std::string detail_;
  int line_;
};

[[noreturn]] void throw_error(const char* kind, std::string detail);
[[noreturn]] inline void throw_type_error(std::string detail) {
  throw_error("TypeError", std::move(detail));
}

enum class Kind : uint8_t {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,
  kDict,
  kObject
};

class Value;
class Object;
struct ListData;
struct DictData;
struct UndefinedData;

// Largest nesting of lists/dicts a value may have; deeper structures are an
// error, which keeps every recursive walk (printing, equality, destruction) shallow.
inline constexpr int kMaxValueDepth = 256;

class Value {
 public:
  Value() = default;  // undefined without a name
  static Value undefined(std::string message, bool security = false);
  static Value none() { return Value(Kind::kNone); }
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value floating(double f);
  static Value string(std::string s, bool markup = false);
  static Value list(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  static Value dict(std::shared_ptr<const DictData> d);
  static Value object(std::shared_ptr<Object> o);
  // Converts JSON (arrays, objects in their key order, numbers, strings...).
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }  // excludes bool
  bool is_float() const { return kind_ == Kind::kFloat; }
  bool is_number() const {  // int, float or bool (Python's bool is an int)
    return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
  }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }  // lists and tuples
  bool is_tuple() const;
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_markup() const { return kind_ == Kind::kString && markup_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (b_ ? 1 : 0) : i_; }  // int or bool
  double as_double() const;                                                    // int, bool or float
  const std::string& str() const;
  const std::vector<Value>& items() const;  // list or tuple
  const DictData& dict_data() const;
  Object& obj() const;
  std::shared_ptr<Object> obj_ptr() const;
  const std::string& undefined_message() const;
  bool undefined_is_security() const;
  int depth() const;  // nesting depth: 0 for scalars

  bool truthy() const;
  // Python type name as used in messages: "str", "int", "list", "dict", ...
  std::string type_name() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  Kind kind_ = Kind::kUndefined;
  bool markup_ = false;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<void> ptr_;
};

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;
};

// A Python dict: entries in insertion order, looked up by a canonical key
// (equal for 1, 1.0 and True, as in Python).
struct DictData {
  std::vector<std::pair<Value, Value>> entries;
  std::unordered_map<std::string, size_t> index;
  int depth = 1;

  const Value* find(const Value& key) const;
  void set(Value key, Value value);  // inserts or replaces; throws for unhashable keys
  size_t size() const { return entries.size(); }
};

struct UndefinedData {
  std::string message;    // what UndefinedError says when the value is used
  bool security = false;  // raises SecurityError instead (unsafe attribute)
};

class Interpreter;

// Arguments of a call: positional, then keyword in source order.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// Reference types: namespace, loop, macro, builtin function, cycler, joiner.
class Object {
 public:
  virtual ~Object() = default;
  // Python type as object_type_repr prints it ("jinja2.utils.Namespace object").
  virtual std::string type_description() const = 0;
  // repr(), appended to out (str() of an object is its repr).
  virtual void append_repr(std::string& out, size_t max_bytes) const;
  // Attribute lookup; returns an undefined value when missing.
  virtual Value attribute(const std::string& name, const Value& self) const;
  virtual bool callable() const { return false; }
  virtual Value call(Interpreter& interp, CallArgs& args);
  virtual bool is_namespace() const { return false; }
  // Calls method `name` of this object; sets *found to false when there is none.
  virtual Value call_method(Interpreter& interp, const std::string& name, CallArgs& args,
                            bool* found);
};

// The canonical dict key of a hashable value; throws TypeError otherwise.
std::string hash_key(const Value& v);

// Python ==, and the ordering used by <, sort, min and max (TypeError across types).
bool equals(const Value& a, const Value& b);
int compare(const Value& a, const Value& b, const char* op = "<");

// str(v) appended to out; repr(v). Both fail once out exceeds max_bytes.
void append_str(std::string& out, const Value& v, size_t max_bytes);
void append_repr(std::string& out, const Value& v, size_t max_bytes);
std::string to_str(const Value& v, size_t max_bytes = SIZE_MAX);
std::string to_repr(const Value& v, size_t max_bytes = SIZE_MAX);

struct JsonFormat {
  bool ensure_ascii = false;
  bool indent_set = false;  // indent=None when false
  std::string indent;       // indent string (an int n means n spaces)
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
// json.dumps(v, ...) as Python writes it; TypeError for values JSON can't hold.
void append_json(std::string& out, const Value& v, const JsonFormat& format, size_t max_bytes);

// Python repr of a float ("1.0", "1e-05", "inf").
std::string float_repr(double d);
// Python repr of a string, quotes included.
std::string string_repr(std::string_view s);

}  // namespace muse::text::jinja
