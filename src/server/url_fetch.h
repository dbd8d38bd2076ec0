// Fetching http(s) URLs named by clients (image_url parts) without letting a request reach
// the server's own network (SSRF):
//  - only http and https; no userinfo ("user@host"); no control characters or spaces;
//  - the host is resolved ONCE (getaddrinfo); every resolved address must be public
//    (not loopback, private, link-local, CGNAT, multicast, unspecified, reserved, ULA,
//    the cloud metadata addresses 169.254.169.254 / fd00:ec2::254, nor an IPv6 form that
//    embeds such an IPv4 address: mapped, compatible, NAT64, 6to4); the connection then
//    goes to that checked address (no second resolution: DNS rebinding cannot swap it);
//  - redirects (301/302/303/307/308) are followed by hand, at most max_redirects, each
//    Location parsed and checked like the first URL;
//  - the body is limited to max_bytes: a larger Content-Length is refused before the body
//    is read, and the download is aborted as soon as the received bytes pass the limit;
//  - timeout_ms bounds the whole fetch (DNS, connect, every read, all redirects).
// HTTPS uses cpp-httplib's OpenSSL client with certificate and host-name verification
// against the system's default CA store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "muse/error.h"

namespace muse::server {

struct FetchPolicy {
  // true: no address is refused for being private (only unspecified/multicast/broadcast,
  // which cannot be fetched). For deployments that fetch from their own network.
  bool allow_private = false;
  // "host" or "host:port" (IPv6 literals in brackets: "[::1]:8080") exempt from the
  // private-address rule (tests, internal CDNs). Compared case-insensitively with the
  // URL's host and effective port (80/443 when the URL has none).
  std::vector<std::string> allowed_hosts;
  int64_t max_bytes = 20 << 20;  // largest body accepted
  int timeout_ms = 10000;        // the whole fetch, redirects included
  int max_redirects = 3;
};

// A fetch that failed or was refused. `status` is the HTTP status to answer the client
// with: 400 for refused or invalid URLs, unreachable hosts, upstream non-2xx answers and
// timeouts (as OpenAI answers them; a 5xx would make client SDKs retry a bad URL);
// 413 for a body over max_bytes. `code` says which: "invalid_url", "url_refused",
// "fetch_failed", "upstream_status", "too_many_redirects", "fetch_timeout",
// "media_too_large".
class FetchError : public Error {
 public:
  FetchError(int status, std::string code, const std::string& message)
      : Error(message), status(status), code(std::move(code)) {}
  int status;
  std::string code;
};

// Downloads `url` under `policy` and returns the body. Throws FetchError (see above).
std::vector<uint8_t> fetch_url(const std::string& url, const FetchPolicy& policy);

// A parsed http(s) URL (exposed for tests and for callers that want to pre-check).
struct ParsedUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // lower case; IPv6 literals without brackets
  int port = 0;        // effective port
  std::string target;  // path and query, starting with '/'; no fragment
  bool host_is_ipv6 = false;
};

// Parses an absolute http(s) URL; throws FetchError 400 ("invalid_url" or "url_refused").
ParsedUrl parse_fetch_url(const std::string& url);

// Whether an IP address (textual, v4 or v6) is one a public fetch may reach.
// Throws nothing; false for text that is not an address.
bool is_public_address(const std::string& ip);

}  // namespace muse::server
