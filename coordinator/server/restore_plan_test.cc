// The all-copies restore plan against a real SQLite catalog and fake agent
// channels: the order of its operations, a lost progress update, digests
// that differ or are missing, a cancel, a lost operation, a coordinator
// that takes a running plan over, and the re-run that resumes.
#include "coordinator/server/restore_plan_test_util.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

TEST_F(RestorePlanTest, TheStepsRunInOrderAndEndWhenEveryCopysDigestsAgree) {
  const std::string id = StartRestore();
  // The unit is held for the whole plan: no backup starts.
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].job, id);
  RunToStep7();
  const std::vector<std::pair<std::string, std::string>> same = {{"DB02", "abc"}};
  Finish("node1", v1::JOB_SUCCEEDED, same, 9);
  EXPECT_EQ(channels_["node2"]->Assignments().back().copy_op().wait_for_generation(), 9u);
  Finish("node2", v1::JOB_SUCCEEDED, same);
  Finish("node3", v1::JOB_SUCCEEDED, same);
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_SUCCEEDED) << info.DebugString();
  for (const auto& step : info.plan().steps())
    EXPECT_EQ(step.state(), v1::STEP_DONE) << step.number();
  EXPECT_EQ(info.plan().restored_generation(), 3u);
  EXPECT_THAT(info.plan().steps(6).detail(), HasSubstr("every copy holds the same data: DB02 abc"));
  EXPECT_TRUE(catalog_->Leases()->empty());
}

TEST_F(RestorePlanTest, DigestsThatDifferOrAreMissingStopTheCheckAndARerunChecksAgain) {
  const std::string id = StartRestore();
  RunToStep7();
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  Finish("node3", v1::JOB_SUCCEEDED, {{"DB02", "xyz"}});
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 7"));
  EXPECT_THAT(info.reason(), HasSubstr("DB02 on node3 is xyz, not abc"));
  EXPECT_EQ(info.plan().steps(6).state(), v1::STEP_FAILED);
  EXPECT_THAT(info.plan().next_action(), HasSubstr("to check them again"));
  EXPECT_TRUE(catalog_->Leases()->empty());

  // The re-run resumes the same job at step 7; a copy with no digest fails it.
  EXPECT_EQ(StartRestore(), id);
  EXPECT_EQ(Last("node1"), "copy-op/digest");
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  Finish("node2", v1::JOB_SUCCEEDED, {});
  Finish("node3", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("DB02 on node2 has no digest"));
  EXPECT_EQ(info.plan().resumed(), 1u);
}

TEST_F(RestorePlanTest, ACancelOrALostOperationStopsThePlanWithItsNextSafeAction) {
  const std::string id = StartRestore();
  ASSERT_TRUE(jobs_->Cancel(id).ok());
  EXPECT_EQ(channels_["node2"]->Count(v1::CoordinatorMessage::kCancel), 1);
  // The suspend had already finished: the plan stops anyway.
  Finish("node2");
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_CANCELLED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 1"));
  EXPECT_THAT(info.reason(), HasSubstr("Next: nothing has been restored yet"));

  // Resumed at step 1; then node1's agent never answers the dismount.
  EXPECT_EQ(StartRestore(), id);
  Finish("node2");
  Finish("node3");
  EXPECT_EQ(Last("node1"), "copy-op/dismount");
  clock_.Advance(absl::Milliseconds(400));  // past the 300 ms lease
  jobs_->Tick();
  info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 2"));
  EXPECT_THAT(info.reason(), HasSubstr("its lease expired"));
  EXPECT_EQ(info.plan().steps(0).state(), v1::STEP_DONE);
  EXPECT_EQ(info.plan().steps(1).state(), v1::STEP_FAILED);
}

