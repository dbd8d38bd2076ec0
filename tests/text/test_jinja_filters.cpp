// Filters, string/list/dict methods and the HF `tojson` of the Jinja2
// interpreter, against outputs of Python Jinja2 3.1 (HF's environment).
#include <gtest/gtest.h>

#include <string>

#include "text/jinja.h"

namespace muse::text::jinja {
namespace {

using nlohmann::ordered_json;

constexpr const char* kContext = R"({
  "xs": [3, 1, 2],
  "d": {"b": 2, "a": 1, "c": [1, 2]},
  "users": [{"name": "bob", "age": 30}, {"name": "Alice", "age": 25}, {"name": "carl", "age": 30}],
  "u": "Ünïcödé ✓ 🦙",
  "s": "Hello World"
})";

std::string render(std::string_view src) {
  return Template(src).render(ordered_json::parse(kContext));
}

std::string error_of(std::string_view src) {
  try {
    render(src);
  } catch (const TemplateError& e) {
    return e.python_message();
  }
  return "<no error>";
}

TEST(JinjaFilters, Strings) {
  EXPECT_EQ(
      render("{{ s|upper }}|{{ s|lower }}|{{ 'hello wORLD-x'|title }}|{{ 'hELLO'|capitalize }}"),
      "HELLO WORLD|hello world|Hello World-X|Hello");
  EXPECT_EQ(render("[{{ '  x \n'|trim }}][{{ 'xxhixx'|trim('x') }}][{{ 'ab'|center(6) }}]"),
            "[x][hi][  ab  ]");
  EXPECT_EQ(render("{{ 'aXbXc'|replace('X', '-') }} {{ 'aXbXc'|replace('X', '-', 1) }}"),
            "a-b-c a-bXc");
  EXPECT_EQ(render("{{ 'one two, three'|wordcount }} {{ s|length }} {{ u|length }} {{ u|count }}"),
            "3 11 11 11");
  EXPECT_EQ(render("{{ 'hello world foo'|truncate(9) }}|{{ 'hello world foo'|truncate(9, true) }}|"
                   "{{ 'hello world'|truncate(11) }}"),
            "hello...|hello ...|hello world");
  EXPECT_EQ(render("{{ 'a\nb\nc'|indent }}|{{ 'a\n\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, "
                   "blank=true) }}"),
            "a\n    b\n    c|  a\n\n  b|a\n  \n  b");
  EXPECT_EQ(render("{{ '<a href=\"x\">'|e }} {{ 'x'|safe }} {{ 5|string }} {{ s|reverse }}"),
            "&lt;a href=&#34;x&#34;&gt; x 5 dlroW olleH");
  EXPECT_EQ(render("{{ '%s=%s'|format('a', 1) }} {{ '%(k)s'|format(k='v') }}"), "a=1 v");
}

TEST(JinjaFilters, Numbers) {
  EXPECT_EQ(render("{{ 3.7|int }} {{ '42'|int }} {{ '42.9'|int }} {{ 'x'|int }} {{ 'x'|int(9) }} "
                   "{{ '0x1f'|int(0, 16) }}"),
            "3 42 42 0 9 31");
  EXPECT_EQ(render("{{ '3.5'|float }} {{ 'x'|float }} {{ 3|float }} {{ -3|abs }} {{ -2.5|abs }}"),
            "3.5 0.0 3.0 3 2.5");
  // round: Python's round-half-even for "common", and ceil/floor.
  EXPECT_EQ(render("{{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 3|round }} "
                   "{{ 2.1|round(method='ceil') }} {{ 2.9|round(0, 'floor') }}"),
            "2.57 2.0 4.0 3 3.0 2.0");
  EXPECT_EQ(render("{{ xs|sum }} {{ users|sum(attribute='age') }} {{ [1.5, 2]|sum }} {{ xs|min }} "
                   "{{ xs|max }}"),
            "6 85 3.5 1 3");
  EXPECT_EQ(render("{{ 12345|filesizeformat }} {{ 1024|filesizeformat(true) }}"),
            "12.3 kB 1.0 KiB");
}

