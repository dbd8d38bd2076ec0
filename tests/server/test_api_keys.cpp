// ApiKeys: SHA-256 test vectors, key file parsing, verification and bearer tokens.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "muse/error.h"
#include "server/api_keys.h"

namespace muse::server {
namespace {

std::string write_temp_file(const std::string& name, const std::string& content) {
  std::filesystem::create_directories(MUSE_TEST_TMP);
  std::string path = std::string(MUSE_TEST_TMP) + "/api_keys_" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(ApiKeys, Sha256KnownVectors) {
  // FIPS 180-2 / NIST test vectors.
  EXPECT_EQ(to_hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256Digest d = sha256("abc");
  EXPECT_EQ(d[0], 0xba);
  EXPECT_EQ(d[31], 0xad);
}

TEST(ApiKeys, DefaultHasNoKeys) {
  ApiKeys keys;
  EXPECT_FALSE(keys.enabled());
  EXPECT_FALSE(keys.verify("anything"));
}

TEST(ApiKeys, LoadFileSkipsCommentsBlankLinesAndTrims) {
  std::string path = write_temp_file("good.txt",
                                     "# production keys\n"
                                     "\n"
                                     "   sk-first-key   \n"
                                     "\t# indented comment\n"
                                     "sk-second\r\n"
                                     "   \t \n"
                                     "sk-third");  // no final newline
  ApiKeys keys = ApiKeys::load_file(path);
  EXPECT_TRUE(keys.enabled());
  EXPECT_TRUE(keys.verify("sk-first-key"));
  EXPECT_TRUE(keys.verify("sk-second"));
  EXPECT_TRUE(keys.verify("sk-third"));
  EXPECT_FALSE(keys.verify("   sk-first-key   "));
  EXPECT_FALSE(keys.verify("sk-second\r"));
  EXPECT_FALSE(keys.verify("# production keys"));
  EXPECT_FALSE(keys.verify("# indented comment"));
}

TEST(ApiKeys, LoadFileErrors) {
  EXPECT_THROW(ApiKeys::load_file(std::string(MUSE_TEST_TMP) + "/api_keys_missing.txt"), Error);
  EXPECT_THROW(ApiKeys::load_file(write_temp_file("empty.txt", "")), Error);
  EXPECT_THROW(ApiKeys::load_file(write_temp_file("comments.txt", "# only\n\n  # comments\n")),
               Error);
  // A key with inner whitespace is rejected, and the message does not reveal it.
  try {
    ApiKeys::load_file(write_temp_file("space.txt", "ok-key\nsecret part\n"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("line 2"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("secret"), std::string::npos) << msg;
  }
}

TEST(ApiKeys, VerifyRightWrongEmptyAndPrefix) {
  ApiKeys keys;
  keys.add_key("sk-alpha-123");
  keys.add_key("sk-beta-456");
  EXPECT_TRUE(keys.enabled());
  EXPECT_TRUE(keys.verify("sk-alpha-123"));
  EXPECT_TRUE(keys.verify("sk-beta-456"));
  EXPECT_FALSE(keys.verify("sk-alpha-124"));
  EXPECT_FALSE(keys.verify(""));
  EXPECT_FALSE(keys.verify("sk-alpha"));       // prefix
  EXPECT_FALSE(keys.verify("sk-alpha-1234"));  // extension
  EXPECT_FALSE(keys.verify("SK-ALPHA-123"));   // keys are case-sensitive
  EXPECT_THROW(keys.add_key(""), Error);
}

TEST(ApiKeys, BearerToken) {
  EXPECT_EQ(ApiKeys::bearer_token("Bearer k"), "k");
  EXPECT_EQ(ApiKeys::bearer_token("bearer k"), "k");
  EXPECT_EQ(ApiKeys::bearer_token("BEARER sk-abc.def_1"), "sk-abc.def_1");
  EXPECT_EQ(ApiKeys::bearer_token("Bearer   k  "), "k");
  EXPECT_EQ(ApiKeys::bearer_token("  Bearer\tk"), "k");
  EXPECT_EQ(ApiKeys::bearer_token(""), "");
  EXPECT_EQ(ApiKeys::bearer_token("Bearer"), "");
  EXPECT_EQ(ApiKeys::bearer_token("Bearer   "), "");
  EXPECT_EQ(ApiKeys::bearer_token("Basic dXNlcjpwYXNz"), "");
  EXPECT_EQ(ApiKeys::bearer_token("Bearerk"), "");
  EXPECT_EQ(ApiKeys::bearer_token("k"), "");
  EXPECT_EQ(ApiKeys::bearer_token("Bearer a b"), "");
}

}  // namespace
}  // namespace muse::server
