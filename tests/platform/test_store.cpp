// The operator's store (issue 8): every behaviour on SQLite (in memory and in a file)
// and on a real PostgreSQL server (started by scripts/test-postgres through the CTest
// fixture `postgres`; its URL is in the file MUSE_TEST_PG_URL_FILE names). Each
// PostgreSQL test gets its own schema in a database created for this test process.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include "muse/error.h"
#include "platform/store.h"

namespace muse::platform {
namespace {

namespace fs = std::filesystem;

std::string sha256_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", digest[i]);
    out += buf;
  }
  return out;
}

// --- PostgreSQL test database ------------------------------------------------------

// All rows of a query as text (test-only helper; the SQL here is fixed test text).
std::vector<std::vector<std::string>> pg_rows(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::vector<std::vector<std::string>> rows;
  if (PQstatus(conn) != CONNECTION_OK) {
    ADD_FAILURE() << "cannot connect to " << url << ": " << PQerrorMessage(conn);
    PQfinish(conn);
    return rows;
  }
  PGresult* r = PQexec(conn, sql.c_str());
  const auto status = PQresultStatus(r);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
  } else {
    for (int i = 0; i < PQntuples(r); ++i) {
      rows.emplace_back();
      for (int c = 0; c < PQnfields(r); ++c) rows.back().push_back(PQgetvalue(r, i, c));
    }
  }
  PQclear(r);
  PQfinish(conn);
  return rows;
}

// The server's URL (".../postgres"), or "" after recording a failure saying why.
std::string pg_server_url() {
  const char* file = std::getenv("MUSE_TEST_PG_URL_FILE");
  if (file == nullptr || *file == 0) {
    ADD_FAILURE() << "MUSE_TEST_PG_URL_FILE is not set: the PostgreSQL store tests need the "
                     "server that `ctest` starts (fixture `postgres`, scripts/test-postgres). "
                     "Run them through ctest, or start one by hand: scripts/test-postgres "
                     "start DIR; MUSE_TEST_PG_URL_FILE=DIR/url";
    return "";
  }
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  if (url.empty()) ADD_FAILURE() << "no PostgreSQL URL in " << file;
  return url;
}

// A database for this process, dropped when the tests end.
class PgDatabase : public ::testing::Environment {
 public:
  static std::string url() {  // "" when unavailable (a failure has been recorded)
    static const std::string db_url = create();
    return db_url;
  }
  void TearDown() override {
    if (!created_.empty())
      pg_rows(server_, "DROP DATABASE IF EXISTS " + created_ + " WITH (FORCE)");
  }

 private:
  static std::string create() {
    server_ = pg_server_url();
    if (server_.empty()) return "";
    const size_t slash = server_.rfind('/');
    if (slash == std::string::npos || slash < server_.find("://") + 3) {
      ADD_FAILURE() << "PostgreSQL URL " << server_ << " names no database";
      return "";
    }
    created_ = "muse_test_" + std::to_string(getpid()) + "_" + std::to_string(std::time(nullptr));
    pg_rows(server_, "DROP DATABASE IF EXISTS " + created_);
    pg_rows(server_, "CREATE DATABASE " + created_);
    return server_.substr(0, slash + 1) + created_;
  }
  static inline std::string server_, created_;
};

// A fresh, empty schema in the process's database; the URL selects it.
std::string fresh_pg_schema_url() {
  static std::atomic<int> counter{0};
  const std::string db = PgDatabase::url();
  if (db.empty()) return "";
  const std::string schema = "t" + std::to_string(counter++);
  pg_rows(db, "CREATE SCHEMA " + schema);
  return db + "?options=-csearch_path%3D" + schema;
}

// --- The fixture, over three backends ----------------------------------------------

