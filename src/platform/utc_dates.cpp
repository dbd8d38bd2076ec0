// Calendar days and months (UTC) for usage rows and monthly quotas.
#include <ctime>
#include <string>

#include "platform/store.h"

namespace muse::platform {
namespace {

std::string format_utc(int64_t unix_seconds, const char* format) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

}  // namespace

std::string utc_day(int64_t unix_seconds) { return format_utc(unix_seconds, "%Y-%m-%d"); }
std::string utc_month(int64_t unix_seconds) { return format_utc(unix_seconds, "%Y-%m"); }

}  // namespace muse::platform
