// The store's logic, written once over the SQL interface of store_sql.h; the backends
// (store_sqlite.cpp, store_postgres.cpp) only run statements. Every method is one
// statement or one transaction, so it is atomic on its own and across replicas.
#include "platform/store.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <functional>
#include <tuple>

#include "muse/error.h"
#include "platform/store_sql.h"

namespace muse::platform {

namespace sql {

std::string schema_sql(const std::string& id_column_type) {
  std::string s = R"SQL(
CREATE TABLE IF NOT EXISTS tiers (
  name TEXT PRIMARY KEY,
  requests_per_minute BIGINT NOT NULL,
  tokens_per_minute BIGINT NOT NULL,
  monthly_tokens BIGINT NOT NULL,
  models TEXT NOT NULL,
  priority BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  tier TEXT NOT NULL,
  prefix TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL UNIQUE,
  created BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_requests (
  id {ID},
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  use_case TEXT NOT NULL,
  status TEXT NOT NULL,
  created BIGINT NOT NULL,
  decided_at BIGINT NOT NULL,
  key_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_windows (
  key_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  window_start BIGINT NOT NULL,
  total BIGINT NOT NULL,
  PRIMARY KEY (key_id, kind, window_start)
);
CREATE TABLE IF NOT EXISTS usage_daily (
  key_id TEXT NOT NULL,
  model TEXT NOT NULL,
  day TEXT NOT NULL,
  requests BIGINT NOT NULL,
  prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL,
  media_inputs BIGINT NOT NULL,
  PRIMARY KEY (key_id, model, day)
);
CREATE TABLE IF NOT EXISTS mirror_records (
  id {ID},
  record TEXT NOT NULL
);
)SQL";
  const std::string placeholder = "{ID}";
  for (size_t at; (at = s.find(placeholder)) != std::string::npos;)
    s.replace(at, placeholder.size(), id_column_type);
  return s;
}

}  // namespace sql

namespace {

int64_t to_int(const std::string& text) {
  return text.empty() ? 0 : std::stoll(text);
}

std::string hex(const unsigned char* data, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

void random_bytes(unsigned char* out, int n) {
  MUSE_CHECK(RAND_bytes(out, n) == 1, "store: the system random number generator failed");
}

std::string sha256_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  MUSE_CHECK(EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr) == 1,
             "store: SHA-256 failed");
  return hex(digest, len);
}

// "sk-muse-" + base64url (no padding) of 256 random bits: 43 characters.
std::string new_secret() {
  unsigned char raw[32];
  random_bytes(raw, sizeof raw);
  unsigned char b64[64];
  const int n = EVP_EncodeBlock(b64, raw, sizeof raw);
  std::string out = "sk-muse-";
  for (int i = 0; i < n; ++i) {
    const char c = static_cast<char>(b64[i]);
    if (c == '=') break;
    out += c == '+' ? '-' : c == '/' ? '_' : c;
  }
  return out;
}

std::string new_key_id() {
  unsigned char raw[8];
  random_bytes(raw, sizeof raw);
  return "key_" + hex(raw, sizeof raw);
}

constexpr size_t kPrefixLength = 12;  // "sk-muse-" and 4 random characters

const char* kKeyColumns = "id, name, tier, prefix, created, expires_at, revoked_at";
ApiKeyInfo key_from_row(const sql::Row& r) {
  ApiKeyInfo k;
  k.id = r[0];
  k.name = r[1];
  k.tier = r[2];
  k.prefix = r[3];
  k.created = to_int(r[4]);
  k.expires_at = to_int(r[5]);
  k.revoked_at = to_int(r[6]);
  return k;
}

const char* kTierColumns =
    "name, requests_per_minute, tokens_per_minute, monthly_tokens, models, priority";
Tier tier_from_row(const sql::Row& r) {
  Tier t;
  t.name = r[0];
  t.requests_per_minute = to_int(r[1]);
  t.tokens_per_minute = to_int(r[2]);
  t.monthly_tokens = to_int(r[3]);
  const auto models = nlohmann::json::parse(r[4].empty() ? "[]" : r[4], nullptr, false);
  if (models.is_array())
    for (const auto& m : models)
      if (m.is_string()) t.models.push_back(m.get<std::string>());
  t.priority = static_cast<int>(to_int(r[5]));
  return t;
}

const char* kRequestColumns = "id, name, email, use_case, status, created, decided_at, key_id";
AccessRequest request_from_row(const sql::Row& r) {
  AccessRequest a;
  a.id = to_int(r[0]);
  a.name = r[1];
  a.email = r[2];
  a.use_case = r[3];
  a.status = r[4];
  a.created = to_int(r[5]);
  a.decided_at = to_int(r[6]);
  a.key_id = r[7];
  return a;
}

class SqlStore final : public Store {
 public:
  explicit SqlStore(std::unique_ptr<sql::Database> db) : db_(std::move(db)) {}

