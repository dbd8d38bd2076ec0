// API keys: read from a file (one key per line; blank lines and lines starting with '#'
// ignored; surrounding whitespace trimmed), kept only as SHA-256 digests, and checked in
// constant time. Keys never appear in logs or error messages.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace muse::server {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest sha256(std::string_view data);
std::string to_hex(const Sha256Digest& digest);

class ApiKeys {
 public:
  ApiKeys() = default;  // no keys: every request is allowed
  // Throws muse::Error when the file cannot be read or holds no key.
  static ApiKeys load_file(const std::string& path);
  void add_key(std::string_view key);  // stores only the digest; rejects an empty key

  bool enabled() const { return !digests_.empty(); }
  // True when `key` is one of the keys. Compares against every stored digest in constant
  // time (no early exit) so timing does not reveal which key or how much matched.
  bool verify(std::string_view key) const;
  // Extracts the key from an `Authorization: Bearer <key>` header value; empty when the
  // header is missing or not a bearer token.
  static std::string_view bearer_token(std::string_view authorization_header);

 private:
  std::vector<Sha256Digest> digests_;
};

}  // namespace muse::server
