// The writers of real mailstored processes, driven over their Unix sockets
// as the dagvault agent drives them: metadata, backup-in-progress across
// copies and across restarts, freeze and its timeout, the backup types,
// and the four log truncation rules.
#include <atomic>
#include <thread>

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "mailstore/format/edb_header.h"
#include "mailstore/server/writer.h"
#include "tests/mailstored/backup_set.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
namespace v1 = dagvault::v1;

const v1::UnitMetadata* FindUnit(const v1::WriterInstance& writer, const std::string& unit) {
  for (const auto& u : writer.units()) {
    if (u.unit() == unit) return &u;
  }
  return nullptr;
}

// The header of a database file as it is on disk now.
mailstore::DbHeader HeaderOf(MailstoredCluster& cluster, int i, const std::string& unit,
                             const std::string& db) {
  auto read = mailstore::ReadDbHeaderFromPath(cluster.node(i).config.data_root() + "/" + unit +
                                              "/" + db + ".edb");
  EXPECT_TRUE(read.ok()) << read.status();
  return read.ok() ? read->header : mailstore::DbHeader{};
}

// Puts a few items and closes `generations` log generations on the active.
void WriteAndRoll(MailstoredCluster& cluster, int active, const std::string& unit, uint64_t mailbox,
                  int generations) {
  static uint64_t next_item = 0;
  for (int g = 0; g < generations; ++g) {
    PutItems(cluster, active, unit, Databases(unit), mailbox, next_item, 10);
    next_item += 10;
    ASSERT_OK(cluster.RollLog(active, unit));
  }
}

TEST(Writers, MetadataShowsTheStoreWriterForActiveCopiesAndTheReplicationWriterForPassiveOnes) {
  MailstoredCluster cluster(FastLab(), "metadata");
  ASSERT_OK(cluster.Start());
  WriteAndRoll(cluster, kNode1, "SG01", 1, 2);
  ASSERT_OK(cluster.WaitConverged(kNode1, "SG01"));

  auto active = GetMetadata(cluster, kNode1);
  ASSERT_OK(active);
  EXPECT_EQ(active->node(), "node1");
  ASSERT_EQ(active->writers_size(), 1);
  EXPECT_EQ(active->writers(0).instance_name(), mailstore::kStoreWriter);
  EXPECT_EQ(active->writers(0).writer_id(), mailstore::kWriterId);
  const v1::UnitMetadata* sg = FindUnit(active->writers(0), "SG01");
  ASSERT_NE(sg, nullptr);
  EXPECT_NE(FindUnit(active->writers(0), "DB02"), nullptr);
  EXPECT_FALSE(sg->circular_logging());
  EXPECT_EQ(sg->log_prefix(), "E00");
  EXPECT_EQ(sg->copy().role(), v1::ACTIVE);
  EXPECT_EQ(sg->copy().state(), v1::MOUNTED);
  // One component per database, one for the logs and the checkpoint.
  ASSERT_EQ(sg->components_size(), 3);
  EXPECT_EQ(sg->components(0).type(), v1::Component::DATABASE);
  EXPECT_EQ(sg->components(0).name(), "MDB01A");
  EXPECT_EQ(sg->components(1).name(), "MDB01B");
  const auto& logs = sg->components(2);
  EXPECT_EQ(logs.type(), v1::Component::LOG);
  EXPECT_THAT(logs.files(0), HasSubstr("E00.chk"));
  EXPECT_GE(logs.files_size(), 3);  // the checkpoint and the closed logs
  for (const auto& c : sg->components()) {
    for (const auto& f : c.files()) EXPECT_TRUE(PathExists(f)) << f;
  }

  auto passive = GetMetadata(cluster, kNode2);
  ASSERT_OK(passive);
  ASSERT_EQ(passive->writers_size(), 1);
  EXPECT_EQ(passive->writers(0).instance_name(), mailstore::kReplicationWriter);
  const v1::UnitMetadata* copy = FindUnit(passive->writers(0), "SG01");
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(copy->copy().role(), v1::PASSIVE);
  EXPECT_EQ(copy->copy().state(), v1::HEALTHY);
  EXPECT_EQ(copy->copy().copy_queue(), 0u);
  EXPECT_EQ(copy->copy().replay_queue(), 0u);
  EXPECT_EQ(copy->copy().last_replayed_generation(), sg->copy().last_log_generation());
  ASSERT_EQ(copy->components_size(), 3);
  EXPECT_THAT(copy->components(2).files(0), HasSubstr("E00.chk"));
  for (const auto& c : copy->components()) {
    for (const auto& f : c.files()) EXPECT_TRUE(PathExists(f)) << f;
  }
}

