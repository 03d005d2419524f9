// The SQLite catalog's statement helper, shared by its source files
// (sqlite_catalog.cc, sqlite_catalog_schedule.cc). Not for use elsewhere.
#pragma once

#include <sqlite3.h>

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "coordinator/catalog/catalog_codec.h"

namespace dagvault::coordinator::sqlite {

using codec::Serialized;
using codec::TimeOf;
using codec::Us;

// One prepared statement; finalised when it goes out of scope.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, const std::string& sql) : db_(db), path_(path) {
    rc_ = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(const std::string& v) {
    Check(
        sqlite3_bind_text(stmt_, ++bound_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& Bind(const char* v) { return Bind(std::string(v)); }
  Statement& Bind(int64_t v) {
    Check(sqlite3_bind_int64(stmt_, ++bound_, v));
    return *this;
  }
  Statement& BindBlob(const std::string& v) {
    Check(
        sqlite3_bind_blob(stmt_, ++bound_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  // True when a row is ready, false when done.
  absl::StatusOr<bool> Step() {
    if (rc_ != SQLITE_OK) return Error("prepare");
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    rc_ = rc;
    return Error("step");
  }
  absl::Status Run() { return Step().status(); }
  // Calls `row` for each row the statement yields, reading it with Int()
  // and Text(); stops at the first error.
  absl::Status ForEachRow(const std::function<absl::Status()>& row) {
    for (;;) {
      ASSIGN_OR_RETURN(bool more, Step());
      if (!more) return absl::OkStatus();
      RETURN_IF_ERROR(row());
    }
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_blob(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, col));
  }
  std::string Bytes(int col) const { return Text(col); }  // a BLOB reads as text does

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) rc_ = rc;
  }
  absl::Status Error(const char* what) const {
    return absl::InternalError(
        absl::StrCat("catalog ", path_, ": ", what, ": ", sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  int bound_ = 0;
};

}  // namespace dagvault::coordinator::sqlite
