// Semantics of the Jinja2 interpreter on small templates with known outputs
// (each checked against Python Jinja2 3.1 in Hugging Face's configuration:
// trim_blocks, lstrip_blocks, ImmutableSandboxedEnvironment).
#include <gtest/gtest.h>

#include <string>

#include "text/jinja.h"

namespace muse::text::jinja {
namespace {

using nlohmann::ordered_json;

std::string render(std::string_view src, const char* context = "{}", const Options& options = {}) {
  return Template(src, options).render(ordered_json::parse(context));
}

// "Kind: detail" of the error the template raises, or "<no error>".
std::string error_of(std::string_view src, const char* context = "{}",
                     const Options& options = {}) {
  try {
    render(src, context, options);
  } catch (const TemplateError& e) {
    return e.python_message();
  }
  return "<no error>";
}

// ---- whitespace control ------------------------------------------------------

TEST(JinjaWhitespace, TrimBlocksDropsTheNewlineAfterABlockTag) {
  EXPECT_EQ(render("{% if true %}\nA\n{% endif %}\nB"), "A\nB");
  // Not after a print tag.
  EXPECT_EQ(render("{{ 'x' }}\ny"), "x\ny");
  // Comments are trimmed too.
  EXPECT_EQ(render("{# c #}\nx"), "x");
}

TEST(JinjaWhitespace, LstripBlocksRemovesIndentationBeforeBlockTags) {
  EXPECT_EQ(render("a\n    {% if true %}\n    x\n    {% endif %}\nb"), "a\n    x\nb");
  // Only spaces and tabs that start the line; text before the tag keeps them.
  EXPECT_EQ(render("a  {% if true %}x{% endif %}"), "a  x");
  // Print tags are never lstripped.
  EXPECT_EQ(render("\n  {{ 'v' }}"), "\n  v");
  EXPECT_EQ(render("  {# c #}\nx"), "x");
}

TEST(JinjaWhitespace, MinusMarkersStripAllWhitespaceOnThatSide) {
  EXPECT_EQ(render("a \n {%- if true -%} \n b {%- endif %}"), "ab");
  EXPECT_EQ(render("x   {{- 'y' -}}   \n  z"), "xyz");
  EXPECT_EQ(render("a\n  {#- comment -#}\n  b"), "ab");
}

TEST(JinjaWhitespace, PlusMarkersDisableLstripAndTrim) {
  EXPECT_EQ(render("x\n   {%+ if true %}y{% endif %}"), "x\n   y");
  EXPECT_EQ(render("a{% if true +%}\nb{% endif %}"), "a\nb");
}

TEST(JinjaWhitespace, TrailingNewlineAndLineEndings) {
  // keep_trailing_newline=False drops exactly one final newline.
  EXPECT_EQ(render("text\n\n"), "text\n");
  EXPECT_EQ(render("a\r\nb\rc"), "a\nb\nc");
}

TEST(JinjaWhitespace, RawBlocksAndComments) {
  EXPECT_EQ(render("{% raw %}{{ not rendered }}{% endraw %}"), "{{ not rendered }}");
  EXPECT_EQ(render("{% raw -%}   a   {%- endraw %}"), "a");
  EXPECT_EQ(render("a{# multi\nline {{ x }} #}b"), "ab");
}

TEST(JinjaWhitespace, OptionsCanTurnTrimAndLstripOff) {
  Options plain;
  plain.trim_blocks = false;
  plain.lstrip_blocks = false;
  EXPECT_EQ(render("  {% if true %}\nx{% endif %}", "{}", plain), "  \nx");
}

// ---- expressions -------------------------------------------------------------

TEST(JinjaExpressions, ArithmeticFollowsPython) {
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }}"),
            "3 -4 1 2 3.5 2.0");
  EXPECT_EQ(render("{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}"),
            "1024 0.5 3.0 0.5");
  EXPECT_EQ(render("{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 1e16 }} {{ 1e-05 }} {{ 0.0001 }}"),
            "0.30000000000000004 0.3333333333333333 1e+16 1e-05 0.0001");
  EXPECT_EQ(render("{{ true + 1 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1, 2] + [3] }}"),
            "2 ababab [1, 1] [1, 2, 3]");
}

