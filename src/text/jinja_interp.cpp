#include "text/jinja_interp.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "text/jinja_parser.h"
#include "text/jinja_strings.h"

namespace muse::text::jinja {
namespace {

Value undefined_name(const std::string& name) {
  return Value::undefined(string_repr(name) + " is undefined");
}

// What Jinja's Undefined says for a missing attribute or item of obj.
Value missing_member(const Value& obj, const Value& key) {
  std::string type;
  if (obj.is_none()) {
    type = "None";
  } else if (obj.is_object()) {
    type = obj.obj().type_description();
  } else {
    type = obj.type_name() + " object";
  }
  if (key.is_string())
    return Value::undefined(string_repr(type) + " has no attribute " + string_repr(key.str()));
  return Value::undefined(type + " has no element " + to_repr(key, 4096));
}

bool is_hashable(const Value& v) {
  if (v.is_dict()) return false;
  if (v.is_list()) {
    if (!v.is_tuple()) return false;
    for (const Value& item : v.items())
      if (!is_hashable(item)) return false;
  }
  return true;
}

bool is_dunder(const std::string& name) {
  return name.size() > 4 && name.compare(0, 2, "__") == 0 &&
         name.compare(name.size() - 2, 2, "__") == 0;
}

Value unsafe_attribute(const Value& obj, const std::string& name) {
  return Value::undefined("access to attribute " + string_repr(name) + " of " +
                              string_repr(obj.type_name()) + " object is unsafe.",
                          true);
}

// Python slice indices for a sequence of length len.
void adjust_slice(int64_t len, const Value& start_v, const Value& stop_v, const Value& step_v,
                  int64_t* start, int64_t* stop, int64_t* step) {
  auto index = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_int() && !v.is_bool())
      throw_type_error("slice indices must be integers or None or have an __index__ method");
    return v.as_int();
  };
  const auto st = index(step_v);
  *step = st.value_or(1);
  if (*step == 0) throw_error("ValueError", "slice step cannot be zero");
  const auto b = index(start_v), e = index(stop_v);
  if (!b) {
    *start = *step < 0 ? len - 1 : 0;
  } else {
    *start = *b;
    if (*start < 0) {
      *start += len;
      if (*start < 0) *start = *step < 0 ? -1 : 0;
    } else if (*start >= len) {
      *start = *step < 0 ? len - 1 : len;
    }
  }
  if (!e) {
    *stop = *step < 0 ? -1 : len;
  } else {
    *stop = *e;
    if (*stop < 0) {
      *stop += len;
      if (*stop < 0) *stop = *step < 0 ? -1 : 0;
    } else if (*stop >= len) {
      *stop = *step < 0 ? len - 1 : len;
    }
  }
}

template <typename Fn>
void for_each_slice_index(int64_t start, int64_t stop, int64_t step, Fn fn) {
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    fn(i);
    if (__builtin_add_overflow(i, step, &i)) break;
  }
}

}  // namespace

// ---- Frame ----------------------------------------------------------------

const Value* Frame::find(const std::string& name) const {
  for (const Frame* f = this; f; f = f->parent_.get()) {
    const auto it = f->vars_.find(name);
    if (it != f->vars_.end()) return &it->second;
  }
  return nullptr;
}

// ---- Interpreter: limits ----------------------------------------------------

struct Interpreter::DepthGuard {
  explicit DepthGuard(Interpreter* i) : interp(i) {
    if (++interp->depth_ > interp->limits_.max_recursion)
      throw_error("LimitError", "template recursion deeper than " +
                                    std::to_string(interp->limits_.max_recursion) + " levels");
  }
  ~DepthGuard() { --interp->depth_; }
  Interpreter* interp;
};

void Interpreter::step() {
  if (++steps_ > limits_.max_steps)
    throw_error("LimitError", "template ran more than " + std::to_string(limits_.max_steps) +
                                  " steps (endless loop?)");
}

