// The libpq connection against a real PostgreSQL: the test run's private
// server ($DAGVAULT_TEST_POSTGRES, started by tests/run.sh with
// tests/postgres/postgres.sh). Parameters that carry any byte, transactions
// that commit whole or not at all, a serialization conflict run again, and
// a lost connection: run again where nothing can happen twice, named where
// it might have.
#include "coordinator/catalog/pg_connection.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator::pg {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class PgConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* info = std::getenv("DAGVAULT_TEST_POSTGRES");
    if (info == nullptr || *info == '\0') {
      GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set (tests/run.sh starts one)";
    }
    conninfo_ = info;
    auto c = Connection::Open(conninfo_, Quick());
    ASSERT_TRUE(c.ok()) << c.status();
    db_ = std::move(*c);
    // A table of this test's own.
    table_ = absl::StrCat("t_", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(db_->Exec(absl::StrCat("DROP TABLE IF EXISTS ", table_)).ok());
    ASSERT_TRUE(db_->Exec(absl::StrCat("CREATE TABLE ", table_,
                                       " (k TEXT PRIMARY KEY, n BIGINT, b BYTEA, t TEXT)"))
                    .ok());
  }
  static ConnectionOptions Quick() {
    ConnectionOptions o;
    o.reconnect_for = absl::Seconds(10);
    o.first_backoff = absl::Milliseconds(10);
    return o;
  }
  std::unique_ptr<Connection> Other() {
    auto c = Connection::Open(conninfo_, Quick());
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  // Ends the server process behind `victim`, from another connection.
  void Terminate(const Connection& victim) {
    auto killer = Other();
    ASSERT_NE(killer, nullptr);
    auto r = killer->Exec("SELECT pg_terminate_backend($1)", Params().Int(victim.BackendPid()));
    ASSERT_TRUE(r.ok()) << r.status();
  }
  int64_t Count() {
    auto r = db_->Exec(absl::StrCat("SELECT count(*) FROM ", table_), Params(), true);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->Int(0, 0) : -1;
  }

  std::string conninfo_;
  std::string table_;
  std::unique_ptr<Connection> db_;
};

TEST_F(PgConnectionTest, ParametersCarryAnyByteAndComeBackAsTheyWent) {
  std::string every_byte;
  for (int i = 0; i < 256; ++i) every_byte.push_back(static_cast<char>(i));
  const std::string text = "it's \"quoted\"; -- not a comment; Zürich \\x00";
  auto put =
      db_->Exec(absl::StrCat("INSERT INTO ", table_, " VALUES ($1, $2, $3, $4), ($5, $6, $7, $8)"),
                Params()
                    .Text("max")
                    .Int(INT64_MAX)
                    .Bytes(every_byte)
                    .Text(text)
                    .Text("min")
                    .Int(INT64_MIN)
                    .Bytes("")
                    .Null());
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->affected(), 2u);
  auto got = db_->Exec(absl::StrCat("SELECT k, n, b, t FROM ", table_, " ORDER BY k"));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->rows(), 2);
  EXPECT_EQ(got->Text(0, 0), "max");
  EXPECT_EQ(got->Int(0, 1), INT64_MAX);
  EXPECT_EQ(got->Bytes(0, 2), every_byte);
  EXPECT_EQ(got->Text(0, 3), text);
  EXPECT_EQ(got->Int(1, 1), INT64_MIN);
  EXPECT_EQ(got->Bytes(1, 2), "");
  EXPECT_TRUE(got->IsNull(1, 3));
}

// TEXT holds valid UTF-8 without NUL: a message with a file name in
// another encoding is kept, its bad bytes shown as U+FFFD, rather than
// failing the write (which, for a job's event, would stop the coordinator).
TEST_F(PgConnectionTest, TextThatIsNotUtf8IsKeptWithItsBadBytesReplaced) {
  const std::string bad =
      std::string("caf\xE9 \xC0\xAF x", 9) + std::string(1, '\0') + "y \xF0\x9F\x98\x80";
  auto put = db_->Exec(absl::StrCat("INSERT INTO ", table_, " (k, t) VALUES ('k', $1)"),
                       Params().Text(bad));
  ASSERT_TRUE(put.ok()) << put.status();
  auto got = db_->Exec(absl::StrCat("SELECT t FROM ", table_));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->Text(0, 0),
            "caf\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD x\xEF\xBF\xBDy \xF0\x9F\x98\x80");
}

