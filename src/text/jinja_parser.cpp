#include "text/jinja_parser.h"

#include <algorithm>
#include <initializer_list>
#include <set>

namespace muse::text::jinja {
namespace {

constexpr int kMaxParseRecursion = 100;

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::kData:
      return "template data / text";
    case Tok::kVarBegin:
      return "begin of print statement";
    case Tok::kVarEnd:
      return "end of print statement";
    case Tok::kBlockBegin:
      return "begin of statement block";
    case Tok::kBlockEnd:
      return "end of statement block";
    case Tok::kName:
      return t.value;
    case Tok::kString:
      return "string";
    case Tok::kInteger:
      return "integer";
    case Tok::kFloat:
      return "float";
    case Tok::kOperator:
      return t.value;
    case Tok::kEof:
      return "end of template";
  }
  return "token";
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::unique_ptr<TemplateAst> parse() {
    auto ast = std::make_unique<TemplateAst>();
    ast->body = subparse({});
    return ast;
  }

 private:
  // ---- token helpers ----
  const Token& cur() const { return toks_[i_]; }
  const Token& peek() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool is_name(std::string_view kw) const { return cur().type == Tok::kName && cur().value == kw; }
  bool is_op(std::string_view op) const {
    return cur().type == Tok::kOperator && cur().value == op;
  }
  bool skip_name(std::string_view kw) {
    if (!is_name(kw)) return false;
    next();
    return true;
  }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& message, int line = 0) const {
    throw TemplateError("TemplateSyntaxError", message, line ? line : cur().line);
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op))
      fail("expected token '" + std::string(op) + "', got '" + describe(cur()) + "'");
  }
  void expect(Tok type, const char* what) {
    if (cur().type != type)
      fail(std::string("expected ") + what + ", got '" + describe(cur()) + "'");
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) fail("expected token 'name', got '" + describe(cur()) + "'");
    return next().value;
  }
  void expect_keyword(std::string_view kw) {
    if (!skip_name(kw))
      fail("expected token '" + std::string(kw) + "', got '" + describe(cur()) + "'");
  }

  struct RecursionGuard {
    explicit RecursionGuard(Parser* p) : parser(p) {
      if (++parser->recursion_ > kMaxParseRecursion)
        parser->fail("expression nested too deeply (more than " +
                     std::to_string(kMaxParseRecursion) + " levels)");
    }
    ~RecursionGuard() { --parser->recursion_; }
    Parser* parser;
  };

  ExprPtr make(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  // Computes the depth of a finished node; rejects trees deeper than kMaxExprDepth.
  ExprPtr finish(ExprPtr e) {
    int d = 0;
    for (const auto& c : e->children)
      if (c) d = std::max(d, c->depth);
    for (const auto& kw : e->kwargs) d = std::max(d, kw.second->depth);
    if (e->dyn_args) d = std::max(d, e->dyn_args->depth);
    if (e->dyn_kwargs) d = std::max(d, e->dyn_kwargs->depth);
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth)
      fail("expression nested too deeply (more than " + std::to_string(kMaxExprDepth) + " levels)",
           e->line);
    return e;
  }
  ExprPtr make_literal(Value v, int line) {
    auto e = make(ExprKind::kLiteral, line);
    e->literal = std::move(v);
    return e;
  }

  // ---- statements ----
  Body subparse(std::initializer_list<std::string_view> end_names) {
    Body body;
    while (cur().type != Tok::kEof) {
      const Token& t = cur();
      if (t.type == Tok::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->line = t.line;
        s->text = t.value;
        next();
        body.push_back(std::move(s));
      } else if (t.type == Tok::kVarBegin) {
        const int line = next().line;
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kPrint;
        s->line = line;
        s->expr = parse_tuple(true, {}, false);
        expect(Tok::kVarEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == Tok::kBlockBegin) {
        next();
        if (cur().type == Tok::kName &&
            std::find(end_names.begin(), end_names.end(), cur().value) != end_names.end())
          return body;
        body.push_back(parse_statement());
        expect(Tok::kBlockEnd, "end of statement block");
      } else {
        fail("unexpected '" + describe(t) + "'");
      }
    }
    return body;
  }

  Body parse_statements(std::initializer_list<std::string_view> end_names, bool drop_needle) {
    skip_op(":");
    expect(Tok::kBlockEnd, "end of statement block");
    if (++nesting_ > kMaxNesting)
      fail("blocks nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
    Body body = subparse(end_names);
    --nesting_;
    if (cur().type == Tok::kEof) {
      std::string wanted;
      for (auto n : end_names) wanted += (wanted.empty() ? "'" : " or '") + std::string(n) + "'";
      std::string message =
          "Unexpected end of template. Jinja was looking for the following tags: " + wanted + ".";
      if (!tag_stack_.empty())
        message += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
      fail(message);
    }
    if (drop_needle) next();
    return body;
  }

  StmtPtr new_stmt(StmtKind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    if (t.type != Tok::kName) fail("tag name expected");
    tag_stack_.push_back(t.value);
    StmtPtr s = parse_tag(t.value);
    tag_stack_.pop_back();
    return s;
  }

  StmtPtr parse_tag(const std::string& kw) {
    if (kw == "if") return parse_if();
    if (kw == "for") return parse_for();
    if (kw == "set") return parse_set();
    if (kw == "macro") return parse_macro();
    if (kw == "call") return parse_call_block();
    if (kw == "filter") return parse_filter_block();
    if (kw == "with") return parse_with();
    if (kw == "print") return parse_print();
    if (kw == "block") return parse_block();
    if (kw == "autoescape") return parse_autoescape();
    if (kw == "generation") {
      // Hugging Face's AssistantTracker extension: marks assistant text for
      // return_assistant_tokens_mask; rendering is unaffected.
      auto s = new_stmt(StmtKind::kScope, next().line);
      s->body = parse_statements({"endgeneration"}, true);
      return s;
    }
    if (kw == "break" || kw == "continue") {
      const int line = next().line;
      if (loop_depth_ == 0) fail("'" + kw + "' outside loop", line);
      return new_stmt(kw == "break" ? StmtKind::kBreak : StmtKind::kContinue, line);
    }
    if (kw == "extends" || kw == "include" || kw == "import" || kw == "from")
      fail("'" + kw + "' is not supported: chat templates are rendered without a loader");
    fail("Encountered unknown tag '" + kw + "'.");
  }

  StmtPtr parse_if() {
    auto s = new_stmt(StmtKind::kIf, next().line);
    while (true) {
      ExprPtr cond = parse_tuple(false, {}, false);
      Body body = parse_statements({"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(cond), std::move(body));
      const Token& tok = next();
      if (tok.value == "elif") continue;
      if (tok.value == "else") s->else_body = parse_statements({"endif"}, true);
      break;
    }
    return s;
  }

  StmtPtr parse_for() {
    auto s = new_stmt(StmtKind::kFor, next().line);
    s->target = parse_assign_target(true, false, {"in"});
    expect_keyword("in");
    s->expr = parse_tuple(false, {"recursive"}, false);
    if (skip_name("if")) s->filter = parse_expression(true);
    s->recursive = skip_name("recursive");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().value != "endfor") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtPtr parse_set() {
    const int line = next().line;
    Target target = parse_assign_target(true, true, {});
    if (skip_op("=")) {
      auto s = new_stmt(StmtKind::kSet, line);
      s->target = std::move(target);
      s->expr = parse_tuple(true, {}, false);
      return s;
    }
    if (target.is_tuple) fail("can't assign a block to a tuple", line);
    auto s = new_stmt(StmtKind::kSetBlock, line);
    s->target = std::move(target);
    if (is_op("|")) s->filter = parse_filter(nullptr, false);
    s->body = parse_statements({"endset"}, true);
    return s;
  }

  void parse_signature(Stmt* s) {
    expect_op("(");
    bool seen_default = false;
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      MacroParam p;
      p.name = expect_name();
      if (skip_op("=")) {
        p.default_value = parse_expression(true);
        seen_default = true;
      } else if (seen_default) {
        fail("non-default argument follows default argument");
      } else if (p.name == "caller") {
        throw TemplateError("TemplateAssertionError",
                            "When defining macros or call blocks the special \"caller\" argument "
                            "must be omitted or be given a default.",
                            cur().line);
      }
      s->params.push_back(std::move(p));
    }
    expect_op(")");
  }

  // Parses a macro-like body, recording whether it uses caller/varargs/kwargs.
  void parse_function_body(Stmt* s, std::initializer_list<std::string_view> end) {
    name_scopes_.emplace_back();
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements(end, true);
    loop_depth_ = saved_loop_depth;
    const std::set<std::string> used = std::move(name_scopes_.back());
    name_scopes_.pop_back();
    s->uses_caller = used.count("caller") > 0;
    s->uses_varargs = used.count("varargs") > 0;
    s->uses_kwargs = used.count("kwargs") > 0;
    for (auto& scope : name_scopes_) scope.insert(used.begin(), used.end());
  }

  StmtPtr parse_macro() {
    auto s = new_stmt(StmtKind::kMacro, next().line);
    s->name = expect_name();
    parse_signature(s.get());
    parse_function_body(s.get(), {"endmacro"});
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = new_stmt(StmtKind::kCallBlock, next().line);
    if (is_op("(")) parse_signature(s.get());
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::kCall) fail("expected call", s->line);
    parse_function_body(s.get(), {"endcall"});
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = new_stmt(StmtKind::kFilterBlock, next().line);
    s->filter = parse_filter(nullptr, true);
    s->body = parse_statements({"endfilter"}, true);
    return s;
  }

  StmtPtr parse_with() {
    auto s = new_stmt(StmtKind::kWith, next().line);
    while (cur().type != Tok::kBlockEnd) {
      if (!s->with_targets.empty()) expect_op(",");
      s->with_targets.push_back(parse_assign_target(false, false, {}));
      expect_op("=");
      s->with_values.push_back(parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true);
    return s;
  }

  StmtPtr parse_print() {
    auto s = new_stmt(StmtKind::kScope, next().line);
    while (cur().type != Tok::kBlockEnd) {
      if (!s->body.empty()) expect_op(",");
      auto p = new_stmt(StmtKind::kPrint, cur().line);
      p->expr = parse_expression(true);
      s->body.push_back(std::move(p));
    }
    return s;
  }

  StmtPtr parse_block() {
    auto s = new_stmt(StmtKind::kScope, next().line);
    s->name = expect_name();
    skip_name("scoped");
    skip_name("required");
    s->body = parse_statements({"endblock"}, true);
    if (cur().type == Tok::kName && cur().value != s->name)
      fail("mismatching name '" + cur().value + "' for end block tag");
    if (cur().type == Tok::kName) next();
    return s;
  }

  StmtPtr parse_autoescape() {
    auto s = new_stmt(StmtKind::kScope, next().line);
    parse_expression(true);
    s->body = parse_statements({"endautoescape"}, true);
    return s;
  }

  // ---- assignment targets ----
  bool is_tuple_end(std::initializer_list<std::string_view> extra) const {
    if (cur().type == Tok::kVarEnd || cur().type == Tok::kBlockEnd || is_op(")")) return true;
    for (auto kw : extra)
      if (is_name(kw)) return true;
    return false;
  }

  Target parse_target_primary(bool with_namespace) {
    RecursionGuard guard(this);
    if (cur().type == Tok::kName) {
      const Token& t = next();
      if (t.value == "true" || t.value == "false" || t.value == "True" || t.value == "False" ||
          t.value == "none" || t.value == "None")
        fail("can't assign to 'const'", t.line);
      Target target;
      target.name = t.value;
      if (with_namespace && is_op(".")) {
        next();
        target.attr = expect_name();
      }
      return target;
    }
    if (skip_op("(")) {
      Target target = parse_target_tuple(false, {}, true);
      expect_op(")");
      return target;
    }
    fail("can't assign to '" + describe(cur()) + "'");
  }

  Target parse_target_tuple(bool with_namespace, std::initializer_list<std::string_view> extra,
                            bool explicit_parentheses) {
    Target tuple;
    tuple.is_tuple = true;
    bool is_tuple = false;
    while (true) {
      if (!tuple.elements.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      tuple.elements.push_back(parse_target_primary(with_namespace));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!tuple.elements.empty()) return std::move(tuple.elements[0]);
      if (!explicit_parentheses) fail("Expected an expression, got '" + describe(cur()) + "'");
    }
    return tuple;
  }

  Target parse_assign_target(bool with_tuple, bool with_namespace,
                             std::initializer_list<std::string_view> extra) {
    if (with_tuple) return parse_target_tuple(with_namespace, extra, false);
    return parse_target_primary(with_namespace);
  }

  // ---- expressions ----
  ExprPtr parse_expression(bool with_condexpr) {
    RecursionGuard guard(this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    const int line = cur().line;
    ExprPtr expr1 = parse_or();
    while (skip_name("if")) {
      ExprPtr expr2 = parse_or();
      ExprPtr expr3;
      if (skip_name("else")) {
        RecursionGuard guard(this);
        expr3 = parse_condexpr();
      }
      auto e = make(ExprKind::kCondExpr, line);
      e->children.push_back(std::move(expr2));
      e->children.push_back(std::move(expr1));
      e->children.push_back(std::move(expr3));
      expr1 = finish(std::move(e));
    }
    return expr1;
  }

  ExprPtr binary(ExprKind kind, std::string op, ExprPtr left, ExprPtr right, int line) {
    auto e = make(kind, line);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return finish(std::move(e));
  }

  ExprPtr parse_or() {
    const int line = cur().line;
    ExprPtr left = parse_and();
    while (skip_name("or")) left = binary(ExprKind::kOr, "or", std::move(left), parse_and(), line);
    return left;
  }

  ExprPtr parse_and() {
    const int line = cur().line;
    ExprPtr left = parse_not();
    while (skip_name("and"))
      left = binary(ExprKind::kAnd, "and", std::move(left), parse_not(), line);
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const int line = next().line;
      RecursionGuard guard(this);
      auto e = make(ExprKind::kNot, line);
      e->children.push_back(parse_not());
      return finish(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::kOperator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
           cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        op = next().value;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && peek().type == Tok::kName && peek().value == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(ExprKind::kCompare, line);
        cmp->children.push_back(std::move(first));
      }
      cmp->compare_ops.push_back(op);
      cmp->children.push_back(parse_math1());
    }
    return cmp ? finish(std::move(cmp)) : std::move(first);
  }

  ExprPtr parse_math1() {
    const int line = cur().line;
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().value;
      left = binary(ExprKind::kBinary, op, std::move(left), parse_concat(), line);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = make(ExprKind::kConcat, line);
    e->children.push_back(std::move(first));
    while (skip_op("~")) e->children.push_back(parse_math2());
    return finish(std::move(e));
  }

  ExprPtr parse_math2() {
    const int line = cur().line;
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().value;
      left = binary(ExprKind::kBinary, op, std::move(left), parse_pow(), line);
    }
    return left;
  }

  ExprPtr parse_pow() {
    const int line = cur().line;
    ExprPtr left = parse_unary(true);
    while (skip_op("**"))
      left = binary(ExprKind::kBinary, "**", std::move(left), parse_unary(true), line);
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    const int line = cur().line;
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const bool neg = next().value == "-";
      RecursionGuard guard(this);
      auto e = make(neg ? ExprKind::kNeg : ExprKind::kPos, line);
      e->children.push_back(parse_unary(false));
      node = finish(std::move(e));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case Tok::kName: {
        next();
        if (t.value == "true" || t.value == "True")
          return make_literal(Value::boolean(true), t.line);
        if (t.value == "false" || t.value == "False")
          return make_literal(Value::boolean(false), t.line);
        if (t.value == "none" || t.value == "None") return make_literal(Value::none(), t.line);
        auto e = make(ExprKind::kName, t.line);
        e->name = t.value;
        for (auto& scope : name_scopes_) scope.insert(t.value);
        return e;
      }
      case Tok::kString: {
        const int line = t.line;
        std::string s = next().value;
        while (cur().type == Tok::kString) s += next().value;
        return make_literal(Value::string(std::move(s)), line);
      }
      case Tok::kInteger:
        return make_literal(Value::integer(next().int_value), t.line);
      case Tok::kFloat:
        return make_literal(Value::floating(next().float_value), t.line);
      case Tok::kOperator:
        if (t.value == "(") {
          next();
          ExprPtr e = parse_tuple(true, {}, true);
          expect_op(")");
          return e;
        }
        if (t.value == "[") return parse_list();
        if (t.value == "{") return parse_dict();
        break;
      default:
        break;
    }
    fail("unexpected '" + describe(t) + "'");
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra,
                      bool explicit_parentheses) {
    const int line = cur().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra)) break;
      args.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) fail("Expected an expression, got '" + describe(cur()) + "'");
    }
    auto e = make(ExprKind::kTuple, line);
    e->children = std::move(args);
    return finish(std::move(e));
  }

  ExprPtr parse_list() {
    auto e = make(ExprKind::kList, next().line);
    while (!is_op("]")) {
      if (!e->children.empty()) expect_op(",");
      if (is_op("]")) break;
      e->children.push_back(parse_expression(true));
    }
    expect_op("]");
    return finish(std::move(e));
  }

  ExprPtr parse_dict() {
    auto e = make(ExprKind::kDict, next().line);
    while (!is_op("}")) {
      if (!e->children.empty()) expect_op(",");
      if (is_op("}")) break;
      e->children.push_back(parse_expression(true));
      expect_op(":");
      e->children.push_back(parse_expression(true));
    }
    expect_op("}");
    return finish(std::move(e));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& t = next();
    if (t.value == ".") {
      const Token& attr = next();
      if (attr.type == Tok::kName) {
        auto e = make(ExprKind::kGetAttr, t.line);
        e->name = attr.value;
        e->children.push_back(std::move(node));
        return finish(std::move(e));
      }
      if (attr.type != Tok::kInteger) fail("expected name or number", attr.line);
      auto e = make(ExprKind::kGetItem, t.line);
      e->children.push_back(std::move(node));
      e->children.push_back(make_literal(Value::integer(attr.int_value), attr.line));
      return finish(std::move(e));
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = make(ExprKind::kGetItem, t.line);
    e->children.push_back(std::move(node));
    if (args.size() == 1) {
      e->children.push_back(std::move(args[0]));
    } else {
      auto tuple = make(ExprKind::kTuple, t.line);
      tuple->children = std::move(args);
      e->children.push_back(finish(std::move(tuple)));
    }
    return finish(std::move(e));
  }

  ExprPtr parse_subscribed() {
    const int line = cur().line;
    ExprPtr start;
    if (!skip_op(":")) {
      start = parse_expression(true);
      if (!skip_op(":")) return start;
    }
    auto e = make(ExprKind::kSlice, line);
    e->children.push_back(std::move(start));
    if (!is_op(":") && !is_op("]") && !is_op(","))
      e->children.push_back(parse_expression(true));
    else
      e->children.push_back(nullptr);
    if (skip_op(":") && !is_op("]") && !is_op(","))
      e->children.push_back(parse_expression(true));
    else
      e->children.push_back(nullptr);
    return finish(std::move(e));
  }

  void parse_call_args(Expr* e) {
    const int line = cur().line;
    expect_op("(");
    bool require_comma = false;
    auto ensure = [&](bool ok) {
      if (!ok) fail("invalid syntax for function call expression", line);
    };
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (skip_op("*")) {
        ensure(!e->dyn_args && !e->dyn_kwargs);
        e->dyn_args = parse_expression(true);
      } else if (skip_op("**")) {
        ensure(!e->dyn_kwargs);
        e->dyn_kwargs = parse_expression(true);
      } else if (cur().type == Tok::kName && peek().type == Tok::kOperator && peek().value == "=") {
        ensure(!e->dyn_kwargs);
        std::string key = next().value;
        next();
        e->kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        ensure(!e->dyn_args && !e->dyn_kwargs && e->kwargs.empty());
        e->children.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(ExprKind::kCall, cur().line);
    e->children.push_back(std::move(node));
    parse_call_args(e.get());
    return finish(std::move(e));
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (skip_op(".")) name += "." + expect_name();
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      const int line = cur().line;
      auto e = make(ExprKind::kFilter, line);
      e->name = parse_dotted_name();
      e->filter = find_filter(e->name);
      if (!e->filter)
        throw TemplateError("TemplateAssertionError", "No filter named '" + e->name + "'.", line);
      e->children.push_back(std::move(node));
      if (is_op("(")) parse_call_args(e.get());
      node = finish(std::move(e));
      start_inline = false;
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const int line = next().line;  // 'is'
    const bool negated = skip_name("not");
    auto e = make(ExprKind::kTest, line);
    e->name = parse_dotted_name();
    e->test = find_test(e->name);
    if (!e->test)
      throw TemplateError("TemplateAssertionError", "No test named '" + e->name + "'.", line);
    e->children.push_back(std::move(node));
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(e.get());
    } else if ((t.type == Tok::kName || t.type == Tok::kString || t.type == Tok::kInteger ||
                t.type == Tok::kFloat || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      RecursionGuard guard(this);
      e->children.push_back(parse_postfix(parse_primary()));
    }
    ExprPtr test = finish(std::move(e));
    if (!negated) return test;
    auto n = make(ExprKind::kNot, line);
    n->children.push_back(std::move(test));
    return finish(std::move(n));
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  int recursion_ = 0;
  int nesting_ = 0;
  int loop_depth_ = 0;
  std::vector<std::string> tag_stack_;
  std::vector<std::set<std::string>> name_scopes_;
};

}  // namespace

std::unique_ptr<TemplateAst> parse_template(std::string_view source, const LexerOptions& options) {
  return Parser(tokenize(source, options)).parse();
}

}  // namespace muse::text::jinja