void Interpreter::charge(size_t n) {
  if (n > limits_.max_output_bytes)
    throw_error("LimitError",
                "string longer than " + std::to_string(limits_.max_output_bytes) + " bytes");
  total_bytes_ += n;
  if (total_bytes_ > limits_.max_total_bytes)
    throw_error("LimitError", "template built more than " +
                                  std::to_string(limits_.max_total_bytes) + " bytes of strings");
}

void Interpreter::string_too_long() const {
  throw_error("LimitError",
              "string longer than " + std::to_string(limits_.max_output_bytes) + " bytes");
}

Value Interpreter::make_string(std::string s, bool markup) {
  charge(s.size());
  return Value::string(std::move(s), markup);
}

std::string Interpreter::to_string(const Value& v) {
  std::string s = jinja::to_str(v, limits_.max_output_bytes);
  if (!v.is_string()) charge(s.size());
  return s;
}

Value Interpreter::new_namespace() {
  arena_.push_back(std::make_unique<NamespaceObject>());
  // Values refer to namespaces without owning them (a namespace can hold
  // itself); the render's arena owns them all.
  return Value::object(std::shared_ptr<Object>(std::shared_ptr<Object>(), arena_.back().get()));
}

// ---- rendering --------------------------------------------------------------

std::string Interpreter::render(const TemplateAst& ast, std::shared_ptr<Frame> globals) {
  root_ = std::make_shared<Frame>(std::move(globals));
  std::string out;
  try {
    exec_body(ast.body, root_, out);
  } catch (...) {
    root_.reset();
    block_input_ = Value();
    throw;
  }
  root_.reset();
  block_input_ = Value();
  return out;
}

void Interpreter::append_output(std::string& out, const Value& v) {
  const size_t before = out.size();
  append_str(out, v, limits_.max_output_bytes);
  charge(out.size() - before);
  if (out.size() > limits_.max_output_bytes)
    throw_error("LimitError",
                "output longer than " + std::to_string(limits_.max_output_bytes) + " bytes");
}

