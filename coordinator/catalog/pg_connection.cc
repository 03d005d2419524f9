#include "coordinator/catalog/pg_connection.h"

#include <libpq-fe.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::coordinator::pg {
namespace {

constexpr char kLostMarker[] = "the connection to PostgreSQL was lost";

const char* BeginSql(Isolation isolation) {
  switch (isolation) {
    case Isolation::kReadCommitted:
      return "BEGIN ISOLATION LEVEL READ COMMITTED";
    case Isolation::kRepeatableRead:
      return "BEGIN ISOLATION LEVEL REPEATABLE READ";
    case Isolation::kSerializable:
      return "BEGIN ISOLATION LEVEL SERIALIZABLE";
  }
  return "BEGIN";
}

// The first words of a statement, to name it in an error without its data.
std::string Describe(const std::string& sql) {
  std::string s(absl::StripAsciiWhitespace(sql));
  for (char& c : s) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  return s.size() > 60 ? absl::StrCat(s.substr(0, 60), "...") : s;
}

// Connects with the caller's settings, and where the caller set none,
// timeouts that keep a half-open connection (a peer gone without a FIN)
// from blocking a catalog call for hours: TCP keepalives and a TCP user
// timeout, and a connect timeout. The string is parsed first, so that a
// malformed one is refused with a message of ours: libpq's parse errors
// quote the offending token, which may be the password.
absl::StatusOr<PGconn*> ConnectWithDefaults(const std::string& conninfo) {
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (options == nullptr) {
    if (parse_error != nullptr) PQfreemem(parse_error);
    return absl::InvalidArgumentError(
        "catalog (PostgreSQL): the connection string does not parse (libpq's reason is not "
        "repeated: it may quote a password); see docs/deployment.md");
  }
  std::vector<std::string> keys, values;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    keys.emplace_back(o->keyword);
    values.emplace_back(o->val);
  }
  PQconninfoFree(options);
  const std::pair<const char*, const char*> kDefaults[] = {
      {"connect_timeout", "10"},    {"keepalives", "1"},       {"keepalives_idle", "10"},
      {"keepalives_interval", "5"}, {"keepalives_count", "3"}, {"tcp_user_timeout", "30000"},
  };
  for (const auto& [key, value] : kDefaults) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
      keys.emplace_back(key);
      values.emplace_back(value);
    }
  }
  std::vector<const char*> k, v;
  for (size_t i = 0; i < keys.size(); ++i) {
    k.push_back(keys[i].c_str());
    v.push_back(values[i].c_str());
  }
  k.push_back(nullptr);
  v.push_back(nullptr);
  return PQconnectdbParams(k.data(), v.data(), /*expand_dbname=*/0);
}

// Text as PostgreSQL's TEXT takes it: valid UTF-8 without NUL. A byte
// that is not part of a valid sequence (a file name in another encoding
// inside an error message) becomes U+FFFD, rather than failing the write.
std::string ValidText(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  size_t i = 0;
  while (i < v.size()) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = n > 0 && c != 0 && i + n <= v.size();
    for (size_t j = 1; ok && j < n; ++j) ok = (static_cast<unsigned char>(v[i + j]) & 0xC0) == 0x80;
    if (ok && n > 1) {
      // No overlong forms, no surrogates, nothing past U+10FFFF.
      uint32_t cp = c & (0x7F >> n);
      for (size_t j = 1; j < n; ++j) cp = (cp << 6) | (static_cast<unsigned char>(v[i + j]) & 0x3F);
      const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= min[n] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok) {
      out.append(v.data() + i, n);
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

}  // namespace

Params& Params::Text(absl::string_view v) {
  values_.push_back(ValidText(v));
  formats_.push_back(0);
  null_.push_back(false);
  return *this;
}

Params& Params::Int(int64_t v) { return Text(absl::StrCat(v)); }

Params& Params::Bytes(absl::string_view v) {
  values_.emplace_back(v);
  formats_.push_back(1);
  null_.push_back(false);
  return *this;
}

Params& Params::Null() {
  values_.emplace_back();
  formats_.push_back(0);
  null_.push_back(true);
  return *this;
}

int Result::rows() const { return res_ ? PQntuples(res_.get()) : 0; }

bool Result::IsNull(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }

int Connection::BackendPid() const { return PQbackendPID(conn_); }

uint64_t Result::affected() const {
  uint64_t n = 0;
  if (res_ && absl::SimpleAtoi(PQcmdTuples(res_.get()), &n)) return n;
  return 0;
}

std::string Result::Text(int row, int col) const {
  return std::string(PQgetvalue(res_.get(), row, col),
                     static_cast<size_t>(PQgetlength(res_.get(), row, col)));
}

int64_t Result::Int(int row, int col) const {
  int64_t v = 0;
  (void)absl::SimpleAtoi(PQgetvalue(res_.get(), row, col), &v);
  return v;
}

std::string Result::Bytes(int row, int col) const {
  size_t n = 0;
  unsigned char* raw =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(res_.get(), row, col)), &n);
  if (raw == nullptr) return std::string();
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& conninfo,
                                                             ConnectionOptions options) {
  std::unique_ptr<Connection> c(new Connection(conninfo, options));
  RETURN_IF_ERROR(c->Connect());
  return c;
}

