// Syntax tree of a parsed Jinja2 template. Nodes are plain structs with a kind
// tag; the interpreter switches on the kind. Expression trees are at most
// kMaxExprDepth deep and statement bodies at most kMaxNesting deep (the parser
// rejects deeper input), so every recursive walk is bounded.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_value.h"

namespace muse::text::jinja {

inline constexpr int kMaxExprDepth = 200;
inline constexpr int kMaxNesting = 100;

using FilterFn = Value (*)(Interpreter&, const Value& input, CallArgs& args);
using TestFn = bool (*)(Interpreter&, const Value& input, CallArgs& args);

enum class ExprKind : uint8_t {
  kLiteral,   // literal
  kName,      // name
  kList,      // children: items
  kTuple,     // children: items
  kDict,      // children: key, value, key, value, ...
  kGetAttr,   // children[0].name
  kGetItem,   // children[0][children[1]]
  kSlice,     // children: start, stop, step (each may be null); only as a subscript
  kCall,      // children[0](children[1..], kwargs)
  kFilter,    // children[0] | name(children[1..], kwargs); children[0] null in filter blocks
  kTest,      // children[0] is name(children[1..], kwargs)
  kNot,       // not children[0]
  kNeg,       // -children[0]
  kPos,       // +children[0]
  kBinary,    // children[0] op children[1]: + - * / // % **
  kAnd,       // children[0] and children[1]
  kOr,        // children[0] or children[1]
  kConcat,    // children joined with ~
  kCompare,   // children[0] ops[0] children[1] ops[1] children[2] ...
  kCondExpr,  // children[1] if children[0] else children[2] (may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  int depth = 1;
  Value literal;
  std::string name;  // variable, attribute, filter or test name; binary operator
  std::vector<std::unique_ptr<Expr>> children;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  std::unique_ptr<Expr> dyn_args;        // *args
  std::unique_ptr<Expr> dyn_kwargs;      // **kwargs
  std::vector<std::string> compare_ops;  // == != < <= > >= in notin
  FilterFn filter = nullptr;
  TestFn test = nullptr;
};
using ExprPtr = std::unique_ptr<Expr>;

// Where an assignment or loop stores: a name, `ns.attr`, or a tuple of targets.
struct Target {
  std::string name;
  std::string attr;  // set for namespace attribute targets
  bool is_tuple = false;
  std::vector<Target> elements;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

enum class StmtKind : uint8_t {
  kText,         // text
  kPrint,        // {{ expr }}
  kIf,           // branches, else_body
  kFor,          // target in expr [if filter] body else else_body
  kSet,          // target = expr
  kSetBlock,     // {% set target [| filter] %}body{% endset %}
  kMacro,        // name(params) body
  kCallBlock,    // {% call(params) expr %}body{% endcall %}
  kFilterBlock,  // {% filter filter %}body{% endfilter %}
  kWith,         // with_targets = with_values: body
  kBreak,
  kContinue,
  kScope,  // body rendered in place (block, autoescape)
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;  // for-loop condition, or a filter chain whose innermost input is null
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  bool recursive = false;
  // Macros and call blocks.
  std::string name;
  std::vector<MacroParam> params;
  bool uses_caller = false;
  bool uses_varargs = false;
  bool uses_kwargs = false;
  // with blocks.
  std::vector<Target> with_targets;
  std::vector<ExprPtr> with_values;
};

struct TemplateAst {
  Body body;
};

}  // namespace muse::text::jinja
