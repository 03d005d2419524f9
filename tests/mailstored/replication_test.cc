// Log-shipping replication between real mailstored processes: convergence
// under load, the lagged copy, suspend and resume, a passive killed in the
// middle of a replay, switchover, and lossy activation with divergence
// detection and reseed; a node's own status while a peer is stopped.
#include <signal.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

TEST(Replication, PassiveCopiesConvergeUnderLoadAndTheLaggedCopyStaysBehind) {
  // Long enough that convergence of the other copies, even on a loaded
  // machine, ends well within it.
  constexpr int kLag = 20;
  MailstoredCluster cluster(FastLab(/*lag_seconds=*/kLag), "converge");
  ASSERT_OK(cluster.Start());
  // The load generator, a real client process, against node1.
  std::thread load([&] {
    ProcessResult r = RunProcess({BinaryPath("mailstore-util"), "load", "--server",
                                  cluster.node(kNode1).config.store_listen(), "--unit", "SG01",
                                  "--unit", "DB02", "--duration", "5", "--threads", "4",
                                  "--mailboxes", "50", "--size-mix", "2k:60,16k:35,200k:5"});
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("ops/s"));
    EXPECT_THAT(r.out, HasSubstr(" 0 errors"));
    std::cout << r.out;
  });
  // The queues while the load runs (printed: the closing note quotes them).
  for (int t = 0; t < 10; ++t) {
    absl::SleepFor(absl::Milliseconds(500));
    for (int i : {kNode2, kNode3}) {
      auto c = cluster.Copy(i, "SG01");
      if (c.ok()) {
        std::cout << "t=" << (t + 1) * 0.5 << "s SG01 " << c->node() << " "
                  << dagvault::v1::CopyState_Name(c->state()) << " copy queue " << c->copy_queue()
                  << " replay queue " << c->replay_queue() << "\n";
      }
    }
  }
  load.join();
  const absl::Time load_ended = absl::Now();
  for (const char* unit : {"SG01", "DB02"}) ASSERT_OK(cluster.RollLog(kNode1, unit));
  for (const char* unit : {"SG01", "DB02"}) {
    ASSERT_OK(cluster.WaitConverged(kNode1, unit));
    EXPECT_EQ(UnitDigest(cluster, kNode2, unit), UnitDigest(cluster, kNode1, unit)) << unit;
  }
  // The lagged copy has inspected everything but holds the newest logs for
  // its lag.
  auto active = cluster.Copy(kNode1, "SG01");
  ASSERT_OK(active);
  auto lagged = cluster.Copy(kNode3, "SG01");
  ASSERT_OK(lagged);
  // (Its lag runs from when it received each log: the newest arrived
  // after the load ended.)
  ASSERT_LT(absl::Now() - load_ended, absl::Seconds(kLag));
  EXPECT_LT(lagged->last_replayed_generation(), active->last_log_generation());
  EXPECT_GT(lagged->replay_queue(), 0u);
  EXPECT_EQ(lagged->replay_lag_seconds(), static_cast<uint32_t>(kLag));
  EXPECT_EQ(lagged->state(), dagvault::v1::HEALTHY);
  // Once the lag has passed, it has replayed them too.
  for (const char* unit : {"SG01", "DB02"}) {
    ASSERT_TRUE(WaitFor(
        [&] {
          auto a = cluster.Copy(kNode1, unit);
          auto l = cluster.Copy(kNode3, unit);
          return a.ok() && l.ok() && l->last_replayed_generation() >= a->last_log_generation();
        },
        absl::Seconds(60)))
        << unit;
    EXPECT_EQ(UnitDigest(cluster, kNode3, unit), UnitDigest(cluster, kNode1, unit)) << unit;
  }
  // SIGTERM: a clean shutdown, the active databases left CleanShutdown.
  for (int i = 0; i < cluster.size(); ++i) EXPECT_EQ(cluster.StopNode(i).exit_code, 0);
  ProcessResult header = RunProcess({BinaryPath("mailstore-util"), "header",
                                     cluster.node(kNode1).config.data_root() + "/SG01/MDB01A.edb"});
  EXPECT_THAT(header.out, HasSubstr("CleanShutdown"));
}

