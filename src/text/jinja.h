// A Jinja2 interpreter for chat templates (GGUF `tokenizer.chat_template`,
// `tokenizer_config.json`), rendering byte-for-byte as Hugging Face's
// apply_chat_template does with Jinja2 3.1: ImmutableSandboxedEnvironment,
// trim_blocks and lstrip_blocks on, the loopcontrols extension, default
// Undefined, and HF's `tojson` (json.dumps with ensure_ascii=False).
//
//   jinja::Template t(source);            // parses; throws TemplateError
//   std::string text = t.render(context);  // throws TemplateError
//
// Differences from Python a template could observe (none occurs in the
// shared template collection): integers are 64-bit (overflow is an
// OverflowError), `**` with a complex result is a TypeError, case mapping
// covers Latin, Greek, Cyrillic and Armenian, repr()'s "printable" rule is
// approximate beyond those scripts, generators and dict views (map, select,
// dict.items()...) are lists, so printing one shows its items, and functions
// print without an address. Unsupported: include/import/extends, wordwrap,
// urlize, urlencode, random, xmlattr, lipsum.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja_interp.h"
#include "text/jinja_value.h"

namespace muse::text::jinja {

struct Options {
  bool trim_blocks = true;    // Hugging Face's setting
  bool lstrip_blocks = true;  // Hugging Face's setting
  Limits limits;              // steps, output size, recursion
};

class Template {
 public:
  // Parses the template; throws TemplateError (TemplateSyntaxError, or
  // TemplateAssertionError for an unknown filter or test).
  explicit Template(std::string_view source, const Options& options = {});

  // Renders with the members of `context` (a JSON object; key order is kept)
  // as variables, next to the default globals (range, dict, namespace, cycler,
  // joiner) and `functions`. Throws TemplateError: its kind() is the Python
  // exception Jinja2 raises in the same case (UndefinedError, TypeError, ...;
  // TemplateError for raise_exception; LimitError when a limit is hit).
  // Thread-safe: a Template may be rendered concurrently.
  std::string render(
      const nlohmann::ordered_json& context,
      const std::vector<std::pair<std::string, NativeFunction>>& functions = {}) const;

 private:
  std::shared_ptr<const TemplateAst> ast_;
  Options options_;
};

}  // namespace muse::text::jinja
