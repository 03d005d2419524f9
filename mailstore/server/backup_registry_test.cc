#include "mailstore/server/backup_registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::mailstore {
namespace {

using ::testing::HasSubstr;

dagvault::v1::BackupInProgress Backup(const std::string& session, const std::string& node,
                                      const std::string& incarnation = "run1") {
  dagvault::v1::BackupInProgress b;
  b.set_unit("SG01");
  b.set_session(session);
  b.set_holder_node(node);
  b.set_holder_role(node == "node1" ? dagvault::v1::ACTIVE : dagvault::v1::PASSIVE);
  b.set_type("full");
  b.set_started_us(1'700'000'000'000'000);
  b.set_holder_incarnation(incarnation);
  return b;
}

TEST(BackupRegistry, ASecondBackupFailsNamingTheHolder) {
  FakeClock clock;
  BackupRegistry registry("SG01", absl::Seconds(60), &clock);
  ASSERT_TRUE(registry.Acquire(Backup("s1", "node2")).ok());
  absl::Status second = registry.Acquire(Backup("s2", "node1"));
  EXPECT_EQ(second.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.message()),
              HasSubstr("a backup is already in progress (full backup of the passive copy on "
                        "node2, started "));
  EXPECT_THAT(std::string(second.message()), HasSubstr("session s1"));
  ASSERT_TRUE(registry.Current().has_value());
  EXPECT_EQ(registry.Current()->session(), "s1");
}

TEST(BackupRegistry, ReleaseNeedsTheHoldingSession) {
  FakeClock clock;
  BackupRegistry registry("SG01", absl::Seconds(60), &clock);
  ASSERT_TRUE(registry.Acquire(Backup("s1", "node2")).ok());
  EXPECT_THAT(std::string(registry.Release("s2").message()), HasSubstr("not in progress here"));
  EXPECT_TRUE(registry.Release("s1").ok());
  EXPECT_FALSE(registry.Current().has_value());
  EXPECT_TRUE(registry.Acquire(Backup("s2", "node1")).ok());
}

TEST(BackupRegistry, ALeaseNotRenewedExpires) {
  FakeClock clock;
  BackupRegistry registry("SG01", absl::Seconds(60), &clock);
  ASSERT_TRUE(registry.Acquire(Backup("s1", "node2")).ok());
  clock.Advance(absl::Seconds(50));
  EXPECT_TRUE(registry.Renew("s1").ok());
  clock.Advance(absl::Seconds(50));
  EXPECT_TRUE(registry.Current().has_value());  // renewed 50 s ago
  clock.Advance(absl::Seconds(11));
  EXPECT_FALSE(registry.Current().has_value());
  EXPECT_THAT(std::string(registry.Renew("s1").message()),
              HasSubstr("restarted, or the session expired"));
  EXPECT_TRUE(registry.Acquire(Backup("s2", "node3")).ok());
}

TEST(BackupRegistry, ARestartedHolderReleasesWhatItsEarlierRunHeld) {
  FakeClock clock;
  BackupRegistry registry("SG01", absl::Seconds(60), &clock);
  ASSERT_TRUE(registry.Acquire(Backup("s1", "node2", "run1")).ok());
  EXPECT_FALSE(registry.ReleaseStale("node3", "run7"));  // another node
  EXPECT_FALSE(registry.ReleaseStale("node2", "run1"));  // the same run: still alive
  EXPECT_TRUE(registry.Current().has_value());
  EXPECT_TRUE(registry.ReleaseStale("node2", "run2"));
  EXPECT_FALSE(registry.Current().has_value());
}

}  // namespace
}  // namespace dagvault::mailstore
