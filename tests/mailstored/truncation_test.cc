// Log truncation across real mailstored processes (DESIGN.md §5): each of
// the four rules alone holds the logs, and once all hold, the logs through
// the last Full or Incremental backup go on every copy. Copy and
// Differential backups truncate nothing.
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "mailstore/format/edb_header.h"
#include "tests/mailstored/backup_set.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;
namespace v1 = dagvault::v1;

constexpr char kUnit[] = "DB02";

class Truncation {
 public:
  explicit Truncation(MailstoredCluster& cluster) : cluster_(cluster) {}

  // Items, then `generations` closed log generations on node1.
  void WriteAndRoll(int generations) {
    for (int g = 0; g < generations; ++g) {
      PutItems(cluster_, kNode1, kUnit, Databases(kUnit), 1, next_item_, 10);
      next_item_ += 10;
      ASSERT_OK(cluster_.RollLog(kNode1, kUnit));
    }
  }

  // Waits until every running passive copy that is not suspended has
  // inspected everything node1 closed, and node1's checkpoint has reached
  // its open generation (so rule 2 holds nothing back that the test
  // wrote).
  void Settle() {
    auto active = cluster_.Copy(kNode1, kUnit);
    ASSERT_OK(active);
    const uint32_t closed = active->last_log_generation();
    for (int i : {kNode2, kNode3}) {
      std::string last;
      EXPECT_TRUE(WaitFor(
          [&] {
            auto c = cluster_.Copy(i, kUnit);
            if (!c.ok()) return false;
            last = absl::StrCat(v1::CopyState_Name(c->state()), " inspected ",
                                c->last_inspected_generation());
            return c->state() == v1::SUSPENDED || c->last_inspected_generation() >= closed;
          },
          absl::Seconds(60)))
          << cluster_.node(i).name << ": " << last;
    }
    EXPECT_TRUE(WaitFor(
        [&] {
          auto a = cluster_.Copy(kNode1, kUnit);
          return a.ok() && a->checkpoint_generation() > closed;
        },
        absl::Seconds(60)));
  }

  // Waits until node1's truncation decision is `through`, held by text
  // containing `held_by`, and node1 has deleted the logs through it.
  void ExpectHeldAt(uint32_t through, const std::string& held_by) {
    v1::CopyStatus last;
    EXPECT_TRUE(WaitFor(
        [&] {
          auto a = cluster_.Copy(kNode1, kUnit);
          if (!a.ok()) return false;
          last = *a;
          return a->truncatable_through() == through &&
                 a->truncation_held_by().find(held_by) != std::string::npos &&
                 a->lowest_log_generation() == through + 1;
        },
        absl::Seconds(30)))
        << "expected logs through " << through << " to go, held by \"" << held_by
        << "\"; node1 says through " << last.truncatable_through() << ", lowest log "
        << last.lowest_log_generation() << ", held by \"" << last.truncation_held_by() << "\"";
  }

  // Waits until node i's lowest log generation on disk is `lowest`.
  void ExpectLowestLog(int i, uint32_t lowest) {
    uint32_t seen = 0;
    EXPECT_TRUE(WaitFor(
        [&] {
          auto c = cluster_.Copy(i, kUnit);
          seen = c.ok() ? c->lowest_log_generation() : 0;
          return seen == lowest;
        },
        absl::Seconds(60)))
        << cluster_.node(i).name << " lowest log " << seen << ", expected " << lowest;
  }

  uint32_t Replayed(int i) {
    auto c = cluster_.Copy(i, kUnit);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->last_replayed_generation() : 0;
  }
  uint32_t Inspected(int i) {
    auto c = cluster_.Copy(i, kUnit);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->last_inspected_generation() : 0;
  }

  mailstore::DbHeader Header() {
    auto read = mailstore::ReadDbHeaderFromPath(cluster_.node(kNode1).config.data_root() + "/" +
                                                kUnit + "/" + kUnit + ".edb");
    EXPECT_TRUE(read.ok()) << read.status();
    return read.ok() ? read->header : mailstore::DbHeader{};
  }

 private:
  MailstoredCluster& cluster_;
  uint64_t next_item_ = 0;
};

// A passive copy reports its progress to the active with each poll (every
// 100 ms in these labs); a copy about to be suspended gets a few polls to
// report its last replay, which the active then holds it to.
void ReportedProgress() { absl::SleepFor(absl::Seconds(1)); }

