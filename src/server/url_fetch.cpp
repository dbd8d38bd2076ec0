// Safe fetching of client-named URLs (see url_fetch.h for the rules).
#include "server/url_fetch.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace muse::server {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void refuse(const std::string& message) {
  throw FetchError(400, "url_refused", message);
}
[[noreturn]] void invalid(const std::string& message) {
  throw FetchError(400, "invalid_url", message);
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_ipv4_public(uint32_t a) {
  auto in = [a](uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  return !(in(0x00000000, 8) ||   // "this network", 0.0.0.0 (reaches localhost on Linux)
           in(0x0A000000, 8) ||   // 10/8 private
           in(0x64400000, 10) ||  // 100.64/10 carrier-grade NAT
           in(0x7F000000, 8) ||   // loopback
           in(0xA9FE0000, 16) ||  // link-local, incl. 169.254.169.254 metadata
           in(0xAC100000, 12) ||  // 172.16/12 private
           in(0xC0000000, 24) ||  // 192.0.0/24 protocol assignments
           in(0xC0000200, 24) ||  // TEST-NET-1
           in(0xC0586300, 24) ||  // 6to4 relay anycast
           in(0xC0A80000, 16) ||  // 192.168/16 private
           in(0xC6120000, 15) ||  // 198.18/15 benchmarking
           in(0xC6336400, 24) ||  // TEST-NET-2
           in(0xCB007100, 24) ||  // TEST-NET-3
           in(0xE0000000, 4) ||   // multicast
           in(0xF0000000, 4));    // reserved, broadcast
}

// Addresses no fetch may reach even with allow_private: they are not unicast hosts
// (0.0.0.0 connects to the local machine).
bool is_ipv4_never(uint32_t a) {
  return (a >> 24) == 0 || (a >> 28) >= 0xE;
}

uint32_t ipv4_at(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64 well-known
// prefix), if any.
bool embedded_ipv4(const std::array<uint8_t, 16>& b, uint32_t& v4) {
  const bool zero10 = std::all_of(b.begin(), b.begin() + 10, [](uint8_t x) { return x == 0; });
  const bool mapped = zero10 && b[10] == 0xFF && b[11] == 0xFF;
  const bool compat = zero10 && b[10] == 0 && b[11] == 0;
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0};
  const bool nat64 = std::equal(b.begin(), b.begin() + 12, kNat64);
  if (!mapped && !compat && !nat64) return false;
  v4 = ipv4_at(&b[12]);
  return true;
}

bool is_ipv6_public(const std::array<uint8_t, 16>& b) {
  uint32_t v4 = 0;
  if (embedded_ipv4(b, v4)) return is_ipv4_public(v4);  // also covers :: and ::1
  if ((b[0] & 0xE0) != 0x20) return false;              // only 2000::/3 is global unicast
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) return false;  // Teredo
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8) return false;  // docs
  if (b[0] == 0x20 && b[1] == 0x02) return is_ipv4_public(ipv4_at(&b[2]));         // 6to4
  return true;
}

bool is_ipv6_never(const std::array<uint8_t, 16>& b) {
  uint32_t v4 = 0;
  if (embedded_ipv4(b, v4) && b[10] == 0xFF) return is_ipv4_never(v4);
  if (b[0] == 0xFF) return true;  // multicast
  return std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; });
}

struct Address {
  std::string text;
  bool is_public = false;
  bool never = false;
};

Address classify(const sockaddr* sa) {
  Address out;
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    const uint32_t a = ntohl(in->sin_addr.s_addr);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf);
    out.is_public = is_ipv4_public(a);
    out.never = is_ipv4_never(a);
  } else if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    std::array<uint8_t, 16> b;
    std::copy_n(in6->sin6_addr.s6_addr, 16, b.begin());
    inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
    out.is_public = is_ipv6_public(b);
    out.never = is_ipv6_never(b);
  } else {
    out.never = true;
  }
  out.text = buf;
  return out;
}

