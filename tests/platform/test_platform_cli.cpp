// The operator's CLI (`muse keys|tiers|access|usage`), run as a program on a temporary
// SQLite store; what it writes is checked through the store API and its output.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "platform/store.h"

namespace muse::platform {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;
  std::string out, err;
};

std::string muse_bin() {
  const char* env = std::getenv("MUSE_BIN");  // an explicit binary wins (as in the Node tests)
  return env != nullptr && *env != 0 ? env : std::string(MUSE_BIN_DIR) + "/muse";
}

std::string shell_quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class PlatformCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(MUSE_TEST_TMP) / ("platform_cli_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_url_ = "sqlite:" + (dir_ / "muse.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `muse ARGS --store URL` (or with `env` before it and no --store).
  Result muse(const std::vector<std::string>& args, bool with_store = true,
              const std::string& env = "") {
    std::string cmd = env + (env.empty() ? "" : " ") + shell_quoted(muse_bin());
    for (const auto& a : args) cmd.append(" ").append(shell_quoted(a));
    if (with_store) cmd.append(" --store ").append(shell_quoted(store_url_));
    const fs::path err_file = dir_ / "stderr.txt";
    cmd.append(" 2>").append(shell_quoted(err_file.string()));
    Result r;
    FILE* pipe = popen(cmd.c_str(), "r");
    if (pipe == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
    const int raw = pclose(pipe);
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    std::ifstream in(err_file);
    r.err.assign(std::istreambuf_iterator<char>(in), {});
    return r;
  }

  std::unique_ptr<Store> open() { return Store::open(store_url_); }

  static std::string field(const std::string& out, const std::string& name) {
    std::smatch m;
    if (std::regex_search(out, m, std::regex("(^|\n)" + name + ":\\s*(\\S+)"))) return m[2];
    return "";
  }

  fs::path dir_;
  std::string store_url_;
};

TEST_F(PlatformCli, TiersSetAndList) {
  Result r = muse({"tiers", "set", "free", "--rpm", "10", "--tpm", "1000", "--monthly-tokens",
                   "50000", "--models", "qwen,glimmer", "--priority", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  auto tier = open()->find_tier("free");
  ASSERT_TRUE(tier.has_value());
  EXPECT_EQ(tier->requests_per_minute, 10);
  EXPECT_EQ(tier->tokens_per_minute, 1000);
  EXPECT_EQ(tier->monthly_tokens, 50000);
  EXPECT_EQ(tier->models, (std::vector<std::string>{"qwen", "glimmer"}));
  EXPECT_EQ(tier->priority, 2);
  // Setting one option keeps the others.
  ASSERT_EQ(muse({"tiers", "set", "free", "--rpm", "20"}).status, 0);
  tier = open()->find_tier("free");
  EXPECT_EQ(tier->requests_per_minute, 20);
  EXPECT_EQ(tier->monthly_tokens, 50000);
  EXPECT_EQ(tier->models.size(), 2u);

  r = muse({"tiers", "list"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(std::regex_search(r.out, std::regex("\nfree +20 +1000 +50000 +2 +qwen,glimmer\n")))
      << r.out;
  EXPECT_NE(muse({"tiers", "set", "bad", "--rpm", "-1"}).status, 0);
}

TEST_F(PlatformCli, KeysCreateListRevoke) {
  ASSERT_EQ(muse({"tiers", "set", "free", "--rpm", "10"}).status, 0);
  const int64_t before = static_cast<int64_t>(std::time(nullptr));
  Result r = muse({"keys", "create", "--name", "Ada", "--tier", "free", "--expires-in-days", "30"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string id = field(r.out, "id"), secret = field(r.out, "secret");
  EXPECT_TRUE(std::regex_match(id, std::regex("key_[0-9a-f]{16}"))) << r.out;
  EXPECT_TRUE(std::regex_match(secret, std::regex("sk-muse-[A-Za-z0-9_-]{43}"))) << r.out;
  EXPECT_NE(r.err.find("not shown again"), std::string::npos) << r.err;
  const auto key = open()->key_for_secret(secret);
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->id, id);
  EXPECT_EQ(key->name, "Ada");
  EXPECT_GE(key->expires_at, before + 30 * 86400);
  EXPECT_LE(key->expires_at, before + 30 * 86400 + 60);

  r = muse({"keys", "list"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(id), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(secret.substr(0, 12) + "..."), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(secret), std::string::npos) << "list shows the secret: " << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(id + " +Ada +free .* active\n"))) << r.out;

  r = muse({"keys", "revoke", id});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "revoked " + id + "\n");
  EXPECT_NE(open()->find_key(id)->revoked_at, 0);
  EXPECT_TRUE(std::regex_search(muse({"keys", "list"}).out, std::regex(id + " .* revoked\n")));

  r = muse({"keys", "revoke", "key_0000000000000000"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no key 'key_0000000000000000'"), std::string::npos) << r.err;
  r = muse({"keys", "create", "--name", "x", "--tier", "gold"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("tier 'gold' does not exist"), std::string::npos) << r.err;
}

TEST_F(PlatformCli, AccessListApproveReject) {
  ASSERT_EQ(muse({"tiers", "set", "free"}).status, 0);
  int64_t ada = 0, bob = 0;
  {
    auto s = open();
    ada = s->add_access_request("Ada", "ada@example.com", "poems", 1767225600);
    bob = s->add_access_request("Bob", "bob@example.com", "code", 1767225700);
  }
  Result r = muse({"access", "list", "--status", "pending"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex("\n" + std::to_string(ada) +
                        " +pending +Ada +ada@example.com +2026-01-01T00:00:00Z +- +poems\n")))
      << r.out;

  r = muse({"access", "approve", std::to_string(ada), "--tier", "free"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string secret = field(r.out, "secret");
  const auto key = open()->key_for_secret(secret);
  ASSERT_TRUE(key.has_value()) << r.out;
  EXPECT_EQ(key->name, "Ada");
  EXPECT_EQ(field(r.out, "id"), key->id);
  r = muse({"access", "approve", std::to_string(ada), "--tier", "free"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("already approved"), std::string::npos) << r.err;

  r = muse({"access", "reject", std::to_string(bob)});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "rejected access request " + std::to_string(bob) + "\n");
  r = muse({"access", "list"});
  EXPECT_TRUE(std::regex_search(r.out, std::regex(" approved +Ada .* " + key->id + " +poems\n")))
      << r.out;
  EXPECT_TRUE(std::regex_search(r.out, std::regex(" rejected +Bob "))) << r.out;
  r = muse({"access", "list", "--status", "pending"});
  EXPECT_EQ(r.out.find("Ada"), std::string::npos) << r.out;
}

TEST_F(PlatformCli, UsageTableAndJson) {
  {
    auto s = open();
    s->record_usage({"key_a", "qwen", "2026-01-02", 1, 10, 5, 1});
    s->record_usage({"key_a", "qwen", "2026-01-02", 1, 20, 7, 0});
    s->record_usage({"key_a", "glimmer", "2026-01-03", 1, 3, 4, 2});
    s->record_usage({"key_b", "qwen", "2026-01-05", 1, 100, 200, 0});
  }
  Result r = muse({"usage", "--key", "key_a", "--from", "2026-01-01", "--to", "2026-01-31"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "KEY    MODEL    DAY         REQUESTS  PROMPT  COMPLETION  MEDIA\n"
            "key_a  qwen     2026-01-02  2         30      12          1\n"
            "key_a  glimmer  2026-01-03  1         3       4           2\n"
            "TOTAL                       3         33      16          3\n");

  r = muse({"usage", "--from", "2026-01-04", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto json = nlohmann::json::parse(r.out);
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(json[0]["key_id"], "key_b");
  EXPECT_EQ(json[0]["model"], "qwen");
  EXPECT_EQ(json[0]["day"], "2026-01-05");
  EXPECT_EQ(json[0]["requests"], 1);
  EXPECT_EQ(json[0]["prompt_tokens"], 100);
  EXPECT_EQ(json[0]["completion_tokens"], 200);
  EXPECT_EQ(json[0]["media_inputs"], 0);

  r = muse({"usage", "--from", "January"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--from 'January' is not a day"), std::string::npos) << r.err;
}

TEST_F(PlatformCli, StoreFromEnvironment) {
  Result r = muse({"tiers", "set", "envtier"}, false, "MUSE_STORE=" + shell_quoted(store_url_));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(open()->find_tier("envtier").has_value());
  r = muse({"tiers", "list"}, false, "MUSE_STORE=" + shell_quoted("postgresql://u@127.0.0.1:1/x"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("PostgreSQL"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace muse::platform