std::string fresh_sqlite_file() {
  static std::atomic<int> counter{0};
  const fs::path dir = fs::path(MUSE_TEST_TMP) / "store";
  fs::create_directories(dir);
  const fs::path file =
      dir / ("store_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(file.string() + suffix);
  return file.string();
}

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    const std::string& backend = GetParam();
    if (backend == "sqlite_memory") {
      url_ = "sqlite::memory:";
    } else if (backend == "sqlite_file") {
      path_ = fresh_sqlite_file();
      url_ = "sqlite:" + path_;
    } else {
      url_ = fresh_pg_schema_url();
      ASSERT_FALSE(url_.empty()) << "no PostgreSQL server for the store tests";
    }
    store_ = Store::open(url_);
  }
  bool shared() const { return GetParam() != "sqlite_memory"; }  // a second open sees it

  // Every value of every row of a table, as text, read past the store.
  std::vector<std::string> raw_values(const std::string& table) {
    std::vector<std::string> out;
    if (GetParam() == "postgresql") {
      for (const auto& row : pg_rows(url_, "SELECT * FROM " + table))
        out.insert(out.end(), row.begin(), row.end());
    } else if (GetParam() == "sqlite_file") {
      sqlite3* db = nullptr;
      EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
      sqlite3_stmt* stmt = nullptr;
      EXPECT_EQ(sqlite3_prepare_v2(db, ("SELECT * FROM " + table).c_str(), -1, &stmt, nullptr),
                SQLITE_OK);
      while (sqlite3_step(stmt) == SQLITE_ROW)
        for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
          const auto* v = sqlite3_column_text(stmt, c);
          out.push_back(v != nullptr ? reinterpret_cast<const char*>(v) : "");
        }
      sqlite3_finalize(stmt);
      sqlite3_close(db);
    }
    return out;
  }

  Tier tier(const std::string& name, int64_t rpm, std::vector<std::string> models = {}) {
    Tier t;
    t.name = name;
    t.requests_per_minute = rpm;
    t.tokens_per_minute = rpm * 100;
    t.monthly_tokens = rpm * 10000;
    t.models = std::move(models);
    t.priority = static_cast<int>(rpm % 7);
    return t;
  }

  std::string url_, path_;
  std::unique_ptr<Store> store_;
};

constexpr int64_t kNow = 1767225600;  // 2026-01-01T00:00:00Z

TEST_P(StoreTest, Backend) {
  EXPECT_EQ(store_->backend(), GetParam() == "postgresql" ? "postgresql" : "sqlite");
}

TEST_P(StoreTest, TiersUpsertFindList) {
  EXPECT_TRUE(store_->tiers().empty());
  EXPECT_FALSE(store_->find_tier("free").has_value());
  store_->upsert_tier(tier("pro", 600, {"qwen", "glimmer"}));
  store_->upsert_tier(tier("free", 10));
  auto all = store_->tiers();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "free");  // sorted by name
  EXPECT_EQ(all[1].name, "pro");
  EXPECT_EQ(all[1].requests_per_minute, 600);
  EXPECT_EQ(all[1].tokens_per_minute, 60000);
  EXPECT_EQ(all[1].monthly_tokens, 6000000);
  EXPECT_EQ(all[1].models, (std::vector<std::string>{"qwen", "glimmer"}));
  EXPECT_EQ(all[1].priority, 600 % 7);
  EXPECT_TRUE(all[0].models.empty());
  // Upsert replaces every field.
  store_->upsert_tier(tier("pro", 5, {"x"}));
  const auto pro = store_->find_tier("pro");
  ASSERT_TRUE(pro.has_value());
  EXPECT_EQ(pro->requests_per_minute, 5);
  EXPECT_EQ(pro->monthly_tokens, 50000);
  EXPECT_EQ(pro->models, std::vector<std::string>{"x"});
  EXPECT_EQ(store_->tiers().size(), 2u);
  EXPECT_THROW(store_->upsert_tier(tier("", 1)), Error);
  EXPECT_THROW(store_->upsert_tier(tier("neg", -1)), Error);
}