TEST(Replication, SuspendedCopyStopsAndResumes) {
  MailstoredCluster cluster(FastLab(), "suspend");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  ASSERT_OK(cluster.Admin(kNode2, "suspend", "DB02"));
  auto before = cluster.Copy(kNode2, "DB02");
  ASSERT_OK(before);
  EXPECT_EQ(before->state(), dagvault::v1::SUSPENDED);
  PutItems(cluster, kNode1, "DB02", Databases("DB02"), 1, 0, 50);
  ASSERT_OK(cluster.RollLog(kNode1, "DB02"));
  absl::SleepFor(absl::Seconds(1));
  auto during = cluster.Copy(kNode2, "DB02");
  ASSERT_OK(during);
  EXPECT_EQ(during->last_inspected_generation(), before->last_inspected_generation());
  // The suspension survives a restart of the node.
  cluster.StopNode(kNode2);
  ASSERT_OK(cluster.StartNode(kNode2));
  auto restarted = cluster.Copy(kNode2, "DB02");
  ASSERT_OK(restarted);
  EXPECT_EQ(restarted->state(), dagvault::v1::SUSPENDED);
  // A passive copy cannot be mounted, an active one cannot be suspended.
  EXPECT_THAT(std::string(cluster.Admin(kNode2, "mount", "DB02").message()),
              HasSubstr("only the active copy mounts; it is on node1"));
  EXPECT_THAT(std::string(cluster.Admin(kNode1, "suspend", "DB02").message()),
              HasSubstr("is active; only passive copies are suspended"));
  ASSERT_OK(cluster.Admin(kNode2, "resume", "DB02"));
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  EXPECT_EQ(UnitDigest(cluster, kNode2, "DB02"), UnitDigest(cluster, kNode1, "DB02"));
}

// A peer that does not answer (here stopped; in the fault matrix, cut off
// the network) costs a full Status its timeout per unit, and the copy is
// reported ServiceDown. The agent asks only for its own copies: that answer
// asks no peer, so a cut-off node cannot make the others miss their report.
TEST(Replication, ALocalOnlyStatusAsksNoPeerAndAnswersWhileOneIsStopped) {
  MailstoredCluster cluster(FastLab(), "local-status");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  ASSERT_EQ(kill(cluster.Pid(kNode3), SIGSTOP), 0);

  v1::StatusRequest local;
  local.set_local_only(true);
  v1::StatusResponse mine;
  // Shorter than one peer's timeout (Peers::kShortCopyStatusTimeout, 2 s).
  auto context = Deadline(absl::Milliseconds(1500));
  grpc::Status answered = cluster.admin(kNode1).Status(context.get(), local, &mine);
  v1::StatusResponse all;
  auto patient = Deadline(absl::Seconds(30));
  grpc::Status full = cluster.admin(kNode1).Status(patient.get(), v1::StatusRequest{}, &all);
  kill(cluster.Pid(kNode3), SIGCONT);

  ASSERT_TRUE(answered.ok()) << answered.error_message();
  ASSERT_EQ(mine.units_size(), 2);
  for (const auto& unit : mine.units()) {
    ASSERT_EQ(unit.copies_size(), 1) << unit.DebugString();
    EXPECT_EQ(unit.copies(0).node(), "node1");
    EXPECT_EQ(unit.copies(0).state(), v1::MOUNTED);
  }
  // The full answer names the stopped peer's copies and why.
  ASSERT_TRUE(full.ok()) << full.error_message();
  for (const auto& unit : all.units()) {
    ASSERT_EQ(unit.copies_size(), 3);
    EXPECT_EQ(unit.copies(2).node(), "node3");
    EXPECT_EQ(unit.copies(2).state(), v1::SERVICE_DOWN);
    EXPECT_THAT(unit.copies(2).message(), HasSubstr("GetCopyStatus"));
  }
}

