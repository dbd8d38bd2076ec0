// Character-at-a-time scanner of one JSON tool-call object
// {"name": "f", "arguments": {...}} (also "parameters"; other keys are skipped; the keys
// may come in any order). It is lexical, not a full JSON parser: it follows strings,
// escapes and nesting depth to find where each value ends, so that the arguments can be
// streamed as their characters arrive. Internal to the tool-call parser.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace muse::text::tool_calls_internal {

class JsonCallScanner {
 public:
  enum class Event {
    kNone,          // character consumed
    kError,         // character does not fit: not consumed, scanning stops
    kNameDone,      // the "name" string value just ended (name() holds it)
    kArgumentChar,  // the character is part of the arguments value (stream it)
    kObjectDone,    // the call object's closing brace
  };

  Event feed(char c) {
    switch (state_) {
      case S::kOpen:
        if (is_space(c)) return Event::kNone;
        if (c != '{') return Event::kError;
        state_ = S::kKeyOrEnd;
        return Event::kNone;
      case S::kKeyOrEnd:
        if (is_space(c)) return Event::kNone;
        if (c == '}') {
          state_ = S::kDone;
          return Event::kObjectDone;
        }
        if (c != '"') return Event::kError;
        key_.assign(1, '"');
        escape_ = false;
        state_ = S::kKey;
        return Event::kNone;
      case S::kKey:
        key_ += c;
        if (escape_) {
          escape_ = false;
        } else if (c == '\\') {
          escape_ = true;
        } else if (c == '"') {
          state_ = S::kColon;
        }
        return Event::kNone;
      case S::kColon:
        if (is_space(c)) return Event::kNone;
        if (c != ':') return Event::kError;
        begin_value();
        return Event::kNone;
      case S::kValueStart:
        return value_start(c);
      case S::kValue:
        return value_char(c);
      case S::kAfterValue:
        if (is_space(c)) return Event::kNone;
        if (c == ',') {
          state_ = S::kKeyOrEnd;
          return Event::kNone;
        }
        if (c == '}') {
          state_ = S::kDone;
          return Event::kObjectDone;
        }
        return Event::kError;
      case S::kDone:
        return Event::kError;
    }
    return Event::kError;
  }

  bool done() const { return state_ == S::kDone; }
  const std::string& name() const { return name_; }
  // True once argument characters were handed out for streaming.
  bool arguments_started() const { return streaming_ && args_streamed_; }

  // Arguments text seen before the name was known; from now on argument characters are
  // streamed (returned as kArgumentChar) instead of buffered.
  std::string take_buffered_arguments() {
    streaming_ = true;
    if (args_is_string_) return {};
    args_streamed_ = args_streamed_ || !args_buffer_.empty();
    return std::exchange(args_buffer_, {});
  }

  // What remains to emit when the object is complete: "{}" for a call without arguments,
  // the decoded text of arguments given as a JSON string.
  std::string final_arguments() const {
    if (!has_args_) return "{}";
    if (args_is_string_) {
      auto decoded = nlohmann::ordered_json::parse(args_buffer_, nullptr, false);
      if (decoded.is_string()) return decoded.get<std::string>();
      return "{}";
    }
    return {};
  }

 private:
  enum class S { kOpen, kKeyOrEnd, kKey, kColon, kValueStart, kValue, kAfterValue, kDone };
  enum class Kind { kName, kArguments, kOther };

  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

  void begin_value() {
    auto key = nlohmann::ordered_json::parse(key_, nullptr, false);
    std::string k = key.is_string() ? key.get<std::string>() : std::string();
    if (k == "name" && !has_name_) {
      kind_ = Kind::kName;
    } else if ((k == "arguments" || k == "parameters") && !has_args_) {
      kind_ = Kind::kArguments;
      has_args_ = true;
    } else {
      kind_ = Kind::kOther;
    }
    state_ = S::kValueStart;
  }

  Event value_start(char c) {
    if (is_space(c)) return Event::kNone;
    depth_ = 0;
    in_string_ = false;
    escape_ = false;
    scalar_ = false;
    if (c == '{' || c == '[') {
      depth_ = 1;
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '}' || c == ']' || c == ',' || c == ':') {
      return Event::kError;
    } else {
      scalar_ = true;
    }
    if (kind_ == Kind::kName && c != '"') return Event::kError;
    if (kind_ == Kind::kArguments && c == '"') args_is_string_ = true;
    state_ = S::kValue;
    return record(c);
  }

  Event value_char(char c) {
    if (scalar_) {
      if (is_space(c) || c == ',' || c == '}' || c == ']') {
        state_ = S::kAfterValue;
        return feed(c);
      }
      return record(c);
    }
    bool ends = false;
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
        ends = depth_ == 0;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      ends = --depth_ == 0;
    }
    Event event = record(c);
    if (ends) {
      state_ = S::kAfterValue;
      if (kind_ == Kind::kName) {
        auto decoded = nlohmann::ordered_json::parse(name_raw_, nullptr, false);
        if (!decoded.is_string()) return Event::kError;
        name_ = decoded.get<std::string>();
        has_name_ = true;
        return Event::kNameDone;
      }
    }
    return event;
  }

  Event record(char c) {
    switch (kind_) {
      case Kind::kName:
        name_raw_ += c;
        return Event::kNone;
      case Kind::kArguments:
        if (streaming_ && !args_is_string_) {
          args_streamed_ = true;
          return Event::kArgumentChar;
        }
        args_buffer_ += c;
        return Event::kNone;
      case Kind::kOther:
        return Event::kNone;
    }
    return Event::kNone;
  }

  S state_ = S::kOpen;
  Kind kind_ = Kind::kOther;
  std::string key_;
  std::string name_raw_;
  std::string name_;
  std::string args_buffer_;
  bool has_name_ = false;
  bool has_args_ = false;
  bool args_is_string_ = false;
  bool streaming_ = false;
  bool args_streamed_ = false;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  bool scalar_ = false;
};

}  // namespace muse::text::tool_calls_internal