TEST(Writers, ASecondBackupOfAUnitFailsWhicheverCopiesEitherTargets) {
  MailstoredCluster cluster(FastLab(), "inprogress");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "SG01"));
  // WaitConverged leaves the lagged copy (node3) out; a copy still seeding
  // refuses a backup for that reason before the in-progress check. Both
  // units' copies on node3 are waited for: DB02's is backed up below (under
  // a loaded machine it was still INITIALIZING once).
  for (const char* unit : {"SG01", "DB02"}) {
    ASSERT_TRUE(WaitFor(
        [&] {
          auto lagged = cluster.Copy(kNode3, unit);
          return lagged.ok() && lagged->state() == v1::HEALTHY;
        },
        absl::Seconds(60)))
        << unit;
  }

  // A backup from the passive copy on node2 holds the unit on the active.
  auto first = PrepareBackup(cluster, kNode2, "SG01", v1::FULL);
  ASSERT_OK(first);
  EXPECT_EQ(first->writer_instance(), mailstore::kReplicationWriter);
  for (int i : {kNode1, kNode2, kNode3}) {
    auto second = PrepareBackup(cluster, i, "SG01", v1::COPY);
    ASSERT_FALSE(second.ok()) << i;
    EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
    // Like Exchange's event 9607: the holder, its copy and when it began.
    EXPECT_THAT(std::string(second.status().message()),
                AllOf(HasSubstr("a backup is already in progress"),
                      HasSubstr("full backup of the passive copy on node2"), HasSubstr("started"),
                      HasSubstr(first->session())));
  }
  auto status = cluster.Status(kNode1, "SG01");
  ASSERT_OK(status);
  EXPECT_EQ(status->units(0).backup_in_progress().holder_node(), "node2");
  // The other unit is not held.
  auto other = PrepareBackup(cluster, kNode3, "DB02", v1::FULL);
  ASSERT_OK(other);
  ASSERT_OK(BackupComplete(cluster, kNode3, other->session(), false, 0, 0));
  // A failed backup releases the unit and records nothing.
  ASSERT_OK(BackupComplete(cluster, kNode2, first->session(), false, 0, 0));
  EXPECT_EQ(HeaderOf(cluster, kNode1, "SG01", "MDB01A").previous_full.high, 0u);

  // And the other way round: the active copy's own backup holds it.
  auto active = PrepareBackup(cluster, kNode1, "SG01", v1::FULL);
  ASSERT_OK(active);
  EXPECT_EQ(active->writer_instance(), mailstore::kStoreWriter);
  for (int i : {kNode2, kNode3, kNode1}) {
    auto second = PrepareBackup(cluster, i, "SG01", v1::FULL);
    ASSERT_FALSE(second.ok()) << i;
    EXPECT_THAT(std::string(second.status().message()),
                HasSubstr("full backup of the active copy on node1"));
  }
  ASSERT_OK(BackupComplete(cluster, kNode1, active->session(), false, 0, 0));
  status = cluster.Status(kNode1, "SG01");
  ASSERT_OK(status);
  EXPECT_FALSE(status->units(0).has_backup_in_progress());
}

