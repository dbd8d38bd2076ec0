// Fuzz-style robustness test of the Jinja2 interpreter (also run under
// ASan+UBSan): random bytes, truncations, token shuffles, splices and byte
// edits of the real chat templates, plus pathological nesting. Every input must
// either render or throw muse::Error; nothing may crash, hang or leak.
// Deterministic (fixed seed), bounded to a few seconds.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "text/chat_template.h"

namespace muse::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// Small templates that exercise most of the language, so the test is useful
// even without the shared template collection.
const char* const kBuiltinTemplates[] = {
    "{% for m in messages %}{{ '<|' + m.role + '|>' + m.content | trim }}{% if not loop.last %}\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    "{%- set ns = namespace(n=0, seen=[]) -%}{%- for m in messages[::-1] if m.role != 'tool' -%}"
    "{%- set ns.n = ns.n + 1 -%}{%- set ns.seen = ns.seen + [m.role] -%}{%- endfor -%}"
    "{{ ns.n }}:{{ ns.seen | join(',') }}|{{ messages | map(attribute='role') | unique | list }}",
    "{% macro r(x, d=0) %}{% if x is mapping %}{% for k, v in x.items() %}{{ k }}={{ r(v, d + 1) "
    "}};"
    "{% endfor %}{% elif x is iterable and x is not string %}[{% for i in x %}{{ r(i, d + 1) }}"
    "{% endfor %}]{% else %}{{ x | tojson }}{% endif %}{% endmacro %}{{ r(tools) }}{{ r(messages) "
    "}}",
    "{% set x %}{% filter upper %}{{ 'a' ~ 1 }}{% endfilter %}{% endset %}{{ x * 2 }}"
    "{{ '%s-%05.1f' % ('v', 3.14159) }}{{ '{:>6}'.format('r') }}{{ [3, 1, 2] | sort | first }}"
    "{% call(v) m(2) %}{{ v }}{% endcall %}{% macro m(a) %}{{ caller(a) }}{% endmacro %}",
    "{% raw %}{{ raw }}{% endraw %}{# c #}{%- if messages[0]['role'] == 'system' -%}"
    "{{ raise_exception('no system') }}{%- endif -%}{{ strftime_now('%B %d, %Y') }}"
    "{{ tools | tojson(indent=2) }}{{ messages[0].content.split(' ')[-1].upper() }}",
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> corpus() {
  std::vector<std::string> templates(std::begin(kBuiltinTemplates), std::end(kBuiltinTemplates));
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(std::string(MUSE_SHARED_DIR) + "/templates", ec))
    if (e.path().extension() == ".jinja") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) templates.push_back(read_file(f));
  return templates;
}

std::vector<ChatInputs> contexts() {
  std::vector<ChatInputs> out;
  ChatInputs simple;
  simple.messages = ordered_json::parse(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ✓ 🦙"},
          {"role": "assistant", "content": "<think>x</think>Hello"}, {"role": "user", "content": "2+2?"}])");
  simple.add_generation_prompt = true;
  simple.bos_token = "<s>";
  simple.eos_token = "</s>";
  simple.now = date_from_iso("2026-11-26");
  out.push_back(simple);
  ChatInputs tools = simple;
  tools.messages = ordered_json::parse(R"([
    {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image"}]},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
      "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2]}}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"t\": 21}"}])");
  tools.tools = ordered_json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "description": "Weather", "parameters": {"type": "object", "properties": {
      "city": {"type": "string"}, "days": {"type": "array", "items": {"type": "integer"}}},
      "required": ["city"]}}}])");
  tools.add_generation_prompt = false;
  out.push_back(tools);
  return out;
}

jinja::Options fuzz_options() {
  jinja::Options o;
  o.limits.max_steps = 200000;
  o.limits.max_output_bytes = 1 << 20;
  o.limits.max_total_bytes = 32u << 20;
  return o;
}

struct Stats {
  int rendered = 0;
  int failed = 0;
};

// Parses and renders; only muse::Error may escape.
void exercise(const std::string& source, const std::vector<ChatInputs>& inputs, Stats* stats) {
  try {
    const ChatTemplate t(source, fuzz_options());
    for (const ChatInputs& in : inputs) {
      try {
        t.render(in);
        ++stats->rendered;
      } catch (const Error&) {
        ++stats->failed;
      }
    }
  } catch (const Error&) {
    ++stats->failed;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "non-muse exception " << e.what() << " for template:\n" << source;
  }
}