TEST(JinjaExpressions, PrecedenceMatchesJinja) {
  EXPECT_EQ(render("{{ 1 + 2 * 3 - 4 / 2 }}"), "5.0");
  // Jinja's ** is left-associative and binds tighter than unary minus's operand.
  EXPECT_EQ(render("{{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}"), "64 4");
  // A filter applies to the negated operand: -1|abs is abs(-1).
  EXPECT_EQ(render("{{ -1|abs }}"), "1");
  // ~ binds tighter than + and looser than *.
  EXPECT_EQ(render("{{ 'a' + 'b' ~ 1 }} {{ 2 * 3 ~ 4 }}"), "ab1 64");
  EXPECT_EQ(error_of("{{ 1 ~ 2 + 3 }}"),
            "TypeError: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(render("{{ not 1 == 2 }} {{ 'a' if 1 else 'b' ~ 'c' }}"), "True a");
}

TEST(JinjaExpressions, ComparisonsAndMembership) {
  EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }}"),
            "True False True True");
  EXPECT_EQ(render("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }}"),
            "True True True True");
  EXPECT_EQ(render("{{ [1, 2] == [1, 2] }} {{ (1, 2) == [1, 2] }} {{ {'a': 1} == {'a': 1.0} }}"),
            "True False True");
  EXPECT_EQ(render("{{ 'abc' < 'abd' }} {{ [1, 2] < [1, 3] }}"), "True True");
}

TEST(JinjaExpressions, PrintingUsesPythonStrAndRepr) {
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5] }}"), "[1, 'a', None, True, 1.5]");
  EXPECT_EQ(render("{{ {'a': [1, 'x'], 'b': {}} }}"), "{'a': [1, 'x'], 'b': {}}");
  EXPECT_EQ(render("{{ (1,) }} {{ (1, 2) }} {{ () }} {{ none }} {{ false }}"),
            "(1,) (1, 2) () None False");
  EXPECT_EQ(render(R"j({{ ["it's", 'say "hi"', 'a\nb'] }})j"), R"j(["it's", 'say "hi"', 'a\nb'])j");
  EXPECT_EQ(render("{{ x }}", R"({"x": {"b": 1, "a": 2}})"), "{'b': 1, 'a': 2}");
}

TEST(JinjaExpressions, ConditionalsAndBooleanOperatorsReturnOperands) {
  EXPECT_EQ(render("{{ 'y' if none else 'n' }}|{{ 'x' if false }}|{{ 0 or 'z' }}|{{ [] and 1 }}"),
            "n||z|[]");
}

TEST(JinjaExpressions, SlicingIncludingNegativeSteps) {
  const char* ctx = R"({"xs": [1, 2, 3, 4, 5], "s": "Hello"})";
  EXPECT_EQ(
      render("{{ xs[1:3] }} {{ xs[::-1] }} {{ xs[4:1:-2] }} {{ xs[-2:] }} {{ xs[10:] }}", ctx),
      "[2, 3] [5, 4, 3, 2, 1] [5, 3] [4, 5] []");
  EXPECT_EQ(render("{{ s[::-1] }} {{ s[1] }} {{ s[-1] }} {{ s[::2] }}", ctx), "olleH e o Hlo");
  EXPECT_EQ(render("{{ 'Ünï✓'[1:3] }} {{ 'Ünï✓'[::-1] }}"), "nï ✓ïnÜ");
}

TEST(JinjaExpressions, LiteralsAndAttributeAccess) {
  EXPECT_EQ(render("{{ 1_000 + 0x10 + 0o10 + 0b11 }} {{ 1.5e3 }} {{ 'a' 'b' }}"), "1027 1500.0 ab");
  const char* ctx = R"({"m": {"role": "user", "items": 3, "list": [10, 20]}})";
  EXPECT_EQ(render("{{ m.role }} {{ m['role'] }} {{ m.list.1 }} {{ m['items'] }}", ctx),
            "user user 20 3");
  // Attribute lookup prefers dict methods, item lookup prefers keys.
  EXPECT_EQ(render("{{ m.items is defined }} {{ m.items()|length }}", ctx), "True 3");
}

TEST(JinjaExpressions, StringFormatting) {
  EXPECT_EQ(render("{{ '%s-%d|%05.1f|%x|%r' % ('a', 3, 3.14159, 255, 'q') }}"), "a-3|003.1|ff|'q'");
  EXPECT_EQ(render("{{ '%(a)s!' % {'a': 1} }} {{ '%.3d' % 7 }} {{ '%-4s|' % 'x' }}"),
            "1! 007 x   |");
  EXPECT_EQ(
      render(
          "{{ '{} {}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('x', 'y') }} "
          "{{ '{a:>4}'.format(a='r') }} {{ '{:.2f}'.format(2.5) }} {{ '{:,}'.format(1234567) }}"),
      "1 b xyx    r 2.50 1,234,567");
}