TEST(JinjaFilters, Sequences) {
  EXPECT_EQ(render("{{ xs|first }} {{ xs|last }} {{ xs|length }} {{ xs|list }} {{ 'ab'|list }} {{ "
                   "d|list }}"),
            "3 2 3 [3, 1, 2] ['a', 'b'] ['b', 'a', 'c']");
  EXPECT_EQ(render("{{ xs|sort }} {{ xs|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} "
                   "{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}"),
            "[1, 2, 3] [3, 2, 1] ['A', 'b', 'c'] ['A', 'b', 'c']");
  // sort is stable, also in reverse.
  EXPECT_EQ(
      render("{{ users|sort(attribute='age')|map(attribute='name')|join(',') }} "
             "{{ users|sort(attribute='age', reverse=true)|map(attribute='name')|join(',') }}"),
      "Alice,bob,carl bob,carl,Alice");
  EXPECT_EQ(render("{{ [1, 2, 2, 3, 1]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ "
                   "xs|reverse|list }}"),
            "[1, 2, 3] ['a', 'b'] [2, 1, 3]");
  EXPECT_EQ(render("{{ xs|join }} {{ xs|join(', ') }} {{ users|join('/', attribute='name') }}"),
            "312 3, 1, 2 bob/Alice/carl");
  EXPECT_EQ(render("{{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 'x')|list }} "
                   "{{ [1, 2, 3, 4, 5]|slice(2)|list }}"),
            "[[1, 2], [3, 4], [5]] [[1, 2], [3, 'x']] [[1, 2, 3], [4, 5]]");
  EXPECT_EQ(render("{{ users|max(attribute='age')|attr('name') }}{{ []|max }}"), "");
  EXPECT_EQ(
      render("{{ (users|max(attribute='age')).name }} {{ (users|min(attribute='name')).name }}"),
      "bob Alice");
}

TEST(JinjaFilters, MapSelectReject) {
  EXPECT_EQ(render("{{ users|map(attribute='name')|map('upper')|list }}"),
            "['BOB', 'ALICE', 'CARL']");
  EXPECT_EQ(
      render("{{ users|map(attribute='x', default='?')|join }} {{ xs|map('string')|join('+') }}"),
      "??? 3+1+2");
  EXPECT_EQ(render("{{ users|selectattr('age', 'equalto', 30)|map(attribute='name')|list }} "
                   "{{ users|rejectattr('age', '==', 30)|map(attribute='name')|list }}"),
            "['bob', 'carl'] ['Alice']");
  EXPECT_EQ(
      render(
          "{{ [0, 1, 2, 3]|select('odd')|list }} {{ [0, 1, 2, 3]|reject('even')|list }} "
          "{{ [0, 1, '', none, 'a']|select|list }} {{ [1, 2, 3]|select('greaterthan', 1)|list }}"),
      "[1, 3] [1, 3] [1, 'a'] [2, 3]");
  // Falsy inputs give empty results without being iterated.
  EXPECT_EQ(render("{{ 0|map('string')|list }} {{ none|select|list }}"), "[] []");
}

TEST(JinjaFilters, Dicts) {
  EXPECT_EQ(render("{{ d|dictsort }} {{ d|dictsort(reverse=true)|first }}"),
            "[('a', 1), ('b', 2), ('c', [1, 2])] ('c', [1, 2])");
  EXPECT_EQ(render("{{ d|items|list }}"), "[('b', 2), ('a', 1), ('c', [1, 2])]");
  EXPECT_EQ(render("{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}"), "b2a1c[1, 2]");
  EXPECT_EQ(render("{% for age, group in users|groupby('age') %}{{ age }}:{{ "
                   "group|map(attribute='name')|join(',') }};{% endfor %}"),
            "25:Alice;30:bob,carl;");
}

TEST(JinjaFilters, DefaultAndUndefinedInputs) {
  EXPECT_EQ(render("{{ none|default('d') }} {{ nope|default('d') }} {{ ''|default('d', true) }} "
                   "{{ 0|d('z', true) }} {{ nope|d }}|"),
            "None d d z |");
  EXPECT_EQ(render("{{ nope|list }} {{ nope|join }}|{{ nope|upper }}|{{ nope|first is defined }}"),
            "[] ||False");
  EXPECT_EQ(error_of("{{ nope|int }}"), "UndefinedError: 'nope' is undefined");
  EXPECT_EQ(error_of("{{ nope|tojson }}"),
            "TypeError: Object of type Undefined is not JSON serializable");
}

