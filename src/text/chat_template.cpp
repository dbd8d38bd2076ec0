#include "text/chat_template.h"

#include <cstdio>

#include "text/jinja_strings.h"

namespace muse::text {
namespace {

using jinja::CallArgs;
using jinja::Interpreter;
using jinja::TemplateError;
using jinja::Value;

const char* const kWeekdays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                 "Thursday", "Friday", "Saturday"};
const char* const kMonths[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};

bool is_leap(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

std::tm current_local_time() {
  const std::time_t now = std::time(nullptr);
  std::tm t{};
  localtime_r(&now, &t);
  return t;
}

// Which final text HF looks for when continuing the final message.
std::string final_message_text(const nlohmann::ordered_json& messages) {
  if (!messages.is_array() || messages.empty() || !messages.back().is_object())
    throw Error("continue_final_message is set but there is no final message");
  const auto& content = messages.back().value("content", nlohmann::ordered_json());
  if (content.is_string()) return content.get<std::string>();
  if (content.is_array()) {
    for (auto it = content.rbegin(); it != content.rend(); ++it)
      if (it->is_object() && it->contains("text") && (*it)["text"].is_string())
        return (*it)["text"].get<std::string>();
  }
  throw Error(
      "continue_final_message is set but we could not find any text to continue in the final "
      "message!");
}

std::string continue_final(std::string rendered, const std::string& final_message) {
  const std::string stripped = jinja::py_strip(final_message, std::nullopt, true, true);
  const size_t loc = rendered.rfind(stripped);
  if (loc == std::string::npos)
    throw Error(
        "continue_final_message is set but the final message does not appear in the chat after "
        "applying the chat template!");
  const std::string lstripped = jinja::py_strip(final_message, std::nullopt, true, false);
  // As HF: keep the message's trailing whitespace if the template kept it.
  if (rendered.compare(loc, lstripped.size(), final_message) == 0)
    rendered.resize(loc + lstripped.size());
  else
    rendered.resize(loc + stripped.size());
  return rendered;
}

}  // namespace

std::tm date_from_iso(std::string_view date) {
  int y = 0, m = 0, d = 0;
  char tail = 0;
  const std::string s(date);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || s.size() != 10)
    throw Error("date '" + s + "' is not YYYY-MM-DD");
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1 || d > kDays[m - 1] + (m == 2 && is_leap(y)))
    throw Error("date '" + s + "' does not exist");
  std::tm t{};
  t.tm_year = y - 1900;
  t.tm_mon = m - 1;
  t.tm_mday = d;
  const int64_t days = days_from_civil(y, m, d);
  t.tm_wday = static_cast<int>(((days % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
  t.tm_yday = static_cast<int>(days - days_from_civil(y, 1, 1));
  return t;
}

std::string strftime_python(std::string_view format, const std::tm& t) {
  std::string out;
  auto num = [&](int v, int width, bool pad) {
    char buf[16];
    if (pad)
      std::snprintf(buf, sizeof buf, "%0*d", width, v);
    else
      std::snprintf(buf, sizeof buf, "%d", v);
    out += buf;
  };
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%' || i + 1 >= format.size()) {
      out += format[i];
      continue;
    }
    bool pad = true;
    size_t j = i + 1;
    if (format[j] == '-' && j + 1 < format.size()) {
      pad = false;
      ++j;
    }
    const int hour12 = t.tm_hour % 12 == 0 ? 12 : t.tm_hour % 12;
    const int wday = ((t.tm_wday % 7) + 7) % 7;
    const int mon = ((t.tm_mon % 12) + 12) % 12;
    switch (format[j]) {
      case 'a':
        out += std::string(kWeekdays[wday]).substr(0, 3);
        break;
      case 'A':
        out += kWeekdays[wday];
        break;
      case 'b':
      case 'h':
        out += std::string(kMonths[mon]).substr(0, 3);
        break;
      case 'B':
        out += kMonths[mon];
        break;
      case 'd':
        num(t.tm_mday, 2, pad);
        break;
      case 'e': {
        char buf[8];
        std::snprintf(buf, sizeof buf, pad ? "%2d" : "%d", t.tm_mday);
        out += buf;
        break;
      }
      case 'H':
        num(t.tm_hour, 2, pad);
        break;
      case 'I':
        num(hour12, 2, pad);
        break;
      case 'j':
        num(t.tm_yday + 1, 3, pad);
        break;
      case 'm':
        num(t.tm_mon + 1, 2, pad);
        break;
      case 'M':
        num(t.tm_min, 2, pad);
        break;
      case 'p':
        out += t.tm_hour < 12 ? "AM" : "PM";
        break;
      case 'S':
        num(t.tm_sec, 2, pad);
        break;
      case 'u':
        num(wday == 0 ? 7 : wday, 1, pad);
        break;
      case 'w':
        num(wday, 1, pad);
        break;
      case 'y':
        num((t.tm_year + 1900) % 100, 2, pad);
        break;
      case 'Y':
        num(t.tm_year + 1900, 1, pad);
        break;
      case 'C':
        num((t.tm_year + 1900) / 100, 2, pad);
        break;
      case 'U':
        num((t.tm_yday + 7 - wday) / 7, 2, pad);
        break;
      case 'W':
        num((t.tm_yday + 7 - (wday + 6) % 7) / 7, 2, pad);
        break;
      case 'D':
        out += strftime_python("%m/%d/%y", t);
        break;
      case 'x':
        out += strftime_python("%m/%d/%y", t);
        break;
      case 'F':
        out += strftime_python("%Y-%m-%d", t);
        break;
      case 'T':
      case 'X':
        out += strftime_python("%H:%M:%S", t);
        break;
      case 'R':
        out += strftime_python("%H:%M", t);
        break;
      case 'c':
        out += strftime_python("%a %b %e %H:%M:%S %Y", t);
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'Z':
        break;
      case 'z':
        out += "+0000";
        break;
      case '%':
        out += '%';
        break;
      default:
        out += format.substr(i, j - i + 1);
        break;
    }
    i = j;
  }
  return out;
}

