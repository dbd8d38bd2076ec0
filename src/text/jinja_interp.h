// Tree-walking interpreter of a parsed template, with Jinja2's runtime
// semantics as Hugging Face configures it (ImmutableSandboxedEnvironment,
// default Undefined): scoping (loop bodies, macros and blocks get their own
// scope; `namespace` objects are the way out), loop variables, macros with
// caller, Python operators, the sandbox's attribute rules, and limits on steps,
// output, string sizes and recursion so that no template can hang or exhaust
// memory.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/jinja_ast.h"
#include "text/jinja_value.h"

namespace muse::text::jinja {

struct Limits {
  uint64_t max_steps = 20'000'000;        // statements + expressions evaluated
  size_t max_output_bytes = 64u << 20;    // rendered text, and any single string
  uint64_t max_total_bytes = 1ull << 30;  // all strings built during one render
  int max_recursion = 600;                // nested evaluation (macro calls, expressions)
};

// A variable scope. Lookups walk the parent chain; assignments are local.
class Frame {
 public:
  explicit Frame(std::shared_ptr<Frame> parent) : parent_(std::move(parent)) {}
  const Value* find(const std::string& name) const;
  void set(const std::string& name, Value value) { vars_[name] = std::move(value); }
  const std::shared_ptr<Frame>& parent() const { return parent_; }

 private:
  std::shared_ptr<Frame> parent_;
  std::unordered_map<std::string, Value> vars_;
};

using NativeFunction = std::function<Value(Interpreter&, CallArgs&)>;

class MacroObject;
class LoopObject;

class Interpreter {
 public:
  explicit Interpreter(const Limits& limits) : limits_(limits) {}

  // Renders the template with `globals` as the outermost scope.
  std::string render(const TemplateAst& ast, std::shared_ptr<Frame> globals);

  // ---- services for filters, methods and objects ----
  const Limits& limits() const { return limits_; }
  // Accounts for a string of n bytes being built; fails past the limits.
  void charge(size_t n);
  [[noreturn]] void string_too_long() const;  // a string would pass max_output_bytes
  Value make_string(std::string s, bool markup = false);
  Value call(const Value& callee, CallArgs& args);
  // obj.name / obj[key] with Jinja's sandboxed lookup rules (undefined when missing).
  Value get_attr(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);
  // The elements `for x in v` visits (dict keys, string characters...).
  std::vector<Value> iterate(const Value& v);
  // Applies a filter or test by name (for map, select, reject...).
  Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
  bool apply_test(const std::string& name, const Value& input, CallArgs& args);
  // A namespace owned by this render.
  Value new_namespace();
  std::string to_string(const Value& v);  // str(v) within the size limit

  // Runs a macro or caller object.
  Value call_macro(const MacroObject& macro, CallArgs& args);
  // Runs a recursive loop's body over new items (loop(...) in a recursive for).
  Value call_loop(const LoopObject& loop, CallArgs& args);

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  struct DepthGuard;

  void step();
  Value eval(const Expr& e, const std::shared_ptr<Frame>& frame);
  Value eval_call(const Expr& e, const std::shared_ptr<Frame>& frame, CallArgs* extra);
  void eval_args(const Expr& e, const std::shared_ptr<Frame>& frame, size_t first, CallArgs* args);
  Value eval_compare(const Expr& e, const std::shared_ptr<Frame>& frame);
  Value eval_subscript(const Expr& e, const std::shared_ptr<Frame>& frame);
  Flow exec_body(const Body& body, const std::shared_ptr<Frame>& frame, std::string& out);
  Flow exec(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string& out);
  Flow exec_inner(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string& out);
  void exec_for(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string& out,
                const Value& iterable, int depth);
  void exec_set(const Stmt& s, const std::shared_ptr<Frame>& frame, Value value);
  void assign(const Target& t, const Value& value, Frame& frame);
  Value apply_filter_chain(const Expr& chain, const std::shared_ptr<Frame>& frame, Value input);
  void append_output(std::string& out, const Value& v);

  Limits limits_;
  uint64_t steps_ = 0;
  uint64_t total_bytes_ = 0;
  int depth_ = 0;
  std::shared_ptr<Frame> root_;
  Value block_input_;  // the rendered body a filter/set block's filter chain starts from
  std::vector<std::unique_ptr<Object>> arena_;  // namespaces: referenced, never owned, by values
};

// ---- objects (jinja_objects.cpp) ----

class MacroObject : public Object {
 public:
  MacroObject(const Stmt* def, std::weak_ptr<Frame> closure, std::string name)
      : def_(def), closure_(std::move(closure)), name_(std::move(name)) {}
  std::string type_description() const override { return "jinja2.runtime.Macro object"; }
  void append_repr(std::string& out, size_t max_bytes) const override;
  Value attribute(const std::string& name, const Value& self) const override;
  bool callable() const override { return true; }
  Value call(Interpreter& interp, CallArgs& args) override {
    return interp.call_macro(*this, args);
  }
  const Stmt& def() const { return *def_; }
  std::shared_ptr<Frame> closure() const { return closure_.lock(); }
  const std::string& name() const { return name_; }

