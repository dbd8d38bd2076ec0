// Reference objects of the interpreter (macros, loop contexts, namespaces,
// functions, bound methods, cycler, joiner) and Jinja2's default globals.
#include <algorithm>
#include <cmath>

#include "text/jinja_interp.h"
#include "text/jinja_strings.h"

namespace muse::text::jinja {
namespace {

void check_repr_size(const std::string& out, size_t max_bytes) {
  if (out.size() > max_bytes)
    throw_error("LimitError", "string longer than " + std::to_string(max_bytes) + " bytes");
}

int dict_depth(const DictData& d) {
  int depth = 0;
  for (const auto& e : d.entries) depth = std::max({depth, e.first.depth(), e.second.depth()});
  return depth + 1;
}

// dict(*args, **kwargs) as Python builds it.
std::shared_ptr<DictData> build_dict(Interpreter& interp, CallArgs& args, const char* what) {
  auto d = std::make_shared<DictData>();
  if (args.positional.size() > 1)
    throw_type_error(std::string(what) + " expected at most 1 argument, got " +
                     std::to_string(args.positional.size()));
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      for (const auto& [k, v] : src.dict_data().entries) d->set(k, v);
    } else {
      for (const Value& pair : interp.iterate(src)) {
        const std::vector<Value> kv = interp.iterate(pair);
        if (kv.size() != 2)
          throw_error("ValueError", "dictionary update sequence element has length " +
                                        std::to_string(kv.size()) + "; 2 is required");
        d->set(kv[0], kv[1]);
      }
    }
  }
  for (auto& [k, v] : args.keyword) d->set(Value::string(k), v);
  d->depth = dict_depth(*d);
  if (d->depth > kMaxValueDepth) throw_error("LimitError", "value nested too deeply");
  return d;
}

class CyclerObject : public Object {
 public:
  explicit CyclerObject(std::vector<Value> items) : items_(std::move(items)) {}
  std::string type_description() const override { return "jinja2.utils.Cycler object"; }
  Value attribute(const std::string& name, const Value& self) const override {
    if (name == "current") return items_[pos_];
    if (name == "next" || name == "reset")
      return Value::object(std::make_shared<BoundMethodObject>(self, name));
    return Object::attribute(name, self);
  }
  Value call_method(Interpreter&, const std::string& name, CallArgs&, bool* found) override {
    *found = true;
    if (name == "next") {
      Value v = items_[pos_];
      pos_ = (pos_ + 1) % items_.size();
      return v;
    }
    if (name == "reset") {
      pos_ = 0;
      return Value::none();
    }
    *found = false;
    return Value();
  }

 private:
  std::vector<Value> items_;
  size_t pos_ = 0;
};

class JoinerObject : public Object {
 public:
  explicit JoinerObject(std::string sep) : sep_(std::move(sep)) {}
  std::string type_description() const override { return "jinja2.utils.Joiner object"; }
  bool callable() const override { return true; }
  Value call(Interpreter&, CallArgs&) override {
    if (!used_) {
      used_ = true;
      return Value::string("");
    }
    return Value::string(sep_);
  }

 private:
  std::string sep_;
  bool used_ = false;
};

Value range_fn(Interpreter&, CallArgs& args) {
  if (!args.keyword.empty()) throw_type_error("range() takes no keyword arguments");
  const auto& p = args.positional;
  if (p.empty() || p.size() > 3)
    throw_type_error("range expected at most 3 arguments, got " + std::to_string(p.size()));
  int64_t start = 0, stop, step = 1;
  if (p.size() == 1) {
    stop = to_index(p[0], "integer");
  } else {
    start = to_index(p[0], "integer");
    stop = to_index(p[1], "integer");
    if (p.size() == 3) step = to_index(p[2], "integer");
  }
  if (step == 0) throw_error("ValueError", "range() arg 3 must not be zero");
  // The sandbox refuses ranges of more than 100000 items.
  const double count = step > 0
                           ? std::max(0.0, std::ceil((static_cast<double>(stop) - start) / step))
                           : std::max(0.0, std::ceil((static_cast<double>(start) - stop) /
                                                     -static_cast<double>(step)));
  if (count > 100000)
    throw_error("OverflowError",
                "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> items;
  const auto n = static_cast<int64_t>(count);
  items.reserve(static_cast<size_t>(n));
  // start + k * step stays between start and stop for k < count: no overflow.
  for (int64_t k = 0; k < n; ++k) items.push_back(Value::integer(start + k * step));
  return Value::list(std::move(items));
}

}  // namespace