ChatTemplate::ChatTemplate(std::string_view source, const jinja::Options& options)
    : template_(source, options) {}

std::string ChatTemplate::render(const ChatInputs& in) const {
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = in.messages;
  if (!in.tools.is_null()) context["tools"] = in.tools;
  if (!in.documents.is_null()) context["documents"] = in.documents;
  context["add_generation_prompt"] = in.add_generation_prompt;
  if (in.bos_token) context["bos_token"] = *in.bos_token;
  if (in.eos_token) context["eos_token"] = *in.eos_token;
  if (!in.extra_context.is_null() && !in.extra_context.is_object())
    throw Error("chat template extra context must be a JSON object");
  for (const auto& [key, value] : in.extra_context.items()) {
    if (key == "messages" || key == "tools" || key == "documents" || key == "add_generation_prompt")
      throw Error("chat template extra context may not set '" + key + "'");
    context[key] = value;
  }
  const std::tm now = in.now ? *in.now : current_local_time();
  std::vector<std::pair<std::string, jinja::NativeFunction>> functions;
  functions.emplace_back("raise_exception", [](Interpreter& interp, CallArgs& args) -> Value {
    jinja::ArgBinder a("raise_exception", args, {"message"});
    throw TemplateError("TemplateError", interp.to_string(a.get(0)));
  });
  functions.emplace_back("strftime_now", [now](Interpreter& interp, CallArgs& args) -> Value {
    jinja::ArgBinder a("strftime_now", args, {"format"});
    if (!a.get(0).is_string())
      throw TemplateError("TypeError",
                          "strftime() argument 1 must be str, not " + a.get(0).type_name());
    return interp.make_string(strftime_python(a.get(0).str(), now));
  });
  std::string rendered = template_.render(context, functions);
  if (in.continue_final_message)
    rendered = continue_final(std::move(rendered), final_message_text(in.messages));
  return rendered;
}

}  // namespace muse::text