 private:
  const Stmt* def_;
  std::weak_ptr<Frame> closure_;
  std::string name_;
};

class LoopObject : public Object {
 public:
  LoopObject(const Stmt* for_stmt, std::weak_ptr<Frame> outer, std::vector<Value> items, int depth)
      : for_stmt_(for_stmt), outer_(std::move(outer)), items_(std::move(items)), depth_(depth) {}
  std::string type_description() const override { return "jinja2.runtime.LoopContext object"; }
  void append_repr(std::string& out, size_t max_bytes) const override;
  Value attribute(const std::string& name, const Value& self) const override;
  bool callable() const override { return true; }
  Value call(Interpreter& interp, CallArgs& args) override { return interp.call_loop(*this, args); }
  Value call_method(Interpreter& interp, const std::string& name, CallArgs& args,
                    bool* found) override;

  const std::vector<Value>& items() const { return items_; }
  void set_index(size_t i) { index_ = i; }
  const Stmt& for_stmt() const { return *for_stmt_; }
  std::shared_ptr<Frame> outer() const { return outer_.lock(); }
  int depth() const { return depth_; }

 private:
  const Stmt* for_stmt_;
  std::weak_ptr<Frame> outer_;
  std::vector<Value> items_;
  int depth_;
  size_t index_ = 0;
  bool has_last_changed_ = false;
  std::vector<Value> last_changed_;
};

class NamespaceObject : public Object {
 public:
  std::string type_description() const override { return "jinja2.utils.Namespace object"; }
  void append_repr(std::string& out, size_t max_bytes) const override;
  Value attribute(const std::string& name, const Value& self) const override;
  bool is_namespace() const override { return true; }
  void set(const std::string& name, Value value);

 private:
  DictData attrs_;
  mutable bool in_repr_ = false;
};

// A native function (range, dict, namespace, raise_exception, ...).
class FunctionObject : public Object {
 public:
  FunctionObject(std::string name, NativeFunction fn, std::string repr = "")
      : name_(std::move(name)), fn_(std::move(fn)), repr_(std::move(repr)) {}
  std::string type_description() const override { return "function object"; }
  void append_repr(std::string& out, size_t max_bytes) const override;
  bool callable() const override { return true; }
  Value call(Interpreter& interp, CallArgs& args) override { return fn_(interp, args); }

 private:
  std::string name_;
  NativeFunction fn_;
  std::string repr_;  // what printing shows; "<function NAME>" when empty
};

// A method looked up but not yet called (`x.startswith` printed or passed on).
class BoundMethodObject : public Object {
 public:
  BoundMethodObject(Value self, std::string name)
      : self_(std::move(self)), name_(std::move(name)) {}
  std::string type_description() const override { return "builtin_function_or_method object"; }
  void append_repr(std::string& out, size_t max_bytes) const override;
  bool callable() const override { return true; }
  Value call(Interpreter& interp, CallArgs& args) override;

 private:
  Value self_;
  std::string name_;
};

// Jinja2's default globals: range, dict, namespace, cycler, joiner.
void add_default_globals(Frame& frame);
Value make_function(std::string name, NativeFunction fn, std::string repr = "");

// ---- methods of str, list and dict (jinja_methods.cpp) ----

// Whether `name` is a (safe) method of v's Python type.
bool has_method(const Value& v, const std::string& name);
// Whether it is a method the immutable sandbox forbids (list.append, dict.update...).
bool is_mutating_method(const Value& v, const std::string& name);
// Calls v.name(args); *found is false when v has no such method.
Value call_method(Interpreter& interp, const Value& v, const std::string& name, CallArgs& args,
                  bool* found);

// ---- helpers shared by builtins ----

// Binds call arguments to a Python-style signature: positional first, then by
// keyword; unknown keywords and extra positional arguments are TypeErrors.
class ArgBinder {
 public:
  ArgBinder(const std::string& function, CallArgs& args, std::initializer_list<const char*> params);
  bool has(size_t i) const { return i < values_.size() && set_[i]; }
  const Value& get(size_t i) const;  // undefined when not given
  Value get_or(size_t i, Value fallback) const { return has(i) ? values_[i] : std::move(fallback); }
  int64_t get_int(size_t i, int64_t fallback) const;
  bool get_bool(size_t i, bool fallback) const { return has(i) ? values_[i].truthy() : fallback; }

 private:
  std::string function_;
  std::vector<Value> values_;
  std::vector<bool> set_;
};

// Python arithmetic and comparisons (jinja_ops.cpp).
Value binary_op(Interpreter& interp, const std::string& op, const Value& a, const Value& b);
Value unary_minus(const Value& v, bool negate);
bool contains(const Value& container, const Value& item);
// "%" formatting of a str (printf-style), and str.format (jinja_format.cpp).
std::string percent_format(Interpreter& interp, const std::string& format, const Value& args);
std::string str_format(Interpreter& interp, const std::string& format, CallArgs& args);
[[noreturn]] void raise_undefined(const Value& v);
int64_t to_index(const Value& v, const char* what);  // int or bool, else TypeError

}  // namespace muse::text::jinja
