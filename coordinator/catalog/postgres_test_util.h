// For tests: a database of its own on the test run's PostgreSQL
// ($DAGVAULT_TEST_POSTGRES, started by tests/run.sh with
// tests/postgres/postgres.sh), created fresh and dropped at the end; or a
// PostgreSQL server of the test's own, which it can restart.
#pragma once

#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/subprocess.h"
#include "common/testing/temp_dir.h"
#include "coordinator/catalog/pg_connection.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator::testing {

class PostgresTestDatabase {
 public:
  // Empty conninfo(): there is no server to test against.
  PostgresTestDatabase() {
    const char* server = std::getenv("DAGVAULT_TEST_POSTGRES");
    if (server == nullptr || *server == '\0') return;
    auto admin = pg::Connection::Open(server);
    EXPECT_TRUE(admin.ok()) << admin.status();
    if (!admin.ok()) return;
    admin_ = std::move(*admin);
    std::random_device random;
    name_ = absl::StrCat("catalog_test_", random(), "_", random());
    auto created = admin_->Exec(absl::StrCat("CREATE DATABASE ", name_));
    EXPECT_TRUE(created.ok()) << created.status();
    if (created.ok()) conninfo_ = absl::StrCat(server, " dbname=", name_);
  }
  ~PostgresTestDatabase() {
    if (!conninfo_.empty()) {
      (void)admin_->Exec(absl::StrCat("DROP DATABASE IF EXISTS ", name_, " WITH (FORCE)"));
    }
  }
  const std::string& conninfo() const { return conninfo_; }
  // A connection of its own to the test's database.
  std::unique_ptr<pg::Connection> Connect() const {
    auto c = pg::Connection::Open(conninfo_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

 private:
  std::unique_ptr<pg::Connection> admin_;
  std::string name_;
  std::string conninfo_;
};

#ifdef DAGVAULT_SOURCE_DIR
// A PostgreSQL server of the test's own (tests/postgres/postgres.sh in a
// folder of its own), stopped at the end. Empty conninfo(): it did not
// start (the reason is a test failure).
class PrivatePostgres {
 public:
  PrivatePostgres() : dir_("private-postgres") {
    ::dagvault::testing::ProcessResult r =
        ::dagvault::testing::RunProcess({Script(), "start", dir_.path()});
    EXPECT_TRUE(r.ok()) << r.err;
    auto env = ReadFileToString(dir_.path() + "/env");
    if (!r.ok() || !env.ok()) return;
    for (absl::string_view line : absl::StrSplit(*env, '\n')) {
      constexpr absl::string_view kKey = "DAGVAULT_TEST_POSTGRES='";
      if (absl::StartsWith(line, kKey) && absl::EndsWith(line, "'")) {
        conninfo_ = std::string(line.substr(kKey.size(), line.size() - kKey.size() - 1));
      }
    }
  }
  ~PrivatePostgres() { ::dagvault::testing::RunProcess({Script(), "stop", dir_.path()}); }
  const std::string& conninfo() const { return conninfo_; }
  // Killed the way a crash would, kept down `down`, started again on the
  // same data and port.
  absl::Status Restart(absl::Duration down) {
    ::dagvault::testing::ProcessResult r = ::dagvault::testing::RunProcess(
        {Script(), "restart", dir_.path()},
        {{"DOWN_SECONDS", absl::StrCat(absl::ToInt64Seconds(down))}});
    if (!r.ok()) return absl::InternalError(absl::StrCat("restarting PostgreSQL: ", r.err));
    return absl::OkStatus();
  }

 private:
  static std::string Script() { return DAGVAULT_SOURCE_DIR "/tests/postgres/postgres.sh"; }
  ::dagvault::testing::TempDir dir_;
  std::string conninfo_;
};
#endif  // DAGVAULT_SOURCE_DIR

}  // namespace dagvault::coordinator::testing
