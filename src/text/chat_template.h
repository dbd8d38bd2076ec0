// Chat-template front end: renders a conversation the way Hugging Face's
// `tokenizer.apply_chat_template(messages, tools=..., add_generation_prompt=...,
// tokenize=False, **kwargs)` does, byte for byte.
//
// The template sees these variables (as HF passes them):
//   messages               the conversation (list of message objects, as given)
//   tools                  the tool schemas; undefined when no tools are given
//   documents              the documents; undefined when none are given
//   add_generation_prompt  bool
//   bos_token, eos_token   when set (HF passes the tokenizer's special tokens)
//   ...                    every member of `extra_context` (enable_thinking,
//                          reasoning_effort, custom special tokens, ...)
// and the functions raise_exception(message) (fails the render with that
// message) and strftime_now(format) (formats `now`).
//
// Usage (the server parses a template once and renders it per request):
//   muse::text::ChatTemplate tmpl(source);           // throws muse::Error on a bad template
//   muse::text::ChatInputs in;
//   in.messages = request["messages"];               // parsed as nlohmann::ordered_json
//   in.add_generation_prompt = true;
//   in.bos_token = "<s>";
//   std::string prompt = tmpl.render(in);            // throws muse::Error
//
// JSON objects must be nlohmann::ordered_json: key order is visible to
// templates (dict iteration, tojson), and HF keeps the request's order.
// Errors are muse::text::jinja::TemplateError (a muse::Error); for
// raise_exception its kind() is "TemplateError" and detail() the message.
#pragma once

#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "text/jinja.h"

namespace muse::text {

struct ChatInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // null: not given. The template then sees `tools` undefined, as in the
  // reference renderings (Hermes' `for tool in tools` must work without tools).
  nlohmann::ordered_json tools;
  nlohmann::ordered_json documents;  // null: not given (undefined)
  bool add_generation_prompt = false;
  // HF's continue_final_message: the output ends right after the final
  // message's content (prefilling the assistant's reply); errors if the
  // template does not reproduce that content.
  bool continue_final_message = false;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
  // What strftime_now formats; unset means the current local time.
  std::optional<std::tm> now;
};

class ChatTemplate {
 public:
  // Parses the template; throws jinja::TemplateError on a syntax error.
  explicit ChatTemplate(std::string_view source, const jinja::Options& options = {});
  // Renders one conversation. Thread-safe.
  std::string render(const ChatInputs& inputs) const;

 private:
  jinja::Template template_;
};

// A date at midnight as std::tm (weekday and day of year filled in), from
// "YYYY-MM-DD"; throws muse::Error on anything else.
std::tm date_from_iso(std::string_view date);

// Python's time.strftime for the C locale (with glibc's "%-d" no-padding flag).
std::string strftime_python(std::string_view format, const std::tm& t);

}  // namespace muse::text
