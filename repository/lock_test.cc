#include "repository/lock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::repository {
namespace {

using dagvault::v1::RepositoryLock;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(Lock, SharedLocksCoexistAndExcludePruneWhichNamesTheHolder) {
  ::dagvault::testing::TempDir dir("lock");
  auto a = AcquireLock(dir.path(), RepositoryLock::SHARED, "s1", "backup");
  auto b = AcquireLock(dir.path(), RepositoryLock::SHARED, "s2", "restore");
  ASSERT_TRUE(a.ok() && b.ok());
  auto prune = AcquireLock(dir.path(), RepositoryLock::EXCLUSIVE, "p1", "prune");
  ASSERT_FALSE(prune.ok());
  EXPECT_EQ(prune.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(prune.status().message()),
              AllOf(HasSubstr("a shared lock for"), HasSubstr("pid " + std::to_string(getpid())),
                    HasSubstr("try again later")));
  // The refused taker left no lock behind.
  EXPECT_FALSE(PathExists(dir.path() + "/locks/p1.lock"));
  ASSERT_TRUE((*a)->Release().ok());
  ASSERT_TRUE((*b)->Release().ok());
  auto now = AcquireLock(dir.path(), RepositoryLock::EXCLUSIVE, "p2", "prune");
  ASSERT_TRUE(now.ok()) << now.status();
  auto backup = AcquireLock(dir.path(), RepositoryLock::SHARED, "s3", "backup");
  ASSERT_FALSE(backup.ok());
  EXPECT_THAT(std::string(backup.status().message()), HasSubstr("an exclusive lock for prune"));
}

TEST(Lock, ALockWhoseProcessIsGoneOrThatWasNotRefreshedIsBroken) {
  ::dagvault::testing::TempDir dir("lock");
  ASSERT_TRUE(CreateDirectories(dir.path() + "/locks").ok());
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  // A process of this host that no longer exists.
  RepositoryLock dead;
  dead.set_kind(RepositoryLock::EXCLUSIVE);
  dead.set_host(host);
  dead.set_host_identity(ThisHostIdentity());
  dead.set_pid(0x7ffffff0);
  dead.set_session("dead");
  dead.set_purpose("prune");
  dead.set_refreshed_us(absl::ToUnixMicros(absl::Now()));
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/locks/dead.lock", dead.SerializeAsString()).ok());
  // Another host's lock, refreshed an hour ago.
  RepositoryLock old = dead;
  old.set_host("elsewhere");
  old.set_host_identity("another-boot/pid:[1]");
  old.set_session("old");
  old.set_refreshed_us(absl::ToUnixMicros(absl::Now() - absl::Hours(1)));
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/locks/old.lock", old.SerializeAsString()).ok());
  // Its file is as old (the storage's clock agrees).
  const timespec hour_ago[2] = {absl::ToTimespec(absl::Now() - absl::Hours(1)),
                                absl::ToTimespec(absl::Now() - absl::Hours(1))};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir.path() + "/locks/old.lock").c_str(), hour_ago, 0), 0);
  // And a live one on another host: it holds.
  RepositoryLock live = old;
  live.set_session("live");
  live.set_kind(RepositoryLock::SHARED);
  live.set_refreshed_us(absl::ToUnixMicros(absl::Now()));
  ASSERT_TRUE(WriteFileAtomically(dir.path() + "/locks/live.lock", live.SerializeAsString()).ok());

  auto shared = AcquireLock(dir.path(), RepositoryLock::SHARED, "s1", "backup");
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_FALSE(PathExists(dir.path() + "/locks/dead.lock"));
  EXPECT_FALSE(PathExists(dir.path() + "/locks/old.lock"));
  EXPECT_TRUE(PathExists(dir.path() + "/locks/live.lock"));
}

TEST(Lock, TheHolderRefreshesItsLock) {
  ::dagvault::testing::TempDir dir("lock");
  LockOptions options;
  options.refresh_every = absl::Milliseconds(50);
  auto lock = AcquireLock(dir.path(), RepositoryLock::SHARED, "s1", "backup", options);
  ASSERT_TRUE(lock.ok());
  auto read = [&] {
    RepositoryLock l;
    l.ParseFromString(*ReadFileToString(dir.path() + "/" + (*lock)->key()));
    return l;
  };
  const int64_t first = read().refreshed_us();
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_GT(read().refreshed_us(), first);
  const std::string path = dir.path() + "/" + (*lock)->key();
  lock->reset();
  EXPECT_FALSE(PathExists(path));
}

}  // namespace
}  // namespace dagvault::repository
