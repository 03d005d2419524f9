// WriterShadowSession against real mailstored daemons: the writer chosen
// from the copy's role, passive copies refused with the reason, the
// node's writer gate, and a session dropped without EndBackup releasing
// the unit.
#include "node-agent/shadow/writer_shadow_session.h"

#include <atomic>
#include <thread>

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mailstored/backup_set.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::agent {
namespace {

using ::dagvault::testing::Databases;
using ::dagvault::testing::kNode1;
using ::dagvault::testing::kNode2;
using ::dagvault::testing::kNode3;
using ::dagvault::testing::MailstoredCluster;
using ::testing::AllOf;
using ::testing::HasSubstr;
namespace v1 = dagvault::v1;

class WriterShadowSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.Start().ok());
    for (const char* unit : {"SG01", "DB02"}) {
      ::dagvault::testing::PutItems(cluster_, kNode1, unit, Databases(unit), 1, 0, 40);
      ASSERT_TRUE(cluster_.RollLog(kNode1, unit).ok());
      ASSERT_TRUE(cluster_.WaitConverged(kNode1, unit).ok());
    }
    gates_.resize(cluster_.size());
    for (auto& g : gates_) g = std::make_shared<std::mutex>();
  }

  std::unique_ptr<WriterShadowSession> Session(int node) {
    return std::make_unique<WriterShadowSession>(
        ConnectWriter(cluster_.node(node).config.writer_socket()), gates_[node]);
  }

  static BackupJobSpec Spec(const std::string& job, const std::string& unit,
                            v1::BackupType type = v1::FULL) {
    BackupJobSpec spec;
    spec.job = job;
    spec.unit = unit;
    spec.type = type;
    return spec;
  }

  // node3's copy is lagged long enough that the queue a test sees is still
  // there when the session looks, however slow the machine.
  MailstoredCluster cluster_{::dagvault::testing::FastLab(/*lag_seconds=*/60), "shadow"};
  std::vector<std::shared_ptr<std::mutex>> gates_;
  std::unique_ptr<SnapshotProvider> copy_ = *MakeSnapshotProvider("copy");
};

TEST_F(WriterShadowSessionTest, TheStoreWriterBacksUpTheActiveCopyAndTheReplicationWriterAPassive) {
  for (int node : {kNode1, kNode2}) {
    SCOPED_TRACE(node);
    auto session = Session(node);
    auto began = session->BeginBackup(Spec(absl::StrCat("job", node), "SG01"));
    ASSERT_TRUE(began.ok()) << began.status();
    EXPECT_EQ(began->writer_instance, node == kNode1 ? kStoreWriter : kReplicationWriter);
    auto copy = session->CreateSnapshot(*copy_);
    ASSERT_TRUE(copy.ok()) << copy.status();
    // The snapshot holds every frozen file, beside its source.
    ASSERT_EQ(copy->snapshot->files().size(), static_cast<size_t>(copy->frozen.files_size()));
    for (int i = 0; i < copy->frozen.files_size(); ++i) {
      EXPECT_EQ(copy->snapshot->files()[i].source, copy->frozen.files(i).path());
      EXPECT_TRUE(PathExists(copy->snapshot->files()[i].path));
    }
    EXPECT_GT(copy->freeze_window, absl::ZeroDuration());
    EXPECT_GE(copy->freeze_window, copy->writer_frozen_for);
    auto done =
        session->EndBackup(true, {}, copy->frozen.low_generation(), copy->frozen.high_generation());
    ASSERT_TRUE(done.ok()) << done.status();
    const std::string folder = DirName(copy->snapshot->files()[0].path);
    ASSERT_TRUE(copy->snapshot->Remove().ok());
    EXPECT_FALSE(PathExists(folder));
  }
}

