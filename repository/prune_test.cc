#include "repository/prune.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/check.h"
#include "repository/index.h"
#include "repository/repository_test_util.h"

namespace dagvault::repository {
namespace {

using namespace testing;  // NOLINT: the shared test helpers
using ::testing::AllOf;
using ::testing::HasSubstr;

class PruneTest : public RepositoryTest {
 protected:
  PruneTest() : RepositoryTest("prune") {}
  dagvault::v1::Manifest BackUp(const std::string& unit, const std::string& data) {
    WriteFile(dir_.Sub("src/db.edb"), data);
    auto m = Backup(*repo_, {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0}}, Header(unit));
    EXPECT_TRUE(m.ok()) << m.status();
    return *m;
  }
  void ExpectRestores(const dagvault::v1::Manifest& m, const std::string& data) {
    const std::string to = dir_.Sub("out-" + m.id());
    auto r = Restore(*repo_, m.id(), to);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(Sha256Hex(ReadFile(to + "/db.edb")), Sha256Hex(data));
  }
};

TEST_P(PruneTest, SweepsWhatNoKeptManifestNeedsAndRepacksMostlyDeadPacks) {
  const std::string a = MakeEdbLike(2048, 1);  // 16 MiB, unit DB01
  const std::string b = MakeEdbLike(2048, 2);  // 16 MiB, unit DB02
  const std::string c = MakeEdbLike(1024, 3);  // 8 MiB, in DB02's first backup only
  const auto ma = BackUp("DB01", a);
  // DB02's first backup writes one pack holding b and c; its second holds
  // b alone (all of it already stored). Once the first goes, that pack is
  // a third dead: repacked at --repack-below 0.9.
  WriteFile(dir_.Sub("src/c.edb"), c);
  WriteFile(dir_.Sub("src/db.edb"), b);
  auto mb1 = Backup(*repo_,
                    {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0},
                     {dir_.Sub("src/c.edb"), "c.edb", "database", "", 0}},
                    Header("DB02"));
  ASSERT_TRUE(mb1.ok()) << mb1.status();
  const auto mb2 = BackUp("DB02", b);
  ASSERT_EQ(mb2.new_bytes(), 0u);

  PruneOptions options;
  options.pack_grace = absl::ZeroDuration();  // nothing else writes here
  options.keep_manifests = {ma.id(), mb2.id()};
  options.repack_below = 0.9;
  auto report = Prune(*repo_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->manifests_removed, 1u);
  EXPECT_GE(report->packs_repacked, 1u);
  EXPECT_LT(report->bytes_after, report->bytes_before);
  auto ids = repo_->ListManifests();
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<std::string>{ma.id(), mb2.id()}));
  ExpectCleanCheck();
  ExpectRestores(ma, a);
  ExpectRestores(mb2, b);

  // Keeping nothing leaves nothing.
  options.keep_manifests = {};
  report = Prune(*repo_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->bytes_after, 0u);
  ExpectCleanCheck();
}

TEST_P(PruneTest, RemovingNamedManifestsKeepsEveryOtherOneIncludingOnesItWasNotTold) {
  const std::string a = MakeEdbLike(512, 1);
  const std::string b = MakeEdbLike(512, 2);
  const auto ma = BackUp("DB01", a);
  // Written after whoever decided what to remove looked: it stays.
  const auto mb = BackUp("DB02", b);
  PruneOptions options;
  options.pack_grace = absl::ZeroDuration();  // nothing else writes here
  options.remove_manifests = {ma.id(), "20990101T000000.000000Z-00000000"};
  auto report = Prune(*repo_, options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->manifests_removed, 1u);
  auto ids = repo_->ListManifests();
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<std::string>{mb.id()}));
  ExpectCleanCheck();
  ExpectRestores(mb, b);
}