TEST_F(PgConnectionTest, ATransactionCommitsWholeOrNotAtAll) {
  const std::string insert = absl::StrCat("INSERT INTO ", table_, " (k) VALUES ($1)");
  // The body's own error: rolled back, returned as it is.
  absl::Status s = db_->Transaction(Isolation::kReadCommitted, false, [&](Connection& tx) {
    RETURN_IF_ERROR(tx.Exec(insert, Params().Text("a")).status());
    return absl::InvalidArgumentError("changed my mind");
  });
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_EQ(Count(), 0);
  // A statement that fails half way: nothing of the transaction stays.
  ASSERT_TRUE(db_->Exec(insert, Params().Text("b")).ok());
  s = db_->Transaction(Isolation::kReadCommitted, false, [&](Connection& tx) {
    RETURN_IF_ERROR(tx.Exec(insert, Params().Text("c")).status());
    return tx.Exec(insert, Params().Text("b")).status();  // a duplicate key
  });
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("SQLSTATE 23505"));
  EXPECT_EQ(Count(), 1);
  // And a good one commits, and the connection is usable after all this.
  s = db_->Transaction(Isolation::kReadCommitted, false, [&](Connection& tx) {
    RETURN_IF_ERROR(tx.Exec(insert, Params().Text("d")).status());
    return tx.Exec(insert, Params().Text("e")).status();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Count(), 3);
}