TEST_P(StoreTest, CreateKeyStoresOnlyTheHash) {
  store_->upsert_tier(tier("free", 10));
  const IssuedKey a = store_->create_key("Ada's app", "free", 0, kNow);
  const IssuedKey b = store_->create_key("Bob", "free", kNow + 3600, kNow + 1);
  EXPECT_TRUE(std::regex_match(a.secret, std::regex("sk-muse-[A-Za-z0-9_-]{43}"))) << a.secret;
  EXPECT_TRUE(std::regex_match(a.info.id, std::regex("key_[0-9a-f]{16}"))) << a.info.id;
  EXPECT_NE(a.secret, b.secret);
  EXPECT_NE(a.info.id, b.info.id);
  EXPECT_EQ(a.info.prefix, a.secret.substr(0, a.info.prefix.size()));
  EXPECT_GE(a.info.prefix.size(), 9u);
  EXPECT_LT(a.info.prefix.size(), 16u);
  EXPECT_EQ(a.info.name, "Ada's app");
  EXPECT_EQ(a.info.tier, "free");
  EXPECT_EQ(a.info.created, kNow);
  EXPECT_THROW(store_->create_key("x", "no-such-tier", 0, kNow), Error);

  const auto keys = store_->keys();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].id, a.info.id);
  EXPECT_EQ(keys[1].id, b.info.id);
  EXPECT_EQ(keys[1].expires_at, kNow + 3600);
  EXPECT_EQ(keys[1].created, kNow + 1);
  const auto found = store_->find_key(b.info.id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "Bob");
  EXPECT_FALSE(store_->find_key("key_0000000000000000").has_value());

  if (GetParam() != "sqlite_memory") {
    const auto values = raw_values("api_keys");
    ASSERT_FALSE(values.empty());
    for (const auto& v : values) {
      EXPECT_EQ(v.find(a.secret), std::string::npos) << "the secret is stored: " << v;
      EXPECT_EQ(v.find(b.secret), std::string::npos) << "the secret is stored: " << v;
    }
    // Its SHA-256 is.
    EXPECT_NE(std::find(values.begin(), values.end(), sha256_hex(a.secret)), values.end());
  }
}

TEST_P(StoreTest, KeyForSecretRevokeAndExpiry) {
  store_->upsert_tier(tier("free", 10));
  const IssuedKey a = store_->create_key("a", "free", 0, kNow);
  const IssuedKey b = store_->create_key("b", "free", kNow + 100, kNow);
  auto found = store_->key_for_secret(a.secret);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, a.info.id);
  EXPECT_TRUE(found->active(kNow + 1000000));
  EXPECT_FALSE(store_->key_for_secret(a.secret + "x").has_value());
  EXPECT_FALSE(store_->key_for_secret("").has_value());
  EXPECT_FALSE(store_->key_for_secret(sha256_hex(a.secret)).has_value());

  // Expiry: active strictly before expires_at.
  found = store_->key_for_secret(b.secret);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->active(kNow + 99));
  EXPECT_FALSE(found->active(kNow + 100));

  EXPECT_TRUE(store_->revoke_key(a.info.id, kNow + 5));
  EXPECT_TRUE(store_->revoke_key(a.info.id, kNow + 9));  // again: still exists, first time kept
  EXPECT_FALSE(store_->revoke_key("key_ffffffffffffffff", kNow));
  found = store_->key_for_secret(a.secret);  // revoked keys are still found
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->revoked_at, kNow + 5);
  EXPECT_FALSE(found->active(kNow + 6));
  EXPECT_EQ(store_->find_key(b.info.id)->revoked_at, 0);
}

