// The agent's log archiver against real mailstored processes and a real
// repository: segments batched and reported until acknowledged, kept on
// disk across a restart, the open generation closed on time, and an error
// reported when the chain cannot be followed.
#include "node-agent/daemon/log_archiver.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node-agent/jobs/backup_job.h"
#include "node-agent/shadow/writer_shadow_session.h"
#include "node-agent/snapshot/snapshot_provider.h"
#include "repository/repository_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;
using ::dagvault::testing::Databases;
using ::dagvault::testing::FastLab;
using ::dagvault::testing::kNode1;
using ::dagvault::testing::kNode2;
using ::dagvault::testing::MailstoredCluster;
using ::dagvault::testing::PutItems;
using ::testing::HasSubstr;

constexpr char kUnit[] = "DB02";

class LogArchiverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.Start().ok());
    auto repo = repository::Repository::Init(cluster_.root() + "/repo",
                                             repository::testing::TestPassphrase(),
                                             repository::testing::FastInit());
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = std::make_unique<repository::Repository>(*std::move(repo));
  }

  std::unique_ptr<LogArchiver> Archiver(int node, LogArchiver::Options options) {
    options.state_path = cluster_.root() + "/archived.pb";
    return std::make_unique<LogArchiver>(
        cluster_.node(node).name,
        [this]() -> absl::StatusOr<const repository::Repository*> { return repo_.get(); },
        [this, node]() {
          return WriterShadowSession(ConnectWriter(cluster_.node(node).config.writer_socket()),
                                     std::make_shared<std::mutex>())
              .Metadata();
        },
        [this, node](const std::string& unit) {
          ++rolls_;
          return cluster_.RollLog(node, unit);
        },
        &clock_, options);
  }

  // A Full of the unit's active copy on `node`.
  absl::Status Full(int node = kNode1) {
    BackupJobSpec spec;
    spec.job = absl::StrCat("full-", node);
    spec.unit = kUnit;
    spec.type = v1::FULL;
    WriterShadowSession session(ConnectWriter(cluster_.node(node).config.writer_socket()),
                                std::make_shared<std::mutex>());
    auto copy = MakeSnapshotProvider("copy");
    if (!copy.ok()) return copy.status();
    return RunBackupJob(session, **copy, *repo_, spec, nullptr, nullptr).status();
  }

  void LoadAndRoll(uint64_t mailbox) {
    PutItems(cluster_, kNode1, kUnit, Databases(kUnit), mailbox, 0, 20);
    ASSERT_TRUE(cluster_.RollLog(kNode1, kUnit).ok());
    ASSERT_TRUE(cluster_.WaitConverged(kNode1, kUnit).ok());
  }

  MailstoredCluster cluster_{FastLab(0), "archiver"};
  std::unique_ptr<repository::Repository> repo_;
  FakeClock clock_{absl::Now()};
  int rolls_ = 0;
};

TEST_F(LogArchiverTest, SegmentsAreBatchedReportedUntilAcknowledgedAndKeptAcrossARestart) {
  auto archiver = Archiver(kNode2, {});
  archiver->SetUnits({kUnit});
  // No Full yet: the unit's error says why.
  EXPECT_EQ(archiver->RunOnce(), 0);
  v1::NodeReport report;
  archiver->FillReport(&report);
  ASSERT_EQ(report.archives_size(), 1);
  EXPECT_THAT(report.archives(0).error(), HasSubstr("has no Full backup"));

  ASSERT_TRUE(Full().ok());
  LoadAndRoll(2);
  clock_.Advance(absl::Seconds(11));  // past the retry pause
  EXPECT_EQ(archiver->RunOnce(), 1);
  // A generation more, within the minimum interval: it waits for the next.
  LoadAndRoll(3);
  EXPECT_EQ(archiver->RunOnce(), 0);
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(archiver->RunOnce(), 1);
  report.Clear();
  archiver->FillReport(&report);
  ASSERT_EQ(report.archived_segments_size(), 2);
  EXPECT_EQ(report.archived_segments(0).type(), v1::LOG_ARCHIVE);
  EXPECT_EQ(report.archives(0).error(), "");
  auto copy = cluster_.Copy(kNode1, kUnit);
  ASSERT_TRUE(copy.ok());
  EXPECT_EQ(report.archives(0).archived_through(), copy->last_log_generation());

  // Acknowledged, the first is no longer reported; the second survives a
  // restart of the agent.
  archiver->Acknowledged({report.archived_segments(0).id()});
  const std::string second = report.archived_segments(1).id();
  archiver = Archiver(kNode2, {});
  report.Clear();
  archiver->FillReport(&report);
  ASSERT_EQ(report.archived_segments_size(), 1);
  EXPECT_EQ(report.archived_segments(0).id(), second);
  // Reading its base from the repository, a restarted archiver reports
  // the latest segments again (one may never have been acknowledged).
  archiver->Acknowledged({second});
  archiver->SetUnits({kUnit});
  EXPECT_EQ(archiver->RunOnce(), 0);
  report.Clear();
  archiver->FillReport(&report);
  EXPECT_EQ(report.archived_segments_size(), 2);
}

// Files under the repository's root, to tell that nothing was uploaded.
size_t RepositoryFiles(const std::string& root) {
  size_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    n += e.is_regular_file() ? 1 : 0;
  }
  return n;
}

