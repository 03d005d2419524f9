// A backup and a prune that do not trust each other's clocks
// (docs/repository-format.md, "Locks"): a backup whose lock was broken, or
// that cannot prove it refreshed its lock in time, fails before its
// manifest is written; a prune leaves young packs alone and stops when a
// writer it thought dead commits after all.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/check.h"
#include "repository/prune.h"
#include "repository/repository_test_util.h"

namespace dagvault::repository {
namespace {

using namespace testing;  // NOLINT: the shared test helpers
using ::testing::AllOf;
using ::testing::HasSubstr;

// Runs `act` at the last moment before the manifest is written.
class AtCommit : public BackupObserver {
 public:
  explicit AtCommit(std::function<absl::Status()> act) : act_(std::move(act)) {}
  absl::Status OnSegment(size_t, uint64_t, absl::string_view) override { return absl::OkStatus(); }
  absl::Status BeforeCommit(dagvault::v1::Manifest*) override { return act_(); }

 private:
  std::function<absl::Status()> act_;
};

class LockSafetyTest : public RepositoryTest {
 protected:
  LockSafetyTest() : RepositoryTest("lock-safety") {}

  absl::StatusOr<dagvault::v1::Manifest> BackUp(const std::string& unit, const std::string& data,
                                                BackupObserver* observer = nullptr) {
    WriteFile(dir_.Sub("src/db.edb"), data);
    BackupOptions options;
    options.observer = observer;
    options.lock.clock = &clock_;
    options.lock.refresh_every = absl::InfiniteDuration();  // the test refreshes by hand
    return Backup(*repo_, {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0}}, Header(unit),
                  options);
  }
  void RemoveEveryLock() {
    for (const auto& e : std::filesystem::directory_iterator(repo_->root() + "/locks")) {
      std::filesystem::remove(e.path());
    }
  }
  size_t ManifestCount() {
    auto ids = repo_->ListManifests();
    return ids.ok() ? ids->size() : 0;
  }
  void ExpectCleanCheck() { RepositoryTest::ExpectCleanCheck(/*allow_warnings=*/true); }

  FakeClock clock_{absl::Now()};
};

TEST_P(LockSafetyTest, ABackupWhoseLockWasBrokenFailsBeforeItsManifestIsWritten) {
  AtCommit breaker([&] {
    RemoveEveryLock();  // what a prune that judged it stale does
    return absl::OkStatus();
  });
  auto m = BackUp("DB01", MakeEdbLike(256, 1), &breaker);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(m.status().message()),
              AllOf(HasSubstr("the backup's manifest was not written"),
                    HasSubstr("is no longer this session's"), HasSubstr("it was removed")));
  EXPECT_EQ(ManifestCount(), 0u);
  // Nothing was written back: the lock stays broken.
  EXPECT_TRUE(std::filesystem::is_empty(repo_->root() + "/locks"));
}

TEST_P(LockSafetyTest, ABackupPausedPastHalfTheStaleTimeCannotProveItsLockAndFails) {
  AtCommit paused([&] {
    // Five minutes and a second pass on the monotonic clock with no
    // refresh (SIGSTOP, a hung NFS server): another host may have judged
    // the lock stale by its own wall clock, which may be ahead of ours.
    clock_.Advance(kDefaultLockStaleAfter / 2 + absl::Seconds(1));
    return absl::OkStatus();
  });
  auto m = BackUp("DB01", MakeEdbLike(256, 1), &paused);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(m.status().message()), AllOf(HasSubstr("was last refreshed 5m1s ago"),
                                                       HasSubstr("was this process paused")));
  EXPECT_EQ(ManifestCount(), 0u);
}

TEST_P(LockSafetyTest, ARefreshedLockHoldsAndWallClockStepsNeitherExpireNorExtendIt) {
  LockOptions options;
  options.clock = &clock_;
  options.refresh_every = absl::InfiniteDuration();  // the test refreshes by hand
  auto lock =
      AcquireLock(repo_->root(), dagvault::v1::RepositoryLock::SHARED, "s", "backup", options);
  ASSERT_TRUE(lock.ok()) << lock.status();
  // Sixteen minutes, refreshed every four, while the wall clock jumps
  // both ways: held throughout.
  for (int i = 0; i < 4; ++i) {
    clock_.Advance(absl::Minutes(4));
    clock_.StepWallClock(i % 2 == 0 ? absl::Hours(1) : -absl::Hours(2));
    ASSERT_TRUE((*lock)->Refresh().ok());
  }
  EXPECT_TRUE((*lock)->CheckStillHeld().ok());
  // A wall-clock jump alone extends nothing and expires nothing: only the
  // monotonic clock counts for the holder.
  clock_.StepWallClock(absl::Hours(10));
  EXPECT_TRUE((*lock)->CheckStillHeld().ok());
  clock_.StepWallClock(-absl::Hours(20));
  EXPECT_TRUE((*lock)->CheckStillHeld().ok());
  clock_.Advance(absl::Minutes(6));
  EXPECT_EQ((*lock)->CheckStillHeld().code(), absl::StatusCode::kAborted);
  // Lost for good: a later refresh does not write it back.
  EXPECT_EQ((*lock)->Refresh().code(), absl::StatusCode::kAborted);
}

