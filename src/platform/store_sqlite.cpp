// The SQLite backend: one connection guarded by a mutex (SQLite serialises writers
// anyway), WAL journal so readers in other processes are not blocked, and a busy
// timeout for when another process holds the write lock.
#include <sqlite3.h>

#include <cstdio>
#include <mutex>

#include "muse/error.h"
#include "platform/store_sql.h"

namespace muse::platform::sql {
namespace {

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  std::vector<Row> query(const std::string& text, const std::vector<Param>& params) override {
    sqlite3_stmt* stmt = nullptr;
    check(sqlite3_prepare_v2(db_, text.c_str(), static_cast<int>(text.size()), &stmt, nullptr),
          "preparing a statement");
    struct Finalize {
      sqlite3_stmt* s;
      ~Finalize() { sqlite3_finalize(s); }
    } finalize{stmt};
    for (size_t i = 0; i < params.size(); ++i) {
      // "$N" is a named parameter to SQLite: look its index up by name.
      char name[24];
      std::snprintf(name, sizeof name, "$%zu", i + 1);
      const int index = sqlite3_bind_parameter_index(stmt, name);
      if (index == 0) continue;  // not used by this statement
      const int rc =
          std::holds_alternative<int64_t>(params[i])
              ? sqlite3_bind_int64(stmt, index, std::get<int64_t>(params[i]))
              : sqlite3_bind_text(stmt, index, std::get<std::string>(params[i]).data(),
                                  static_cast<int>(std::get<std::string>(params[i]).size()),
                                  SQLITE_TRANSIENT);
      check(rc, "binding a parameter");
    }
    std::vector<Row> rows;
    for (;;) {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) check(rc, "running a statement");
      Row row(static_cast<size_t>(sqlite3_column_count(stmt)));
      for (int c = 0; c < static_cast<int>(row.size()); ++c) {
        const auto* text_value = sqlite3_column_text(stmt, c);
        if (text_value != nullptr)
          row[static_cast<size_t>(c)].assign(reinterpret_cast<const char*>(text_value),
                                             static_cast<size_t>(sqlite3_column_bytes(stmt, c)));
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  void exec_script(const std::string& text) override {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
    const std::string detail = message != nullptr ? message : "";
    sqlite3_free(message);
    MUSE_CHECK(rc == SQLITE_OK, "store: SQLite '", path_, "': ", detail);
  }

  // IMMEDIATE takes the write lock up front: two processes cannot both read and then
  // deadlock upgrading to writers.
  void begin() override { exec_script("BEGIN IMMEDIATE"); }
  void commit() override { exec_script("COMMIT"); }
  void rollback() noexcept override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

 private:
  void check(int rc, const char* what) {
    MUSE_CHECK(rc == SQLITE_OK, "store: SQLite '", path_, "': ", what, ": ", sqlite3_errmsg(db_));
  }

  sqlite3* db_;
  std::string path_;
};

class SqliteDatabase final : public Database {
 public:
  explicit SqliteDatabase(const std::string& path) : path_(path) {
    const int rc =
        sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      throw Error(str_cat("store: cannot open SQLite database '", path, "': ", detail));
    }
    sqlite3_busy_timeout(db_, 10000);
    conn_ = std::make_unique<SqliteConnection>(db_, path);
    try {
      if (path != ":memory:") conn_->query("PRAGMA journal_mode=WAL", {});
      // With WAL, NORMAL syncs at checkpoints, not every commit: still consistent after
      // a crash, and counters updated per request stay cheap.
      conn_->exec_script("PRAGMA synchronous=NORMAL");
      conn_->exec_script(schema_sql("INTEGER PRIMARY KEY AUTOINCREMENT"));
    } catch (...) {
      conn_.reset();
      sqlite3_close(db_);
      throw;
    }
  }
  ~SqliteDatabase() override {
    conn_.reset();
    sqlite3_close(db_);
  }

  std::string backend() const override { return "sqlite"; }

  void with_connection(const std::function<void(Connection&)>& fn) override {
    std::lock_guard<std::mutex> lock(mutex_);
    fn(*conn_);
  }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<SqliteConnection> conn_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Database> open_sqlite(const std::string& path) {
  return std::make_unique<SqliteDatabase>(path);
}

}  // namespace muse::platform::sql