TEST(JinjaFilters, TojsonIsHuggingFacesJsonDumps) {
  // ensure_ascii=False, Python's ", " and ": " separators, insertion order.
  EXPECT_EQ(render("{{ d|tojson }}"), R"({"b": 2, "a": 1, "c": [1, 2]})");
  EXPECT_EQ(render("{{ u|tojson }}"), "\"Ünïcödé ✓ 🦙\"");
  EXPECT_EQ(render("{{ 'a\"b\\\\c\n\t\x01<>&\\''|tojson }}"), R"("a\"b\\c\n\t\u0001<>&'")");
  EXPECT_EQ(render("{{ [1.0, 1e20, none, true, 0.1]|tojson }}"), "[1.0, 1e+20, null, true, 0.1]");
  EXPECT_EQ(render("{{ d|tojson(indent=2) }}"),
            "{\n  \"b\": 2,\n  \"a\": 1,\n  \"c\": [\n    1,\n    2\n  ]\n}");
  EXPECT_EQ(render("{{ {'a': [], 'b': {}}|tojson(indent=1) }}"), "{\n \"a\": [],\n \"b\": {}\n}");
  EXPECT_EQ(render("{{ d|tojson(sort_keys=true) }}"), R"({"a": 1, "b": 2, "c": [1, 2]})");
  EXPECT_EQ(render("{{ d|tojson(separators=(',', ':')) }}"), R"({"b":2,"a":1,"c":[1,2]})");
  EXPECT_EQ(render("{{ u|tojson(true) }}"), R"("\u00dcn\u00efc\u00f6d\u00e9 \u2713 \ud83e\udd99")");
  EXPECT_EQ(render("{{ {1: 'a', none: 'b'}|tojson }}"), R"({"1": "a", "null": "b"})");
}

TEST(JinjaFilters, ReprOfStringsEscapesLikePython) {
  EXPECT_EQ(render("{{ ['\\x00\\x7f\\xa0\\u200b é✓🦙'] }}"),
            "['\\x00\\x7f\\xa0\\u200b é✓🦙']");
  EXPECT_EQ(render("{{ [\"it's\", 'q\"', 'both\\'\"', '\\\\'] }}"),
            "[\"it's\", 'q\"', 'both\\'\"', '\\\\']");
}

TEST(JinjaMethods, StringMethods) {
  EXPECT_EQ(
      render(
          "{{ s.startswith('He') }} {{ s.endswith(('x', 'ld')) }} {{ s.upper() }} {{ s.lower() }}"),
      "True True HELLO WORLD hello world");
  EXPECT_EQ(
      render("{{ s.split() }} {{ s.split('o') }} {{ s.split('o', 1) }} {{ s.rsplit('o', 1) }}"),
      "['Hello', 'World'] ['Hell', ' W', 'rld'] ['Hell', ' World'] ['Hello W', 'rld']");
  EXPECT_EQ(
      render(
          "{{ ' a b '.split(' ') }} {{ '  a  b  '.split() }} {{ ''.split() }} {{ ''.split(',') }}"),
      "['', 'a', 'b', ''] ['a', 'b'] [] ['']");
  EXPECT_EQ(render("[{{ '  a  '.strip() }}][{{ 'xxaxx'.lstrip('x') }}][{{ 'xxaxx'.rstrip('x') }}]"
                   "[{{ '\n\nx\n'.lstrip('\n') }}]"),
            "[a][axx][xxa][x\n]");
  EXPECT_EQ(
      render("{{ s.replace('l', 'L') }} {{ s.find('o') }} {{ s.rfind('o') }} {{ s.find('z') }} "
             "{{ s.count('l') }} {{ s.index('W') }}"),
      "HeLLo WorLd 4 7 -1 3 6");
  EXPECT_EQ(
      render("{{ 'hello world'.title() }} {{ 'aBC'.capitalize() }} {{ ','.join(['a', 'b']) }} "
             "{{ 'a,b'.partition(',') }} {{ '5'.zfill(3) }} {{ 'ab'.ljust(4, '*') }}|"),
      "Hello World Abc a,b ('a', ',', 'b') 005 ab**|");
  EXPECT_EQ(
      render("{{ 'a</think>b'.split('</think>')[-1] }} {{ 'x'.isalpha() }} {{ '12'.isdigit() }}"),
      "b True True");
  EXPECT_EQ(error_of("{{ s.index('z') }}"), "ValueError: substring not found");
  EXPECT_EQ(error_of("{{ ','.join([1]) }}"),
            "TypeError: sequence item 0: expected str instance, int found");
}

TEST(JinjaMethods, DictAndListMethods) {
  EXPECT_EQ(render("{{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|first }}"),
            "['b', 'a', 'c'] [2, 1, [1, 2]] ('b', 2)");
  EXPECT_EQ(render("{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {{ d.copy() == d }}"),
            "1 None 5 True");
  EXPECT_EQ(render("{{ xs.count(1) }} {{ xs.index(2) }} {{ xs.copy() }}"), "1 2 [3, 1, 2]");
}

TEST(JinjaMethods, CaseMappingBeyondAscii) {
  EXPECT_EQ(render("{{ u|upper }} {{ 'ÀÉÎ ΣΑΣ Привет'|lower }} {{ 'straße'|upper }}"),
            "ÜNÏCÖDÉ ✓ 🦙 àéî σας привет STRASSE");
}

}  // namespace
}  // namespace muse::text::jinja