TEST(Writers, ARestartOfTheHolderClearsTheBackupInProgressAndTheFirstJobFailsCleanly) {
  MailstoredCluster cluster(FastLab(), "holderrestart");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));

  // The active copy's mailstored holds it and restarts.
  auto held = PrepareBackup(cluster, kNode1, "DB02", v1::FULL);
  ASSERT_OK(held);
  EXPECT_EQ(cluster.StopNode(kNode1).exit_code, 0);
  ASSERT_OK(cluster.StartNode(kNode1));
  ASSERT_OK(cluster.WaitMounted(kNode1, "DB02"));
  auto frozen = Freeze(cluster, kNode1, held->session());
  ASSERT_FALSE(frozen.ok());
  EXPECT_EQ(frozen.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(frozen.status().message()), HasSubstr("mailstored restarted"));
  auto again = PrepareBackup(cluster, kNode1, "DB02", v1::FULL);
  ASSERT_OK(again);
  ASSERT_OK(BackupComplete(cluster, kNode1, again->session(), false, 0, 0));

  // A passive copy holds it (on the active, as a surrogate) and is killed.
  auto surrogate = PrepareBackup(cluster, kNode2, "DB02", v1::FULL);
  ASSERT_OK(surrogate);
  EXPECT_FALSE(PrepareBackup(cluster, kNode1, "DB02", v1::FULL).ok());
  cluster.KillNode(kNode2);
  ASSERT_OK(cluster.StartNode(kNode2));
  frozen = Freeze(cluster, kNode2, surrogate->session());
  ASSERT_FALSE(frozen.ok());
  EXPECT_THAT(std::string(frozen.status().message()), HasSubstr("mailstored restarted"));
  // On its return node2 releases what its earlier run held.
  absl::StatusOr<v1::PrepareBackupResponse> after;
  EXPECT_TRUE(
      WaitFor([&] { return (after = PrepareBackup(cluster, kNode1, "DB02", v1::FULL)).ok(); },
              absl::Seconds(20)))
      << after.status();
  ASSERT_OK(after);
  ASSERT_OK(BackupComplete(cluster, kNode1, after->session(), false, 0, 0));

  // The active restarts under a passive's backup: the passive learns at
  // its next call that the state it held is gone, and fails the job.
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));  // node2 healthy again first
  auto orphaned = PrepareBackup(cluster, kNode2, "DB02", v1::FULL);
  ASSERT_OK(orphaned);
  EXPECT_EQ(cluster.StopNode(kNode1).exit_code, 0);
  ASSERT_OK(cluster.StartNode(kNode1));
  ASSERT_OK(cluster.WaitMounted(kNode1, "DB02"));
  frozen = Freeze(cluster, kNode2, orphaned->session());
  ASSERT_FALSE(frozen.ok());
  EXPECT_THAT(std::string(frozen.status().message()),
              HasSubstr("the backup-in-progress state on the active copy (node1) was lost"));
  // The failed job ended its session: the copy is not left paused.
  WriteAndRoll(cluster, kNode1, "DB02", 8, 1);
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
}

TEST(Writers, FreezeHoldsCommitsWithoutFailingThemAndThawReleasesThem) {
  MailstoredCluster cluster(FastLab(), "freeze");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));

  // The active copy: a commit waits while frozen.
  auto prepared = PrepareBackup(cluster, kNode1, "DB02", v1::FULL);
  ASSERT_OK(prepared);
  auto frozen = Freeze(cluster, kNode1, prepared->session());
  ASSERT_OK(frozen);
  std::atomic<bool> done{false};
  absl::Status put;
  std::thread writer([&] {
    put = cluster.Put(kNode1, "DB02", "DB02", 9, 1, "written during the freeze");
    done = true;
  });
  absl::SleepFor(absl::Seconds(1));
  EXPECT_FALSE(done) << "a commit went through while the unit was frozen";
  auto thawed = Thaw(cluster, kNode1, prepared->session());
  ASSERT_OK(thawed);
  EXPECT_GE(thawed->frozen_for_us(), 1'000'000);
  writer.join();
  ASSERT_OK(put);
  auto got = cluster.Get(kNode1, "DB02", "DB02", 9, 1);
  ASSERT_OK(got);
  EXPECT_EQ(got->value_or(""), "written during the freeze");
  ASSERT_OK(BackupComplete(cluster, kNode1, prepared->session(), false, 0, 0));

  // A passive copy: frozen, it copies and replays nothing until Thaw,
  // while the active goes on.
  auto passive = PrepareBackup(cluster, kNode2, "DB02", v1::FULL);
  ASSERT_OK(passive);
  auto passive_frozen = Freeze(cluster, kNode2, passive->session());
  ASSERT_OK(passive_frozen);
  auto before = cluster.Copy(kNode2, "DB02");
  ASSERT_OK(before);
  WriteAndRoll(cluster, kNode1, "DB02", 9, 2);
  absl::SleepFor(absl::Seconds(1));
  auto during = cluster.Copy(kNode2, "DB02");
  ASSERT_OK(during);
  EXPECT_EQ(during->last_inspected_generation(), before->last_inspected_generation());
  EXPECT_EQ(during->last_replayed_generation(), before->last_replayed_generation());
  // While its files are being copied, the copy is neither reseeded nor
  // activated.
  absl::Status reseed = cluster.Admin(kNode2, "reseed", "DB02");
  EXPECT_THAT(std::string(reseed.message()),
              HasSubstr("a backup of the copy on node2 is frozen (its files are being copied); "
                        "reseed it after it thaws"));
  absl::Status activate = cluster.Activate(kNode1, "DB02", "node2", /*lossy=*/false);
  EXPECT_THAT(std::string(activate.message()), HasSubstr("activate it after it thaws"));
  ASSERT_OK(cluster.WaitMounted(kNode1, "DB02"));
  ASSERT_OK(Thaw(cluster, kNode2, passive->session()));
  ASSERT_OK(BackupComplete(cluster, kNode2, passive->session(), false, 0, 0));
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
}