TEST(Truncation, EachRuleAloneHoldsTheLogsAndAllFourTogetherLetThemGo) {
  MailstoredCluster cluster(FastLab(/*lag_seconds=*/3), "truncation");
  ASSERT_OK(cluster.Start());
  Truncation t(cluster);
  const std::string backups = cluster.root() + "/backups";

  // Rule 1 alone: no backup yet. Every copy has everything, the checkpoint
  // is past it all.
  t.WriteAndRoll(5);
  t.Settle();
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  t.ExpectHeldAt(0, "rule 1: no verified Full or Incremental backup yet");
  // A Copy backup (here from the passive on node2) records its own field
  // and is no base for truncation.
  auto copy = TakeBackup(cluster, kNode2, kUnit, v1::COPY, backups + "/copy");
  ASSERT_OK(copy);
  EXPECT_EQ(t.Header().previous_copy.high, copy->frozen.high_generation());
  EXPECT_EQ(t.Header().previous_full.high, 0u);
  t.WriteAndRoll(1);
  t.Settle();
  t.ExpectHeldAt(0, "rule 1");

  // Rule 3 alone: node2 has not replayed what the Full holds.
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  ReportedProgress();
  ASSERT_OK(cluster.Admin(kNode2, "suspend", kUnit));
  t.WriteAndRoll(3);
  t.Settle();
  const uint32_t node2_replayed = t.Replayed(kNode2);
  auto full = TakeBackup(cluster, kNode1, kUnit, v1::FULL, backups + "/full1");
  ASSERT_OK(full);
  ASSERT_GT(full->frozen.high_generation(), node2_replayed);
  EXPECT_EQ(t.Header().previous_full.high, full->frozen.high_generation());
  // The backup itself truncated what the rules allowed on this node.
  ASSERT_GT(full->completed.truncated_size(), 0);
  EXPECT_EQ(full->completed.truncated(0), 1u);
  EXPECT_EQ(full->completed.truncated(full->completed.truncated_size() - 1), node2_replayed);
  t.WriteAndRoll(3);
  t.Settle();
  t.ExpectHeldAt(node2_replayed,
                 absl::StrFormat("rule 3: the copy on node2 has replayed only through 0x%08X",
                                 node2_replayed));
  ASSERT_OK(cluster.Admin(kNode2, "resume", kUnit));
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));

  // Rule 4 alone: the lagged copy on node3 has not inspected what the
  // Full (this time from the passive on node2) holds.
  t.Settle();
  ReportedProgress();
  ASSERT_OK(cluster.Admin(kNode3, "suspend", kUnit));
  t.WriteAndRoll(3);
  t.Settle();
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  const uint32_t node3_inspected = t.Inspected(kNode3);
  auto full2 = TakeBackup(cluster, kNode2, kUnit, v1::FULL, backups + "/full2");
  ASSERT_OK(full2);
  EXPECT_EQ(t.Header().previous_full.high, full2->frozen.high_generation());
  ASSERT_GT(full2->frozen.high_generation(), node3_inspected);
  t.WriteAndRoll(3);
  t.Settle();
  t.ExpectHeldAt(node3_inspected,
                 absl::StrFormat("rule 4: the lagged copy on node3 has inspected only through "
                                 "0x%08X",
                                 node3_inspected));

  // All four hold: the logs through the last Full go, on every copy.
  ASSERT_OK(cluster.Admin(kNode3, "resume", kUnit));
  t.Settle();
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  const uint32_t high = full2->frozen.high_generation();
  t.ExpectHeldAt(
      high, absl::StrFormat("rule 1: the last Full or Incremental backup ends at 0x%08X", high));
  // What an operator reads.
  ProcessResult status = RunProcess({BinaryPath("mailstore-util"), "status", "--server",
                                     cluster.node(kNode1).config.store_listen(), "--unit", kUnit});
  EXPECT_THAT(status.out,
              HasSubstr(absl::StrFormat("truncation: logs through 0x%08X may go; held by rule 1: "
                                        "the last Full or Incremental backup ends at 0x%08X",
                                        high, high)))
      << status.out << status.err;
  t.ExpectLowestLog(kNode2, high + 1);
  // The lagged copy lets a log go only once it has replayed it, after
  // its lag.
  t.ExpectLowestLog(kNode3, high + 1);

  // A Differential records its field and truncates nothing.
  t.WriteAndRoll(2);
  t.Settle();
  auto diff = TakeBackup(cluster, kNode1, kUnit, v1::DIFFERENTIAL, backups + "/diff");
  ASSERT_OK(diff);
  EXPECT_EQ(diff->frozen.low_generation(), high + 1);
  EXPECT_EQ(t.Header().previous_differential.high, diff->frozen.high_generation());
  EXPECT_EQ(diff->completed.truncated_size(), 0);
  t.WriteAndRoll(2);
  t.Settle();
  t.ExpectHeldAt(high, "rule 1");

  // An Incremental is a base for truncation.
  auto inc = TakeBackup(cluster, kNode1, kUnit, v1::INCREMENTAL, backups + "/inc");
  ASSERT_OK(inc);
  EXPECT_EQ(inc->frozen.low_generation(), high + 1);
  EXPECT_EQ(t.Header().previous_incremental.high, inc->frozen.high_generation());
  t.WriteAndRoll(3);
  t.Settle();
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  t.ExpectHeldAt(inc->frozen.high_generation(), "rule 1");
  t.ExpectLowestLog(kNode2, inc->frozen.high_generation() + 1);
}