int64_t ms_left(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

[[noreturn]] void timed_out(const std::string& url, const FetchPolicy& policy) {
  throw FetchError(400, "fetch_timeout",
                   str_cat("timed out after ", policy.timeout_ms, " ms fetching ", url));
}

// getaddrinfo has no timeout: it runs on a detached thread whose result is dropped if the
// deadline passes first.
std::vector<Address> resolve(const ParsedUrl& u, Clock::time_point deadline, const std::string& url,
                             const FetchPolicy& policy) {
  struct Shared {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    int rc = 0;
    std::vector<Address> addresses;
  };
  auto shared = std::make_shared<Shared>();
  std::thread([shared, host = u.host] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
    std::vector<Address> addresses;
    if (rc == 0)
      for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next)
        addresses.push_back(classify(ai->ai_addr));
    if (list != nullptr) freeaddrinfo(list);
    std::lock_guard<std::mutex> lock(shared->mutex);
    shared->rc = rc;
    shared->addresses = std::move(addresses);
    shared->done = true;
    shared->done_cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(shared->mutex);
  if (!shared->done_cv.wait_until(lock, deadline, [&] { return shared->done; }))
    timed_out(url, policy);
  if (shared->rc != 0 || shared->addresses.empty())
    throw FetchError(400, "fetch_failed",
                     str_cat("cannot resolve host '", u.host, "': ", gai_strerror(shared->rc)));
  return shared->addresses;
}

std::string host_for_url(const ParsedUrl& u) {
  return u.host_is_ipv6 ? "[" + u.host + "]" : u.host;
}

std::string origin(const ParsedUrl& u) {
  const int default_port = u.scheme == "https" ? 443 : 80;
  return u.scheme + "://" + host_for_url(u) +
         (u.port == default_port ? "" : ":" + std::to_string(u.port));
}

bool host_allowed(const ParsedUrl& u, const FetchPolicy& policy) {
  const std::string host = host_for_url(u);
  const std::string host_port = host + ":" + std::to_string(u.port);
  for (const std::string& entry : policy.allowed_hosts) {
    const std::string e = lower(entry);
    if (e == host || e == host_port || (u.host_is_ipv6 && e == u.host)) return true;
  }
  return false;
}

// The absolute URL a redirect's Location names, relative to `base`.
std::string resolve_location(const ParsedUrl& base, const std::string& location) {
  if (location.empty()) refuse("redirect without a Location");
  size_t scheme_end = 0;
  while (scheme_end < location.size() &&
         (std::isalnum(static_cast<unsigned char>(location[scheme_end])) ||
          location[scheme_end] == '+' || location[scheme_end] == '-' ||
          location[scheme_end] == '.'))
    ++scheme_end;
  if (scheme_end > 0 && scheme_end < location.size() && location[scheme_end] == ':' &&
      std::isalpha(static_cast<unsigned char>(location[0])))
    return location;  // absolute; parse_fetch_url checks the scheme
  if (location.rfind("//", 0) == 0) return base.scheme + ":" + location;
  if (location[0] == '/') return origin(base) + location;
  const std::string path = base.target.substr(0, base.target.find('?'));
  if (location[0] == '?') return origin(base) + path + location;
  if (location[0] == '#') return origin(base) + base.target;
  return origin(base) + path.substr(0, path.rfind('/') + 1) + location;
}

// Calls stop() on the client once the deadline passes (a server that drips its headers
// byte by byte would otherwise hold the fetch for read_timeout per byte).
class Watchdog {
 public:
  Watchdog(httplib::ClientImpl& client, Clock::time_point deadline)
      : thread_([this, &client, deadline] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (cv_.wait_until(lock, deadline, [this] { return done_; })) return;
          fired_ = true;
          // Repeat: a stop() that lands before the socket exists does nothing.
          while (!done_) {
            lock.unlock();
            client.stop();
            lock.lock();
            cv_.wait_for(lock, std::chrono::milliseconds(20), [this] { return done_; });
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool fired() {
    std::lock_guard<std::mutex> lock(mutex_);
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false, fired_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

constexpr int kConnectFailed = -1;

struct Hop {
  int status = 0;        // HTTP status, or kConnectFailed
  std::string location;  // set for redirects
  std::vector<uint8_t> body;
};

Hop fetch_once(const std::string& url, const ParsedUrl& u, const std::string& ip,
               Clock::time_point deadline, const FetchPolicy& policy) {
  std::unique_ptr<httplib::ClientImpl> client;
  if (u.scheme == "https")
    client = std::make_unique<httplib::SSLClient>(u.host, u.port);
  else
    client = std::make_unique<httplib::ClientImpl>(u.host, u.port);
  // The connection goes to the address checked above, never to a fresh resolution.
  client->set_hostname_addr_map({{u.host, ip}});
  client->set_follow_location(false);
  client->set_keep_alive(false);
  const auto left = std::chrono::milliseconds(std::max<int64_t>(1, ms_left(deadline)));
  client->set_connection_timeout(left);
  client->set_read_timeout(left);
  client->set_write_timeout(left);
  const int default_port = u.scheme == "https" ? 443 : 80;
  const httplib::Headers headers = {
      {"Host", host_for_url(u) + (u.port == default_port ? "" : ":" + std::to_string(u.port))},
      {"Accept-Encoding", "identity"},
      {"User-Agent", "muse-media-fetch"}};

  Hop hop;
  bool too_large = false, late = false, bad_length = false;
  const uint64_t max_bytes = uint64_t(std::max<int64_t>(0, policy.max_bytes));
  auto on_response = [&](const httplib::Response& res) {
    hop.status = res.status;
    if (res.status >= 300 && res.status < 400) {
      hop.location = res.get_header_value("Location");
      return false;  // the redirect's body is not needed
    }
    if (res.status < 200 || res.status >= 300) return false;
    if (res.has_header("Content-Length")) {
      const std::string cl = res.get_header_value("Content-Length");
      const bool digits =
          !cl.empty() && cl.size() <= 19 &&
          std::all_of(cl.begin(), cl.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits) {
        bad_length = true;
        return false;
      }
      if (std::stoull(cl) > max_bytes) {
        too_large = true;
        return false;
      }
    }
    return true;
  };
  auto on_data = [&](const char* data, size_t n) {
    if (Clock::now() > deadline) {
      late = true;
      return false;
    }
    if (hop.body.size() + n > max_bytes) {
      too_large = true;
      return false;
    }
    hop.body.insert(hop.body.end(), data, data + n);
    return true;
  };
  httplib::Result result(nullptr, httplib::Error::Unknown);
  bool fired = false;
  {
    Watchdog watchdog(*client, deadline);
    result = client->Get(u.target, headers, on_response, on_data);
    fired = watchdog.fired();
  }
  if (too_large)
    throw FetchError(413, "media_too_large",
                     str_cat("the body of ", url, " is larger than ", max_bytes, " bytes"));
  if (late || fired || (!result && hop.status == 0 && ms_left(deadline) <= 0))
    timed_out(url, policy);
  if (bad_length)
    throw FetchError(400, "fetch_failed",
                     str_cat("fetching ", url, " failed: invalid Content-Length"));
  if (hop.status >= 300 && hop.status < 400) return hop;
  if (hop.status != 0 && (hop.status < 200 || hop.status >= 300))
    throw FetchError(400, "upstream_status",
                     str_cat("fetching ", url, " failed: the server answered HTTP ", hop.status));
  if (!result) {
    const httplib::Error err = result.error();
    if (err == httplib::Error::ConnectionTimeout) timed_out(url, policy);
    if (err == httplib::Error::Connection) {
      hop.status = kConnectFailed;  // the caller tries the host's next address
      return hop;
    }
    if (err == httplib::Error::SSLServerVerification)
      throw FetchError(400, "fetch_failed",
                       str_cat("fetching ", url, " failed: TLS certificate verification failed"));
    throw FetchError(400, "fetch_failed",
                     str_cat("fetching ", url, " failed: ", httplib::to_string(err)));
  }
  return hop;
}

}  // namespace

bool is_public_address(const std::string& ip) {
  sockaddr_in v4{};
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET, ip.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    return classify(reinterpret_cast<const sockaddr*>(&v4)).is_public;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    return classify(reinterpret_cast<const sockaddr*>(&v6)).is_public;
  }
  return false;
}

ParsedUrl parse_fetch_url(const std::string& url) {
  if (url.size() > 8192) invalid("URL is longer than 8192 characters");
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F)
      invalid("URL contains a space, control or non-ASCII character (percent-encode it)");
  ParsedUrl u;
  const size_t colon = url.find("://");
  if (colon == std::string::npos) {
    const size_t c = url.find(':');
    if (c != std::string::npos && c > 0)
      refuse(str_cat("URL scheme '", lower(url.substr(0, c)), "' is not allowed (http or https)"));
    invalid("URL must be absolute (http:// or https://)");
  }
  u.scheme = lower(url.substr(0, colon));
  if (u.scheme != "http" && u.scheme != "https")
    refuse(str_cat("URL scheme '", u.scheme, "' is not allowed (http or https)"));
  const size_t auth_begin = colon + 3;
  const size_t auth_end = url.find_first_of("/?#", auth_begin);
  const std::string authority = url.substr(
      auth_begin, auth_end == std::string::npos ? std::string::npos : auth_end - auth_begin);
  if (authority.find('@') != std::string::npos)
    refuse("URLs with credentials (user@host) are not allowed");
  std::string port_text;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) invalid("URL has an unterminated IPv6 address");
    u.host = lower(authority.substr(1, close - 1));
    u.host_is_ipv6 = true;
    in6_addr tmp;
    if (inet_pton(AF_INET6, u.host.c_str(), &tmp) != 1)
      invalid(str_cat("'", u.host, "' is not an IPv6 address"));
    const std::string rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') invalid("URL has junk after the IPv6 address");
      port_text = rest.substr(1);
      if (port_text.empty()) invalid("URL has an empty port");
    }
  } else {
    const size_t c = authority.find(':');
    u.host = lower(authority.substr(0, c));
    if (c != std::string::npos) {
      port_text = authority.substr(c + 1);
      if (port_text.empty()) invalid("URL has an empty port");
    }
    if (u.host.empty()) invalid("URL has no host");
    if (u.host.size() > 253) invalid("URL host is longer than 253 characters");
    for (char ch : u.host)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.' && ch != '_')
        invalid(str_cat("URL host '", u.host, "' has a character that is not allowed"));
  }
  if (u.host.empty()) invalid("URL has no host");
  u.port = u.scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(),
                                             [](char ch) { return ch >= '0' && ch <= '9'; }))
      invalid(str_cat("URL port '", port_text, "' is not a number"));
    u.port = std::stoi(port_text);
    if (u.port < 1 || u.port > 65535) invalid(str_cat("URL port ", u.port, " is out of range"));
  }
  std::string target = auth_end == std::string::npos ? "" : url.substr(auth_end);
  target = target.substr(0, target.find('#'));
  if (target.empty() || target[0] == '?') target = "/" + target;
  u.target = target;
  return u;
}

