// The PostgreSQL backend (libpq): a small pool of connections, each used by one thread
// at a time; every statement is sent with PQexecParams (values never enter SQL text).
// Several `muse serve` replicas sharing the database get atomic counters from the
// single-statement upserts in store.cpp.
#include <libpq-fe.h>

#include <condition_variable>
#include <mutex>

#include "muse/error.h"
#include "platform/store_sql.h"

namespace muse::platform::sql {
namespace {

constexpr Oid kInt8Oid = 20;  // pg_type oids of bigint and text
constexpr Oid kTextOid = 25;
constexpr size_t kMaxConnections = 8;
constexpr int64_t kSchemaLockId = 0x6d757365;  // "muse": serialises concurrent schema setup

// The URL without its password, for error messages.
std::string redacted(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t host_start = scheme + 3;
  const size_t at = url.find('@', host_start);
  const size_t slash = url.find('/', host_start);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return url;
  const size_t colon = url.find(':', host_start);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

std::string trimmed(const char* message) {
  std::string s = message != nullptr ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void ignore_notice(void*, const char*) {}  // "relation already exists, skipping" etc.

class PgConnection final : public Connection {
 public:
  PgConnection(PGconn* conn, const std::string& where) : conn_(conn), where_(where) {}
  ~PgConnection() override { PQfinish(conn_); }

  bool healthy() const { return PQstatus(conn_) == CONNECTION_OK; }

  std::vector<Row> query(const std::string& text, const std::vector<Param>& params) override {
    std::vector<std::string> values(params.size());
    std::vector<const char*> pointers(params.size());
    std::vector<Oid> types(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      if (std::holds_alternative<int64_t>(params[i])) {
        values[i] = std::to_string(std::get<int64_t>(params[i]));
        types[i] = kInt8Oid;
      } else {
        values[i] = std::get<std::string>(params[i]);
        types[i] = kTextOid;
      }
      pointers[i] = values[i].c_str();
    }
    PGresult* result = PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()),
                                    types.data(), pointers.data(), nullptr, nullptr, 0);
    struct Clear {
      PGresult* r;
      ~Clear() { PQclear(r); }
    } clear{result};
    check(result, "running a statement");
    std::vector<Row> rows;
    const int n_rows = PQntuples(result);
    const int n_cols = PQnfields(result);
    rows.reserve(static_cast<size_t>(n_rows));
    for (int r = 0; r < n_rows; ++r) {
      Row row(static_cast<size_t>(n_cols));
      for (int c = 0; c < n_cols; ++c)
        if (!PQgetisnull(result, r, c))
          row[static_cast<size_t>(c)].assign(PQgetvalue(result, r, c),
                                             static_cast<size_t>(PQgetlength(result, r, c)));
      rows.push_back(std::move(row));
    }
    return rows;
  }

  void exec_script(const std::string& text) override {
    PGresult* result = PQexec(conn_, text.c_str());
    struct Clear {
      PGresult* r;
      ~Clear() { PQclear(r); }
    } clear{result};
    check(result, "running a script");
  }

  void begin() override { exec_script("BEGIN"); }
  void commit() override { exec_script("COMMIT"); }
  void rollback() noexcept override { PQclear(PQexec(conn_, "ROLLBACK")); }

 private:
  void check(PGresult* result, const char* what) {
    const ExecStatusType status = result != nullptr ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
    const std::string detail =
        trimmed(result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
    throw Error(str_cat("store: PostgreSQL ", where_, ": ", what, ": ", detail));
  }

  PGconn* conn_;
  std::string where_;
};

class PgDatabase final : public Database {
 public:
  explicit PgDatabase(const std::string& url) : url_(url), where_(redacted(url)) {
    auto first = connect();
    // Two replicas starting together must not race creating the same tables.
    try {
      first->exec_script("BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(kSchemaLockId) +
                         ");" + schema_sql("BIGSERIAL PRIMARY KEY") + "COMMIT;");
    } catch (...) {
      first->rollback();
      throw;
    }
    idle_.push_back(std::move(first));
    open_ = 1;
  }

  std::string backend() const override { return "postgresql"; }

  void with_connection(const std::function<void(Connection&)>& fn) override {
    std::unique_ptr<PgConnection> conn = acquire();
    try {
      fn(*conn);
    } catch (...) {
      release(std::move(conn));
      throw;
    }
    release(std::move(conn));
  }

 private:
  std::unique_ptr<PgConnection> connect() {
    // connect_timeout comes before the URL so that one given in the URL wins.
    const char* keys[] = {"connect_timeout", "dbname", nullptr};
    const char* values[] = {"10", url_.c_str(), nullptr};
    PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    MUSE_CHECK(conn != nullptr, "store: out of memory connecting to PostgreSQL");
    if (PQstatus(conn) != CONNECTION_OK) {
      const std::string detail = trimmed(PQerrorMessage(conn));
      PQfinish(conn);
      throw Error(str_cat("store: cannot connect to PostgreSQL ", where_, ": ", detail));
    }
    PQsetNoticeProcessor(conn, ignore_notice, nullptr);
    return std::make_unique<PgConnection>(conn, where_);
  }

  std::unique_ptr<PgConnection> acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_ < kMaxConnections; });
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
    ++open_;  // reserved; connecting happens outside the lock
    lock.unlock();
    try {
      return connect();
    } catch (...) {
      lock.lock();
      --open_;
      available_.notify_one();
      throw;
    }
  }

  void release(std::unique_ptr<PgConnection> conn) {
    std::lock_guard<std::mutex> lock(mutex_);
    // A broken connection (server restarted) is dropped; the next use reconnects.
    if (conn->healthy()) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
    available_.notify_one();
  }

  std::string url_, where_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<PgConnection>> idle_;
  size_t open_ = 0;
};

}  // namespace

std::unique_ptr<Database> open_postgres(const std::string& url) {
  return std::make_unique<PgDatabase>(url);
}

}  // namespace muse::platform::sql