// A coordinator that takes a running plan over (a restart, a failover to a
// standby) carries on from its recorded step: the operation in flight
// finishes and its result reaches the new coordinator; an operation in
// flight that the agent reports it no longer runs is sent once more; a
// later loss, a second one, or a lease that runs out without a word stops
// the plan as before, and the operator's re-run resumes it.
TEST_F(RestorePlanTest, ACoordinatorThatTakesAPlanOverCarriesOnFromItsRecordedStep) {
  const std::string id = StartRestore();
  Finish("node2");
  Finish("node3");
  EXPECT_EQ(Last("node1"), "copy-op/dismount");
  jobs_ = MakeJobs();
  ASSERT_TRUE(jobs_->Recover().ok());
  EXPECT_FALSE(IsFinalJobState(Info(id).state())) << Info(id).reason();
  Finish("node1");
  EXPECT_EQ(Last("node1"), "restore/");
  // The resend was for the operation in flight at the takeover only: this
  // restore, lost, stops the plan.
  v1::NodeReport without;
  without.set_node("node1");
  clock_.Advance(absl::Seconds(11));  // past the report grace
  jobs_->OnReport(without);
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 3"));
  CopiesReported();               // the clock moved on: the nodes have reported since
  EXPECT_EQ(StartRestore(), id);  // the re-run resumes it
  EXPECT_EQ(Last("node1"), "restore/");

  // Taken over again, and node1's agent no longer has the restore (it
  // restarted meanwhile): the step is sent again, once.
  jobs_ = MakeJobs();
  ASSERT_TRUE(jobs_->Recover().ok());
  const size_t sent = channels_["node1"]->Assignments().size();
  clock_.Advance(absl::Seconds(11));
  jobs_->OnReport(without);
  EXPECT_EQ(channels_["node1"]->Assignments().size(), sent + 1);
  EXPECT_EQ(Last("node1"), "restore/");
  info = Info(id);
  EXPECT_FALSE(IsFinalJobState(info.state())) << info.reason();
  EXPECT_EQ(info.plan().resumed(), 2u);  // the re-run, then the resend

  // Lost a second time: the plan stops at its step, and a re-run resumes it.
  clock_.Advance(absl::Seconds(11));
  jobs_->OnReport(without);
  info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 3"));
  EXPECT_THAT(info.reason(), HasSubstr("no longer runs it"));
  CopiesReported();  // the clock moved on: the nodes have reported since
  EXPECT_EQ(StartRestore(), id);
  EXPECT_EQ(Last("node1"), "restore/");

  // Taken over a third time, and the agent says nothing for a lease period:
  // it may still run the restore, so nothing is sent again.
  jobs_ = MakeJobs();
  ASSERT_TRUE(jobs_->Recover().ok());
  const size_t before_tick = channels_["node1"]->Assignments().size();
  clock_.Advance(absl::Milliseconds(400));  // past the 300 ms lease
  jobs_->Tick();
  info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("its lease expired"));
  EXPECT_EQ(channels_["node1"]->Assignments().size(), before_tick);
  CopiesReported();  // the clock moved on: the nodes have reported since
  EXPECT_EQ(StartRestore(), id);
  EXPECT_EQ(Last("node1"), "restore/");
  Progress("node1", v1::JOB_TRANSFERRING, 1, 10);
  EXPECT_EQ(Last("node2"), "restore/");
  EXPECT_TRUE(channels_["node2"]->Assignments().back().restore().passive_copy());
}

// An operation sent while its node was not connected (reconnecting, to a
// new leader say) is sent again once the node reports without it.
TEST_F(RestorePlanTest, AnOperationSentWhileItsNodeWasAwayIsSentAgainWhenItReports) {
  const std::string id = StartRestore();
  Finish("node2");
  Finish("node3");
  topology_->Disconnected("node2", channels_["node2"]);
  Finish("node1");  // the dismount
  EXPECT_EQ(Last("node1"), "restore/");
  // The active copy's restore is under way: the passive copies' go out,
  // node2's while it is away.
  Progress("node1", v1::JOB_TRANSFERRING, 1, 10);
  EXPECT_EQ(Last("node3"), "restore/");
  auto back = std::make_shared<FakeChannel>();
  v1::Register hello;
  hello.set_node("node2");
  topology_->Connected(hello, back);
  channels_["node2"] = back;
  EXPECT_EQ(Last("node2"), "");
  v1::NodeReport without;
  without.set_node("node2");
  PassWhileReporting(absl::Seconds(11), {"node1", "node3"});  // past the report grace
  jobs_->OnReport(without);
  EXPECT_EQ(Last("node2"), "restore/");
  v1::JobInfo info = Info(id);
  EXPECT_FALSE(IsFinalJobState(info.state())) << info.reason();
  Finish("node2");
  Finish("node3");
  Finish("node1");
  EXPECT_EQ(Last("node2"), "copy-op/resume");
  EXPECT_EQ(Last("node3"), "copy-op/resume");
}