TEST_P(StoreTest, Waitlist) {
  store_->upsert_tier(tier("free", 10));
  const int64_t r1 = store_->add_access_request("Ada", "ada@example.com", "poems", kNow);
  const int64_t r2 = store_->add_access_request("Bob", "bob@example.com", "code", kNow + 1);
  const int64_t r3 = store_->add_access_request("Cy", "cy@example.com", "chat", kNow + 2);
  EXPECT_LT(r1, r2);
  EXPECT_LT(r2, r3);
  auto all = store_->access_requests();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, r1);
  EXPECT_EQ(all[0].name, "Ada");
  EXPECT_EQ(all[0].email, "ada@example.com");
  EXPECT_EQ(all[0].use_case, "poems");
  EXPECT_EQ(all[0].status, "pending");
  EXPECT_EQ(all[0].created, kNow);
  EXPECT_EQ(all[0].decided_at, 0);
  EXPECT_EQ(all[0].key_id, "");

  const IssuedKey key = store_->approve_access_request(r1, "free", kNow + 10);
  EXPECT_EQ(key.info.name, "Ada");
  EXPECT_EQ(key.info.tier, "free");
  const auto by_secret = store_->key_for_secret(key.secret);
  ASSERT_TRUE(by_secret.has_value());
  EXPECT_EQ(by_secret->id, key.info.id);
  EXPECT_THROW(store_->approve_access_request(r1, "free", kNow + 11), Error);  // twice
  EXPECT_THROW(store_->reject_access_request(r1, kNow + 11), Error);
  EXPECT_EQ(store_->keys().size(), 1u);  // the failed second approval issued nothing

  // An unknown tier fails and leaves the request pending, with no key (one transaction).
  EXPECT_THROW(store_->approve_access_request(r2, "gold", kNow + 12), Error);
  EXPECT_EQ(store_->keys().size(), 1u);
  store_->reject_access_request(r2, kNow + 13);
  EXPECT_THROW(store_->reject_access_request(r2, kNow + 14), Error);
  EXPECT_THROW(store_->approve_access_request(r2, "free", kNow + 14), Error);
  EXPECT_THROW(store_->approve_access_request(r3 + 100, "free", kNow), Error);
  EXPECT_THROW(store_->reject_access_request(r3 + 100, kNow), Error);

  const auto approved = store_->access_requests("approved");
  ASSERT_EQ(approved.size(), 1u);
  EXPECT_EQ(approved[0].id, r1);
  EXPECT_EQ(approved[0].decided_at, kNow + 10);
  EXPECT_EQ(approved[0].key_id, key.info.id);
  const auto rejected = store_->access_requests("rejected");
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].id, r2);
  EXPECT_EQ(rejected[0].decided_at, kNow + 13);
  EXPECT_EQ(rejected[0].key_id, "");
  const auto pending = store_->access_requests("pending");
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].id, r3);
  EXPECT_THROW(store_->access_requests("maybe"), Error);
}

TEST_P(StoreTest, AddToWindowIsAtomicAcrossThreads) {
  constexpr int kThreads = 8, kEach = 150;
  std::vector<std::vector<int64_t>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        seen[t].push_back(store_->add_to_window("k1", "requests", 60, 1));
    });
  for (auto& th : threads) th.join();
  // Every increment saw a distinct total: 1..N exactly once each.
  std::set<int64_t> totals;
  for (const auto& s : seen) totals.insert(s.begin(), s.end());
  EXPECT_EQ(totals.size(), size_t{kThreads * kEach});
  EXPECT_EQ(*totals.begin(), 1);
  EXPECT_EQ(*totals.rbegin(), kThreads * kEach);
  // Counters are per (key, kind, window).
  EXPECT_EQ(store_->add_to_window("k1", "requests", 60, 0), kThreads * kEach);
  EXPECT_EQ(store_->add_to_window("k1", "tokens", 60, 250), 250);
  EXPECT_EQ(store_->add_to_window("k1", "requests", 120, 1), 1);
  EXPECT_EQ(store_->add_to_window("k2", "requests", 60, 3), 3);
  EXPECT_EQ(store_->add_to_window("k1", "tokens", 60, 50), 300);
  EXPECT_THROW(store_->add_to_window("k1", "bytes", 60, 1), Error);
}