// ---- MacroObject ----

void MacroObject::append_repr(std::string& out, size_t max_bytes) const {
  out += "<Macro " + string_repr(name_) + ">";
  check_repr_size(out, max_bytes);
}

Value MacroObject::attribute(const std::string& name, const Value& self) const {
  if (name == "name") return Value::string(name_);
  if (name == "arguments") {
    std::vector<Value> names;
    for (const auto& p : def_->params) names.push_back(Value::string(p.name));
    return Value::tuple(std::move(names));
  }
  if (name == "catch_kwargs") return Value::boolean(def_->uses_kwargs);
  if (name == "catch_varargs") return Value::boolean(def_->uses_varargs);
  if (name == "caller") return Value::boolean(def_->uses_caller);
  return Object::attribute(name, self);
}

// ---- LoopObject ----

void LoopObject::append_repr(std::string& out, size_t max_bytes) const {
  out += "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items_.size()) + ">";
  check_repr_size(out, max_bytes);
}

Value LoopObject::attribute(const std::string& name, const Value& self) const {
  const auto n = static_cast<int64_t>(items_.size());
  const auto i = static_cast<int64_t>(index_);
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(depth_);
  if (name == "depth0") return Value::integer(depth_ - 1);
  if (name == "previtem")
    return i > 0 ? items_[index_ - 1] : Value::undefined("there is no previous item");
  if (name == "nextitem")
    return i + 1 < n ? items_[index_ + 1] : Value::undefined("there is no next item");
  if (name == "cycle" || name == "changed")
    return Value::object(std::make_shared<BoundMethodObject>(self, name));
  return Object::attribute(name, self);
}

Value LoopObject::call_method(Interpreter&, const std::string& name, CallArgs& args, bool* found) {
  *found = true;
  if (name == "cycle") {
    if (args.positional.empty()) throw_type_error("no items for cycling given");
    return args.positional[index_ % args.positional.size()];
  }
  if (name == "changed") {
    const bool changed =
        !has_last_changed_ || last_changed_.size() != args.positional.size() ||
        !std::equal(last_changed_.begin(), last_changed_.end(), args.positional.begin(),
                    [](const Value& a, const Value& b) { return equals(a, b); });
    if (changed) {
      last_changed_ = args.positional;
      has_last_changed_ = true;
    }
    return Value::boolean(changed);
  }
  *found = false;
  return Value();
}

// ---- NamespaceObject ----

void NamespaceObject::append_repr(std::string& out, size_t max_bytes) const {
  if (in_repr_) {
    out += "<Namespace {...}>";
    return;
  }
  in_repr_ = true;
  try {
    out += "<Namespace ";
    out += '{';
    bool first = true;
    for (const auto& [k, v] : attrs_.entries) {
      if (!first) out += ", ";
      first = false;
      jinja::append_repr(out, k, max_bytes);
      out += ": ";
      jinja::append_repr(out, v, max_bytes);
    }
    out += "}>";
  } catch (...) {
    in_repr_ = false;
    throw;
  }
  in_repr_ = false;
  check_repr_size(out, max_bytes);
}

Value NamespaceObject::attribute(const std::string& name, const Value& self) const {
  if (const Value* v = attrs_.find(Value::string(name))) return *v;
  return Object::attribute(name, self);
}

void NamespaceObject::set(const std::string& name, Value value) {
  attrs_.set(Value::string(name), std::move(value));
}

// ---- FunctionObject, BoundMethodObject ----