// Circular logging in a replicated unit deletes a log only once every copy
// has replayed it (Exchange's continuous replication circular logging): a
// copy that falls behind, here suspended, still finds every log it needs.
TEST(Replication, CircularLoggingKeepsEveryLogACopyHasNotReplayed) {
  mailstore::LabSpec spec = FastLab(/*lag_seconds=*/0);
  spec.circular_logging = true;
  MailstoredCluster cluster(spec, "circular-behind");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  ASSERT_OK(cluster.Admin(kNode2, "suspend", "DB02"));
  auto behind = cluster.Copy(kNode2, "DB02");
  ASSERT_OK(behind.status());
  for (int round = 0; round < 6; ++round) {
    PutItems(cluster, kNode1, "DB02", Databases("DB02"), 1, round * 20, 20);
    ASSERT_OK(cluster.RollLog(kNode1, "DB02"));
  }
  // Checkpoints move on (the lazy writer runs every 200 ms); logs that
  // node3 replayed may go, node2's may not.
  absl::SleepFor(absl::Seconds(2));
  auto active = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(active.status());
  EXPECT_LE(active->lowest_log_generation(), behind->last_replayed_generation() + 1)
      << "the active copy deleted logs the suspended copy has not replayed";
  ASSERT_OK(cluster.Admin(kNode2, "resume", "DB02"));
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  EXPECT_EQ(UnitDigest(cluster, kNode2, "DB02"), UnitDigest(cluster, kNode1, "DB02"));
  // Once every copy has them, the logs do go.
  EXPECT_TRUE(WaitFor(
      [&] {
        auto now = cluster.Copy(kNode1, "DB02");
        return now.ok() && now->lowest_log_generation() > behind->last_replayed_generation() + 1;
      },
      absl::Seconds(20)));
}

TEST(Replication, PassiveKilledInTheMiddleOfAReplayResumesAfterRestart) {
  MailstoredCluster cluster(FastLab(), "killreplay");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "SG01"));
  // Each crash point kills node2 inside a replay: with some of a flush's
  // pages written in place and others not (new items' pages, rebuilt by
  // images, skip the double-write buffer), and after the pages are
  // written but before the headers record it. (The double-write buffer's
  // own crash is RecoveryKilledMidWriteIsRecoveredAgain's.)
  uint64_t next_item = 0;
  // The four generations written meanwhile are replayed as one batch, so
  // the hits of each point are inside it.
  for (const char* point : {"redo.flush.page_written@5", "replica.replay.before_header@1"}) {
    SCOPED_TRACE(point);
    cluster.StopNode(kNode2);
    for (int g = 0; g < 4; ++g) {
      PutItems(cluster, kNode1, "SG01", Databases("SG01"), 7, next_item, 40);
      next_item += 40;
      ASSERT_OK(cluster.RollLog(kNode1, "SG01"));
    }
    cluster.LaunchNode(kNode2, {"--crash-at", point});
    auto exited = cluster.WaitForExit(kNode2, absl::Seconds(60));
    ASSERT_TRUE(exited.has_value()) << "the crash point never fired";
    EXPECT_EQ(exited->signal, 9);
    ASSERT_OK(cluster.StartNode(kNode2));
    ASSERT_OK(cluster.WaitConverged(kNode1, "SG01"));
    EXPECT_EQ(UnitDigest(cluster, kNode2, "SG01"), UnitDigest(cluster, kNode1, "SG01"));
  }
}