TEST_P(LockSafetyTest, PruneLeavesPacksYoungerThanTheGracePeriodAlone) {
  auto kept = BackUp("DB01", MakeEdbLike(256, 1));
  ASSERT_TRUE(kept.ok()) << kept.status();
  // A writer that wrote its packs and index but not yet its manifest.
  AtCommit in_flight([] { return absl::UnavailableError("still running"); });
  ASSERT_FALSE(BackUp("DB02", MakeEdbLike(512, 2), &in_flight).ok());

  PruneOptions options;
  options.keep_manifests = {kept->id()};
  options.lock.clock = &clock_;
  auto report = Prune(*repo_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->packs_removed, 0u);
  EXPECT_EQ(report->bytes_after, report->bytes_before);

  // Twice the stale time later (on the storage's clock: the files' own
  // times) they are fair game.
  const absl::Time old = absl::Now() - 2 * kDefaultLockStaleAfter - absl::Seconds(5);
  const timespec times[2] = {absl::ToTimespec(old), absl::ToTimespec(old)};
  for (const auto& e : std::filesystem::recursive_directory_iterator(repo_->root() + "/packs")) {
    if (e.is_regular_file()) {
      ASSERT_EQ(utimensat(AT_FDCWD, e.path().c_str(), times, 0), 0) << e.path();
    }
  }
  report = Prune(*repo_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GE(report->packs_removed, 1u);
  EXPECT_LT(report->bytes_after, report->bytes_before);
  ExpectCleanCheck();
}

TEST_P(LockSafetyTest, PruneStopsWhenAWriterWhoseLockItBrokeCommitsAfterAll) {
  const std::string data = MakeEdbLike(128, 1);
  auto old = BackUp("DB01", data);
  ASSERT_TRUE(old.ok());
  // While the prune removes `old`, a manifest it did not plan for appears
  // (a writer whose lock it broke as stale committed anyway: an older
  // dagvault, or a clock far off), needing the same chunks.
  dagvault::v1::Manifest late = *old;
  late.set_id("20990101T000000.000000Z-0000beef");
  late.set_session(late.id());
  std::vector<std::string> steps;
  PruneOptions options;
  options.keep_manifests = {};
  options.pack_grace = absl::ZeroDuration();
  options.lock.clock = &clock_;
  options.before_step = [&](absl::string_view step) {
    steps.emplace_back(step);
    if (step == "removing index files") {
      ASSERT_TRUE(repo_->WriteManifest(late).ok());
    }
  };
  auto report = Prune(*repo_, options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(report.status().message()),
              AllOf(HasSubstr("prune stopped before removing index files"),
                    HasSubstr("manifest " + late.id() + " appeared while prune ran")));
  EXPECT_THAT(steps, ::testing::ElementsAre("removing manifests", "removing index files"));
  // Its data is all there.
  ExpectCleanCheck();
  const std::string to = dir_.Sub("out");
  ASSERT_TRUE(Restore(*repo_, late.id(), to).ok());
  EXPECT_EQ(Sha256Hex(ReadFile(to + "/db.edb")), Sha256Hex(data));
}

TEST_P(LockSafetyTest, PruneStopsWhenItsOwnLockWasBroken) {
  auto old = BackUp("DB01", MakeEdbLike(128, 1));
  ASSERT_TRUE(old.ok());
  PruneOptions options;
  options.keep_manifests = {};
  options.pack_grace = absl::ZeroDuration();
  options.lock.clock = &clock_;
  options.lock.refresh_every = absl::InfiniteDuration();
  options.before_step = [&](absl::string_view step) {
    if (step == "removing packs") RemoveEveryLock();  // a backup broke it as stale
  };
  auto report = Prune(*repo_, options);
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(std::string(report.status().message()),
              AllOf(HasSubstr("prune stopped before removing packs"),
                    HasSubstr("is no longer this session's")));
  ExpectCleanCheck();
}

TEST_P(LockSafetyTest, ContainersSharingAHostNameDoNotJudgeEachOthersPids) {
  ASSERT_TRUE(CreateDirectories(repo_->root() + "/locks").ok());
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  dagvault::v1::RepositoryLock other;
  other.set_kind(dagvault::v1::RepositoryLock::EXCLUSIVE);
  other.set_host(host);                                      // the same name...
  other.set_host_identity("another-boot/pid:[4026531836]");  // ...another PID namespace
  other.set_pid(0x7ffffff0);                                 // not a process here
  other.set_session("container");
  other.set_purpose("prune");
  other.set_refreshed_us(absl::ToUnixMicros(absl::Now()));
  const std::string path = repo_->root() + "/locks/container.lock";
  WriteFile(path, other.SerializeAsString());
  auto mine = AcquireLock(repo_->root(), dagvault::v1::RepositoryLock::SHARED, "s", "backup");
  ASSERT_FALSE(mine.ok());
  EXPECT_THAT(std::string(mine.status().message()), HasSubstr("an exclusive lock for prune"));
  EXPECT_TRUE(PathExists(path));
  // The same identity: the pid is this namespace's, and it is gone.
  other.set_host_identity(ThisHostIdentity());
  WriteFile(path, other.SerializeAsString());
  mine = AcquireLock(repo_->root(), dagvault::v1::RepositoryLock::SHARED, "s", "backup");
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_FALSE(PathExists(path));
}

TEST_P(LockSafetyTest, AJudgeWhoseWallClockJumpedAheadBreaksNoLiveLock) {
  // Another host holds a live lock, refreshed just now by every clock.
  ASSERT_TRUE(CreateDirectories(repo_->root() + "/locks").ok());
  dagvault::v1::RepositoryLock live;
  live.set_kind(dagvault::v1::RepositoryLock::SHARED);
  live.set_host("elsewhere");
  live.set_session("live");
  live.set_purpose("backup");
  live.set_refreshed_us(absl::ToUnixMicros(absl::Now()));
  const std::string path = repo_->root() + "/locks/live.lock";
  WriteFile(path, live.SerializeAsString());
  // A prune whose wall clock is an hour ahead: the written time looks an
  // hour old to it, but the file is as young as its own lock file.
  clock_.StepWallClock(absl::Hours(1));
  LockOptions options;
  options.clock = &clock_;
  auto prune =
      AcquireLock(repo_->root(), dagvault::v1::RepositoryLock::EXCLUSIVE, "p", "prune", options);
  ASSERT_FALSE(prune.ok());
  EXPECT_THAT(std::string(prune.status().message()), HasSubstr("a shared lock for backup"));
  EXPECT_TRUE(PathExists(path));
}

TEST_P(LockSafetyTest, AHolderWhoseWallClockIsBehindIsNotBrokenWhileItsFileIsFresh) {
  ASSERT_TRUE(CreateDirectories(repo_->root() + "/locks").ok());
  dagvault::v1::RepositoryLock behind;
  behind.set_kind(dagvault::v1::RepositoryLock::SHARED);
  behind.set_host("elsewhere");
  behind.set_session("behind");
  behind.set_purpose("backup");
  // Its clock is an hour behind: the time it writes looks an hour old...
  behind.set_refreshed_us(absl::ToUnixMicros(absl::Now() - absl::Hours(1)));
  const std::string path = repo_->root() + "/locks/behind.lock";
  WriteFile(path, behind.SerializeAsString());
  // ...but the file was written just now: it holds.
  auto prune = AcquireLock(repo_->root(), dagvault::v1::RepositoryLock::EXCLUSIVE, "p", "prune");
  ASSERT_FALSE(prune.ok());
  EXPECT_TRUE(PathExists(path));
  // When the file is old too, it is stale.
  const absl::Time hour_ago = absl::Now() - absl::Hours(1);
  const timespec times[2] = {absl::ToTimespec(hour_ago), absl::ToTimespec(hour_ago)};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  prune = AcquireLock(repo_->root(), dagvault::v1::RepositoryLock::EXCLUSIVE, "p", "prune");
  ASSERT_TRUE(prune.ok()) << prune.status();
  EXPECT_FALSE(PathExists(path));
}

// Filesystem only: these tests age lock files and packs by setting their
// modification times, which an object store does not let a client do.
// (The lock protocol is the same code on S3; object_store_test.cc checks
// the calls it rests on.)
INSTANTIATE_TEST_SUITE_P(Backends, LockSafetyTest, ::testing::Values(Backend::kFilesystem),
                         BackendName);

}  // namespace
}  // namespace dagvault::repository