Interpreter::Flow Interpreter::exec_body(const Body& body, const std::shared_ptr<Frame>& frame,
                                         std::string& out) {
  for (const StmtPtr& s : body) {
    const Flow f = exec(*s, frame, out);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s, const std::shared_ptr<Frame>& frame,
                                    std::string& out) {
  step();
  DepthGuard guard(this);
  try {
    return exec_inner(s, frame, out);
  } catch (const TemplateError& e) {
    if (e.line() > 0) throw;
    throw TemplateError(e.kind(), e.detail(), s.line);
  }
}

Interpreter::Flow Interpreter::exec_inner(const Stmt& s, const std::shared_ptr<Frame>& frame,
                                          std::string& out) {
  switch (s.kind) {
    case StmtKind::kText:
      out += s.text;
      charge(s.text.size());
      if (out.size() > limits_.max_output_bytes)
        throw_error("LimitError",
                    "output longer than " + std::to_string(limits_.max_output_bytes) + " bytes");
      return Flow::kNormal;
    case StmtKind::kPrint:
      append_output(out, eval(*s.expr, frame));
      return Flow::kNormal;
    case StmtKind::kIf:
      for (const auto& [cond, body] : s.branches)
        if (eval(*cond, frame).truthy()) return exec_body(body, frame, out);
      return exec_body(s.else_body, frame, out);
    case StmtKind::kFor:
      exec_for(s, frame, out, eval(*s.expr, frame), 1);
      return Flow::kNormal;
    case StmtKind::kSet:
      exec_set(s, frame, eval(*s.expr, frame));
      return Flow::kNormal;
    case StmtKind::kSetBlock: {
      std::string body;
      exec_body(s.body, std::make_shared<Frame>(frame), body);
      Value value = Value::string(std::move(body));
      if (s.filter) value = apply_filter_chain(*s.filter, frame, std::move(value));
      exec_set(s, frame, std::move(value));
      return Flow::kNormal;
    }
    case StmtKind::kMacro:
      frame->set(s.name, Value::object(std::make_shared<MacroObject>(&s, frame, s.name)));
      return Flow::kNormal;
    case StmtKind::kCallBlock: {
      CallArgs extra;
      extra.keyword.emplace_back("caller",
                                 Value::object(std::make_shared<MacroObject>(&s, frame, "caller")));
      append_output(out, eval_call(*s.expr, frame, &extra));
      return Flow::kNormal;
    }
    case StmtKind::kFilterBlock: {
      std::string body;
      exec_body(s.body, std::make_shared<Frame>(frame), body);
      append_output(out, apply_filter_chain(*s.filter, frame, Value::string(std::move(body))));
      return Flow::kNormal;
    }
    case StmtKind::kWith: {
      auto inner = std::make_shared<Frame>(frame);
      for (size_t i = 0; i < s.with_targets.size(); ++i)
        assign(s.with_targets[i], eval(*s.with_values[i], frame), *inner);
      exec_body(s.body, inner, out);
      return Flow::kNormal;
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
    case StmtKind::kScope:
      return exec_body(s.body, frame, out);
  }
  return Flow::kNormal;
}

Value Interpreter::apply_filter_chain(const Expr& chain, const std::shared_ptr<Frame>& frame,
                                      Value input) {
  Value saved = std::move(block_input_);
  block_input_ = std::move(input);
  Value result;
  try {
    result = eval(chain, frame);
  } catch (...) {
    block_input_ = std::move(saved);
    throw;
  }
  block_input_ = std::move(saved);
  return result;
}

void Interpreter::exec_for(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string& out,
                           const Value& iterable, int depth) {
  std::vector<Value> items = iterate(iterable);
  if (s.filter) {
    std::vector<Value> kept;
    for (const Value& item : items) {
      step();
      auto probe = std::make_shared<Frame>(frame);
      assign(s.target, item, *probe);
      if (eval(*s.filter, probe).truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    exec_body(s.else_body, std::make_shared<Frame>(frame), out);
    return;
  }
  auto loop = std::make_shared<LoopObject>(&s, frame, items, depth);
  const Value loop_value = Value::object(loop);
  for (size_t i = 0; i < items.size(); ++i) {
    step();
    loop->set_index(i);
    auto inner = std::make_shared<Frame>(frame);
    inner->set("loop", loop_value);
    assign(s.target, items[i], *inner);
    if (exec_body(s.body, inner, out) == Flow::kBreak) break;
  }
}

Value Interpreter::call_loop(const LoopObject& loop, CallArgs& args) {
  if (!loop.for_stmt().recursive)
    throw_type_error(
        "Tried to call non recursive loop.  Maybe you forgot the 'recursive' modifier.");
  if (args.positional.size() != 1 || !args.keyword.empty())
    throw_type_error("loop() takes exactly one argument (the iterable)");
  std::shared_ptr<Frame> outer = loop.outer();
  if (!outer) outer = root_;
  DepthGuard guard(this);
  std::string out;
  exec_for(loop.for_stmt(), outer, out, args.positional[0], loop.depth() + 1);
  return Value::string(std::move(out));
}

void Interpreter::exec_set(const Stmt& s, const std::shared_ptr<Frame>& frame, Value value) {
  if (!s.target.attr.empty()) {
    const Value* ns = frame->find(s.target.name);
    if (!ns || !ns->is_object() || !ns->obj().is_namespace())
      throw_error("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
    static_cast<NamespaceObject&>(ns->obj()).set(s.target.attr, std::move(value));
    return;
  }
  assign(s.target, value, *frame);
}

void Interpreter::assign(const Target& t, const Value& value, Frame& frame) {
  if (!t.is_tuple) {
    if (!t.attr.empty()) {
      const Value* ns = frame.find(t.name);
      if (!ns || !ns->is_object() || !ns->obj().is_namespace())
        throw_error("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
      static_cast<NamespaceObject&>(ns->obj()).set(t.attr, value);
      return;
    }
    frame.set(t.name, value);
    return;
  }
  if (!value.is_string() && !value.is_list() && !value.is_dict() && !value.is_undefined())
    throw_type_error("cannot unpack non-iterable " + value.type_name() + " object");
  const std::vector<Value> parts = iterate(value);
  const size_t n = t.elements.size();
  if (parts.size() < n)
    throw_error("ValueError", "not enough values to unpack (expected " + std::to_string(n) +
                                  ", got " + std::to_string(parts.size()) + ")");
  if (parts.size() > n)
    throw_error("ValueError", "too many values to unpack (expected " + std::to_string(n) + ")");
  for (size_t i = 0; i < n; ++i) assign(t.elements[i], parts[i], frame);
}

// ---- macros -----------------------------------------------------------------

Value Interpreter::call_macro(const MacroObject& macro, CallArgs& args) {
  DepthGuard guard(this);
  const Stmt& def = macro.def();
  std::shared_ptr<Frame> parent = macro.closure();
  if (!parent) parent = root_;
  auto frame = std::make_shared<Frame>(parent);
  const size_t n = def.params.size();
  std::vector<std::pair<std::string, Value>> kwargs = args.keyword;
  const size_t given = std::min(args.positional.size(), n);
  bool found_caller = false;
  for (size_t i = 0; i < given; ++i) frame->set(def.params[i].name, args.positional[i]);
  if (given == n) {
    for (const auto& p : def.params) found_caller |= p.name == "caller";
  }
  for (size_t i = given; i < n; ++i) {
    const MacroParam& p = def.params[i];
    if (p.name == "caller") found_caller = true;
    auto it = std::find_if(kwargs.begin(), kwargs.end(),
                           [&](const auto& kw) { return kw.first == p.name; });
    if (it != kwargs.end()) {
      frame->set(p.name, std::move(it->second));
      kwargs.erase(it);
    } else if (p.default_value) {
      frame->set(p.name, eval(*p.default_value, frame));
    } else {
      frame->set(p.name,
                 Value::undefined("parameter " + string_repr(p.name) + " was not provided"));
    }
  }
  if (def.uses_caller && !found_caller) {
    auto it = std::find_if(kwargs.begin(), kwargs.end(),
                           [](const auto& kw) { return kw.first == "caller"; });
    if (it != kwargs.end()) {
      frame->set("caller", std::move(it->second));
      kwargs.erase(it);
    } else {
      frame->set("caller", Value::undefined("No caller defined"));
    }
  }
  if (def.uses_kwargs) {
    auto d = std::make_shared<DictData>();
    for (auto& [k, v] : kwargs) d->set(Value::string(k), std::move(v));
    int depth = 0;
    for (const auto& e : d->entries) depth = std::max(depth, e.second.depth());
    d->depth = depth + 1;
    frame->set("kwargs", Value::dict(std::move(d)));
  } else if (!kwargs.empty()) {
    for (const auto& kw : kwargs)
      if (kw.first == "caller")
        throw_type_error("macro " + string_repr(macro.name()) +
                         " was invoked with two values for the special caller argument. This is "
                         "most likely a bug.");
    throw_type_error("macro " + string_repr(macro.name()) + " takes no keyword argument " +
                     string_repr(kwargs.front().first));
  }
  if (def.uses_varargs) {
    std::vector<Value> extra;
    for (size_t i = n; i < args.positional.size(); ++i) extra.push_back(args.positional[i]);
    frame->set("varargs", Value::tuple(std::move(extra)));
  } else if (args.positional.size() > n) {
    throw_type_error("macro " + string_repr(macro.name()) + " takes not more than " +
                     std::to_string(n) + " argument(s)");
  }
  std::string out;
  exec_body(def.body, frame, out);
  return Value::string(std::move(out));
}

// ---- expressions --------------------------------------------------------------

Value Interpreter::eval(const Expr& e, const std::shared_ptr<Frame>& frame) {
  step();
  DepthGuard guard(this);
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.literal;
    case ExprKind::kName: {
      const Value* v = frame->find(e.name);
      return v ? *v : undefined_name(e.name);
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      std::vector<Value> items;
      items.reserve(e.children.size());
      for (const auto& c : e.children) items.push_back(eval(*c, frame));
      return e.kind == ExprKind::kList ? Value::list(std::move(items))
                                       : Value::tuple(std::move(items));
    }
    case ExprKind::kDict: {
      auto d = std::make_shared<DictData>();
      int depth = 0;
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        Value key = eval(*e.children[i], frame);
        Value value = eval(*e.children[i + 1], frame);
        depth = std::max({depth, key.depth(), value.depth()});
        d->set(std::move(key), std::move(value));
      }
      d->depth = depth + 1;
      return Value::dict(std::move(d));
    }
    case ExprKind::kGetAttr:
      return get_attr(eval(*e.children[0], frame), e.name);
    case ExprKind::kGetItem:
      return eval_subscript(e, frame);
    case ExprKind::kSlice:
      throw_error("TemplateSyntaxError", "slice outside a subscript");
    case ExprKind::kCall:
      return eval_call(e, frame, nullptr);
    case ExprKind::kFilter: {
      Value input = e.children[0] ? eval(*e.children[0], frame) : block_input_;
      CallArgs args;
      eval_args(e, frame, 1, &args);
      return e.filter(*this, input, args);
    }
    case ExprKind::kTest: {
      const Value input = eval(*e.children[0], frame);
      CallArgs args;
      eval_args(e, frame, 1, &args);
      return Value::boolean(e.test(*this, input, args));
    }
    case ExprKind::kNot:
      return Value::boolean(!eval(*e.children[0], frame).truthy());
    case ExprKind::kNeg:
      return unary_minus(eval(*e.children[0], frame), true);
    case ExprKind::kPos:
      return unary_minus(eval(*e.children[0], frame), false);
    case ExprKind::kBinary: {
      const Value a = eval(*e.children[0], frame);
      const Value b = eval(*e.children[1], frame);
      return binary_op(*this, e.name, a, b);
    }
    case ExprKind::kAnd: {
      Value a = eval(*e.children[0], frame);
      return a.truthy() ? eval(*e.children[1], frame) : a;
    }
    case ExprKind::kOr: {
      Value a = eval(*e.children[0], frame);
      return a.truthy() ? a : eval(*e.children[1], frame);
    }
    case ExprKind::kConcat: {
      std::string s;
      for (const auto& c : e.children) {
        const Value v = eval(*c, frame);
        append_str(s, v, limits_.max_output_bytes);
      }
      return make_string(std::move(s));
    }
    case ExprKind::kCompare:
      return eval_compare(e, frame);
    case ExprKind::kCondExpr: {
      if (eval(*e.children[0], frame).truthy()) return eval(*e.children[1], frame);
      if (e.children[2]) return eval(*e.children[2], frame);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Value();
}

Value Interpreter::eval_compare(const Expr& e, const std::shared_ptr<Frame>& frame) {
  Value left = eval(*e.children[0], frame);
  for (size_t i = 0; i < e.compare_ops.size(); ++i) {
    Value right = eval(*e.children[i + 1], frame);
    const std::string& op = e.compare_ops[i];
    bool ok;
    if (op == "==") {
      ok = equals(left, right);
    } else if (op == "!=") {
      ok = !equals(left, right);
    } else if (op == "in") {
      ok = contains(right, left);
    } else if (op == "notin") {
      ok = !contains(right, left);
    } else {
      const int c = compare(left, right, op.c_str());
      const bool unordered = (left.is_float() && std::isnan(left.as_double())) ||
                             (right.is_float() && std::isnan(right.as_double()));
      if (unordered) {
        ok = false;
      } else if (op == "<") {
        ok = c < 0;
      } else if (op == "<=") {
        ok = c <= 0;
      } else if (op == ">") {
        ok = c > 0;
      } else {
        ok = c >= 0;
      }
    }
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

void Interpreter::eval_args(const Expr& e, const std::shared_ptr<Frame>& frame, size_t first,
                            CallArgs* args) {
  for (size_t i = first; i < e.children.size(); ++i)
    args->positional.push_back(eval(*e.children[i], frame));
  if (e.dyn_args) {
    for (Value& v : iterate(eval(*e.dyn_args, frame))) args->positional.push_back(std::move(v));
  }
  for (const auto& [name, value] : e.kwargs) args->keyword.emplace_back(name, eval(*value, frame));
  if (e.dyn_kwargs) {
    const Value d = eval(*e.dyn_kwargs, frame);
    if (!d.is_dict()) throw_type_error("argument after ** must be a mapping, not " + d.type_name());
    for (const auto& [k, v] : d.dict_data().entries) {
      if (!k.is_string()) throw_type_error("keywords must be strings");
      args->keyword.emplace_back(k.str(), v);
    }
  }
}

Value Interpreter::eval_call(const Expr& e, const std::shared_ptr<Frame>& frame, CallArgs* extra) {
  const Expr& callee = *e.children[0];
  CallArgs args;
  if (callee.kind == ExprKind::kGetAttr) {
    // obj.method(...): call the method directly instead of binding it first.
    const Value self = eval(*callee.children[0], frame);
    if (self.is_undefined()) raise_undefined(self);  // before the arguments, as Python does
    eval_args(e, frame, 1, &args);
    if (extra)
      for (auto& kw : extra->keyword) args.keyword.push_back(std::move(kw));
    bool found = false;
    Value result;
    if (self.is_string() || self.is_list() || self.is_dict()) {
      if (has_method(self, callee.name))
        result = call_method(*this, self, callee.name, args, &found);
    } else if (self.is_object() && !is_dunder(callee.name)) {
      result = self.obj().call_method(*this, callee.name, args, &found);
    }
    if (found) return result;
    return call(get_attr(self, callee.name), args);
  }
  const Value fn = eval(callee, frame);
  eval_args(e, frame, 1, &args);
  if (extra)
    for (auto& kw : extra->keyword) args.keyword.push_back(std::move(kw));
  return call(fn, args);
}

Value Interpreter::call(const Value& callee, CallArgs& args) {
  if (callee.is_undefined()) raise_undefined(callee);
  if (callee.is_object() && callee.obj().callable()) {
    DepthGuard guard(this);
    return callee.obj().call(*this, args);
  }
  throw_type_error("'" + callee.type_name() + "' object is not callable");
}

Value Interpreter::eval_subscript(const Expr& e, const std::shared_ptr<Frame>& frame) {
  const Value obj = eval(*e.children[0], frame);
  const Expr& key = *e.children[1];
  if (key.kind != ExprKind::kSlice) return get_item(obj, eval(key, frame));
  const Value start = key.children[0] ? eval(*key.children[0], frame) : Value::none();
  const Value stop = key.children[1] ? eval(*key.children[1], frame) : Value::none();
  const Value step_v = key.children[2] ? eval(*key.children[2], frame) : Value::none();
  if (obj.is_undefined()) raise_undefined(obj);
  if (obj.is_string()) {
    const std::string& s = obj.str();
    const std::vector<size_t> offsets = char_offsets(s);
    const int64_t len = static_cast<int64_t>(offsets.size()) - 1;
    int64_t a, b, st;
    adjust_slice(len, start, stop, step_v, &a, &b, &st);
    std::string out;
    if (st == 1) {
      if (b > a) out = s.substr(offsets[a], offsets[b] - offsets[a]);
    } else {
      for_each_slice_index(
          a, b, st, [&](int64_t i) { out.append(s, offsets[i], offsets[i + 1] - offsets[i]); });
    }
    return make_string(std::move(out));
  }
  if (obj.is_list()) {
    const auto& items = obj.items();
    int64_t a, b, st;
    adjust_slice(static_cast<int64_t>(items.size()), start, stop, step_v, &a, &b, &st);
    std::vector<Value> out;
    for_each_slice_index(a, b, st, [&](int64_t i) { out.push_back(items[i]); });
    return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  // Jinja slices with a plain Python subscript: anything else is a TypeError.
  if (obj.is_dict()) throw_type_error("unhashable type: 'slice'");
  throw_type_error("'" + obj.type_name() + "' object is not subscriptable");
}

// ---- attribute and item lookup ------------------------------------------------

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) raise_undefined(obj);
  if (is_dunder(name)) return unsafe_attribute(obj, name);
  if (obj.is_string() || obj.is_list() || obj.is_dict()) {
    if (is_mutating_method(obj, name)) return unsafe_attribute(obj, name);
    if (has_method(obj, name)) return Value::object(std::make_shared<BoundMethodObject>(obj, name));
    if (obj.is_dict()) {
      if (const Value* v = obj.dict_data().find(Value::string(name))) return *v;
    }
    return missing_member(obj, Value::string(name));
  }
  if (obj.is_object()) return obj.obj().attribute(name, obj);
  return missing_member(obj, Value::string(name));
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) raise_undefined(obj);
  if (obj.is_dict()) {
    if (is_hashable(key)) {
      if (const Value* v = obj.dict_data().find(key)) return *v;
    }
  } else if (obj.is_list() || obj.is_string()) {
    if (key.is_int() || key.is_bool()) {
      int64_t i = key.as_int();
      if (obj.is_list()) {
        const auto& items = obj.items();
        const auto n = static_cast<int64_t>(items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return items[static_cast<size_t>(i)];
      } else {
        const std::vector<size_t> offsets = char_offsets(obj.str());
        const auto n = static_cast<int64_t>(offsets.size()) - 1;
        if (i < 0) i += n;
        if (i >= 0 && i < n)
          return Value::string(obj.str().substr(offsets[i], offsets[i + 1] - offsets[i]));
      }
      return missing_member(obj, key);
    }
  } else if (obj.is_object() && key.is_string()) {
    // Namespaces support item access to their attributes.
    if (obj.obj().is_namespace()) return obj.obj().attribute(key.str(), obj);
  }
  if (key.is_string()) return get_attr(obj, key.str());
  return missing_member(obj, key);
}

std::vector<Value> Interpreter::iterate(const Value& v) {
  switch (v.kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
      return v.items();
    case Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_data().size());
      for (const auto& e : v.dict_data().entries) keys.push_back(e.first);
      return keys;
    }
    case Kind::kString: {
      const std::string& s = v.str();
      const std::vector<size_t> offsets = char_offsets(s);
      std::vector<Value> chars;
      chars.reserve(offsets.size());
      for (size_t i = 0; i + 1 < offsets.size(); ++i)
        chars.push_back(Value::string(s.substr(offsets[i], offsets[i + 1] - offsets[i])));
      return chars;
    }
    default:
      throw_type_error("'" + v.type_name() + "' object is not iterable");
  }
}

Value Interpreter::apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  const FilterFn fn = find_filter(name);
  if (!fn) throw_error("TemplateRuntimeError", "No filter named " + string_repr(name) + ".");
  return fn(*this, input, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& input, CallArgs& args) {
  const TestFn fn = find_test(name);
  if (!fn) throw_error("TemplateRuntimeError", "No test named " + string_repr(name) + ".");
  return fn(*this, input, args);
}

void raise_undefined(const Value& v) {
  throw_error(v.undefined_is_security() ? "SecurityError" : "UndefinedError",
              v.undefined_message());
}

int64_t to_index(const Value& v, const char* what) {
  if (v.is_undefined()) raise_undefined(v);
  if (v.is_int() || v.is_bool()) return v.as_int();
  throw_type_error(std::string("'") + v.type_name() + "' object cannot be interpreted as an " +
                   what);
}

}  // namespace muse::text::jinja