void FunctionObject::append_repr(std::string& out, size_t max_bytes) const {
  out += repr_.empty() ? "<function " + name_ + ">" : repr_;
  check_repr_size(out, max_bytes);
}

void BoundMethodObject::append_repr(std::string& out, size_t max_bytes) const {
  out += "<built-in method " + name_ + " of " + self_.type_name() + " object>";
  check_repr_size(out, max_bytes);
}

Value BoundMethodObject::call(Interpreter& interp, CallArgs& args) {
  bool found = false;
  Value result = self_.is_object() ? self_.obj().call_method(interp, name_, args, &found)
                                   : jinja::call_method(interp, self_, name_, args, &found);
  if (!found) throw_type_error("'" + self_.type_name() + "' object has no method " + name_);
  return result;
}

Value make_function(std::string name, NativeFunction fn, std::string repr) {
  return Value::object(
      std::make_shared<FunctionObject>(std::move(name), std::move(fn), std::move(repr)));
}

void add_default_globals(Frame& frame) {
  frame.set("range", make_function("range", range_fn, "<class 'range'>"));
  frame.set("dict", make_function(
                        "dict",
                        [](Interpreter& interp, CallArgs& args) {
                          return Value::dict(build_dict(interp, args, "dict"));
                        },
                        "<class 'dict'>"));
  frame.set("namespace", make_function(
                             "namespace",
                             [](Interpreter& interp, CallArgs& args) {
                               const std::shared_ptr<DictData> attrs =
                                   build_dict(interp, args, "Namespace");
                               Value ns = interp.new_namespace();
                               auto& obj = static_cast<NamespaceObject&>(ns.obj());
                               for (const auto& [k, v] : attrs->entries) {
                                 if (!k.is_string()) throw_type_error("keywords must be strings");
                                 obj.set(k.str(), v);
                               }
                               return ns;
                             },
                             "<class 'jinja2.utils.Namespace'>"));
  frame.set("cycler", make_function(
                          "cycler",
                          [](Interpreter&, CallArgs& args) {
                            if (args.positional.empty())
                              throw_error("RuntimeError", "at least one item has to be provided");
                            return Value::object(std::make_shared<CyclerObject>(args.positional));
                          },
                          "<class 'jinja2.utils.Cycler'>"));
  frame.set("joiner", make_function(
                          "joiner",
                          [](Interpreter& interp, CallArgs& args) {
                            ArgBinder a("joiner", args, {"sep"});
                            const std::string sep = a.has(0) ? interp.to_string(a.get(0)) : ", ";
                            return Value::object(std::make_shared<JoinerObject>(sep));
                          },
                          "<class 'jinja2.utils.Joiner'>"));
}

// ---- ArgBinder ----

ArgBinder::ArgBinder(const std::string& function, CallArgs& args,
                     std::initializer_list<const char*> params)
    : function_(function), values_(params.size()), set_(params.size(), false) {
  if (args.positional.size() > params.size())
    throw_type_error(function + "() takes at most " + std::to_string(params.size()) +
                     " argument(s) (" + std::to_string(args.positional.size()) + " given)");
  for (size_t i = 0; i < args.positional.size(); ++i) {
    values_[i] = args.positional[i];
    set_[i] = true;
  }
  for (auto& [name, value] : args.keyword) {
    size_t index = 0;
    for (const char* p : params) {
      if (name == p) break;
      ++index;
    }
    if (index == params.size())
      throw_type_error(function + "() got an unexpected keyword argument " + string_repr(name));
    if (set_[index])
      throw_type_error(function + "() got multiple values for argument " + string_repr(name));
    values_[index] = value;
    set_[index] = true;
  }
}

const Value& ArgBinder::get(size_t i) const {
  static const Value missing;
  return has(i) ? values_[i] : missing;
}

int64_t ArgBinder::get_int(size_t i, int64_t fallback) const {
  if (!has(i)) return fallback;
  return to_index(values_[i], "integer");
}

}  // namespace muse::text::jinja