// ---- statements -----------------------------------------------------------------

TEST(JinjaStatements, IfElifElse) {
  EXPECT_EQ(render("{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}"), "c");
  EXPECT_EQ(render("{% if [] %}a{% else %}b{% endif %}{% if {} or '' or 0.0 %}x{% endif %}"), "b");
}

TEST(JinjaStatements, ForLoopVariables) {
  EXPECT_EQ(
      render("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
             "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}"),
      "1032TrueFalse3 2121FalseFalse3 3210FalseTrue3 ");
  EXPECT_EQ(render("{% for x in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}"
                   "-{{ loop.cycle('a', 'b') }};{% endfor %}"),
            "-2-a;1-3-b;2--a;");
  EXPECT_EQ(render("{% for x in [1, 2] %}{% for y in [1] %}{{ loop.depth }}{{ loop.index }}"
                   "{% endfor %}{{ loop.index }}{% endfor %}"),
            "111112");
}

TEST(JinjaStatements, ForElseFilterBreakContinueUnpacking) {
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(
      render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}/{{ loop.length }} {% endfor %}"),
      "2/2 4/2 ");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}"
                   "{% if x == 3 %}{% break %}{% endif %}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(render("{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}"), "ba");
}

TEST(JinjaStatements, RecursiveLoop) {
  const char* ctx =
      R"({"tree": [{"n": "a", "c": [{"n": "b", "c": []}, {"n": "c", "c": [{"n": "d", "c": []}]}]}]})";
  EXPECT_EQ(
      render("{% for i in tree recursive %}{{ loop.depth }}{{ i.n }}{% if i.c %}({{ loop(i.c) }})"
             "{% endif %}{% endfor %}",
             ctx),
      "1a(2b2c(3d))");
}

TEST(JinjaStatements, LoopBodiesHaveTheirOwnScopeNamespacesEscapeIt) {
  EXPECT_EQ(
      render(
          "{% set c = 0 %}{% for x in [1, 2, 3] %}{% set c = c + x %}{{ c }}{% endfor %}|{{ c }}"),
      "123|0");
  EXPECT_EQ(render("{% set ns = namespace(c=0) %}{% for x in [1, 2, 3] %}{% set ns.c = ns.c + x %}"
                   "{% endfor %}{{ ns.c }}"),
            "6");
  EXPECT_EQ(render("{% if true %}{% set z = 3 %}{% endif %}{{ z }}"), "3");
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns }}"), "<Namespace {'a': 1}>");
  EXPECT_EQ(error_of("{% set x = 1 %}{% set x.y = 2 %}"),
            "TemplateRuntimeError: cannot assign attribute on non-namespace object");
}

