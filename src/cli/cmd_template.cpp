// `muse template`: renders a chat template over the conversations of a cases
// file and prints, for each case, {"output": ...} or {"error": ...} as JSON
// (the format of shared/templates/*.expected.json).
//
// The template comes from a .jinja file, a tokenizer_config.json
// ("chat_template") or a GGUF file (tokenizer.chat_template). A cases file is
// {"bos_token", "eos_token", "strftime_now": "YYYY-MM-DD", "cases": {name:
// {"messages", "tools"?, "add_generation_prompt"?, "bos_token"?, "eos_token"?,
// "extra_context"?}}}.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/read_file.h"
#include "model/gguf.h"
#include "muse/error.h"
#include "text/chat_template.h"

namespace muse::cli {
namespace {

using nlohmann::ordered_json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The template source: a plain file, tokenizer_config.json's chat_template
// (the "default" one when it is a list), or a GGUF's tokenizer.chat_template.
std::string load_template(const std::string& path) {
  if (ends_with(path, ".gguf")) {
    auto gguf = GgufFile::open(path);
    const GgufValue* v = gguf->find("tokenizer.chat_template");
    MUSE_CHECK(v, path, ": no tokenizer.chat_template in the GGUF metadata");
    return v->as_string();
  }
  const std::string text = read_file(path);
  if (!ends_with(path, ".json")) return text;
  ordered_json config;
  try {
    config = ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str_cat(path, ": invalid JSON: ", e.what()));
  }
  MUSE_CHECK(config.is_object() && config.contains("chat_template"), path,
             ": no chat_template member");
  const ordered_json& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const auto& entry : t)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        return entry["template"].get<std::string>();
  }
  throw Error(str_cat(path, ": chat_template is neither a string nor a list with a default"));
}

}  // namespace

Runner add_template(CLI::App& app) {
  struct Opts {
    std::string template_path, cases_path, only_case;
  };
  auto o = std::make_shared<Opts>();
  app.add_option("--template", o->template_path,
                 "Chat template: .jinja file, tokenizer_config.json or GGUF")
      ->required();
  app.add_option("--cases", o->cases_path, "Conversations to render (cases.json format)")
      ->required();
  app.add_option("--case", o->only_case, "Render only this case");
  return [o] {
    const std::string source = load_template(o->template_path);
    ordered_json cases;
    try {
      cases = ordered_json::parse(read_file(o->cases_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(str_cat(o->cases_path, ": invalid JSON: ", e.what()));
    }
    MUSE_CHECK(cases.is_object() && cases.contains("cases") && cases["cases"].is_object(),
               o->cases_path, ": expected an object with a \"cases\" object");
    std::optional<std::tm> now;
    if (cases.contains("strftime_now")) {
      MUSE_CHECK(cases["strftime_now"].is_string(), o->cases_path,
                 ": strftime_now must be a string");
      now = text::date_from_iso(cases["strftime_now"].get<std::string>());
    }
    // A template that does not parse fails every case with the same error.
    std::optional<text::ChatTemplate> tmpl;
    std::string parse_error;
    try {
      tmpl.emplace(source);
    } catch (const text::jinja::TemplateError& e) {
      parse_error = e.python_message();
    }
    auto token = [&](const ordered_json& c, const char* key) -> std::optional<std::string> {
      const ordered_json& src = c.contains(key) ? c : cases;
      if (!src.contains(key) || src[key].is_null()) return std::nullopt;
      MUSE_CHECK(src[key].is_string(), o->cases_path, ": ", key, " must be a string");
      return src[key].get<std::string>();
    };
    ordered_json results = ordered_json::object();
    for (const auto& [name, c] : cases["cases"].items()) {
      if (!o->only_case.empty() && name != o->only_case) continue;
      MUSE_CHECK(c.is_object(), o->cases_path, ": case ", name, " must be an object");
      ordered_json result = ordered_json::object();
      if (!tmpl) {
        result["error"] = parse_error;
        results[name] = result;
        continue;
      }
      text::ChatInputs in;
      in.messages = c.value("messages", ordered_json::array());
      in.tools = c.value("tools", ordered_json());
      in.documents = c.value("documents", ordered_json());
      in.add_generation_prompt = c.value("add_generation_prompt", false);
      in.continue_final_message = c.value("continue_final_message", false);
      in.bos_token = token(c, "bos_token");
      in.eos_token = token(c, "eos_token");
      in.extra_context = c.value("extra_context", ordered_json::object());
      in.now = now;
      try {
        result["output"] = tmpl->render(in);
      } catch (const text::jinja::TemplateError& e) {
        result["error"] = e.python_message();
      } catch (const Error& e) {
        result["error"] = std::string(e.what());
      }
      results[name] = result;
    }
    MUSE_CHECK(o->only_case.empty() || !results.empty(), "no case named ", o->only_case);
    const std::string text = results.dump(1, ' ', false, ordered_json::error_handler_t::replace);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  };
}

}  // namespace muse::cli
