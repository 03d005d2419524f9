// One connection to PostgreSQL over libpq, for the PostgreSQL catalog
// (issue 18): parameterised statements, transactions at a chosen isolation
// level, and what to do when the server or the network goes away.
//
// Retries, and only where they cannot do a thing twice:
// - a transaction that PostgreSQL aborted for a serialization failure
//   (40001) or a deadlock (40P01) committed nothing: it is run again, body
//   and all, up to a bound;
// - a connection lost before COMMIT was sent committed nothing either: the
//   connection is re-established (with backoff, for a bounded time) and the
//   transaction run again;
// - a connection lost while COMMIT was on its way leaves the outcome
//   unknown: the transaction is run again only if the caller declared it
//   idempotent (doing it twice equals doing it once); otherwise the error
//   says the write may or may not have happened.
//
// Errors name the catalog by host, port and database, never by the
// connection string (which may hold a password), and carry the SQLSTATE.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

// libpq's handles (libpq-fe.h stays out of this header).
struct pg_conn;
struct pg_result;

namespace dagvault::coordinator::pg {

// A statement's parameters, $1, $2, ... in order. Text and numbers travel
// as text (Text made valid UTF-8 without NUL, as TEXT requires: a bad
// byte becomes U+FFFD); Bytes as binary (bytea), so any byte goes through
// untouched.
class Params {
 public:
  Params& Text(absl::string_view v);
  Params& Int(int64_t v);
  Params& Bytes(absl::string_view v);
  Params& Null();
  int size() const { return static_cast<int>(values_.size()); }

 private:
  friend class Connection;
  std::vector<std::string> values_;
  std::vector<int> formats_;  // 0 text, 1 binary
  std::vector<bool> null_;
};

// A statement's rows, read as text (numbers parsed, bytea decoded).
class Result {
 public:
  int rows() const;
  // Rows an INSERT, UPDATE or DELETE touched.
  uint64_t affected() const;
  bool IsNull(int row, int col) const;
  std::string Text(int row, int col) const;
  int64_t Int(int row, int col) const;
  std::string Bytes(int row, int col) const;

  // One row, read by column alone (catalog_codec.h's decoders).
  class Row {
   public:
    Row(const Result& result, int row) : result_(result), row_(row) {}
    std::string Text(int col) const { return result_.Text(row_, col); }
    int64_t Int(int col) const { return result_.Int(row_, col); }
    std::string Bytes(int col) const { return result_.Bytes(row_, col); }

   private:
    const Result& result_;
    const int row_;
  };
  Row row(int i) const { return Row(*this, i); }

 private:
  friend class Connection;
  std::shared_ptr<pg_result> res_;
};

enum class Isolation {
  kReadCommitted,
  kRepeatableRead,
  kSerializable,
};

struct ConnectionOptions {
  // How long a lost connection is tried again before the call fails.
  absl::Duration reconnect_for = absl::Seconds(30);
  absl::Duration first_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // How often a transaction aborted by a serialization failure or a
  // deadlock is run again before the error is returned.
  int max_conflict_retries = 10;
};

class Connection {
 public:
  // Connects (trying for options.reconnect_for when the server is not up
  // yet). `conninfo`: a libpq connection string or URI.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& conninfo,
                                                          ConnectionOptions options = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // "host:port/database", for messages.
  const std::string& name() const { return name_; }

  // One statement on its own (its own implicit transaction). A lost
  // connection is re-established and the statement sent again only when
  // `idempotent`; otherwise the error says it may have run.
  absl::StatusOr<Result> Exec(const std::string& sql, const Params& params = {},
                              bool idempotent = false);

  // Runs `body` in one transaction at `isolation`: everything it executes
  // (through `tx`) commits, or nothing. An error from `body` rolls back and
  // is returned as it is. Retries as the header says.
  absl::Status Transaction(Isolation isolation, bool idempotent,
                           const std::function<absl::Status(Connection& tx)>& body);

  // The server process serving this connection (for tests that end it).
  int BackendPid() const;
  // Shuts the connection's socket down under libpq, as a network fault or
  // a server killed without a word would (for tests).
  void BreakSocketForTests();
  // How many times the connection was re-established.
  int reconnects() const { return reconnects_; }

 private:
  Connection(std::string conninfo, ConnectionOptions options)
      : conninfo_(std::move(conninfo)), options_(options) {}
  absl::Status Connect();
  // Sends one statement; no retry.
  absl::StatusOr<Result> ExecOnce(const std::string& sql, const Params& params);
  bool Lost() const;
  void ConflictBackoff(int conflicts);
  absl::Status Error(const std::string& what, const pg_result* res) const;

  const std::string conninfo_;
  const ConnectionOptions options_;
  pg_conn* conn_ = nullptr;
  std::string name_;
  int reconnects_ = 0;
  bool in_transaction_ = false;
  // libpq reported an error of its own (no SQLSTATE: the server never
  // answered it), so the connection is in doubt even where PQstatus still
  // says OK: the next call connects again first.
  bool broken_ = false;
};

// Whether a status from this file is one that a new attempt may cure (the
// connection was lost, or the transaction lost a conflict).
bool IsRetryable(const absl::Status& status);

}  // namespace dagvault::coordinator::pg