TEST_P(PruneTest, RefusesAndRemovesNothingWhenAKeptManifestOrAnIndexIsBad) {
  const auto m = BackUp("DB01", MakeEdbLike(256, 1));
  PruneOptions options;
  options.pack_grace = absl::ZeroDuration();  // nothing else writes here
  options.keep_manifests = {"20990101T000000.000000Z-00000000"};
  auto report = Prune(*repo_, options);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(report.status().message()), HasSubstr("nothing was removed"));

  auto files = ListIndexFiles(repo_->store());
  ASSERT_TRUE(files.ok() && files->size() == 1);
  ASSERT_TRUE(repo_->store().Replace((*files)[0], "damaged").ok());
  options.keep_manifests = {};
  report = Prune(*repo_, options);
  EXPECT_FALSE(report.ok());
  EXPECT_THAT(std::string(report.status().message()),
              AllOf(HasSubstr("index file " + repo_->store().Name((*files)[0])),
                    HasSubstr("nothing was removed")));
  EXPECT_TRUE(repo_->ReadManifest(m.id()).ok());
}

// On an object store a pack goes in two phases: the first prune that finds
// it unreferenced marks it, and a prune after the grace period that still
// finds it unreferenced removes it. (On a folder, at once.) A pack that a
// writer's index names meanwhile stays.
TEST_P(PruneTest, OnAnObjectStoreAnUnreferencedPackIsMarkedFirstAndRemovedAfterTheGrace) {
  const std::string a = MakeEdbLike(256, 1);
  const auto ma = BackUp("DB01", a);
  const auto mb = BackUp("DB02", MakeEdbLike(256, 2));
  PruneOptions options;
  options.pack_grace = absl::Seconds(2);
  options.keep_manifests = {ma.id()};
  // The packs are older than the grace period when prune looks at them
  // (by more than a second: S3 gives times in whole seconds).
  absl::SleepFor(absl::Seconds(3.5));
  auto first = Prune(*repo_, options);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->manifests_removed, 1u);
  if (!repo_->store().two_phase_prune()) {
    EXPECT_GE(first->packs_removed, 1u);
    EXPECT_EQ(first->packs_marked, 0u);
    ExpectRestores(ma, a);
    return;
  }
  EXPECT_EQ(first->packs_removed, 0u);
  EXPECT_GE(first->packs_marked, 1u);
  // At once again: the mark is not old enough.
  auto second = Prune(*repo_, options);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->packs_removed, 0u);
  EXPECT_EQ(second->packs_waiting, first->packs_marked);
  EXPECT_EQ(second->packs_marked, 0u);
  absl::SleepFor(absl::Seconds(3.5));
  auto third = Prune(*repo_, options);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->packs_removed, first->packs_marked);
  EXPECT_EQ(third->packs_waiting, 0u);
  ExpectCleanCheck();
  ExpectRestores(ma, a);
  // The spent marks are gone.
  EXPECT_TRUE(ListAll(repo_->store(), "prune/")->empty());
}

// A backup in progress holds its shared lock: a prune on another host
// refuses to start, naming it, and the backup commits untouched.
TEST_P(PruneTest, APruneWhileABackupRunsRefusesAndTheBackupCommits) {
  const std::string data = MakeEdbLike(256, 3);
  WriteFile(dir_.Sub("src/db.edb"), data);
  struct Pause : BackupObserver {
    std::function<absl::Status()> before;
    absl::Status OnSegment(size_t, uint64_t, absl::string_view) override {
      return absl::OkStatus();
    }
    absl::Status BeforeCommit(dagvault::v1::Manifest*) override { return before(); }
  } pause;
  absl::Status prune_result;
  pause.before = [&] {
    PruneOptions options;
    options.pack_grace = absl::ZeroDuration();
    options.keep_manifests = {};
    prune_result = Prune(*repo_, options).status();
    return absl::OkStatus();
  };
  BackupOptions backup;
  backup.observer = &pause;
  auto m = Backup(*repo_, {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0}}, Header("DB01"),
                  backup);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(prune_result.code(), absl::StatusCode::kFailedPrecondition) << prune_result;
  EXPECT_THAT(std::string(prune_result.message()), HasSubstr("a shared lock for backup"));
  ExpectCleanCheck();
  ExpectRestores(*m, data);
}

INSTANTIATE_TEST_SUITE_P(Backends, PruneTest, Backends(), BackendName);

}  // namespace
}  // namespace dagvault::repository
