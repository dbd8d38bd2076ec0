// Tokenizer of Jinja2 template source, with Jinja2's whitespace rules:
// `{%-`/`-%}` (and the `{{`/`{#` forms) strip whitespace, `+` disables
// lstrip/trim, trim_blocks drops the first newline after a block or comment
// tag, lstrip_blocks removes spaces and tabs between a line start and a block
// or comment tag; raw blocks and comments; a single trailing newline of the
// source is dropped and \r\n / \r read as \n (keep_trailing_newline=False).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace muse::text::jinja {

enum class Tok : uint8_t {
  kData,        // template text (value)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifier or keyword (value)
  kString,      // string literal, escapes decoded (value)
  kInteger,     // int_value
  kFloat,       // float_value
  kOperator,    // value is the operator text: "+", "//", "(", ...
  kEof,
};

struct Token {
  Tok type = Tok::kEof;
  int line = 1;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws TemplateError (TemplateSyntaxError) on malformed input.
std::vector<Token> tokenize(std::string_view source, const LexerOptions& options);

}  // namespace muse::text::jinja