TEST_P(StoreTest, AddToWindowIsAtomicAcrossReplicas) {
  if (!shared()) GTEST_SKIP() << "an in-memory database cannot be shared";
  auto replica = Store::open(url_);  // a second Store on the same database
  constexpr int kThreads = 4, kEach = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      Store& s = t % 2 == 0 ? *store_ : *replica;
      for (int i = 0; i < kEach; ++i) s.add_to_window("shared", "tokens", 0, 7);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(replica->add_to_window("shared", "tokens", 0, 0), 7 * kThreads * kEach);
  EXPECT_EQ(store_->add_to_window("shared", "tokens", 0, 1), 7 * kThreads * kEach + 1);
}

UsageRow usage_row(const std::string& key, const std::string& model, const std::string& day,
                   int64_t prompt, int64_t completion, int64_t media = 0) {
  return UsageRow{key, model, day, 1, prompt, completion, media};
}

TEST_P(StoreTest, UsageAggregatesAndFilters) {
  store_->record_usage(usage_row("ka", "qwen", "2026-01-31", 10, 5, 1));
  store_->record_usage(usage_row("ka", "qwen", "2026-01-31", 20, 7, 2));
  store_->record_usage(usage_row("ka", "glimmer", "2026-02-01", 3, 4));
  store_->record_usage(usage_row("kb", "qwen", "2026-01-15", 100, 200));
  store_->record_usage(usage_row("ka", "qwen", "2025-12-31", 1000, 1000));

  const auto all = store_->usage("", "", "");
  ASSERT_EQ(all.size(), 4u);  // sorted by day, key, model
  EXPECT_EQ(all[0].day, "2025-12-31");
  EXPECT_EQ(all[1].key_id, "kb");
  EXPECT_EQ(all[2].key_id, "ka");
  EXPECT_EQ(all[2].model, "qwen");
  EXPECT_EQ(all[2].day, "2026-01-31");
  EXPECT_EQ(all[2].requests, 2);
  EXPECT_EQ(all[2].prompt_tokens, 30);
  EXPECT_EQ(all[2].completion_tokens, 12);
  EXPECT_EQ(all[2].media_inputs, 3);
  EXPECT_EQ(all[3].model, "glimmer");

  const auto ka = store_->usage("ka", "", "");
  EXPECT_EQ(ka.size(), 3u);
  for (const auto& r : ka) EXPECT_EQ(r.key_id, "ka");
  const auto january = store_->usage("", "2026-01-01", "2026-01-31");  // inclusive
  ASSERT_EQ(january.size(), 2u);
  EXPECT_EQ(january[0].day, "2026-01-15");
  EXPECT_EQ(january[1].day, "2026-01-31");
  EXPECT_EQ(store_->usage("", "2026-02-01", "").size(), 1u);
  EXPECT_EQ(store_->usage("", "", "2025-12-31").size(), 1u);
  EXPECT_EQ(store_->usage("kc", "", "").size(), 0u);

  EXPECT_EQ(store_->tokens_in_month("ka", "2026-01"), 30 + 12);
  EXPECT_EQ(store_->tokens_in_month("ka", "2026-02"), 7);
  EXPECT_EQ(store_->tokens_in_month("ka", "2025-12"), 2000);
  EXPECT_EQ(store_->tokens_in_month("kb", "2026-01"), 300);
  EXPECT_EQ(store_->tokens_in_month("kc", "2026-01"), 0);
  EXPECT_THROW(store_->tokens_in_month("ka", "January"), Error);
}

TEST_P(StoreTest, MirrorRecordsRoundTripInOrder) {
  EXPECT_TRUE(store_->mirror_records().empty());
  std::vector<nlohmann::json> records;
  for (int i = 0; i < 12; ++i)
    records.push_back(
        {{"i", i},
         {"request", {{"messages", {{{"role", "user"}, {"content", "héllo ✓ 'q'"}}}}}},
         {"primary", {{"model", "a"}, {"latency_ms", 12.5 + i}}},
         {"candidate", nullptr}});
  for (const auto& r : records) store_->add_mirror_record(r);
  EXPECT_EQ(store_->mirror_records(), records);
}

