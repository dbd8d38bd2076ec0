// Parser of Jinja2 templates (the grammar and operator precedence of Jinja2 3.1,
// with the loopcontrols extension). Unknown filters and tests are errors at
// parse time, as in Jinja2. Nesting is bounded: deeper input is a syntax error
// rather than a stack overflow.
#pragma once

#include <memory>
#include <string_view>

#include "text/jinja_ast.h"
#include "text/jinja_lexer.h"

namespace muse::text::jinja {

// Throws TemplateError (TemplateSyntaxError or TemplateAssertionError).
std::unique_ptr<TemplateAst> parse_template(std::string_view source, const LexerOptions& options);

// Built-in filters and tests by name (null when unknown); see jinja_filters.cpp.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

}  // namespace muse::text::jinja