// node1 archives generations the suspended node2 never copied; node2 is
// activated with --lossy and its stream goes on from an older generation.
// Its archiver names the piece its logs do not follow and the generation,
// reports it until a segment is written again, and does not upload the
// same logs again while the repository's newest piece is unchanged.
TEST_F(LogArchiverTest, AStreamThatDoesNotFollowTheArchiveIsReportedAsABreakOnce) {
  ASSERT_TRUE(Full().ok());
  // node2 holds everything up to here before it stops copying, so that a
  // lossy activation has a copy to activate (under load it may still be
  // seeding otherwise).
  ASSERT_TRUE(cluster_.WaitConverged(kNode1, kUnit).ok());
  ASSERT_TRUE(cluster_.Admin(kNode2, "suspend", kUnit).ok());
  auto old_archiver = Archiver(kNode1, {});
  old_archiver->SetUnits({kUnit});
  PutItems(cluster_, kNode1, kUnit, Databases(kUnit), 5, 0, 20);
  ASSERT_TRUE(cluster_.RollLog(kNode1, kUnit).ok());
  PutItems(cluster_, kNode1, kUnit, Databases(kUnit), 5, 20, 20);
  ASSERT_TRUE(cluster_.RollLog(kNode1, kUnit).ok());
  ASSERT_EQ(old_archiver->RunOnce(), 1);
  v1::NodeReport report;
  old_archiver->FillReport(&report);
  ASSERT_EQ(report.archived_segments_size(), 1);
  const v1::Manifest segment = report.archived_segments(0);

  cluster_.KillNode(kNode1);
  ASSERT_TRUE(cluster_.Admin(kNode2, "resume", kUnit).ok());
  const absl::Status activated = cluster_.Activate(kNode2, kUnit, "node2", /*lossy=*/true);
  ASSERT_TRUE(activated.ok()) << activated;
  for (int round = 0;; ++round) {
    ASSERT_LT(round, 20);
    PutItems(cluster_, kNode2, kUnit, Databases(kUnit), 6, round * 10, 10);
    ASSERT_TRUE(cluster_.RollLog(kNode2, kUnit).ok());
    auto copy = cluster_.Copy(kNode2, kUnit);
    ASSERT_TRUE(copy.ok());
    if (copy->last_log_generation() > segment.high_generation()) break;
  }
  auto archiver = Archiver(kNode2, {});
  archiver->SetUnits({kUnit});
  EXPECT_EQ(archiver->RunOnce(), 0);
  report.Clear();
  archiver->FillReport(&report);
  ASSERT_EQ(report.archives_size(), 1);
  EXPECT_EQ(report.archives(0).break_generation(), segment.high_generation() + 1);
  EXPECT_EQ(report.archives(0).break_after_manifest(), segment.id());
  EXPECT_THAT(report.archives(0).error(), HasSubstr("the log stream diverged"));

  const size_t files = RepositoryFiles(cluster_.root() + "/repo");
  clock_.Advance(absl::Seconds(11));  // past the retry pause
  EXPECT_EQ(archiver->RunOnce(), 0);
  EXPECT_EQ(RepositoryFiles(cluster_.root() + "/repo"), files);
  report.Clear();
  archiver->FillReport(&report);
  EXPECT_EQ(report.archives(0).break_generation(), segment.high_generation() + 1);

  // A Full of the new stream starts a chain the archive follows again.
  ASSERT_TRUE(Full(kNode2).ok());
  PutItems(cluster_, kNode2, kUnit, Databases(kUnit), 6, 500, 10);
  ASSERT_TRUE(cluster_.RollLog(kNode2, kUnit).ok());
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(archiver->RunOnce(), 1);
  report.Clear();
  archiver->FillReport(&report);
  EXPECT_EQ(report.archives(0).error(), "");
  EXPECT_EQ(report.archives(0).break_generation(), 0u);
  EXPECT_EQ(report.archives(0).break_after_manifest(), "");
}

TEST_F(LogArchiverTest, TheActiveCopysOpenGenerationIsClosedOnceItsOldestRecordIsThatOld) {
  // The passive copies seeded first: seeding one closes the active's open
  // generation (UnitHost::ServeSeed), and a seed that came after the items
  // below would close it before the archiver could. Under load, a run
  // (2026-12-06) did its Full of generation 1 alone before the seeds and
  // saw no roll.
  ASSERT_TRUE(cluster_.WaitConverged(kNode1, kUnit).ok());
  ASSERT_TRUE(Full().ok());
  auto archiver = Archiver(kNode1, {});
  archiver->SetRolls({{kUnit, 30}});
  PutItems(cluster_, kNode1, kUnit, Databases(kUnit), 4, 0, 3);
  archiver->RunOnce();
  EXPECT_EQ(rolls_, 0) << "its oldest record is younger than 30 s";
  clock_.Advance(absl::Seconds(40));
  archiver->RunOnce();
  EXPECT_EQ(rolls_, 1);
  // Nothing logged since: nothing to close.
  clock_.Advance(absl::Seconds(40));
  archiver->RunOnce();
  EXPECT_EQ(rolls_, 1);
  // Not rolled where the copy is passive.
  auto passive = Archiver(kNode2, {});
  passive->SetRolls({{kUnit, 1}});
  PutItems(cluster_, kNode1, kUnit, Databases(kUnit), 4, 3, 3);
  clock_.Advance(absl::Seconds(40));
  passive->RunOnce();
  EXPECT_EQ(rolls_, 1);
}

}  // namespace
}  // namespace dagvault::agent