// Issue 19 §3: the passive copies are restored from the repository at the
// same time as the active copy, each through its own agent; replication
// resumes only when all of them and the active copy are done; the plan
// shows each node's progress; the passive copies' digests are taken
// together.
TEST_F(RestorePlanTest, ThePassiveCopiesAreRestoredFromTheRepositoryBesideTheActiveCopy) {
  const std::string id = StartRestore();
  // Both suspends go out at once.
  EXPECT_EQ(Last("node2"), "copy-op/suspend");
  EXPECT_EQ(Last("node3"), "copy-op/suspend");
  EXPECT_EQ(Last("node1"), "");
  Finish("node2");
  EXPECT_EQ(Last("node1"), "") << "the dismount waits for every suspend";
  Finish("node3");
  EXPECT_EQ(Last("node1"), "copy-op/dismount");
  Finish("node1");
  // The passive copies' files are replaced only once the active copy's
  // writer has accepted its restore (it refuses for the whole unit).
  EXPECT_EQ(Last("node1"), "restore/");
  EXPECT_EQ(Last("node2"), "copy-op/suspend");
  Progress("node1", v1::JOB_PREPARING, 0, 0);
  EXPECT_EQ(Last("node2"), "copy-op/suspend");
  Progress("node1", v1::JOB_TRANSFERRING, 0, 1000);
  for (const char* node : {"node1", "node2", "node3"}) EXPECT_EQ(Last(node), "restore/") << node;
  const v1::RestoreAssignment active = channels_["node1"]->Assignments().back().restore();
  EXPECT_FALSE(active.passive_copy());
  EXPECT_TRUE(active.mount());
  EXPECT_TRUE(active.refuse_if_mounted());
  for (const char* node : {"node2", "node3"}) {
    const v1::JobAssignment a = channels_[node]->Assignments().back();
    EXPECT_TRUE(a.restore().passive_copy()) << node;
    EXPECT_FALSE(a.restore().mount()) << node;
    EXPECT_FALSE(a.restore().roll_forward()) << node;
    EXPECT_EQ(a.restore().manifests(0), "20261122T100000.000000Z-00000001");
    EXPECT_GT(a.fencing_token(), 0u);
  }

  // Each node's progress is shown, and the job's figures are their sum.
  Progress("node1", v1::JOB_TRANSFERRING, 100, 1000);
  Progress("node2", v1::JOB_TRANSFERRING, 300, 1000);
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.bytes_done(), 400u);
  EXPECT_EQ(info.bytes_total(), 2000u);
  std::map<std::string, uint64_t> shown;
  for (const auto& p : info.plan().progress()) shown[p.node()] = p.bytes_done();
  EXPECT_EQ(shown["node1"], 100u);
  EXPECT_EQ(shown["node2"], 300u);
  EXPECT_EQ(shown.count("node3"), 1u) << "node3's restore is shown before it reports";
  EXPECT_EQ(info.plan().steps(2).state(), v1::STEP_RUNNING);
  EXPECT_EQ(info.plan().steps(4).state(), v1::STEP_RUNNING);

  // The passive copies finish first: nothing resumes until the active copy
  // is mounted. The job's figures keep what they restored.
  Progress("node3", v1::JOB_TRANSFERRING, 1000, 1000);
  Finish("node2");
  Finish("node3");
  Progress("node1", v1::JOB_TRANSFERRING, 500, 1000);
  EXPECT_EQ(Info(id).bytes_done(), 2500u);
  EXPECT_EQ(Info(id).bytes_total(), 3000u);
  EXPECT_EQ(Last("node2"), "restore/");
  EXPECT_EQ(Info(id).plan().steps(4).state(), v1::STEP_DONE);
  Progress("node1", v1::JOB_COMPLETING, 1000, 1000);
  EXPECT_EQ(Info(id).plan().steps(2).state(), v1::STEP_DONE);
  EXPECT_EQ(Info(id).plan().steps(3).state(), v1::STEP_RUNNING);
  Finish("node1");
  EXPECT_EQ(Last("node2"), "copy-op/resume");
  EXPECT_EQ(Last("node3"), "copy-op/resume");
  Finish("node3");
  Finish("node2");
  // Step 7: the active copy closes the check's generation; then every
  // copy's digest is taken at once, the active copy's included.
  EXPECT_EQ(Last("node1"), "copy-op/digest");
  EXPECT_EQ(Last("node2"), "copy-op/resume");
  {
    v1::JobUpdate closed;
    closed.set_job(id);
    closed.set_attempt(channels_["node1"]->Assignments().back().attempt());
    closed.set_phase(v1::JOB_TRANSFERRING);
    closed.mutable_copy_result()->set_generation(9);
    jobs_->OnJobUpdate("node1", closed);
  }
  for (const char* node : {"node2", "node3"}) {
    EXPECT_EQ(Last(node), "copy-op/digest") << node;
    EXPECT_EQ(channels_[node]->Assignments().back().copy_op().wait_for_generation(), 9u);
  }
  Finish("node3", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  EXPECT_FALSE(IsFinalJobState(Info(id).state())) << "the active copy's digest is still due";
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}}, 9);
  info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_SUCCEEDED) << info.reason();
  EXPECT_TRUE(info.plan().reseeded_from_active().empty());
  EXPECT_TRUE(info.plan().progress().empty());
  EXPECT_TRUE(catalog_->Leases()->empty());
}

