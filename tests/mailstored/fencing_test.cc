// Fencing tokens (DESIGN.md §8) at real mailstored processes, over the
// writers' Unix socket: a token lower than the highest a node has seen for
// the unit is refused by PrepareBackup and PrepareRestore, by the active
// copy's node for a surrogate backup from a passive copy, and still after a
// restart; the token shows in the backup-in-progress status.
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "mailstore/server/fencing_tokens.h"
#include "tests/mailstored/backup_set.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
namespace v1 = dagvault::v1;

// The backup-in-progress state of `unit` as node i reports it.
v1::BackupInProgress HeldOn(MailstoredCluster& cluster, int i, const std::string& unit) {
  auto status = cluster.Status(i, unit);
  EXPECT_TRUE(status.ok()) << status.status();
  if (!status.ok() || status->units_size() == 0) return {};
  return status->units(0).backup_in_progress();
}

void ExpectSuperseded(const absl::Status& refused, uint64_t offered, uint64_t highest,
                      const std::string& node) {
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(std::string(refused.message()),
              AllOf(HasSubstr("unit SG01"), HasSubstr(absl::StrCat("fencing token ", offered)),
                    HasSubstr(absl::StrCat("node ", node, " has seen for the unit (", highest)),
                    HasSubstr("superseded by a newer one")));
}

TEST(FencingTokens, ALowerTokenIsRefusedOnEveryPathAndAfterARestart) {
  MailstoredCluster cluster(FastLab(), "fencing");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "SG01"));

  // The active copy's own backup with token 7 runs to the end.
  auto first = TakeBackup(cluster, kNode1, "SG01", v1::FULL, cluster.root() + "/full7",
                          /*base_high_generation=*/0, /*fencing_token=*/7);
  ASSERT_OK(first);
  // An agent still acting on an older assignment is refused.
  auto stale = PrepareBackup(cluster, kNode1, "SG01", v1::COPY, 0, /*fencing_token=*/5);
  ASSERT_FALSE(stale.ok());
  ExpectSuperseded(stale.status(), 5, 7, "node1");
  EXPECT_THAT(std::string(stale.status().message()), HasSubstr("PrepareBackup"));

  // A newer token is admitted, and the status shows it.
  auto active = PrepareBackup(cluster, kNode1, "SG01", v1::COPY, 0, /*fencing_token=*/9);
  ASSERT_OK(active);
  EXPECT_EQ(HeldOn(cluster, kNode1, "SG01").fencing_token(), 9u);
  ASSERT_OK(BackupComplete(cluster, kNode1, active->session(), false, 0, 0));

  // node2's passive copy never saw token 9, but the surrogate state is
  // acquired on node1, which refuses 8.
  auto surrogate = PrepareBackup(cluster, kNode2, "SG01", v1::COPY, 0, /*fencing_token=*/8);
  ASSERT_FALSE(surrogate.ok());
  ExpectSuperseded(surrogate.status(), 8, 9, "node1");
  EXPECT_THAT(std::string(surrogate.status().message()),
              HasSubstr("surrogate AcquireBackup from node2"));
  EXPECT_TRUE(HeldOn(cluster, kNode1, "SG01").session().empty()) << "the refusal held the unit";

  // Token 10 through node2 holds the unit on node1, token recorded there.
  auto passive = PrepareBackup(cluster, kNode2, "SG01", v1::COPY, 0, /*fencing_token=*/10);
  ASSERT_OK(passive);
  v1::BackupInProgress held = HeldOn(cluster, kNode1, "SG01");
  EXPECT_EQ(held.holder_node(), "node2");
  EXPECT_EQ(held.fencing_token(), 10u);
  // A higher token does not supersede the running session: the unit is
  // still held, as before fencing tokens.
  auto newer = PrepareBackup(cluster, kNode1, "SG01", v1::COPY, 0, /*fencing_token=*/11);
  ASSERT_FALSE(newer.ok());
  EXPECT_THAT(std::string(newer.status().message()),
              AllOf(HasSubstr("a backup is already in progress"), HasSubstr(passive->session())));
  ASSERT_OK(BackupComplete(cluster, kNode2, passive->session(), false, 0, 0));

  // The highest token is on disk: a restarted node1 still refuses 5.
  EXPECT_EQ(cluster.StopNode(kNode1).exit_code, 0);
  ASSERT_OK(cluster.StartNode(kNode1));
  ASSERT_OK(cluster.WaitMounted(kNode1, "SG01"));
  stale = PrepareBackup(cluster, kNode1, "SG01", v1::COPY, 0, /*fencing_token=*/5);
  ASSERT_FALSE(stale.ok());
  ExpectSuperseded(stale.status(), 5, 11, "node1");

  // Restores are fenced by the same per-unit tokens (here a recovery
  // database, which needs nothing dismounted).
  v1::PrepareRestoreRequest restore;
  restore.set_unit("SG01");
  restore.set_recovery_database("SG01-RDB");
  restore.set_path(cluster.root() + "/rdb");
  restore.set_fencing_token(6);
  auto refused = PrepareRestore(cluster, kNode1, restore);
  ASSERT_FALSE(refused.ok());
  ExpectSuperseded(refused.status(), 6, 11, "node1");
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("PrepareRestore"));
  EXPECT_FALSE(PathExists(restore.path()));
  restore.set_fencing_token(12);
  ASSERT_OK(PrepareRestore(cluster, kNode1, restore));

  // Token 0 (an operator's local command, no coordinator) is not fenced.
  auto local = PrepareBackup(cluster, kNode1, "DB02", v1::FULL, 0, /*fencing_token=*/0);
  ASSERT_OK(local);
  ASSERT_OK(BackupComplete(cluster, kNode1, local->session(), false, 0, 0));
}

TEST(FencingTokens, ADamagedTokenFileStopsTheStartNamingIt) {
  MailstoredCluster cluster(FastLab(), "fencing_damaged");
  ASSERT_OK(cluster.Start());
  EXPECT_EQ(cluster.StopNode(kNode3).exit_code, 0);
  const std::string path =
      JoinPath(cluster.node(kNode3).config.data_root(), mailstore::kFencingTokensFile);
  ASSERT_OK(WriteFileAtomically(path, "highest { key: \"SG01\" val"));
  absl::Status started = cluster.StartNode(kNode3);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.message()),
              AllOf(HasSubstr("exited during start-up"),
                    HasSubstr(absl::StrCat("fencing token file ", path, " is damaged"))));
}

}  // namespace
}  // namespace dagvault::testing