TEST(Replication, SwitchoverLosesNothing) {
  MailstoredCluster cluster(FastLab(), "switchover");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "SG01"));
  // The last items are in node1's open generation: not shipped yet.
  PutItems(cluster, kNode1, "SG01", Databases("SG01"), 3, 0, 120);
  const std::string before = UnitDigest(cluster, kNode1, "SG01");
  // Asked through node3, which forwards to node2.
  ASSERT_OK(cluster.Activate(kNode3, "SG01", "node2", /*lossy=*/false));
  auto now_active = cluster.Copy(kNode2, "SG01");
  ASSERT_OK(now_active);
  EXPECT_EQ(now_active->role(), dagvault::v1::ACTIVE);
  EXPECT_EQ(now_active->state(), dagvault::v1::MOUNTED);
  EXPECT_EQ(UnitDigest(cluster, kNode2, "SG01"), before);
  for (uint64_t item = 0; item < 120; ++item) {
    auto v = cluster.Get(kNode2, "SG01", Databases("SG01")[item % 2], 3, item);
    ASSERT_OK(v);
    ASSERT_TRUE(v->has_value()) << item;
    EXPECT_EQ(**v, ItemValue(3, item));
  }
  // node1 is a passive copy now and refuses writes, naming the active.
  auto old = cluster.Copy(kNode1, "SG01");
  ASSERT_OK(old);
  EXPECT_EQ(old->role(), dagvault::v1::PASSIVE);
  absl::Status refused = cluster.Put(kNode1, "SG01", "MDB01A", 3, 999, "x");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("the active copy is on node2"));
  // The stream continues on node2 and reaches both other copies.
  PutItems(cluster, kNode2, "SG01", Databases("SG01"), 4, 0, 60);
  ASSERT_OK(cluster.RollLog(kNode2, "SG01"));
  ASSERT_OK(cluster.WaitConverged(kNode2, "SG01"));
  EXPECT_EQ(UnitDigest(cluster, kNode1, "SG01"), UnitDigest(cluster, kNode2, "SG01"));
  // The lagged copy follows the switch at its next pass; one pass made
  // during the switchover may have found no active copy, so it is waited
  // for rather than read once.
  std::string lagged_last;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto lagged = cluster.Copy(kNode3, "SG01");
        if (!lagged.ok()) return false;
        lagged_last =
            absl::StrCat(lagged->active_node(), " ", dagvault::v1::CopyState_Name(lagged->state()),
                         " ", lagged->message());
        return lagged->active_node() == "node2" && lagged->state() == dagvault::v1::HEALTHY;
      },
      absl::Seconds(30)))
      << lagged_last;
  // And back again.
  ASSERT_OK(cluster.Activate(kNode1, "SG01", "node1", /*lossy=*/false));
  EXPECT_EQ(UnitDigest(cluster, kNode1, "SG01"), UnitDigest(cluster, kNode2, "SG01"));
}