  std::string backend() const override { return db_->backend(); }

  void upsert_tier(const Tier& t) override {
    MUSE_CHECK(!t.name.empty(), "store: a tier needs a name");
    MUSE_CHECK(t.requests_per_minute >= 0 && t.tokens_per_minute >= 0 && t.monthly_tokens >= 0,
               "store: tier '", t.name, "' has a negative limit");
    query(
        "INSERT INTO tiers (name, requests_per_minute, tokens_per_minute, monthly_tokens, "
        "models, priority) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET "
        "requests_per_minute = excluded.requests_per_minute, "
        "tokens_per_minute = excluded.tokens_per_minute, "
        "monthly_tokens = excluded.monthly_tokens, models = excluded.models, "
        "priority = excluded.priority",
        {t.name, t.requests_per_minute, t.tokens_per_minute, t.monthly_tokens,
         nlohmann::json(t.models).dump(), int64_t{t.priority}});
  }

  std::optional<Tier> find_tier(const std::string& name) override {
    const auto rows =
        query(std::string("SELECT ") + kTierColumns + " FROM tiers WHERE name = $1", {name});
    if (rows.empty()) return std::nullopt;
    return tier_from_row(rows[0]);
  }

  std::vector<Tier> tiers() override {
    std::vector<Tier> out;
    for (const auto& r : query(std::string("SELECT ") + kTierColumns + " FROM tiers", {}))
      out.push_back(tier_from_row(r));
    std::sort(out.begin(), out.end(), [](const Tier& a, const Tier& b) { return a.name < b.name; });
    return out;
  }

  IssuedKey create_key(const std::string& name, const std::string& tier, int64_t expires_at,
                       int64_t now) override {
    IssuedKey issued;
    db_->with_connection(
        [&](sql::Connection& c) { issued = insert_key(c, name, tier, expires_at, now); });
    return issued;
  }

  std::vector<ApiKeyInfo> keys() override {
    std::vector<ApiKeyInfo> out;
    for (const auto& r : query(std::string("SELECT ") + kKeyColumns + " FROM api_keys", {}))
      out.push_back(key_from_row(r));
    std::sort(out.begin(), out.end(), [](const ApiKeyInfo& a, const ApiKeyInfo& b) {
      return a.created != b.created ? a.created < b.created : a.id < b.id;
    });
    return out;
  }