TEST(JinjaStatements, SetBlocksAndFilterBlocks) {
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(render("{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]"), "[inner 2]");
  EXPECT_EQ(render("{% set x | trim | upper %}  inner  {% endset %}[{{ x }}]"), "[INNER]");
  EXPECT_EQ(render("{% filter upper %}a{{ 'b' }}{% endfilter %}"), "AB");
  EXPECT_EQ(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"), "3[]");
}

TEST(JinjaStatements, MacrosWithDefaultsVarargsKwargs) {
  EXPECT_EQ(render("{% macro m(a, b=2, c='x') %}{{ a }}{{ b }}{{ c }}{% endmacro %}"
                   "{{ m(1) }}|{{ m(1, 3) }}|{{ m(1, c=5) }}|{{ m() }}"),
            "12x|13x|125|2x");
  EXPECT_EQ(
      render("{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, x=4) }}"),
      "1(2, 3){'x': 4}");
  EXPECT_EQ(
      render(
          "{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(4) }}"),
      "4321");
  // Macros see the template's variables as they are when called.
  EXPECT_EQ(render("{% macro m() %}{{ y }}{% endmacro %}{% set y = 5 %}{{ m() }}"), "5");
  EXPECT_EQ(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
            "TypeError: macro 'm' takes not more than 1 argument(s)");
  EXPECT_EQ(error_of("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}"),
            "TypeError: macro 'm' takes no keyword argument 'b'");
}

TEST(JinjaStatements, CallBlocksPassACaller) {
  EXPECT_EQ(
      render("{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}body{% endcall %}"),
      "[body]");
  EXPECT_EQ(render("{% macro twice(x) %}{{ caller(x) }}{{ caller(x * 2) }}{% endmacro %}"
                   "{% call(v) twice(2) %}<{{ v }}>{% endcall %}"),
            "<2><4>");
}

TEST(JinjaStatements, GenerationTagOfHuggingFaceRendersItsBody) {
  EXPECT_EQ(render("{% for m in ['a', 'b'] %}\n  {% generation %}\n{{ m }}\n  {% endgeneration %}\n{% endfor %}"),
            "a\nb\n");
}

TEST(JinjaStatements, GlobalsRangeDictCyclerJoiner) {
  EXPECT_EQ(render("{{ range(3)|list }}{{ range(1, 10, 4)|list }}{{ range(3, 0, -1)|list }}"),
            "[0, 1, 2][1, 5, 9][3, 2, 1]");
  EXPECT_EQ(render("{{ dict(a=1, b=2) }}"), "{'a': 1, 'b': 2}");
  EXPECT_EQ(render("{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}"),
            "aba");
  EXPECT_EQ(render("{% set j = joiner('|') %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}"),
            "1|2|3");
}

// ---- tests (is ...) ---------------------------------------------------------------

TEST(JinjaTests, TypeAndValueTests) {
  EXPECT_EQ(render("{{ 'x' is string }}{{ 1 is number }}{{ true is number }}{{ true is integer }}"
                   "{{ 1.0 is float }}{{ none is none }}{{ {} is mapping }}{{ [] is sequence }}"),
            "TrueTrueTrueFalseTrueTrueTrueTrue");
  EXPECT_EQ(render("{{ 2 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 1 is eq 1 }}"
                   "{{ 'a' is equalto 'a' }}{{ 2 is gt 1 }}{{ 'a' is in 'abc' }}{{ 1 is true }}"
                   "{{ true is true }}{{ 'x' is not defined }}"),
            "TrueTrueTrueTrueTrueTrueTrueFalseTrueFalse");
}

// ---- undefined values --------------------------------------------------------------

TEST(JinjaUndefined, BehavesLikeJinjaDefaultUndefined) {
  EXPECT_EQ(render("[{{ nope }}]{{ nope is defined }}{{ nope is undefined }}{{ not nope }}"),
            "[]FalseTrueTrue");
  EXPECT_EQ(
      render("{% for x in nope %}x{% else %}empty{% endfor %}{{ nope|length }}{{ nope ~ 'a' }}"),
      "empty0a");
  EXPECT_EQ(render("{{ nope|default('d') }}{{ none|default('d') }}{{ ''|default('d', true) }}"),
            "dNoned");
  EXPECT_EQ(render("{{ 'a' in nope }}{{ nope == nope }}{{ nope is iterable }}"), "FalseTrueTrue");
  // Missing attributes and items are undefined too...
  EXPECT_EQ(
      render("[{{ d.missing }}][{{ d['missing'] }}]{{ d.missing is defined }}", R"({"d": {}})"),
      "[][]False");
  // ...but using an undefined value beyond printing/testing raises.
  EXPECT_EQ(error_of("{{ nope.attr }}"), "UndefinedError: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ d.a.b }}", R"({"d": {}})"),
            "UndefinedError: 'dict object' has no attribute 'a'");
  EXPECT_EQ(error_of("{{ xs[5].a }}", R"({"xs": [1]})"),
            "UndefinedError: list object has no element 5");
  EXPECT_EQ(error_of("{{ 'a' + nope }}"), "UndefinedError: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ nope() }}"), "UndefinedError: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ s.startswith('a') }}", R"({"s": ["list"]})"),
            "UndefinedError: 'list object' has no attribute 'startswith'");
}

// ---- errors --------------------------------------------------------------------------