TEST_F(WriterShadowSessionTest, APassiveCopyNotHealthyOrOverItsQueueLimitsIsRefusedWithTheReason) {
  ASSERT_TRUE(cluster_.Admin(kNode2, "suspend", "SG01").ok());
  auto refused = Session(kNode2)->BeginBackup(Spec("s1", "SG01"));
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("the passive copy of SG01 on node2 is SUSPENDED"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("not HEALTHY"));
  ASSERT_TRUE(cluster_.Admin(kNode2, "resume", "SG01").ok());

  // The lagged copy holds logs it has not replayed: over a limit of 0.
  ::dagvault::testing::PutItems(cluster_, kNode1, "DB02", Databases("DB02"), 2, 0, 40);
  ASSERT_TRUE(cluster_.RollLog(kNode1, "DB02").ok());
  ASSERT_TRUE(::dagvault::testing::WaitFor(
      [&] {
        auto c = cluster_.Copy(kNode3, "DB02");
        return c.ok() && c->replay_queue() > 0;
      },
      absl::Seconds(30)));
  BackupJobSpec spec = Spec("s2", "DB02");
  spec.max_replay_queue = 0;
  refused = Session(kNode3)->BeginBackup(spec);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("the passive copy of DB02 on node3 has a replay queue of "));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("over the job's limit of 0"));

  auto unknown = Session(kNode1)->BeginBackup(Spec("s3", "NOPE"));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WriterShadowSessionTest, OneUnitAtATimeIsBetweenPrepareAndThawOnANode) {
  auto first = Session(kNode1);
  ASSERT_TRUE(first->BeginBackup(Spec("g1", "SG01")).ok());
  std::atomic<bool> second_began{false};
  auto second = Session(kNode1);
  std::thread other([&] {
    auto began = second->BeginBackup(Spec("g2", "DB02"));
    EXPECT_TRUE(began.ok()) << began.status();
    second_began = true;
  });
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_FALSE(second_began) << "a second PrepareBackup ran before the first unit thawed";
  auto copy = first->CreateSnapshot(*copy_);
  ASSERT_TRUE(copy.ok()) << copy.status();
  other.join();
  EXPECT_TRUE(second_began);
  // The data transfer after Thaw runs beside the other unit's snapshot.
  auto other_copy = second->CreateSnapshot(*copy_);
  ASSERT_TRUE(other_copy.ok()) << other_copy.status();
  EXPECT_TRUE(first->EndBackup(false, {}, 0, 0).ok());
  EXPECT_TRUE(second->EndBackup(false, {}, 0, 0).ok());
}

TEST_F(WriterShadowSessionTest, ASessionDroppedWithoutEndBackupReleasesTheUnitAndTruncatesNothing) {
  auto before = cluster_.Copy(kNode1, "SG01");
  ASSERT_TRUE(before.ok());
  {
    auto session = Session(kNode1);
    ASSERT_TRUE(session->BeginBackup(Spec("d1", "SG01")).ok());
    auto copy = session->CreateSnapshot(*copy_);
    ASSERT_TRUE(copy.ok()) << copy.status();
    // Dropped here: a job that failed between Thaw and BackupComplete.
  }
  auto again = Session(kNode1);
  auto began = again->BeginBackup(Spec("d2", "SG01"));
  ASSERT_TRUE(began.ok()) << "the first session still holds the unit: " << began.status();
  auto after = cluster_.Copy(kNode1, "SG01");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->lowest_log_generation(), before->lowest_log_generation());
  EXPECT_TRUE(again->EndBackup(false, {}, 0, 0).ok());
}

TEST_F(WriterShadowSessionTest, TheJobsFencingTokenReachesTheWriterAndALowerOneIsRefused) {
  auto spec = Spec("f7", "SG01");
  spec.fencing_token = 7;
  auto session = Session(kNode1);
  ASSERT_TRUE(session->BeginBackup(spec).ok());
  EXPECT_TRUE(session->EndBackup(false, {}, 0, 0).ok());
  spec.job = "f5";
  spec.fencing_token = 5;
  auto refused = Session(kNode1)->BeginBackup(spec);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("fencing token 5"), HasSubstr("superseded")));
  RestoreTarget target;
  target.job = "r3";
  target.unit = "SG01";
  target.recovery_database = "SG01-RDB";
  target.path = cluster_.root() + "/rdb";
  target.fencing_token = 3;
  auto restore = Session(kNode1)->BeginRestore(target);
  ASSERT_FALSE(restore.ok());
  EXPECT_THAT(std::string(restore.status().message()),
              AllOf(HasSubstr("PrepareRestore"), HasSubstr("fencing token 3")));
}

}  // namespace
}  // namespace dagvault::agent