Connection::~Connection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::Status Connection::Connect() {
  const absl::Time deadline = absl::Now() + options_.reconnect_for;
  absl::Duration backoff = options_.first_backoff;
  std::string last;
  const bool again = conn_ != nullptr;
  for (int attempt = 1;; ++attempt) {
    if (conn_ == nullptr) {
      ASSIGN_OR_RETURN(conn_, ConnectWithDefaults(conninfo_));
    } else {
      PQreset(conn_);
    }
    if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) {
      broken_ = false;
      // The server's notices (a DROP ... IF EXISTS that had nothing to
      // drop) go to the log, not to stderr.
      PQsetNoticeProcessor(
          conn_,
          [](void*, const char* message) {
            logging::Get("coordinator.catalog")
                ->debug("PostgreSQL: {}", absl::StripTrailingAsciiWhitespace(message));
          },
          nullptr);
      if (name_.empty()) {  // set once: messages read it without a lock
        const char* host = PQhost(conn_);
        name_ = absl::StrCat(host != nullptr ? host : "?", ":", PQport(conn_), "/", PQdb(conn_));
      }
      if (again) {
        logging::Get("coordinator.catalog")
            ->info("catalog {}: connected again after {} attempt(s)", name_, attempt);
      }
      return absl::OkStatus();
    }
    // libpq's message names the server (host, port or socket), never the
    // password.
    last = conn_ != nullptr ? std::string(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn_)))
                            : "out of memory";
    if (absl::Now() + backoff > deadline) {
      return absl::UnavailableError(
          absl::StrCat("catalog (PostgreSQL): cannot connect after ", attempt, " attempts in ",
                       absl::FormatDuration(options_.reconnect_for), ": ", last));
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

bool Connection::Lost() const {
  return conn_ == nullptr || broken_ || PQstatus(conn_) != CONNECTION_OK;
}

void Connection::BreakSocketForTests() {
  if (conn_ != nullptr) ::shutdown(PQsocket(conn_), SHUT_RDWR);
}

absl::Status Connection::Error(const std::string& what, const PGresult* res) const {
  const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  std::string message(absl::StripTrailingAsciiWhitespace(
      res != nullptr && *PQresultErrorMessage(res) != '\0' ? PQresultErrorMessage(res)
                                                           : PQerrorMessage(conn_)));
  const std::string text =
      absl::StrCat("catalog ", name_, ": ", what, ": ", message,
                   sqlstate.empty() ? "" : absl::StrCat(" (SQLSTATE ", sqlstate, ")"));
  // Lost: the connection is down, or the server ended it (57P01-57P03:
  // shut down, crashed, not accepting yet; 08000/08003/08006: connection
  // failures). Not 08P01, a protocol violation: running again would not help.
  const bool ended = absl::StartsWith(sqlstate, "57P") || sqlstate == "08000" ||
                     sqlstate == "08003" || sqlstate == "08006";
  if (Lost() || ended) {
    return absl::UnavailableError(absl::StrCat(text, "; ", kLostMarker));
  }
  if (sqlstate == "40001" || sqlstate == "40P01") return absl::AbortedError(text);
  if (sqlstate == "23505") return absl::AlreadyExistsError(text);
  if (absl::StartsWith(sqlstate, "23")) return absl::FailedPreconditionError(text);
  return absl::InternalError(text);
}

absl::StatusOr<Result> Connection::ExecOnce(const std::string& sql, const Params& params) {
  if (Lost()) {
    return absl::UnavailableError(
        absl::StrCat("catalog ", name_, ": ", Describe(sql), ": ", kLostMarker));
  }
  const int n = params.size();
  std::vector<const char*> values(n);
  std::vector<int> lengths(n);
  for (int i = 0; i < n; ++i) {
    values[i] = params.null_[i] ? nullptr : params.values_[i].data();
    lengths[i] = static_cast<int>(params.values_[i].size());
  }
  PGresult* raw = PQexecParams(conn_, sql.c_str(), n, nullptr, values.data(), lengths.data(),
                               params.formats_.data(), /*resultFormat=*/0);
  Result result;
  result.res_ = std::shared_ptr<PGresult>(raw, [](PGresult* r) { PQclear(r); });
  const ExecStatusType status = raw != nullptr ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  // Every error the server reports carries a SQLSTATE; one without was
  // libpq's own (the server closed the connection, a send failed). Seen
  // after a PostgreSQL restart with PQstatus still OK: trust it no more.
  if (raw == nullptr || PQresultErrorField(raw, PG_DIAG_SQLSTATE) == nullptr) broken_ = true;
  return Error(Describe(sql), raw);
}

absl::StatusOr<Result> Connection::Exec(const std::string& sql, const Params& params,
                                        bool idempotent) {
  // Inside a transaction a lost connection is the transaction's to handle.
  if (in_transaction_) return ExecOnce(sql, params);
  // Not sent yet: reconnecting first does nothing twice.
  if (Lost()) {
    RETURN_IF_ERROR(Connect());
    ++reconnects_;
  }
  absl::StatusOr<Result> r = ExecOnce(sql, params);
  if (r.ok() || !Lost()) return r;
  if (!idempotent) {
    return absl::UnavailableError(
        absl::StrCat(r.status().message(), "; the statement may or may not have run"));
  }
  RETURN_IF_ERROR(Connect());
  ++reconnects_;
  return ExecOnce(sql, params);
}

void Connection::ConflictBackoff(int conflicts) {
  // A few milliseconds, doubling, with jitter: the winner of the conflict
  // is usually done by then.
  thread_local std::mt19937 rng{std::random_device{}()};
  const int64_t us = int64_t{1000} << std::min(conflicts, 6);
  absl::SleepFor(absl::Microseconds(std::uniform_int_distribution<int64_t>(us / 2, us)(rng)));
}

absl::Status Connection::Transaction(Isolation isolation, bool idempotent,
                                     const std::function<absl::Status(Connection& tx)>& body) {
  int conflicts = 0;
  int losses = 0;
  auto lost_again = [&](const absl::Status& s) -> absl::Status {
    // Nothing was committed (or the caller says twice is once): connect
    // and run it all again, a bounded number of times.
    if (++losses > 3) return s;
    RETURN_IF_ERROR(Connect());
    ++reconnects_;
    return absl::OkStatus();
  };
  for (;;) {
    if (Lost()) RETURN_IF_ERROR(lost_again(absl::UnavailableError(kLostMarker)));
    absl::StatusOr<Result> begin = ExecOnce(BeginSql(isolation), Params());
    if (!begin.ok()) {
      if (!Lost()) return begin.status();
      RETURN_IF_ERROR(lost_again(begin.status()));
      continue;
    }
    in_transaction_ = true;
    absl::Status done = body(*this);
    if (!done.ok()) {
      in_transaction_ = false;
      if (Lost()) {
        // Before COMMIT: the server rolled it back.
        RETURN_IF_ERROR(lost_again(done));
        continue;
      }
      (void)ExecOnce("ROLLBACK", Params());
      if (absl::IsAborted(done) && ++conflicts <= options_.max_conflict_retries) {
        ConflictBackoff(conflicts);
        continue;
      }
      return done;
    }
    absl::StatusOr<Result> commit = ExecOnce("COMMIT", Params());
    in_transaction_ = false;
    if (commit.ok()) return absl::OkStatus();
    if (Lost()) {
      if (!idempotent) {
        return absl::UnavailableError(absl::StrCat(
            commit.status().message(), "; the transaction may or may not have committed"));
      }
      RETURN_IF_ERROR(lost_again(commit.status()));
      continue;
    }
    // A serialization failure found at COMMIT rolled everything back.
    if (absl::IsAborted(commit.status()) && ++conflicts <= options_.max_conflict_retries) {
      ConflictBackoff(conflicts);
      continue;
    }
    return commit.status();
  }
}

bool IsRetryable(const absl::Status& status) {
  return absl::IsAborted(status) ||
         (absl::IsUnavailable(status) && absl::StrContains(status.message(), kLostMarker));
}

}  // namespace dagvault::coordinator::pg