TEST(JinjaErrors, RuntimeErrorsNameThePythonException) {
  EXPECT_EQ(error_of("{{ 'a' + [1] }}"),
            "TypeError: can only concatenate str (not \"list\") to str");
  EXPECT_EQ(error_of("{{ 1 + 'a' }}"),
            "TypeError: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "ZeroDivisionError: integer division or modulo by zero");
  EXPECT_EQ(error_of("{{ 1 < 'a' }}"),
            "TypeError: '<' not supported between instances of 'int' and 'str'");
  EXPECT_EQ(error_of("{{ 1 in 'abc' }}"),
            "TypeError: 'in <string>' requires string as left operand, not int");
  EXPECT_EQ(error_of("{% for a, b in [1] %}{% endfor %}"),
            "TypeError: cannot unpack non-iterable int object");
  EXPECT_EQ(error_of("{{ raise_exception('boom') }}"),
            "UndefinedError: 'raise_exception' is undefined");
}

TEST(JinjaErrors, SandboxRefusesMutationAndPrivateAttributes) {
  EXPECT_EQ(error_of("{% set l = [1] %}{{ l.append(2) }}"),
            "SecurityError: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(error_of("{% set d = {} %}{{ d.update({'a': 1}) }}"),
            "SecurityError: access to attribute 'update' of 'dict' object is unsafe.");
  EXPECT_EQ(render("[{{ ''.__class__ }}]"), "[]");
}

TEST(JinjaErrors, SyntaxErrorsAtParseTime) {
  EXPECT_EQ(
      error_of("{% if true %}unclosed"),
      "TemplateSyntaxError: Unexpected end of template. Jinja was looking for the following "
      "tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.");
  EXPECT_EQ(error_of("{% foo %}"), "TemplateSyntaxError: Encountered unknown tag 'foo'.");
  EXPECT_EQ(error_of("{{ x|nofilter }}"), "TemplateAssertionError: No filter named 'nofilter'.");
  EXPECT_EQ(error_of("{{ 1 ]] }}"), "TemplateSyntaxError: unexpected ']'");
  EXPECT_EQ(error_of("{% break %}").rfind("TemplateSyntaxError", 0), 0u);
  // Errors carry the template line.
  try {
    render("a\nb\n{{ 1 + 'x' }}");
    FAIL() << "expected an error";
  } catch (const TemplateError& e) {
    EXPECT_EQ(e.line(), 3);
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos);
  }
}

// ---- limits ------------------------------------------------------------------------------

TEST(JinjaLimits, EndlessLoopsAreStopped) {
  Options small;
  small.limits.max_steps = 100000;
  const std::string err =
      error_of("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
               "{}", small);
  EXPECT_EQ(err.rfind("LimitError: template ran more than 100000 steps", 0), 0u) << err;
}

TEST(JinjaLimits, RecursionAndNestingAreBounded) {
  EXPECT_EQ(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
                .rfind("LimitError: template recursion", 0),
            0u);
  const std::string deep = std::string(5000, '(') + "1" + std::string(5000, ')');
  EXPECT_EQ(
      error_of("{{ " + deep + " }}").rfind("TemplateSyntaxError: expression nested too deeply", 0),
      0u);
  std::string filters = "{{ 1";
  for (int i = 0; i < 5000; ++i) filters += "|abs";
  EXPECT_EQ(error_of(filters + " }}").rfind("TemplateSyntaxError: expression nested too deeply", 0),
            0u);
  std::string blocks;
  for (int i = 0; i < 500; ++i) blocks += "{% if true %}";
  EXPECT_EQ(error_of(blocks).rfind("TemplateSyntaxError: blocks nested too deeply", 0), 0u);
}

TEST(JinjaLimits, OutputAndStringSizesAreBounded) {
  Options small;
  small.limits.max_output_bytes = 1000;
  EXPECT_EQ(error_of("{{ 'x' * 2000 }}", "{}", small).rfind("LimitError", 0), 0u);
  EXPECT_EQ(error_of("{% for i in range(2000) %}x{% endfor %}", "{}", small).rfind("LimitError", 0),
            0u);
  EXPECT_EQ(error_of("{{ 'x' * 10000000000000 }}").rfind("LimitError", 0), 0u);
  EXPECT_EQ(
      error_of("{{ range(1000000)|length }}"),
      "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  EXPECT_EQ(render("{{ 'x' * 999 }}", "{}", small).size(), 999u);
}

TEST(JinjaTemplate, RendersConcurrentlyAndRepeatedly) {
  const Template t("{% for m in messages %}{{ m }};{% endfor %}");
  EXPECT_EQ(t.render(ordered_json::parse(R"({"messages": ["a", "b"]})")), "a;b;");
  EXPECT_EQ(t.render(ordered_json::parse(R"({"messages": [1]})")), "1;");
  EXPECT_EQ(t.render(ordered_json::parse("{}")), "");
}

}  // namespace
}  // namespace muse::text::jinja
