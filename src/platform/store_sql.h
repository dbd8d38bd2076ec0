// Private to the store: the small SQL interface both backends implement, so that the
// store's logic and its schema are written once (store.cpp). SQL text uses $1, $2, ...
// placeholders, which PostgreSQL numbers and SQLite treats as named parameters.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "platform/store.h"

namespace muse::platform::sql {

using Param = std::variant<int64_t, std::string>;
using Row = std::vector<std::string>;  // every column as text; NULL reads as ""

class Connection {
 public:
  virtual ~Connection() = default;
  // One parameterised statement; returns its result rows (none for DDL / plain DML).
  virtual std::vector<Row> query(const std::string& sql, const std::vector<Param>& params) = 0;
  // Several statements without parameters (the schema).
  virtual void exec_script(const std::string& sql) = 0;
  virtual void begin() = 0;  // a write transaction
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
};

class Database {
 public:
  virtual ~Database() = default;
  virtual std::string backend() const = 0;
  // Runs fn with a connection nobody else uses meanwhile.
  virtual void with_connection(const std::function<void(Connection&)>& fn) = 0;
};

std::unique_ptr<Database> open_sqlite(const std::string& path);
std::unique_ptr<Database> open_postgres(const std::string& url);

// The schema: portable SQL both backends accept; {ID} is the auto-increment primary key
// column type, the one thing they spell differently.
std::string schema_sql(const std::string& id_column_type);

}  // namespace muse::platform::sql
