// The real chat templates in shared/templates rendered over cases.json must be
// byte-identical to the Hugging Face renderings in <name>.expected.json (and
// fail where those failed), through the API and through `muse template`.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "text/chat_template.h"

namespace muse::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

const std::string kDir = std::string(MUSE_SHARED_DIR) + "/templates";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> template_names() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kDir, ec)) {
    const fs::path p = entry.path();
    if (p.extension() == ".jinja") names.push_back(p.stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The exception class of a Python-style "Kind: detail" message.
std::string kind_of(const std::string& message) {
  return message.substr(0, message.find(':'));
}

ChatInputs inputs_for(const ordered_json& cases, const ordered_json& c) {
  ChatInputs in;
  in.messages = c.at("messages");
  in.tools = c.value("tools", ordered_json());
  in.add_generation_prompt = c.value("add_generation_prompt", false);
  in.bos_token = c.value("bos_token", cases.at("bos_token").get<std::string>());
  in.eos_token = c.value("eos_token", cases.at("eos_token").get<std::string>());
  in.now = date_from_iso(cases.at("strftime_now").get<std::string>());
  return in;
}

TEST(ChatTemplates, SharedTemplatesArePresent) {
  EXPECT_GE(template_names().size(), 19u) << "templates missing in " << kDir;
}

class SharedTemplate : public ::testing::TestWithParam<std::string> {};

TEST_P(SharedTemplate, RendersEveryCaseLikeHuggingFace) {
  const std::string base = kDir + "/" + GetParam();
  const ordered_json cases = ordered_json::parse(read_file(kDir + "/cases.json"));
  const ordered_json expected = ordered_json::parse(read_file(base + ".expected.json"));
  const ChatTemplate tmpl(read_file(base + ".jinja"));
  ASSERT_FALSE(expected.empty());
  for (const auto& [name, want] : expected.items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(cases["cases"].contains(name));
    const ChatInputs in = inputs_for(cases, cases["cases"][name]);
    if (want.contains("output")) {
      try {
        EXPECT_EQ(tmpl.render(in), want["output"].get<std::string>());
      } catch (const jinja::TemplateError& e) {
        ADD_FAILURE() << "unexpected error: " << e.what();
      }
    } else {
      const std::string want_error = want.at("error").get<std::string>();
      try {
        const std::string out = tmpl.render(in);
        ADD_FAILURE() << "expected " << want_error << ", rendered: " << out;
      } catch (const jinja::TemplateError& e) {
        // Any clear error is right; the exception class matches Jinja2's.
        EXPECT_EQ(e.kind(), kind_of(want_error)) << e.what();
      }
    }
  }
}

// The same through the `muse template` binary, comparing its whole output.
TEST_P(SharedTemplate, CliOutputMatchesExpectedFile) {
  const std::string bin = std::string(MUSE_BIN_DIR) + "/muse";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " is not built";
  fs::create_directories(MUSE_TEST_TMP);
  const std::string base = kDir + "/" + GetParam();
  const std::string out_path = std::string(MUSE_TEST_TMP) + "/template-" + GetParam() + ".json";
  const std::string cmd = "'" + bin + "' template --template '" + base + ".jinja' --cases '" +
                          kDir + "/cases.json' > '" + out_path + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const ordered_json got = ordered_json::parse(read_file(out_path));
  const ordered_json want = ordered_json::parse(read_file(base + ".expected.json"));
  ASSERT_EQ(got.size(), want.size());
  auto g = got.items().begin();
  for (const auto& [name, w] : want.items()) {
    ASSERT_EQ(g.key(), name);  // same cases, same order
    if (w.contains("output")) {
      EXPECT_EQ(g.value().value("output", "<missing>"), w["output"].get<std::string>()) << name;
    } else {
      ASSERT_TRUE(g.value().contains("error")) << name;
      EXPECT_EQ(kind_of(g.value()["error"].get<std::string>()),
                kind_of(w["error"].get<std::string>()))
          << name;
    }
    ++g;
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, SharedTemplate, ::testing::ValuesIn(template_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// ---- the front end's own behaviour -------------------------------------------------

TEST(ChatTemplateApi, PassesWhatApplyChatTemplatePasses) {
  const ChatTemplate t(
      "{{ bos_token }}|{{ eos_token is defined }}|{{ tools is defined }}|{{ add_generation_prompt "
      "}}|"
      "{{ enable_thinking }}|{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}");
  ChatInputs in;
  in.messages = ordered_json::parse(
      R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])");
  in.bos_token = "<s>";
  in.extra_context = ordered_json::parse(R"({"enable_thinking": false})");
  EXPECT_EQ(t.render(in), "<s>|False|False|False|False|user:hi;assistant:yo;");
  in.tools = ordered_json::parse(R"([{"type": "function"}])");
  in.add_generation_prompt = true;
  EXPECT_EQ(t.render(in), "<s>|False|True|True|False|user:hi;assistant:yo;");
}

TEST(ChatTemplateApi, RaiseExceptionAndStrftimeNow) {
  const ChatTemplate t(
      "{% if messages|length == 0 %}{{ raise_exception('No messages.') }}{% endif %}"
      "{{ strftime_now('%d %b %Y|%B %-d, %Y|%Y-%m-%d|%A') }}");
  ChatInputs in;
  in.now = date_from_iso("2026-11-26");
  try {
    t.render(in);
    ADD_FAILURE() << "expected raise_exception to fail the render";
  } catch (const jinja::TemplateError& e) {
    EXPECT_EQ(e.kind(), "TemplateError");
    EXPECT_EQ(e.detail(), "No messages.");
  }
  in.messages = ordered_json::parse(R"([{"role": "user", "content": "x"}])");
  EXPECT_EQ(t.render(in), "26 Nov 2026|November 26, 2026|2026-11-26|Thursday");
  in.now = date_from_iso("2024-02-29");
  EXPECT_EQ(t.render(in), "29 Feb 2024|February 29, 2024|2024-02-29|Thursday");
  EXPECT_THROW(date_from_iso("2023-02-29"), Error);
  EXPECT_THROW(date_from_iso("26.11.2026"), Error);
}

TEST(ChatTemplateApi, ContinueFinalMessageCutsAfterTheLastContent) {
  const ChatTemplate t(
      "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>{% endfor %}");
  ChatInputs in;
  in.messages = ordered_json::parse(
      R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "The answer is  "}])");
  in.continue_final_message = true;
  // The template trimmed the trailing spaces, so the output ends at the stripped text.
  EXPECT_EQ(t.render(in), "<user>Hi</user><assistant>The answer is");
  in.messages.back()["content"] = "not in the output\n";
  const ChatTemplate drops(
      "{% for m in messages %}{% if m.role == 'user' %}{{ m.content }}{% endif %}{% endfor %}");
  EXPECT_THROW(drops.render(in), Error);
}

TEST(ChatTemplateApi, KeyOrderOfToolsIsKept) {
  const ChatTemplate t("{{ tools[0] | tojson }}");
  ChatInputs in;
  in.tools = ordered_json::parse(R"([{"z": 1, "a": {"y": 2, "b": 3}}])");
  EXPECT_EQ(t.render(in), R"({"z": 1, "a": {"y": 2, "b": 3}})");
}

TEST(ChatTemplateApi, BadTemplatesAndInputsAreErrors) {
  EXPECT_THROW(ChatTemplate("{% for %}"), jinja::TemplateError);
  const ChatTemplate t("{{ x }}");
  ChatInputs in;
  in.extra_context = ordered_json::parse(R"({"messages": []})");
  EXPECT_THROW(t.render(in), Error);
}

}  // namespace
}  // namespace muse::text
