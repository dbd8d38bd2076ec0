#include "text/jinja.h"

#include <exception>
#include <new>

#include "text/jinja_parser.h"

namespace muse::text::jinja {

Template::Template(std::string_view source, const Options& options) : options_(options) {
  LexerOptions lexer;
  lexer.trim_blocks = options.trim_blocks;
  lexer.lstrip_blocks = options.lstrip_blocks;
  ast_ = parse_template(source, lexer);
}

std::string Template::render(
    const nlohmann::ordered_json& context,
    const std::vector<std::pair<std::string, NativeFunction>>& functions) const {
  if (!context.is_null() && !context.is_object())
    throw TemplateError("TypeError", "the template context must be a JSON object");
  auto globals = std::make_shared<Frame>(nullptr);
  add_default_globals(*globals);
  for (const auto& [name, fn] : functions) globals->set(name, make_function(name, fn));
  if (context.is_object())
    for (const auto& [key, value] : context.items()) globals->set(key, Value::from_json(value));
  Interpreter interp(options_.limits);
  try {
    return interp.render(*ast_, std::move(globals));
  } catch (const TemplateError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw TemplateError("MemoryError", "out of memory while rendering the template");
  } catch (const std::exception& e) {
    // Anything else is a defect, but still reported as a template error.
    throw TemplateError("InternalError", e.what());
  }
}

}  // namespace muse::text::jinja