  std::optional<ApiKeyInfo> find_key(const std::string& id) override {
    const auto rows =
        query(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE id = $1", {id});
    if (rows.empty()) return std::nullopt;
    return key_from_row(rows[0]);
  }

  bool revoke_key(const std::string& id, int64_t now) override {
    // Revoking twice keeps the first time; the key exists either way.
    query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0", {id, now});
    return find_key(id).has_value();
  }

  std::optional<ApiKeyInfo> key_for_secret(const std::string& secret) override {
    const auto rows =
        query(std::string("SELECT ") + kKeyColumns + " FROM api_keys WHERE secret_sha256 = $1",
              {sha256_hex(secret)});
    if (rows.empty()) return std::nullopt;
    return key_from_row(rows[0]);
  }

  int64_t add_access_request(const std::string& name, const std::string& email,
                             const std::string& use_case, int64_t now) override {
    const auto rows = query(
        "INSERT INTO access_requests (name, email, use_case, status, created, decided_at, "
        "key_id) VALUES ($1, $2, $3, 'pending', $4, 0, '') RETURNING id",
        {name, email, use_case, now});
    MUSE_CHECK(rows.size() == 1, "store: inserting an access request returned no id");
    return to_int(rows[0][0]);
  }

  std::vector<AccessRequest> access_requests(const std::string& status) override {
    MUSE_CHECK(
        status.empty() || status == "pending" || status == "approved" || status == "rejected",
        "store: unknown access request status '", status, "' (pending, approved or rejected)");
    std::vector<AccessRequest> out;
    for (const auto& r : query(std::string("SELECT ") + kRequestColumns +
                                   " FROM access_requests WHERE ($1 = '' OR status = $1) "
                                   "ORDER BY id",
                               {status}))
      out.push_back(request_from_row(r));
    return out;
  }

  IssuedKey approve_access_request(int64_t id, const std::string& tier, int64_t now) override {
    IssuedKey issued;
    in_transaction([&](sql::Connection& c) {
      const auto rows = c.query(
          std::string("SELECT ") + kRequestColumns + " FROM access_requests WHERE id = $1", {id});
      MUSE_CHECK(!rows.empty(), "store: access request ", id, " does not exist");
      const AccessRequest request = request_from_row(rows[0]);
      MUSE_CHECK(request.status == "pending", "store: access request ", id, " is already ",
                 request.status);
      issued = insert_key(c, request.name, tier, 0, now);
      // The status condition makes a concurrent second approval (another replica) fail.
      const auto updated = c.query(
          "UPDATE access_requests SET status = 'approved', decided_at = $2, key_id = $3 "
          "WHERE id = $1 AND status = 'pending' RETURNING id",
          {id, now, issued.info.id});
      MUSE_CHECK(updated.size() == 1, "store: access request ", id, " was decided meanwhile");
    });
    return issued;
  }

  void reject_access_request(int64_t id, int64_t now) override {
    in_transaction([&](sql::Connection& c) {
      const auto rows = c.query("SELECT status FROM access_requests WHERE id = $1", {id});
      MUSE_CHECK(!rows.empty(), "store: access request ", id, " does not exist");
      MUSE_CHECK(rows[0][0] == "pending", "store: access request ", id, " is already ", rows[0][0]);
      const auto updated = c.query(
          "UPDATE access_requests SET status = 'rejected', decided_at = $2 "
          "WHERE id = $1 AND status = 'pending' RETURNING id",
          {id, now});
      MUSE_CHECK(updated.size() == 1, "store: access request ", id, " was decided meanwhile");
    });
  }

  int64_t add_to_window(const std::string& key_id, const std::string& kind, int64_t window,
                        int64_t amount) override {
    MUSE_CHECK(kind == "requests" || kind == "tokens", "store: unknown rate window kind '", kind,
               "' (requests or tokens)");
    const auto rows = query(
        "INSERT INTO rate_windows (key_id, kind, window_start, total) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (key_id, kind, window_start) DO UPDATE SET "
        "total = rate_windows.total + excluded.total RETURNING total",
        {key_id, kind, window, amount});
    MUSE_CHECK(rows.size() == 1, "store: updating a rate window returned no total");
    return to_int(rows[0][0]);
  }

  void record_usage(const UsageRow& d) override {
    query(
        "INSERT INTO usage_daily (key_id, model, day, requests, prompt_tokens, "
        "completion_tokens, media_inputs) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (key_id, model, day) DO UPDATE SET "
        "requests = usage_daily.requests + excluded.requests, "
        "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, "
        "media_inputs = usage_daily.media_inputs + excluded.media_inputs",
        {d.key_id, d.model, d.day, d.requests, d.prompt_tokens, d.completion_tokens,
         d.media_inputs});
  }

  std::vector<UsageRow> usage(const std::string& key_id, const std::string& from_day,
                              const std::string& to_day) override {
    std::vector<UsageRow> out;
    for (const auto& r :
         query("SELECT key_id, model, day, requests, prompt_tokens, completion_tokens, "
               "media_inputs FROM usage_daily WHERE ($1 = '' OR key_id = $1) "
               "AND ($2 = '' OR day >= $2) AND ($3 = '' OR day <= $3)",
               {key_id, from_day, to_day})) {
      UsageRow u;
      u.key_id = r[0];
      u.model = r[1];
      u.day = r[2];
      u.requests = to_int(r[3]);
      u.prompt_tokens = to_int(r[4]);
      u.completion_tokens = to_int(r[5]);
      u.media_inputs = to_int(r[6]);
      out.push_back(std::move(u));
    }
    // Sorted here, not in SQL: the two databases' text collations may differ.
    std::sort(out.begin(), out.end(), [](const UsageRow& a, const UsageRow& b) {
      return std::tie(a.day, a.key_id, a.model) < std::tie(b.day, b.key_id, b.model);
    });
    return out;
  }

  int64_t tokens_in_month(const std::string& key_id, const std::string& month) override {
    MUSE_CHECK(month.size() == 7 && month[4] == '-', "store: month '", month, "' is not YYYY-MM");
    const auto rows = query(
        "SELECT CAST(COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS BIGINT) "
        "FROM usage_daily WHERE key_id = $1 AND day >= $2 AND day <= $3",
        {key_id, month + "-01", month + "-31"});
    return rows.empty() ? 0 : to_int(rows[0][0]);
  }

  void add_mirror_record(const nlohmann::json& record) override {
    query("INSERT INTO mirror_records (record) VALUES ($1)", {record.dump()});
  }

  std::vector<nlohmann::json> mirror_records() override {
    std::vector<nlohmann::json> out;
    for (const auto& r : query("SELECT record FROM mirror_records ORDER BY id", {})) {
      auto doc = nlohmann::json::parse(r[0], nullptr, false);
      MUSE_CHECK(!doc.is_discarded(), "store: a stored mirror record is not valid JSON");
      out.push_back(std::move(doc));
    }
    return out;
  }

 private:
  std::vector<sql::Row> query(const std::string& text, const std::vector<sql::Param>& params) {
    std::vector<sql::Row> rows;
    db_->with_connection([&](sql::Connection& c) { rows = c.query(text, params); });
    return rows;
  }

  void in_transaction(const std::function<void(sql::Connection&)>& fn) {
    db_->with_connection([&](sql::Connection& c) {
      c.begin();
      try {
        fn(c);
        c.commit();
      } catch (...) {
        c.rollback();
        throw;
      }
    });
  }

  static IssuedKey insert_key(sql::Connection& c, const std::string& name, const std::string& tier,
                              int64_t expires_at, int64_t now) {
    MUSE_CHECK(expires_at >= 0, "store: a key's expiry must not be negative");
    MUSE_CHECK(!c.query("SELECT name FROM tiers WHERE name = $1", {tier}).empty(), "store: tier '",
               tier, "' does not exist");
    IssuedKey issued;
    issued.secret = new_secret();
    ApiKeyInfo& k = issued.info;
    k.id = new_key_id();
    k.name = name;
    k.tier = tier;
    k.prefix = issued.secret.substr(0, kPrefixLength);
    k.created = now;
    k.expires_at = expires_at;
    c.query(
        "INSERT INTO api_keys (id, name, tier, prefix, secret_sha256, created, expires_at, "
        "revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
        {k.id, k.name, k.tier, k.prefix, sha256_hex(issued.secret), k.created, k.expires_at});
    return issued;
  }

  std::unique_ptr<sql::Database> db_;
};

}  // namespace

std::unique_ptr<Store> Store::open(const std::string& url) {
  MUSE_CHECK(!url.empty(), "store: empty store URL");
  const auto starts_with = [&](const char* p) { return url.rfind(p, 0) == 0; };
  if (starts_with("postgresql://") || starts_with("postgres://"))
    return std::make_unique<SqlStore>(sql::open_postgres(url));
  std::string path = url;
  if (starts_with("sqlite:")) {
    path = url.substr(7);
    if (path.rfind("//", 0) == 0) path = path.substr(2);  // "sqlite://PATH"
  } else {
    MUSE_CHECK(url.find("://") == std::string::npos, "store: unsupported store URL '", url,
               "' (sqlite:PATH, a path, or postgresql://...)");
  }
  MUSE_CHECK(!path.empty(), "store: store URL '", url, "' names no file");
  return std::make_unique<SqlStore>(sql::open_sqlite(path));
}

}  // namespace muse::platform