// Splits source into lexical-ish pieces: tag delimiters, words, single chars.
std::vector<std::string> pieces(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    static const char* const kDelims[] = {"{{-", "-}}", "{%-", "-%}", "{{",
                                          "}}",  "{%",  "%}",  "{#",  "#}"};
    bool matched = false;
    for (const char* d : kDelims) {
      if (s.compare(i, std::strlen(d), d) == 0) {
        out.emplace_back(d);
        i += std::strlen(d);
        matched = true;
        break;
      }
    }
    if (matched) continue;
    size_t j = i + 1;
    if (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::string mutate(const std::vector<std::string>& corpus, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % std::max<size_t>(n, 1)); };
  const std::string& base = corpus[pick(corpus.size())];
  switch (rng() % 6) {
    case 0: {  // random bytes, biased towards template syntax
      static const char kAlphabet[] = "{}%#-+()[]'\".,|~=<>*/ \n\tabcxyz019_";
      std::string s(pick(120), ' ');
      for (char& c : s)
        c = rng() % 4 == 0 ? static_cast<char>(rng()) : kAlphabet[pick(sizeof kAlphabet - 1)];
      return s;
    }
    case 1:  // truncation
      return base.substr(0, pick(base.size() + 1));
    case 2: {  // token shuffle: swap, drop and duplicate pieces
      std::vector<std::string> p = pieces(base);
      if (p.empty()) return base;
      for (int k = 0, n = 1 + static_cast<int>(pick(6)); k < n; ++k) {
        const size_t a = pick(p.size()), b = pick(p.size());
        switch (rng() % 3) {
          case 0:
            std::swap(p[a], p[b]);
            break;
          case 1:
            p.erase(p.begin() + static_cast<long>(a));
            break;
          default:
            p.insert(p.begin() + static_cast<long>(a), p[b]);
            break;
        }
        if (p.empty()) break;
      }
      std::string s;
      for (const auto& x : p) s += x;
      return s;
    }
    case 3: {  // splice two templates
      const std::string& other = corpus[pick(corpus.size())];
      return base.substr(0, pick(base.size() + 1)) + other.substr(pick(other.size() + 1));
    }
    case 4: {  // byte edits
      std::string s = base;
      static const char kSpecial[] = "{}%#-+()[]'\"|~.";
      for (int k = 0, n = 1 + static_cast<int>(pick(8)); k < n && !s.empty(); ++k) {
        const size_t at = pick(s.size());
        if (rng() % 2)
          s[at] = kSpecial[pick(sizeof kSpecial - 1)];
        else
          s.insert(at, 1, kSpecial[pick(sizeof kSpecial - 1)]);
      }
      return s;
    }
    default:  // unmodified (the real templates must be fine under the sanitizers too)
      return base;
  }
}

TEST(JinjaFuzz, MutatedTemplatesRenderOrFailCleanly) {
  const std::vector<std::string> templates = corpus();
  const std::vector<ChatInputs> inputs = contexts();
  std::mt19937_64 rng(20261126);
  Stats stats;
  const auto start = std::chrono::steady_clock::now();
  int iterations = 0;
  for (; iterations < 4000; ++iterations) {
    exercise(mutate(templates, rng), inputs, &stats);
    // Sanitizer builds are slower: keep the test to a few seconds.
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(6)) break;
  }
  EXPECT_GT(iterations, 200);
  EXPECT_GT(stats.rendered, 0);
  EXPECT_GT(stats.failed, 0);
}

TEST(JinjaFuzz, PathologicalNestingIsRejectedNotOverflowed) {
  const std::vector<ChatInputs> inputs = contexts();
  Stats stats;
  const int n = 100000;
  auto repeat = [](const std::string& s, int times) {
    std::string out;
    for (int i = 0; i < times; ++i) out += s;
    return out;
  };
  const std::vector<std::string> cases = {
      "{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}",
      "{{ " + repeat("[", n) + repeat("]", n) + " }}",
      "{{ " + repeat("{'a': ", n) + "1" + repeat("}", n) + " }}",
      "{{ " + repeat("not ", n) + "x }}",
      "{{ " + repeat("- ", n) + "1 }}",
      "{{ 1" + repeat(" if x else 1", n) + " }}",
      "{{ x" + repeat("|trim", n) + " }}",
      "{{ x" + repeat(".a", n) + " }}",
      "{{ x" + repeat("[0]", n) + " }}",
      "{{ f" + repeat("()", n) + " }}",
      "{{ 1" + repeat(" + 1", n) + " }}",
      "{{ 'a'" + repeat(" ~ 'a'", n) + " }}",
      repeat("{% if true %}", n) + "x" + repeat("{% endif %}", n),
      repeat("{% for i in [1] %}", n),
      repeat("{% macro m() %}", 1000),
      "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
      "{% macro f(n) %}{% call f(n) %}{{ caller() }}{% endcall %}{% endmacro %}{{ f(0) }}",
      "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}"
      "{{ ns.x | tojson }}",
      "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
      "{% endfor %}{{ ns.s | length }}",
      "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}",
      "{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}{{ ns.me }}",
      "{{ '{:{}}'.format('a', 999999999) }}{{ 'x' | center(999999999) }}",
      "{{ [1] * 100000000 }}",
  };
  for (const std::string& c : cases) exercise(c, inputs, &stats);
  EXPECT_GT(stats.failed, 0);
}

}  // namespace
}  // namespace muse::text
