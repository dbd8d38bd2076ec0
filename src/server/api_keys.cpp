// API keys kept as SHA-256 digests (OpenSSL libcrypto) and checked in constant time.
#include "server/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>

#include "muse/error.h"

namespace muse::server {

namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

Sha256Digest sha256(std::string_view data) {
  Sha256Digest digest{};
  unsigned int size = 0;
  int ok = EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr);
  MUSE_CHECK(ok == 1 && size == digest.size(), "SHA-256 computation failed");
  return digest;
}

std::string to_hex(const Sha256Digest& digest) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (uint8_t b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

ApiKeys ApiKeys::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MUSE_CHECK(in, "cannot read API keys file ", path);
  ApiKeys keys;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::string_view key = trim(line);
    if (key.empty() || key.front() == '#') continue;
    // A key with inner whitespace could never arrive in a bearer token. The message names
    // only the line, never the key.
    for (char c : key) {
      MUSE_CHECK(!is_space(c) && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f,
                 "API keys file ", path, " line ", line_no,
                 ": a key may not contain whitespace or control characters");
    }
    keys.add_key(key);
  }
  MUSE_CHECK(!in.bad(), "error reading API keys file ", path);
  MUSE_CHECK(keys.enabled(), "API keys file ", path, " holds no key");
  return keys;
}

void ApiKeys::add_key(std::string_view key) {
  MUSE_CHECK(!key.empty(), "an API key may not be empty");
  digests_.push_back(sha256(key));
}

bool ApiKeys::verify(std::string_view key) const {
  if (key.empty()) return false;
  // Hashing first gives fixed-size inputs, so the comparison time depends on neither the
  // key's length nor its content; every digest is compared and the results OR-ed.
  const Sha256Digest digest = sha256(key);
  unsigned int found = 0;
  for (const Sha256Digest& stored : digests_) {
    found |=
        static_cast<unsigned int>(CRYPTO_memcmp(stored.data(), digest.data(), digest.size()) == 0);
  }
  return found != 0;
}

std::string_view ApiKeys::bearer_token(std::string_view authorization_header) {
  std::string_view value = trim(authorization_header);
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = value[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return {};
  }
  // The scheme must be followed by whitespace, then exactly one token (no inner spaces).
  if (value[kScheme.size()] != ' ' && value[kScheme.size()] != '\t') return {};
  std::string_view token = trim(value.substr(kScheme.size()));
  for (char c : token) {
    if (is_space(c)) return {};
  }
  return token;
}

}  // namespace muse::server