TEST_P(StoreTest, ValuesAreNeverSql) {
  const std::string evil = "x'); DROP TABLE api_keys; --";
  store_->upsert_tier(tier(evil, 1));
  const IssuedKey k = store_->create_key(evil, evil, 0, kNow);
  EXPECT_EQ(store_->find_key(k.info.id)->name, evil);
  EXPECT_EQ(store_->keys().size(), 1u);
  const int64_t id = store_->add_access_request(evil, evil, evil, kNow);
  EXPECT_EQ(store_->access_requests()[0].use_case, evil);
  EXPECT_EQ(store_->access_requests()[0].id, id);
}

TEST_P(StoreTest, DataPersistsWhenReopened) {
  if (!shared()) GTEST_SKIP() << "an in-memory database does not outlive its store";
  store_->upsert_tier(tier("free", 10));
  const IssuedKey k = store_->create_key("a", "free", 0, kNow);
  store_->add_access_request("Ada", "a@b", "c", kNow);
  store_->record_usage(usage_row(k.info.id, "m", "2026-01-01", 1, 2));
  store_->add_mirror_record({{"n", 1}});
  store_.reset();
  auto reopened = Store::open(url_);
  EXPECT_EQ(reopened->tiers().size(), 1u);
  ASSERT_TRUE(reopened->key_for_secret(k.secret).has_value());
  EXPECT_EQ(reopened->access_requests().size(), 1u);
  EXPECT_EQ(reopened->tokens_in_month(k.info.id, "2026-01"), 3);
  EXPECT_EQ(reopened->mirror_records().size(), 1u);
  // The ids continue after the existing ones.
  EXPECT_GT(reopened->add_access_request("Bob", "b@c", "d", kNow),
            reopened->access_requests()[0].id);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values("sqlite_memory", "sqlite_file", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST(StoreOpen, BadUrlsThrow) {
  EXPECT_THROW(Store::open(""), Error);
  EXPECT_THROW(Store::open("mysql://localhost/x"), Error);
  EXPECT_THROW(Store::open("sqlite:"), Error);
  EXPECT_THROW(Store::open("sqlite:/nonexistent-dir/deeper/muse.db"), Error);
  // Port 1 on loopback: refused at once.
  EXPECT_THROW(Store::open("postgresql://postgres@127.0.0.1:1/postgres"), Error);
  EXPECT_THROW(Store::open("postgres://[not a url"), Error);
  EXPECT_THROW(Store::open("postgresql://u@127.0.0.1:1/db?sslmode=bogus"), Error);
  try {
    Store::open("postgresql://user:hunter2@127.0.0.1:1/postgres");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("PostgreSQL"), std::string::npos) << what;
    EXPECT_EQ(what.find("hunter2"), std::string::npos) << "the password is in the error: " << what;
  }
}

TEST(StoreOpen, PlainPathAndSqlitePrefixAreSqlite) {
  const std::string path = fresh_sqlite_file();
  {
    auto s = Store::open(path);
    EXPECT_EQ(s->backend(), "sqlite");
    s->add_mirror_record({{"x", 1}});
  }
  EXPECT_EQ(Store::open("sqlite:" + path)->mirror_records().size(), 1u);
}

TEST(StoreOpen, UnknownDatabaseOnTheServerThrows) {
  const std::string db = PgDatabase::url();
  ASSERT_FALSE(db.empty());
  const std::string missing = db.substr(0, db.rfind('/') + 1) + "no_such_database_here";
  EXPECT_THROW(Store::open(missing), Error);
}

}  // namespace
}  // namespace muse::platform

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new muse::platform::PgDatabase);
  return RUN_ALL_TESTS();
}