TEST(Writers, SuccessIsRecordedOnlyForTheGenerationsThatWereFrozen) {
  MailstoredCluster cluster(FastLab(), "range");
  ASSERT_OK(cluster.Start());
  WriteAndRoll(cluster, kNode1, "DB02", 3, 3);
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  // No Freeze: nothing to vouch for.
  auto unfrozen = PrepareBackup(cluster, kNode1, "DB02", v1::FULL);
  ASSERT_OK(unfrozen);
  auto refused = BackupComplete(cluster, kNode1, unfrozen->session(), true, 1, 3);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("a successful BackupComplete needs a Freeze and a Thaw first; nothing is "
                        "recorded"));
  // A range other than the frozen one, from either writer.
  for (int i : {kNode1, kNode2}) {
    auto prepared = PrepareBackup(cluster, i, "DB02", v1::FULL);
    ASSERT_OK(prepared);
    auto frozen = Freeze(cluster, i, prepared->session());
    ASSERT_OK(frozen);
    ASSERT_OK(Thaw(cluster, i, prepared->session()));
    auto wrong = BackupComplete(cluster, i, prepared->session(), true, frozen->low_generation(),
                                frozen->high_generation() + 5);
    EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(wrong.status().message()), HasSubstr("are not the frozen ones"));
  }
  // Nothing recorded, nothing held.
  EXPECT_EQ(HeaderOf(cluster, kNode1, "DB02", "DB02").previous_full.high, 0u);
  auto status = cluster.Status(kNode1, "DB02");
  ASSERT_OK(status);
  EXPECT_FALSE(status->units(0).has_backup_in_progress());
}

TEST(Writers, AFreezeLongerThanTheTimeoutThawsOnItsOwnAndFailsTheBackup) {
  mailstore::LabSpec spec = FastLab();
  spec.freeze_timeout_ms = 1500;
  MailstoredCluster cluster(spec, "freezetimeout");
  ASSERT_OK(cluster.Start());

  auto prepared = PrepareBackup(cluster, kNode1, "DB02", v1::FULL);
  ASSERT_OK(prepared);
  const absl::Time start = absl::Now();  // the freeze begins at the latest now
  auto frozen = Freeze(cluster, kNode1, prepared->session());
  ASSERT_OK(frozen);
  std::atomic<bool> done{false};
  absl::Status put;
  std::thread writer([&] {
    put = cluster.Put(kNode1, "DB02", "DB02", 5, 5, "waited out the freeze");
    done = true;
  });
  // The requestor never thaws; the writer does, and the commit goes through.
  EXPECT_TRUE(WaitFor([&] { return done.load(); }, absl::Seconds(30)));
  writer.join();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1400));
  ASSERT_OK(put);
  auto thawed = Thaw(cluster, kNode1, prepared->session());
  ASSERT_FALSE(thawed.ok());
  EXPECT_THAT(std::string(thawed.status().message()),
              HasSubstr("stayed frozen longer than the freeze timeout (1500 ms)"));
  auto completed = BackupComplete(cluster, kNode1, prepared->session(), true,
                                  frozen->low_generation(), frozen->high_generation());
  EXPECT_FALSE(completed.ok());
  // Nothing was recorded, and the unit is free for the next backup.
  EXPECT_EQ(HeaderOf(cluster, kNode1, "DB02", "DB02").previous_full.high, 0u);
  auto next = PrepareBackup(cluster, kNode1, "DB02", v1::FULL);
  ASSERT_OK(next);
  ASSERT_OK(BackupComplete(cluster, kNode1, next->session(), false, 0, 0));
}