// A passive node that cannot restore from the repository is reseeded from
// the restored active copy, as before, once it is mounted; the plan says so.
TEST_F(RestorePlanTest, APassiveCopyThatCannotBeRestoredFromTheRepositoryIsReseeded) {
  const std::string id = StartRestore();
  Finish("node2");
  Finish("node3");
  Finish("node1");
  Progress("node1", v1::JOB_TRANSFERRING, 1, 10);
  Finish("node3", v1::JOB_FAILED);  // "it went wrong": cannot read the repository
  v1::JobInfo info = Info(id);
  EXPECT_FALSE(IsFinalJobState(info.state())) << info.reason();
  ASSERT_EQ(info.plan().reseeded_from_active_size(), 1);
  EXPECT_EQ(info.plan().reseeded_from_active(0).node(), "node3");
  EXPECT_EQ(info.plan().reseeded_from_active(0).reason(), "it went wrong");
  EXPECT_EQ(Last("node3"), "restore/") << "nothing before the active copy is mounted";
  Finish("node2");
  EXPECT_EQ(Last("node3"), "restore/");
  Finish("node1");
  EXPECT_EQ(Last("node3"), "copy-op/reseed");
  EXPECT_EQ(Last("node2"), "restore/") << "resumes wait for node3's reseed";
  Finish("node3");
  EXPECT_EQ(Last("node2"), "copy-op/resume");
  EXPECT_EQ(Last("node3"), "copy-op/resume");
  auto events = catalog_->JobEvents(id);
  ASSERT_TRUE(events.ok());
  // Each event is about its own node's attempt, not the newest one sent
  // (node2's restore went out before node3's).
  std::map<std::string, int> restore_attempt;
  for (const char* node : {"node2", "node3"}) {
    for (const auto& sent : channels_[node]->Assignments()) {
      if (sent.kind() == v1::JOB_RESTORE) restore_attempt[node] = static_cast<int>(sent.attempt());
    }
  }
  ASSERT_LT(restore_attempt["node2"], restore_attempt["node3"]);
  bool said = false, node2_said = false;
  for (const auto& e : *events) {
    if (e.message.find("the restore from the repository on node3 failed (it went wrong); "
                       "node3 is reseeded from the restored active copy") != std::string::npos) {
      said = true;
      EXPECT_EQ(e.attempt, restore_attempt["node3"]);
    }
    if (e.message.find("step 5 on node2: restored from the repository") != std::string::npos) {
      node2_said = true;
      EXPECT_EQ(e.attempt, restore_attempt["node2"]);
    }
  }
  EXPECT_TRUE(said);
  EXPECT_TRUE(node2_said);

  // Then the plan runs to its end.
  Finish("node2");
  Finish("node3");
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}}, 9);
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  Finish("node3", v1::JOB_SUCCEEDED, {{"DB02", "abc"}});
  EXPECT_EQ(Info(id).state(), v1::JOB_SUCCEEDED) << Info(id).reason();
}

