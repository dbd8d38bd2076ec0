// The operator's store: tiers, API keys (hashed), the access-request waitlist,
// rate-limit windows, usage and mirror records. Two backends with one schema and one
// behaviour: SQLite (embedded, the default) and PostgreSQL (libpq; several `muse
// serve` replicas share one store, so limits hold across them). Every method is
// thread-safe and atomic on its own; counters are updated with single statements
// (INSERT ... ON CONFLICT ... DO UPDATE ... RETURNING), never read-modify-write.
//
// Times are unix seconds (UTC). Errors (unreachable database, bad URL, a name that
// does not exist where one must) throw muse::Error naming the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace muse::platform {

// Limits of a tier; 0 means unlimited.
struct Tier {
  std::string name;
  int64_t requests_per_minute = 0;
  int64_t tokens_per_minute = 0;   // prompt + completion tokens
  int64_t monthly_tokens = 0;      // quota per calendar month (UTC)
  std::vector<std::string> models; // allowed model names; empty = all
  int priority = 0;                // higher is scheduled first when the server is saturated
};

struct ApiKeyInfo {
  std::string id;       // public identifier ("key_" + 16 hex), safe to log and show
  std::string name;     // the customer / purpose it was issued for
  std::string tier;
  std::string prefix;   // first characters of the secret, for recognising it in lists
  int64_t created = 0;
  int64_t expires_at = 0;  // 0: never
  int64_t revoked_at = 0;  // 0: not revoked
  bool active(int64_t now) const { return revoked_at == 0 && (expires_at == 0 || now < expires_at); }
};

// A newly created key: the secret is returned once and only its SHA-256 is stored.
struct IssuedKey {
  ApiKeyInfo info;
  std::string secret;  // "sk-muse-" + 43 base64url characters (256 random bits)
};

struct AccessRequest {
  int64_t id = 0;
  std::string name, email, use_case;
  std::string status;  // "pending", "approved", "rejected"
  int64_t created = 0;
  int64_t decided_at = 0;  // 0 while pending
  std::string key_id;      // the key issued on approval
};

// Usage of one key on one model on one day (UTC, "YYYY-MM-DD"); record_usage adds.
struct UsageRow {
  std::string key_id, model, day;
  int64_t requests = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t media_inputs = 0;  // images + audio clips
};

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite:PATH" or a plain path (SQLite, file created with the schema when new;
  // ":memory:" for tests) or "postgresql://..." / "postgres://..." (libpq connection
  // URI; schema created if missing). Throws muse::Error when it cannot connect.
  static std::unique_ptr<Store> open(const std::string& url);

  virtual std::string backend() const = 0;  // "sqlite" or "postgresql"

  // Tiers. upsert replaces a tier of the same name.
  virtual void upsert_tier(const Tier& tier) = 0;
  virtual std::optional<Tier> find_tier(const std::string& name) = 0;
  virtual std::vector<Tier> tiers() = 0;

  // Keys. create_key throws if the tier does not exist.
  virtual IssuedKey create_key(const std::string& name, const std::string& tier,
                               int64_t expires_at, int64_t now) = 0;
  virtual std::vector<ApiKeyInfo> keys() = 0;
  virtual std::optional<ApiKeyInfo> find_key(const std::string& id) = 0;
  virtual bool revoke_key(const std::string& id, int64_t now) = 0;  // false: no such key
  // The key whose secret this is, if it exists (active or not: the caller decides
  // what an expired or revoked key gets). Compares hashes, never secrets.
  virtual std::optional<ApiKeyInfo> key_for_secret(const std::string& secret) = 0;

  // The waitlist. approve issues a key of `tier` named after the applicant.
  virtual int64_t add_access_request(const std::string& name, const std::string& email,
                                     const std::string& use_case, int64_t now) = 0;
  virtual std::vector<AccessRequest> access_requests(const std::string& status = "") = 0;
  virtual IssuedKey approve_access_request(int64_t id, const std::string& tier, int64_t now) = 0;
  virtual void reject_access_request(int64_t id, int64_t now) = 0;

  // Adds `amount` to the counter (key, kind, window) and returns its new total, in one
  // atomic statement (shared by every replica on the same database). kind is
  // "requests" or "tokens"; window is the start of a fixed window (unix seconds).
  virtual int64_t add_to_window(const std::string& key_id, const std::string& kind,
                                int64_t window, int64_t amount) = 0;

  // Usage: record_usage adds the row's numbers to the (key, model, day) totals.
  virtual void record_usage(const UsageRow& delta) = 0;
  // Rows with day in [from_day, to_day] (inclusive; "" = unbounded), key "" = all.
  virtual std::vector<UsageRow> usage(const std::string& key_id, const std::string& from_day,
                                      const std::string& to_day) = 0;
  // prompt + completion tokens of a key in a month ("YYYY-MM").
  virtual int64_t tokens_in_month(const std::string& key_id, const std::string& month) = 0;

  // Mirror records (request, both outputs, latencies, token counts, model ids, time),
  // stored as JSON documents in arrival order.
  virtual void add_mirror_record(const nlohmann::json& record) = 0;
  virtual std::vector<nlohmann::json> mirror_records() = 0;
};

// "YYYY-MM-DD" / "YYYY-MM" of a unix time (UTC).
std::string utc_day(int64_t unix_seconds);
std::string utc_month(int64_t unix_seconds);

}  // namespace muse::platform