TEST(Replication, LossyActivationThenTheOldActiveFindsTheDivergenceAndIsReseeded) {
  MailstoredCluster cluster(FastLab(), "lossy");
  ASSERT_OK(cluster.Start());
  PutItems(cluster, kNode1, "DB02", Databases("DB02"), 1, 0, 50);
  ASSERT_OK(cluster.RollLog(kNode1, "DB02"));
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  const std::string shipped = UnitDigest(cluster, kNode1, "DB02");
  // These stay in node1's open generation; node1 then dies.
  PutItems(cluster, kNode1, "DB02", Databases("DB02"), 1, 50, 30);
  cluster.KillNode(kNode1);

  // Without --lossy, a switchover needs the old active copy.
  absl::Status refused = cluster.Activate(kNode2, "DB02", "node2", /*lossy=*/false);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.message()), HasSubstr("activate with --lossy"));
  ASSERT_OK(cluster.Activate(kNode2, "DB02", "node2", /*lossy=*/true));
  EXPECT_EQ(UnitDigest(cluster, kNode2, "DB02"), shipped);  // the unshipped items are lost
  auto lost = cluster.Get(kNode2, "DB02", "DB02", 1, 60);
  ASSERT_OK(lost);
  EXPECT_FALSE(lost->has_value());
  PutItems(cluster, kNode2, "DB02", Databases("DB02"), 2, 0, 40);
  ASSERT_OK(cluster.RollLog(kNode2, "DB02"));

  // node1 returns: it steps down, compares its logs with node2's stream,
  // finds the generation that only it has, and refuses to continue.
  ASSERT_OK(cluster.StartNode(kNode1));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto c = cluster.Copy(kNode1, "DB02");
        return c.ok() && c->state() == dagvault::v1::FAILED_AND_SUSPENDED;
      },
      absl::Seconds(30)))
      << cluster.LogOf(kNode1);
  auto diverged = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(diverged);
  EXPECT_EQ(diverged->role(), dagvault::v1::PASSIVE);
  EXPECT_EQ(diverged->active_node(), "node2");
  EXPECT_THAT(diverged->message(), HasSubstr("diverged at generation"));
  EXPECT_THAT(diverged->message(), HasSubstr("needs a reseed"));
  // It stays that way across a restart, and cannot be resumed or activated.
  cluster.StopNode(kNode1);
  ASSERT_OK(cluster.StartNode(kNode1));
  auto still = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(still);
  EXPECT_EQ(still->state(), dagvault::v1::FAILED_AND_SUSPENDED);
  EXPECT_THAT(std::string(cluster.Admin(kNode1, "resume", "DB02").message()),
              HasSubstr("reseed it"));
  // The other unit, which did not fail over, is still active on node1.
  auto other = cluster.Copy(kNode1, "SG01");
  ASSERT_OK(other);
  EXPECT_EQ(other->role(), dagvault::v1::ACTIVE);

  ASSERT_OK(cluster.Admin(kNode1, "reseed", "DB02"));
  ASSERT_OK(cluster.WaitConverged(kNode2, "DB02"));
  EXPECT_EQ(UnitDigest(cluster, kNode1, "DB02"), UnitDigest(cluster, kNode2, "DB02"));
  auto healthy = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(healthy);
  EXPECT_EQ(healthy->state(), dagvault::v1::HEALTHY) << healthy->message();
}

TEST(Replication, AnActiveCopyThatReachesNoOtherCopyDoesNotMountOnItsOwn) {
  MailstoredCluster cluster(FastLab(), "dac");
  ASSERT_OK(cluster.Start());
  ASSERT_OK(cluster.WaitConverged(kNode1, "DB02"));
  for (int i = 0; i < cluster.size(); ++i) cluster.StopNode(i);
  ASSERT_OK(cluster.StartNode(kNode1));
  absl::SleepFor(absl::Milliseconds(500));
  auto waiting = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(waiting);
  EXPECT_EQ(waiting->state(), dagvault::v1::DISMOUNTED);
  EXPECT_THAT(waiting->message(), HasSubstr("waiting for another copy to confirm"));
  // Once another copy answers, it mounts.
  ASSERT_OK(cluster.StartNode(kNode2));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto c = cluster.Copy(kNode1, "DB02");
        return c.ok() && c->state() == dagvault::v1::MOUNTED;
      },
      absl::Seconds(20)));
  // An operator may force it.
  cluster.StopNode(kNode2);
  cluster.StopNode(kNode1);
  ASSERT_OK(cluster.StartNode(kNode1));
  ASSERT_OK(cluster.Admin(kNode1, "mount", "SG01"));
  auto forced = cluster.Copy(kNode1, "SG01");
  ASSERT_OK(forced);
  EXPECT_EQ(forced->state(), dagvault::v1::MOUNTED);
  // An operator's dismount of a waiting copy stands when another copy
  // answers later.
  ASSERT_OK(cluster.Admin(kNode1, "dismount", "DB02"));
  ASSERT_OK(cluster.StartNode(kNode2));
  absl::SleepFor(absl::Seconds(1));
  auto dismounted = cluster.Copy(kNode1, "DB02");
  ASSERT_OK(dismounted);
  EXPECT_EQ(dismounted->state(), dagvault::v1::DISMOUNTED);
  EXPECT_THAT(dismounted->message(), HasSubstr("dismounted by an operator"));
}

}  // namespace
}  // namespace dagvault::testing