// A passive node that goes quiet during its restore from the repository
// does not hold up the active copy's: it is reseeded once that is mounted.
TEST_F(RestorePlanTest, APassiveNodeGoneQuietDuringItsRestoreIsReseededAfterTheActiveCopy) {
  const std::string id = StartRestore();
  Finish("node2");
  Finish("node3");
  Finish("node1");
  Progress("node1", v1::JOB_TRANSFERRING, 1, 10);
  // node1 and node2 report their restores; node3 says nothing for longer
  // than the lease.
  for (int i = 0; i < 3; ++i) {
    for (const char* node : {"node1", "node2"}) ReportRunning(node);
    clock_.Advance(absl::Milliseconds(150));
    jobs_->Tick();
  }
  v1::JobInfo info = Info(id);
  EXPECT_FALSE(IsFinalJobState(info.state())) << info.reason();
  ASSERT_EQ(info.plan().reseeded_from_active_size(), 1);
  EXPECT_EQ(info.plan().reseeded_from_active(0).node(), "node3");
  EXPECT_THAT(info.plan().reseeded_from_active(0).reason(), HasSubstr("its lease expired"));
  // Its lost attempt is told to stop, should its agent still run it.
  EXPECT_EQ(channels_["node3"]->Count(v1::CoordinatorMessage::kCancel), 1);
  Finish("node2");
  Finish("node1");
  EXPECT_EQ(Last("node3"), "copy-op/reseed");
}

// The plan runs only while it holds the unit's lease: one taken from it
// (revoked in the store) stops it, however well its nodes report.
TEST_F(RestorePlanTest, APlanWhoseLeaseIsTakenAwayStops) {
  const std::string id = StartRestore();
  ASSERT_TRUE(catalog_->ReleaseLease("DB02", id).ok());
  for (int i = 0; i < 4; ++i) {
    for (const char* node : {"node2", "node3"}) ReportRunning(node, v1::JOB_PREPARING);
    clock_.Advance(absl::Milliseconds(150));
    jobs_->Tick();
  }
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("its lease on unit DB02 was lost"));
  // Told to stop (and again at each report of the attempt since).
  EXPECT_GE(channels_["node2"]->Count(v1::CoordinatorMessage::kCancel), 1);
}

// The same found by an operation's answer: nothing more is sent.
TEST_F(RestorePlanTest, APlanThatFindsItsLeaseGoneAtAnAnswerSendsNothingMore) {
  const std::string id = StartRestore();
  ASSERT_TRUE(catalog_->ReleaseLease("DB02", id).ok());
  clock_.Advance(absl::Milliseconds(150));  // the next renewal writes the store
  Finish("node2");
  Finish("node3");
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("its lease on unit DB02 was lost"));
  EXPECT_EQ(Last("node1"), "") << "no dismount without the lease";
}

// A failure after the chain was in place (the replay or the mount) stops
// the plan at step 4, not 3.
TEST_F(RestorePlanTest, AFailedReplayStopsThePlanAtStep4) {
  const std::string id = StartRestore();
  Finish("node2");
  Finish("node3");
  Finish("node1");
  Progress("node1", v1::JOB_COMPLETING, 10, 10);
  Finish("node1", v1::JOB_FAILED);
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 4"));
  EXPECT_EQ(info.plan().steps(2).state(), v1::STEP_DONE);
  EXPECT_EQ(info.plan().steps(3).state(), v1::STEP_FAILED);
  EXPECT_THAT(info.plan().next_action(), HasSubstr("half replayed"));
  // The re-run restores the chain again (steps 3 and 4 are one operation).
  EXPECT_EQ(StartRestore(), id);
  EXPECT_EQ(Last("node1"), "restore/");
  EXPECT_EQ(Info(id).plan().steps(2).state(), v1::STEP_RUNNING);
}