std::vector<uint8_t> fetch_url(const std::string& url, const FetchPolicy& policy) {
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(std::max(1, policy.timeout_ms));
  std::string current = url;
  for (int redirects = 0;; ++redirects) {
    const ParsedUrl u = parse_fetch_url(current);
    const std::vector<Address> addresses = resolve(u, deadline, current, policy);
    const bool exempt = host_allowed(u, policy);
    for (const Address& a : addresses) {
      if (a.never)
        refuse(str_cat("host '", u.host, "' resolves to ", a.text, ", which cannot be fetched"));
      if (!a.is_public && !exempt && !policy.allow_private)
        refuse(str_cat("host '", u.host, "' resolves to the non-public address ", a.text));
    }
    // Each checked address in turn until one accepts the connection ("localhost" may
    // give ::1 first to a server that listens on 127.0.0.1 only).
    Hop hop;
    for (const Address& a : addresses) {
      hop = fetch_once(current, u, a.text, deadline, policy);
      if (hop.status != kConnectFailed) break;
    }
    if (hop.status == kConnectFailed)
      throw FetchError(
          400, "fetch_failed",
          str_cat("fetching ", current, " failed: cannot connect to ", u.host, ":", u.port));
    if (hop.status >= 300 && hop.status < 400) {
      if (hop.status != 301 && hop.status != 302 && hop.status != 303 && hop.status != 307 &&
          hop.status != 308)
        throw FetchError(
            400, "upstream_status",
            str_cat("fetching ", current, " failed: the server answered HTTP ", hop.status));
      if (redirects >= policy.max_redirects)
        throw FetchError(
            400, "too_many_redirects",
            str_cat("fetching ", url, " took more than ", policy.max_redirects, " redirects"));
      current = resolve_location(u, hop.location);
      continue;
    }
    return std::move(hop.body);
  }
}

}  // namespace muse::server
