// For tests: a database of its own on the test run's PostgreSQL
// ($DAGVAULT_TEST_POSTGRES, started by tests/run.sh with
// tests/postgres/postgres.sh), created fresh and dropped at the end.
#pragma once

#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
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

}  // namespace dagvault::coordinator::testing