// A coordinator that takes a plan over while a passive copy's restore from
// the repository still runs after the active copy is mounted knows it for
// what it is: its failure falls back to a reseed.
TEST_F(RestorePlanTest, ATakeoverKeepsAPassiveRestoreInFlightForWhatItIs) {
  const std::string id = StartRestore();
  Finish("node2");
  Finish("node3");
  Finish("node1");
  Progress("node1", v1::JOB_TRANSFERRING, 1, 10);
  Finish("node2");
  Finish("node1");  // mounted; node3's restore still runs
  jobs_ = MakeJobs();
  ASSERT_TRUE(jobs_->Recover().ok());
  Finish("node3", v1::JOB_FAILED);
  v1::JobInfo info = Info(id);
  EXPECT_FALSE(IsFinalJobState(info.state())) << info.reason();
  ASSERT_EQ(info.plan().reseeded_from_active_size(), 1);
  EXPECT_EQ(Last("node3"), "copy-op/reseed");
}

// The active copy's restore failing stops the plan: the passive copies'
// restores still running are cancelled, and the re-run restores them all
// again.
TEST_F(RestorePlanTest, AFailedActiveRestoreStopsThePassiveRestoresToo) {
  const std::string id = StartRestore();
  Finish("node2");
  Finish("node3");
  Finish("node1");
  Progress("node1", v1::JOB_TRANSFERRING, 1, 10);
  Finish("node2");  // node2's restore is done; node3's still runs
  Finish("node1", v1::JOB_FAILED);
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 3"));
  EXPECT_THAT(info.plan().next_action(), HasSubstr("do not mount it"));
  EXPECT_EQ(channels_["node3"]->Count(v1::CoordinatorMessage::kCancel), 1);
  EXPECT_EQ(channels_["node2"]->Count(v1::CoordinatorMessage::kCancel), 0);
  EXPECT_EQ(info.plan().steps(4).state(), v1::STEP_FAILED);
  EXPECT_THAT(info.plan().steps(4).detail(), HasSubstr("stopped on node3 when step 3 failed"));
  // node3's answer to the cancel, after the plan stopped, is acknowledged.
  Finish("node3", v1::JOB_CANCELLED);
  EXPECT_EQ(Info(id).state(), v1::JOB_FAILED);

  EXPECT_EQ(StartRestore(), id);
  Progress("node1", v1::JOB_TRANSFERRING, 1, 10);
  for (const char* node : {"node1", "node2", "node3"}) EXPECT_EQ(Last(node), "restore/") << node;
  // A cancel now reaches every node with an operation in flight.
  ASSERT_TRUE(jobs_->Cancel(id).ok());
  // (node3 had one already, from the plan's first stop.)
  const std::map<std::string, int> cancels = {{"node1", 1}, {"node2", 1}, {"node3", 2}};
  for (const auto& [node, count] : cancels) {
    EXPECT_EQ(channels_[node]->Count(v1::CoordinatorMessage::kCancel), count) << node;
  }
  Finish("node2", v1::JOB_CANCELLED);
  info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_CANCELLED);
  EXPECT_TRUE(catalog_->Leases()->empty());
}

TEST_F(RestorePlanTest, ARestoreToOneNodeHoldsTheLeaseWithATokenAndLivesWhileReported) {
  v1::StartRestoreRequest r;
  r.set_unit("DB02");
  r.set_mode("node");
  r.set_node("node1");
  auto job = jobs_->StartRestore(r);
  ASSERT_TRUE(job.ok()) << job.status();
  const auto sent = channels_["node1"]->Assignments();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_GT(sent[0].fencing_token(), 0u);
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].job, job->id);
  EXPECT_EQ((*leases)[0].token, sent[0].fencing_token());
  // Reported as running for several lease periods: it lives on (each
  // report renews its lease in the store).
  for (int i = 0; i < 6; ++i) {
    v1::NodeReport report;
    report.set_node("node1");
    v1::RunningJob* running = report.add_running();
    running->set_job(job->id);
    running->set_attempt(sent[0].attempt());
    running->set_phase(v1::JOB_TRANSFERRING);
    jobs_->OnReport(report);
    clock_.Advance(absl::Milliseconds(200));
    jobs_->Tick();
  }
  EXPECT_EQ(Info(job->id).attempts_size(), 1);
  EXPECT_NE(Info(job->id).state(), v1::JOB_FAILED) << Info(job->id).reason();
  Finish("node1");
  EXPECT_EQ(Info(job->id).state(), v1::JOB_SUCCEEDED);
  leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  EXPECT_TRUE(leases->empty());
}

}  // namespace
}  // namespace dagvault::coordinator