TEST(Truncation, TheCheckpointAloneHoldsTheLogs) {
  // Rule 2 alone: a lazy writer that never runs leaves the checkpoint in
  // the first generation, whatever the backups and copies say.
  mailstore::LabSpec spec = FastLab(/*lag_seconds=*/1);
  spec.flush_interval_ms = 3'600'000;
  MailstoredCluster cluster(spec, "checkpoint");
  ASSERT_OK(cluster.Start());
  Truncation t(cluster);
  t.WriteAndRoll(5);
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  auto full = TakeBackup(cluster, kNode1, kUnit, v1::FULL, cluster.root() + "/backups/full");
  ASSERT_OK(full);
  EXPECT_EQ(full->completed.truncated_size(), 0);
  auto active = cluster.Copy(kNode1, kUnit);
  ASSERT_OK(active);
  EXPECT_EQ(active->checkpoint_generation(), 1u);
  t.ExpectHeldAt(0, "rule 2: the active copy's checkpoint is in generation 0x00000001");
  t.ExpectLowestLog(kNode2, 1);
}

TEST(Truncation, AFrozenPassiveCopyNeitherReplaysNorDeletesUntilItThaws) {
  MailstoredCluster cluster(FastLab(/*lag_seconds=*/1), "frozentruncate");
  ASSERT_OK(cluster.Start());
  Truncation t(cluster);
  // The lagged copy on node3, suspended, holds truncation back (rule 4).
  t.WriteAndRoll(3);
  t.Settle();
  ReportedProgress();
  ASSERT_OK(cluster.Admin(kNode3, "suspend", kUnit));
  t.WriteAndRoll(3);
  t.Settle();
  auto full = TakeBackup(cluster, kNode1, kUnit, v1::FULL, cluster.root() + "/backups/full");
  ASSERT_OK(full);
  const uint32_t high = full->frozen.high_generation();
  t.WriteAndRoll(2);
  t.Settle();
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));

  // A backup of node2 freezes it; then node3 resumes, and the rules let go
  // of logs node2 holds: node1 tells node2 while it is frozen.
  auto prepared = PrepareBackup(cluster, kNode2, kUnit, v1::COPY);
  ASSERT_OK(prepared);
  auto frozen = Freeze(cluster, kNode2, prepared->session());
  ASSERT_OK(frozen);
  auto before = cluster.Copy(kNode2, kUnit);
  ASSERT_OK(before);
  ASSERT_OK(cluster.Admin(kNode3, "resume", kUnit));
  t.WriteAndRoll(2);
  t.ExpectHeldAt(high, "rule 1");
  absl::SleepFor(absl::Milliseconds(500));
  auto during = cluster.Copy(kNode2, kUnit);
  ASSERT_OK(during);
  EXPECT_EQ(during->last_inspected_generation(), before->last_inspected_generation());
  EXPECT_EQ(during->last_replayed_generation(), before->last_replayed_generation());
  EXPECT_EQ(during->lowest_log_generation(), before->lowest_log_generation());
  for (const auto& f : frozen->files()) EXPECT_TRUE(PathExists(f.path())) << f.path();

  // Thawed, it catches up and lets the logs go.
  ASSERT_OK(Thaw(cluster, kNode2, prepared->session()));
  ASSERT_OK(BackupComplete(cluster, kNode2, prepared->session(), false, 0, 0));
  t.WriteAndRoll(1);
  ASSERT_OK(cluster.WaitConverged(kNode1, kUnit));
  t.ExpectLowestLog(kNode2, high + 1);
}

}  // namespace
}  // namespace dagvault::testing