// Found by the fault matrix (issue 15): the active copy's own
// backup-in-progress was never renewed, so a backup of the active copy that
// lasted longer than the session timeout had BackupComplete refused.
TEST(Writers, ABackupOfTheActiveCopyLongerThanTheSessionTimeoutCompletesWhileKeptAlive) {
  mailstore::LabSpec spec = FastLab();
  spec.backup_session_timeout_ms = 1000;
  MailstoredCluster cluster(spec, "longactive");
  ASSERT_OK(cluster.Start());
  auto prepared = PrepareBackup(cluster, kNode1, "DB02", v1::FULL);
  ASSERT_OK(prepared);
  auto frozen = Freeze(cluster, kNode1, prepared->session());
  ASSERT_OK(frozen);
  ASSERT_OK(Thaw(cluster, kNode1, prepared->session()));
  // The transfer takes three session timeouts; the requestor keeps the
  // session alive all along.
  for (int i = 0; i < 12; ++i) {
    absl::SleepFor(absl::Milliseconds(250));
    grpc::ClientContext context;
    v1::SessionRequest keep;
    keep.set_session(prepared->session());
    v1::KeepAliveResponse kept;
    ASSERT_TRUE(cluster.writer(kNode1).KeepAlive(&context, keep, &kept).ok()) << i;
  }
  auto completed = BackupComplete(cluster, kNode1, prepared->session(), true,
                                  frozen->low_generation(), frozen->high_generation());
  ASSERT_OK(completed);
  EXPECT_EQ(HeaderOf(cluster, kNode1, "DB02", "DB02").previous_full.high,
            frozen->high_generation());
}

TEST(Writers, AWrongTypeOfBackupIsRefusedAndHoldsNothing) {
  {
    mailstore::LabSpec spec = FastLab();
    spec.circular_logging = true;
    MailstoredCluster cluster(spec, "circular");
    ASSERT_OK(cluster.Start());
    ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
    for (int i : {kNode1, kNode2}) {
      auto none = PrepareBackup(cluster, i, "DB02", v1::BACKUP_TYPE_UNSPECIFIED);
      EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(none.status().message()), HasSubstr("the backup type is missing"));
      for (auto type : {v1::INCREMENTAL, v1::DIFFERENTIAL}) {
        auto refused = PrepareBackup(cluster, i, "DB02", type, /*base_high_generation=*/1);
        EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(std::string(refused.status().message()),
                    AllOf(HasSubstr("unit DB02 uses circular logging"),
                          HasSubstr("only Full and Copy backups are possible")));
      }
    }
    auto status = cluster.Status(kNode1, "DB02");
    ASSERT_OK(status);
    EXPECT_FALSE(status->units(0).has_backup_in_progress());
    auto full = PrepareBackup(cluster, kNode2, "DB02", v1::FULL);
    ASSERT_OK(full);
    ASSERT_OK(BackupComplete(cluster, kNode2, full->session(), false, 0, 0));
  }
  // Without circular logging, an Incremental needs a Full to follow.
  MailstoredCluster cluster(FastLab(), "nofull");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  auto first = PrepareBackup(cluster, kNode1, "DB02", v1::INCREMENTAL);
  EXPECT_EQ(first.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(first.status().message()),
              HasSubstr("has no previous Full backup: take a Full before an incremental"));
  auto passive = PrepareBackup(cluster, kNode2, "DB02", v1::DIFFERENTIAL);
  EXPECT_EQ(passive.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(passive.status().message()), HasSubstr("needs base_high_generation"));
  auto unknown = PrepareBackup(cluster, kNode1, "NOPE", v1::FULL);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  auto status = cluster.Status(kNode1, "DB02");
  ASSERT_OK(status);
  EXPECT_FALSE(status->units(0).has_backup_in_progress());
}

}  // namespace
}  // namespace dagvault::testing
