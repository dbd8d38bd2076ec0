// ToolCallParser: streaming recognition of tool calls in generated text.
//
// The input is processed left to right from `input[pos]`. In text mode, content is passed
// through up to the next call marker; only a trailing piece that may still become a marker
// (or an incomplete UTF-8 character) is held back. A call is parsed from its marker on; the
// text it consumed is kept in `held` until the call is known (a tool name from `tools`):
// then the call is committed (its header delta is emitted and `held` dropped), otherwise
// the held text is returned as content and text mode resumes right after it.
//
// JSON formats are scanned a character at a time (JsonCallScanner) so that the arguments
// are streamed as they arrive; the XML-like formats (ATEM, and Qwen3-Coder's
// <function=...> bodies inside <tool_call>) are matched tag by tag and their arguments
// object is emitted when the invoke closes.
#include <algorithm>

#include "muse/error.h"
#include "text/tool_call_scan.h"
#include "text/tool_calls.h"
#include "text/tool_calls_internal.h"

namespace muse::text {

namespace {

using json = nlohmann::ordered_json;
using tool_calls_internal::XmlCallSyntax;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// True when `text` is a proper prefix of `word` (more input may complete it).
bool is_proper_prefix(std::string_view text, std::string_view word) {
  return text.size() < word.size() && word.substr(0, text.size()) == text;
}

// Bytes at the end of `text` that form an incomplete UTF-8 character.
size_t incomplete_utf8_tail(std::string_view text) {
  size_t n = text.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

enum class Mode {
  kText,           // content, looking for markers
  kExpectArray,    // Mistral: after the marker, '[' (or a single object)
  kExpectObject,   // before a JSON call object: whitespace, then '{'
  kInObject,       // inside a JSON call object
  kAfterObject,    // after a JSON call object: separator / closing tag
  kXmlBlock,       // XML-like: between invokes
  kXmlInvokeName,  // reading an invoke's name
  kXmlInvoke,      // inside an invoke: between parameters
  kXmlParamName,   // reading a parameter's name
  kXmlValue,       // reading a parameter's value
};

}  // namespace

struct ToolCallParser::State {
  ToolCallFormat format;
  json tools;
  bool active = false;
  std::vector<std::string> markers;

  std::string input;  // text not yet processed starts at input[pos]
  size_t pos = 0;
  Mode mode = Mode::kText;
  std::string held;             // consumed text of the uncommitted call (content on failure)
  bool at_output_start = true;  // nothing but whitespace seen so far (Llama's bare '{')
  bool after_call = false;      // only whitespace/separators since the last call
  bool in_array = false;        // Mistral: calls are inside [ ... ]
  int call_count = 0;
  ParsedDelta out;

  tool_calls_internal::JsonCallScanner scanner;
  // XML-like calls.
  const XmlCallSyntax* xml = nullptr;
  bool committed = false;  // the current call's header was emitted
  std::string xml_name;
  std::string xml_param;
  const json* xml_function = nullptr;
  json xml_args = json::object();
  size_t value_search_from = 0;

  State(ToolCallFormat f, const json& t) : format(f), tools(t) {
    active = tools.is_array() && !tools.empty();
    switch (format) {
      case ToolCallFormat::kHermes:
      case ToolCallFormat::kGeneric:
        markers = {"<tool_call>"};
        break;
      case ToolCallFormat::kLlama3Json:
        markers = {"<|python_tag|>"};
        break;
      case ToolCallFormat::kMistral:
        markers = {"[TOOL_CALLS]", "<|tool_call|>"};
        break;
      case ToolCallFormat::kAtem:
        markers = {std::string(tool_calls_internal::kAtemSyntax.block_open)};
        break;
    }
  }

  std::string_view rest() const { return std::string_view(input).substr(pos); }

  void emit_content(std::string_view text) { out.content.append(text); }

  void consume(size_t n) {
    held.append(input, pos, n);
    pos += n;
  }

  // The uncommitted call failed: its text is content; text mode resumes at `pos`.
  void fail() {
    emit_content(held);
    held.clear();
    mode = Mode::kText;
    committed = false;
    after_call = false;
  }

  void emit_header(const std::string& name) {
    ToolCallDelta delta;
    delta.index = call_count++;
    delta.id = make_tool_call_id();
    delta.name = name;
    out.tool_calls.push_back(std::move(delta));
    held.clear();
    committed = true;
  }

  void emit_arguments(std::string_view text) {
    if (text.empty()) return;
    if (!out.tool_calls.empty() && out.tool_calls.back().index == call_count - 1 &&
        out.tool_calls.back().id.empty()) {
      out.tool_calls.back().arguments.append(text);
      return;
    }
    ToolCallDelta delta;
    delta.index = call_count - 1;
    delta.arguments = std::string(text);
    out.tool_calls.push_back(std::move(delta));
  }

