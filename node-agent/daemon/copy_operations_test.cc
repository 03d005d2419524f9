// The copy operations of a restore plan against real mailstored processes:
// a wait that outlasts a passing replication error and gives up on one that
// stays, and a reseed that waits for a restore into the copy to end.
#include "node-agent/daemon/copy_operations.h"

#include <atomic>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mailstored/backup_set.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;
using ::dagvault::testing::FastLab;
using ::dagvault::testing::kNode1;
using ::dagvault::testing::kNode2;
using ::dagvault::testing::MailstoredCluster;
using ::dagvault::testing::WaitFor;
using ::testing::HasSubstr;

constexpr char kUnit[] = "DB02";

CopyOperationContext ContextOf(MailstoredCluster& cluster, int i) {
  CopyOperationContext c;
  c.admin = &cluster.admin(i);
  c.node = cluster.node(i).name;
  c.poll_every = absl::Milliseconds(100);
  return c;
}

// Three nodes running, with items node2's copy has replayed.
void StartConverged(MailstoredCluster& cluster) {
  ASSERT_TRUE(cluster.Start().ok());
  ::dagvault::testing::PutItems(cluster, kNode1, kUnit, ::dagvault::testing::Databases(kUnit), 1, 0,
                                10);
  ASSERT_TRUE(cluster.RollLog(kNode1, kUnit).ok());
  ASSERT_TRUE(cluster.WaitConverged(kNode1, kUnit).ok());
}

bool CopyIs(MailstoredCluster& cluster, int i, v1::CopyState state) {
  auto copy = cluster.Copy(i, kUnit);
  return copy.ok() && copy->state() == state;
}

TEST(CopyOperations, AWaitOutlastsAPassingReplicationErrorButNotOneThatStays) {
  MailstoredCluster cluster(FastLab(), "copy-ops");
  ASSERT_NO_FATAL_FAILURE(StartConverged(cluster));
  auto copy = cluster.Copy(kNode2, kUnit);
  ASSERT_TRUE(copy.ok());
  v1::CopyOperation digest;
  digest.set_op(v1::COPY_DIGEST);
  digest.set_wait_for_generation(copy->last_replayed_generation());

  // The active copy's node goes away: node2's replication passes fail.
  cluster.KillNode(kNode1);
  ASSERT_TRUE(WaitFor([&] { return CopyIs(cluster, kNode2, v1::FAILED); }, absl::Seconds(30)));
  // Back within the grace: the digest is taken.
  std::thread back([&] {
    absl::SleepFor(absl::Seconds(1));
    (void)cluster.StartNode(kNode1);
  });
  CopyOperationContext c = ContextOf(cluster, kNode2);
  c.failed_grace = absl::Seconds(30);
  auto taken = RunCopyOperation(c, kUnit, digest);
  back.join();
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_GT(taken->digests_size(), 0);

  // Away for longer than the grace: the step fails, naming the error.
  cluster.KillNode(kNode1);
  ASSERT_TRUE(WaitFor([&] { return CopyIs(cluster, kNode2, v1::FAILED); }, absl::Seconds(30)));
  digest.set_wait_for_generation(copy->last_replayed_generation() + 100);  // never reached
  c.failed_grace = absl::Seconds(1);
  auto refused = RunCopyOperation(c, kUnit, digest);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("the copy of DB02 on node2 failed while replaying through"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("(for 1s)"));
  ASSERT_TRUE(cluster.StartNode(kNode1).ok());
}

TEST(CopyOperations, AReseedWaitsForARestoreIntoTheCopyToEnd) {
  MailstoredCluster cluster(FastLab(), "copy-ops-reseed");
  ASSERT_NO_FATAL_FAILURE(StartConverged(cluster));
  ASSERT_TRUE(cluster.Admin(kNode2, "suspend", kUnit).ok());
  v1::PrepareRestoreRequest into_passive;
  into_passive.set_unit(kUnit);
  into_passive.set_passive_copy(true);
  auto prepared = ::dagvault::testing::PrepareRestore(cluster, kNode2, into_passive);
  ASSERT_TRUE(prepared.ok()) << prepared.status();

  v1::CopyOperation reseed;
  reseed.set_op(v1::COPY_RESEED);
  CopyOperationContext c = ContextOf(cluster, kNode2);
  c.restoring_grace = absl::ZeroDuration();
  auto refused = RunCopyOperation(c, kUnit, reseed);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("being restored from the repository"));

  // Cancelled while it waits: a cancel, not a failure.
  std::atomic<bool> cancel{false};
  c.cancel = &cancel;
  c.restoring_grace = absl::Seconds(30);
  std::thread stop([&] {
    absl::SleepFor(absl::Milliseconds(1500));
    cancel = true;
  });
  auto cancelled = RunCopyOperation(c, kUnit, reseed);
  stop.join();
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled) << cancelled.status();
  c.cancel = nullptr;

  // The restore's requestor gives it up a moment later: the reseed goes on.
  std::thread give_up([&] {
    absl::SleepFor(absl::Seconds(1));
    v1::RestoreCompleteRequest abandon;
    abandon.set_session(prepared->session());
    abandon.set_abandon(true);
    (void)::dagvault::testing::RestoreComplete(cluster, kNode2, abandon);
  });
  c.restoring_grace = absl::Seconds(30);
  auto reseeded = RunCopyOperation(c, kUnit, reseed);
  give_up.join();
  ASSERT_TRUE(reseeded.ok()) << reseeded.status();
  EXPECT_THAT(reseeded->message(), HasSubstr("reseeded; Healthy"));
  EXPECT_EQ(::dagvault::testing::UnitDigest(cluster, kNode2, kUnit),
            ::dagvault::testing::UnitDigest(cluster, kNode1, kUnit));
}

}  // namespace
}  // namespace dagvault::agent