// Two increments of one counter, the second committed while the first was
// between its read and its write: SERIALIZABLE aborts the first (40001),
// which runs again, body and all, and reads the new value. Neither
// increment is lost.
TEST_F(PgConnectionTest, ASerializationConflictRunsTheTransactionAgain) {
  ASSERT_TRUE(db_->Exec(absl::StrCat("INSERT INTO ", table_, " (k, n) VALUES ('c', 0)")).ok());
  auto other = Other();
  ASSERT_NE(other, nullptr);
  const std::string read = absl::StrCat("SELECT n FROM ", table_, " WHERE k = 'c'");
  const std::string write = absl::StrCat("UPDATE ", table_, " SET n = $1 WHERE k = 'c'");
  int runs = 0;
  absl::Status s = db_->Transaction(Isolation::kSerializable, false, [&](Connection& tx) {
    ++runs;
    ASSIGN_OR_RETURN(Result r, tx.Exec(read));
    const int64_t n = r.Int(0, 0);
    if (runs == 1) {
      absl::Status meanwhile =
          other->Transaction(Isolation::kSerializable, false, [&](Connection& tx2) {
            ASSIGN_OR_RETURN(Result r2, tx2.Exec(read));
            return tx2.Exec(write, Params().Int(r2.Int(0, 0) + 1)).status();
          });
      EXPECT_TRUE(meanwhile.ok()) << meanwhile;
    }
    return tx.Exec(write, Params().Int(n + 1)).status();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(runs, 2);
  auto r = db_->Exec(read);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Int(0, 0), 2);
}

// The server ends the connection in the middle of a transaction: the
// server rolled it back, so it is run again on a new connection, and its
// rows are there once.
TEST_F(PgConnectionTest, AConnectionLostBeforeCommitRunsTheTransactionAgainOnce) {
  const std::string insert = absl::StrCat("INSERT INTO ", table_, " (k) VALUES ($1)");
  int runs = 0;
  absl::Status s = db_->Transaction(Isolation::kReadCommitted, false, [&](Connection& tx) {
    ++runs;
    RETURN_IF_ERROR(tx.Exec(insert, Params().Text("x")).status());
    if (runs == 1) Terminate(tx);
    return tx.Exec(insert, Params().Text("y")).status();
  });
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(db_->reconnects(), 1);
  EXPECT_EQ(Count(), 2);
}

// The connection dies while idle, between two transactions (PostgreSQL
// restarted; a network fault): the next transaction's BEGIN finds it, and
// the transaction runs once on a new connection. Whether the server said
// goodbye (terminated) or not (the socket just went away, where libpq's
// error carries no SQLSTATE).
TEST_F(PgConnectionTest, AConnectionDeadBetweenTransactionsIsReplacedAtTheNextBegin) {
  const std::string insert = absl::StrCat("INSERT INTO ", table_, " (k) VALUES ($1)");
  for (const bool said_goodbye : {true, false}) {
    const int before = db_->reconnects();
    if (said_goodbye) {
      Terminate(*db_);
    } else {
      db_->BreakSocketForTests();
    }
    int runs = 0;
    absl::Status s = db_->Transaction(Isolation::kSerializable, false, [&](Connection& tx) {
      ++runs;
      return tx.Exec(insert, Params().Text(said_goodbye ? "a" : "b")).status();
    });
    ASSERT_TRUE(s.ok()) << (said_goodbye ? "terminated: " : "socket gone: ") << s;
    EXPECT_EQ(runs, 1);
    EXPECT_EQ(db_->reconnects(), before + 1);
  }
  EXPECT_EQ(Count(), 2);
}

// A statement on its own whose connection was ended: an idempotent one is
// sent again on a new connection; any other fails saying it may have run.
TEST_F(PgConnectionTest, ALostStatementIsSentAgainOnlyWhenIdempotent) {
  const std::string upsert = absl::StrCat("INSERT INTO ", table_,
                                          " (k, n) VALUES ('u', $1) ON CONFLICT (k) DO UPDATE "
                                          "SET n = excluded.n");
  Terminate(*db_);
  auto once = db_->Exec(upsert, Params().Int(1), /*idempotent=*/false);
  ASSERT_FALSE(once.ok());
  EXPECT_TRUE(absl::IsUnavailable(once.status())) << once.status();
  EXPECT_THAT(std::string(once.status().message()), HasSubstr("may or may not have run"));
  EXPECT_TRUE(IsRetryable(once.status()));
  // The next call connects again before it sends anything.
  ASSERT_TRUE(db_->Exec(upsert, Params().Int(2), false).ok());
  Terminate(*db_);
  auto again = db_->Exec(upsert, Params().Int(3), /*idempotent=*/true);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(db_->reconnects(), 2);
  auto r = db_->Exec(absl::StrCat("SELECT n FROM ", table_, " WHERE k = 'u'"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->Int(0, 0), 3);
}

// Errors name the catalog (host, port, database) and the SQLSTATE, never
// the connection string's password; a server that is not there is named
// after the reconnect period.
TEST_F(PgConnectionTest, ErrorsNameTheCatalogButNeverThePassword) {
  auto c = Connection::Open(absl::StrCat(conninfo_, " password=hunter2-secret"), Quick());
  ASSERT_TRUE(c.ok()) << c.status();
  auto bad = (*c)->Exec("SELEC 1");
  ASSERT_FALSE(bad.ok());
  const std::string message(bad.status().message());
  EXPECT_THAT(message, HasSubstr((*c)->name()));
  EXPECT_THAT(message, HasSubstr("/dagvault"));
  EXPECT_THAT(message, HasSubstr("SQLSTATE 42601"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));

  ConnectionOptions brief;
  brief.reconnect_for = absl::Milliseconds(300);
  brief.first_backoff = absl::Milliseconds(50);
  auto nowhere =
      Connection::Open("host=127.0.0.1 port=1 dbname=dagvault password=hunter2-secret", brief);
  ASSERT_FALSE(nowhere.ok());
  EXPECT_TRUE(absl::IsUnavailable(nowhere.status()));
  EXPECT_THAT(std::string(nowhere.status().message()), HasSubstr("cannot connect"));
  EXPECT_THAT(std::string(nowhere.status().message()), HasSubstr("127.0.0.1"));
  EXPECT_THAT(std::string(nowhere.status().message()), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace dagvault::coordinator::pg