  void call_finished() {
    held.clear();
    committed = false;
    after_call = true;
  }

  // Returns false when more input is needed.
  bool step();
  bool step_text();
  bool step_json();
  bool step_after_object();
  bool step_xml();
  void start_json_object();
  void finish_json_call();
  void finish_xml_call();
  void run() {
    while (pos < input.size() && step()) {
    }
    input.erase(0, pos);
    pos = 0;
  }
};

bool ToolCallParser::State::step() {
  switch (mode) {
    case Mode::kText:
      return step_text();
    case Mode::kExpectArray: {
      std::string_view r = rest();
      size_t i = 0;
      while (i < r.size() && is_space(r[i])) ++i;
      if (i == r.size()) {
        consume(i);
        return false;
      }
      consume(i);
      if (r[i] == '[') {
        consume(1);
        in_array = true;
        mode = Mode::kExpectObject;
      } else if (r[i] == '{') {
        in_array = false;
        start_json_object();
      } else {
        fail();
      }
      return true;
    }
    case Mode::kExpectObject: {
      std::string_view r = rest();
      size_t i = 0;
      while (i < r.size() && is_space(r[i])) ++i;
      consume(i);
      if (i == r.size()) return false;
      if (r[i] == '{') {
        start_json_object();
        return true;
      }
      // Qwen3-Coder / Qwen3.5 write <function=name> bodies inside <tool_call>.
      if (format == ToolCallFormat::kHermes && r[i] == '<') {
        std::string_view open = tool_calls_internal::kQwenXmlSyntax.invoke_open;
        std::string_view tail = r.substr(i);
        if (is_proper_prefix(tail, open)) return false;
        if (starts_with(tail, open)) {
          xml = &tool_calls_internal::kQwenXmlSyntax;
          consume(open.size());
          xml_name.clear();
          mode = Mode::kXmlInvokeName;
          return true;
        }
      }
      fail();
      return true;
    }
    case Mode::kInObject:
      return step_json();
    case Mode::kAfterObject:
      return step_after_object();
    default:
      return step_xml();
  }
}

bool ToolCallParser::State::step_text() {
  std::string_view r = rest();
  if (after_call || at_output_start) {
    // Whitespace (and Llama's ';' separators) after a call is dropped when another call
    // follows; wait until the next meaningful character shows which.
    size_t i = 0;
    bool llama = format == ToolCallFormat::kLlama3Json;
    while (i < r.size() && (is_space(r[i]) || (llama && after_call && r[i] == ';'))) ++i;
    if (i == r.size()) return false;
    std::string_view tail = r.substr(i);
    if (llama && tail[0] == '{') {
      held.append(r.substr(0, i));
      pos += i;
      at_output_start = after_call = false;
      start_json_object();
      return true;
    }
    for (const auto& marker : markers) {
      if (is_proper_prefix(tail, marker)) return false;
      if (starts_with(tail, marker)) {
        held.append(r.substr(0, i));
        pos += i;
        consume(marker.size());
        at_output_start = after_call = false;
        mode = format == ToolCallFormat::kMistral ? Mode::kExpectArray
               : format == ToolCallFormat::kAtem  ? Mode::kXmlBlock
                                                  : Mode::kExpectObject;
        if (format == ToolCallFormat::kAtem) xml = &tool_calls_internal::kAtemSyntax;
        return true;
      }
    }
    // Mistral's [TOOL_CALLS] is a special token: when the decoder drops it, the output
    // starts with the bare list of calls.
    if (format == ToolCallFormat::kMistral && at_output_start && tail[0] == '[') {
      held.append(r.substr(0, i + 1));
      pos += i + 1;
      at_output_start = after_call = false;
      in_array = true;
      mode = Mode::kExpectObject;
      return true;
    }
    at_output_start = after_call = false;
  }
  // Earliest complete marker.
  size_t found = std::string_view::npos;
  const std::string* found_marker = nullptr;
  for (const auto& marker : markers) {
    size_t at = r.find(marker);
    if (at < found) {
      found = at;
      found_marker = &marker;
    }
  }
  if (found_marker != nullptr) {
    emit_content(r.substr(0, found));
    pos += found;
    held.clear();
    // Re-enter through the marker check above, which starts the call.
    after_call = true;
    return true;
  }
  // Hold back a trailing piece that may grow into a marker, or a partial UTF-8 character.
  size_t hold = 0;
  for (const auto& marker : markers) {
    for (size_t n = std::min(marker.size() - 1, r.size()); n > hold; --n) {
      if (r.substr(r.size() - n) == std::string_view(marker).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  hold = std::max(hold, incomplete_utf8_tail(r));
  emit_content(r.substr(0, r.size() - hold));
  pos += r.size() - hold;
  return false;
}

void ToolCallParser::State::start_json_object() {
  scanner = tool_calls_internal::JsonCallScanner();
  committed = false;
  mode = Mode::kInObject;
}

bool ToolCallParser::State::step_json() {
  using Event = tool_calls_internal::JsonCallScanner::Event;
  std::string_view r = rest();
  std::string fragment;
  size_t used = 0;
  while (used < r.size()) {
    char c = r[used];
    Event event = scanner.feed(c);
    if (event == Event::kError) break;
    ++used;
    if (committed) {
      if (event == Event::kArgumentChar) fragment += c;
    } else {
      held += c;
    }
    if (event == Event::kNameDone) {
      const std::string& name = scanner.name();
      if (tool_calls_internal::find_function(tools, name) == nullptr) {
        pos += used;
        fail();
        return true;
      }
      emit_header(name);
      fragment += scanner.take_buffered_arguments();
    }
    if (event == Event::kObjectDone) break;
  }
  pos += used;
  emit_arguments(fragment);
  if (scanner.done()) {
    if (!committed) {  // an object without a name
      fail();
      return true;
    }
    finish_json_call();
    return true;
  }
  if (used < r.size()) {  // malformed
    if (committed) {
      finish_json_call();
      mode = Mode::kText;
    } else {
      fail();
    }
    return true;
  }
  return false;
}

void ToolCallParser::State::finish_json_call() {
  emit_arguments(scanner.final_arguments());
  if (format == ToolCallFormat::kLlama3Json) {
    call_finished();
    mode = Mode::kText;
  } else {
    held.clear();
    committed = false;
    mode = Mode::kAfterObject;
  }
}

bool ToolCallParser::State::step_after_object() {
  std::string_view r = rest();
  size_t i = 0;
  while (i < r.size() && is_space(r[i])) ++i;
  if (i == r.size()) return false;
  std::string_view tail = r.substr(i);
  if (format == ToolCallFormat::kMistral) {
    if (in_array && (tail[0] == ',' || tail[0] == ']')) {
      pos += i + 1;
      if (tail[0] == ',') {
        mode = Mode::kExpectObject;
      } else {
        call_finished();
        mode = Mode::kText;
      }
      return true;
    }
  } else {
    constexpr std::string_view kClose = "</tool_call>";
    if (is_proper_prefix(tail, kClose)) return false;
    if (starts_with(tail, kClose)) pos += i + kClose.size();
  }
  // A missing closing tag is tolerated: the call is complete, what follows is text.
  call_finished();
  mode = Mode::kText;
  return true;
}

void ToolCallParser::State::finish_xml_call() {
  emit_arguments(xml_args.dump(-1, ' ', false, json::error_handler_t::replace));
  xml_args = json::object();
  committed = false;
  held.clear();
}

bool ToolCallParser::State::step_xml() {
  std::string_view r = rest();
  const XmlCallSyntax& syntax = *xml;
  auto skip_space = [&]() {
    size_t i = 0;
    while (i < r.size() && is_space(r[i])) ++i;
    return i;
  };
  switch (mode) {
    case Mode::kXmlBlock: {
      size_t i = skip_space();
      std::string_view tail = r.substr(i);
      if (tail.empty()) return false;
      if (starts_with(tail, syntax.block_close)) {
        if (!held.empty()) {  // a block without any call is text
          consume(i + syntax.block_close.size());
          fail();
          return true;
        }
        pos += i + syntax.block_close.size();
        call_finished();
        mode = Mode::kText;
        return true;
      }
      if (!syntax.single_invoke && starts_with(tail, syntax.invoke_open)) {
        consume(i + syntax.invoke_open.size());
        xml_name.clear();
        mode = Mode::kXmlInvokeName;
        return true;
      }
      if (is_proper_prefix(tail, syntax.block_close) ||
          (!syntax.single_invoke && is_proper_prefix(tail, syntax.invoke_open))) {
        return false;
      }
      if (call_count > 0 && held.empty()) {  // after a committed invoke: rest is text
        call_finished();
        mode = Mode::kText;
      } else {
        fail();
      }
      return true;
    }
    case Mode::kXmlInvokeName:
    case Mode::kXmlParamName: {
      size_t end = r.find(syntax.name_close);
      std::string_view name = r.substr(0, end);
      if (end == std::string_view::npos) {  // the end may hold the start of name_close
        for (size_t n = std::min(syntax.name_close.size() - 1, name.size()); n > 0; --n) {
          if (name.substr(name.size() - n) == syntax.name_close.substr(0, n)) {
            name.remove_suffix(n);
            break;
          }
        }
      }
      bool bad = name.find_first_of("<>\n\"") != std::string_view::npos || name.size() > 256;
      if (bad) {
        if (committed) {
          finish_xml_call();
          call_finished();
          mode = Mode::kText;
        } else {
          fail();
        }
        return true;
      }
      if (end == std::string_view::npos) return false;
      if (mode == Mode::kXmlInvokeName) {
        consume(end + syntax.name_close.size());
        xml_name = std::string(name);
        xml_function = tool_calls_internal::find_function(tools, xml_name);
        if (xml_function == nullptr) {
          fail();
          return true;
        }
        emit_header(xml_name);
        xml_args = json::object();
        mode = Mode::kXmlInvoke;
      } else {
        pos += end + syntax.name_close.size();
        xml_param = std::string(name);
        value_search_from = 0;
        mode = Mode::kXmlValue;
      }
      return true;
    }
    case Mode::kXmlInvoke: {
      size_t i = skip_space();
      std::string_view tail = r.substr(i);
      if (tail.empty()) return false;
      if (starts_with(tail, syntax.param_open)) {
        pos += i + syntax.param_open.size();
        mode = Mode::kXmlParamName;
        return true;
      }
      if (starts_with(tail, syntax.invoke_close)) {
        pos += i + syntax.invoke_close.size();
        finish_xml_call();
        mode = Mode::kXmlBlock;
        return true;
      }
      if (is_proper_prefix(tail, syntax.param_open) ||
          is_proper_prefix(tail, syntax.invoke_close)) {
        return false;
      }
      finish_xml_call();  // malformed: the call ends with what it has
      call_finished();
      mode = Mode::kText;
      return true;
    }
    case Mode::kXmlValue: {
      size_t end = r.find(syntax.param_close, value_search_from);
      if (end == std::string_view::npos) {
        value_search_from =
            r.size() >= syntax.param_close.size() ? r.size() - syntax.param_close.size() + 1 : 0;
        return false;
      }
      std::string_view value = r.substr(0, end);
      if (syntax.trim_value_newlines) {
        if (!value.empty() && value.front() == '\n') value.remove_prefix(1);
        if (!value.empty() && value.back() == '\n') value.remove_suffix(1);
      }
      xml_args[xml_param] =
          tool_calls_internal::xml_parameter_value(value, *xml_function, xml_param);
      pos += end + syntax.param_close.size();
      mode = Mode::kXmlInvoke;
      return true;
    }
    default:
      return false;
  }
}

ToolCallParser::ToolCallParser(ToolCallFormat format, const nlohmann::ordered_json& tools)
    : state_(std::make_unique<State>(format, tools)) {}
ToolCallParser::~ToolCallParser() = default;
ToolCallParser::ToolCallParser(ToolCallParser&&) noexcept = default;
ToolCallParser& ToolCallParser::operator=(ToolCallParser&&) noexcept = default;

ParsedDelta ToolCallParser::push(std::string_view text) {
  State& s = *state_;
  if (!s.active) {
    ParsedDelta delta;
    delta.content = std::string(text);
    return delta;
  }
  s.input.append(text);
  s.run();
  return std::exchange(s.out, ParsedDelta{});
}

ParsedDelta ToolCallParser::finish() {
  State& s = *state_;
  if (!s.active) return {};
  s.run();
  std::string_view rest = s.rest();
  switch (s.mode) {
    case Mode::kText:
      // Whitespace after the last call is dropped; anything else is content.
      if (!(s.after_call && rest.find_first_not_of(" \t\r\n;") == std::string_view::npos)) {
        s.emit_content(rest);
      }
      break;
    case Mode::kAfterObject:
    case Mode::kXmlBlock:
      // After complete calls only a partial closing tag or whitespace can be left (dropped);
      // a block that never got a call is content.
      if (!s.held.empty()) {
        s.emit_content(s.held);
        s.emit_content(rest);
      }
      break;
    default:
      if (s.committed) {
        // Unfinished call whose name was streamed: close what can be closed.
        if (s.mode == Mode::kInObject) {
          if (!s.scanner.arguments_started()) s.emit_arguments("{}");
        } else {
          s.finish_xml_call();
        }
      } else {
        s.emit_content(s.held);
        s.emit_content(rest);
      }
      break;
  }
  s.held.clear();
  s.input.clear();
  s.pos = 0;
  s.mode = Mode::kText;
  s.committed = false;
  return std::exchange(s.out, ParsedDelta{});
}

int ToolCallParser::tool_call_count() const {
  return state_->call_count;
}

}  // namespace muse::text
