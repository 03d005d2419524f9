// Reseed from the repository (`dagvault reseed`, reseed_plan.cc) against a
// real SQLite catalog and fake agent channels: what is refused and why, the
// four steps on the one copy, no fallback to a reseed from the active copy,
// and step 7's checks when mail is written on the active copy meanwhile.
#include "coordinator/server/restore_plan_test_util.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

class ReseedPlanTest : public RestorePlanTest {
 protected:
  // One node's copy of DB02 as its agent reports it.
  void ReportCopy(const std::string& node, v1::CopyState state, uint32_t lowest = 0,
                  uint32_t newest = 0) {
    v1::NodeReport r;
    r.set_node(node);
    v1::CopyStatus* copy = r.add_copies();
    copy->set_unit("DB02");
    copy->set_node(node);
    copy->set_role(node == "node1" ? v1::ACTIVE : v1::PASSIVE);
    copy->set_state(state);
    copy->set_lowest_log_generation(lowest);
    copy->set_last_log_generation(newest);
    topology_->Report(r);
  }

  absl::StatusOr<JobRecord> Reseed(const std::string& node, bool force = false) {
    v1::StartReseedRequest r;
    r.set_unit("DB02");
    r.set_node(node);
    r.set_force(force);
    return jobs_->StartReseed(r);
  }

  // node2's copy has failed; the active copy on node1 holds generations 3
  // to 7 (the Full ends at 3).
  void SetUp() override {
    RestorePlanTest::SetUp();
    ReportCopy("node1", v1::MOUNTED, 3, 7);
    ReportCopy("node2", v1::FAILED_AND_SUSPENDED);
  }
};

TEST_F(ReseedPlanTest, ItIsRefusedForTheActiveCopyAHealthyCopyAndAStreamTheChainDoesNotJoin) {
  auto active = Reseed("node1");
  EXPECT_EQ(active.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(active.status().message(), HasSubstr("is the active copy"));
  EXPECT_THAT(active.status().message(), HasSubstr("dagvault restore start --unit DB02"));

  auto healthy = Reseed("node3");
  EXPECT_EQ(healthy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(healthy.status().message(), HasSubstr("is Healthy"));
  EXPECT_THAT(healthy.status().message(), HasSubstr("--force"));

  auto unnamed = Reseed("");
  EXPECT_EQ(unnamed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unnamed.status().message(), HasSubstr("--node N is required"));

  auto nowhere = Reseed("node9");
  EXPECT_EQ(nowhere.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(nowhere.status().message(), HasSubstr("node1, node2, node3"));

  // The active copy truncated past the chain's end: nothing would join.
  ReportCopy("node1", v1::MOUNTED, 6, 9);
  auto truncated = Reseed("node2");
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(truncated.status().message(),
              HasSubstr("no chain joins the active copy's current log stream"));
  EXPECT_THAT(truncated.status().message(), HasSubstr("ends at generation 0x00000003"));
  EXPECT_THAT(truncated.status().message(), HasSubstr("0x00000004 to 0x00000005 were truncated"));
  EXPECT_THAT(truncated.status().message(), HasSubstr("--type full"));

  // The active copy's stream never reached the chain's end (a lossy
  // failover after the backup).
  ReportCopy("node1", v1::MOUNTED, 1, 2);
  auto behind = Reseed("node2");
  EXPECT_EQ(behind.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(behind.status().message(), HasSubstr("only through 0x00000002"));

  // The active copy not mounted (a restore of it stopped part-way, say).
  ReportCopy("node1", v1::DISMOUNTED, 3, 7);
  auto dismounted = Reseed("node2");
  EXPECT_EQ(dismounted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(dismounted.status().message(), HasSubstr("is Dismounted, not Mounted"));

  // Nothing was started, nothing holds the unit.
  EXPECT_TRUE(catalog_->Leases()->empty());
  for (const char* node : {"node1", "node2", "node3"}) EXPECT_EQ(Last(node), "") << node;
}

TEST_F(ReseedPlanTest, TheCopyIsSuspendedRestoredResumedAndCheckedWhileTheActiveCopyRunsOn) {
  auto job = Reseed("node2");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->id, ::testing::StartsWith("reseed-"));
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].job, job->id);

  EXPECT_EQ(Last("node2"), "copy-op/suspend");
  Finish("node2");
  // Step 5 at once: there is no active copy's restore to wait for.
  EXPECT_EQ(Last("node2"), "restore/");
  const v1::JobAssignment restore = channels_["node2"]->Assignments().back();
  EXPECT_TRUE(restore.restore().passive_copy());
  EXPECT_TRUE(restore.restore().join_active_stream());
  EXPECT_FALSE(restore.restore().mount());
  EXPECT_EQ(restore.restore().manifests_size(), 1);
  EXPECT_EQ(restore.fencing_token(), (*leases)[0].token);
  Progress("node2", v1::JOB_TRANSFERRING, 5, 10);
  EXPECT_EQ(Info(job->id).plan().progress(0).bytes_done(), 5u);
  Finish("node2");
  EXPECT_EQ(Last("node2"), "copy-op/resume");
  Finish("node2");
  // Step 7: the active copy closes a generation, the copy replays through it.
  EXPECT_EQ(Last("node1"), "copy-op/digest");
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}}, 9);
  EXPECT_EQ(Last("node2"), "copy-op/digest");
  EXPECT_EQ(channels_["node2"]->Assignments().back().copy_op().wait_for_generation(), 9u);
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "abc"}}, 9);

  v1::JobInfo info = Info(job->id);
  EXPECT_EQ(info.state(), v1::JOB_SUCCEEDED) << info.reason();
  EXPECT_TRUE(info.plan().reseed());
  for (int n : {2, 3, 4}) EXPECT_EQ(info.plan().steps(n - 1).state(), v1::STEP_SKIPPED) << n;
  for (int n : {1, 5, 6, 7}) EXPECT_EQ(info.plan().steps(n - 1).state(), v1::STEP_DONE) << n;
  EXPECT_THAT(info.plan().steps(6).detail(), HasSubstr("every copy holds the same data"));
  // The active copy was never suspended, dismounted or restored, and the
  // other passive copy was not touched.
  EXPECT_EQ(channels_["node1"]->Assignments().size(), 1u);
  EXPECT_EQ(Last("node3"), "");
  EXPECT_TRUE(catalog_->Leases()->empty());
}

TEST_F(ReseedPlanTest, AFailedOrLostRestoreFromTheRepositoryStopsItWithoutReadingTheActiveCopy) {
  auto job = Reseed("node2");
  ASSERT_TRUE(job.ok()) << job.status();
  Finish("node2");
  Finish("node2", v1::JOB_FAILED);  // the writer refused the join, say
  v1::JobInfo info = Info(job->id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 5 (restore the copy from the repository"));
  EXPECT_EQ(info.plan().reseeded_from_active_size(), 0);
  EXPECT_THAT(info.plan().next_action(), HasSubstr("dagvault reseed --unit DB02 --node node2"));
  EXPECT_THAT(info.plan().next_action(), HasSubstr("the active copy on node1 is untouched"));
  EXPECT_EQ(Last("node2"), "restore/");  // no reseed from the active copy followed
  EXPECT_TRUE(catalog_->Leases()->empty());

  // A re-run is a new reseed from step 1; this time node2 goes quiet.
  auto again = Reseed("node2");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(again->id, job->id);
  EXPECT_EQ(Last("node2"), "copy-op/suspend");
  Finish("node2");
  EXPECT_EQ(Last("node2"), "restore/");
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(absl::Milliseconds(150));
    jobs_->Tick();
  }
  info = Info(again->id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("stopped at step 5"));
  EXPECT_EQ(channels_["node2"]->Count(v1::CoordinatorMessage::kCancel), 1);
  EXPECT_EQ(Last("node2"), "restore/");

  // A stopped reseed is not what an all-copies restore resumes.
  const std::string restore = StartRestore();
  EXPECT_THAT(restore, ::testing::StartsWith("restore-"));
  EXPECT_EQ(Info(restore).plan().resumed(), 0u);
}

TEST_F(ReseedPlanTest, MailWrittenDuringEveryCheckLeavesTheDigestsUncomparedNotFailed) {
  auto job = Reseed("node2", /*force=*/false);
  ASSERT_TRUE(job.ok()) << job.status();
  for (int i = 0; i < 3; ++i) Finish("node2");  // suspend, restore, resume
  for (uint32_t check = 1; check <= 3; ++check) {
    ASSERT_EQ(Last("node1"), "copy-op/digest") << check;
    // The active copy's digest holds mail logged after the generation it
    // closed; the copy replayed on past it too.
    Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "newer"}}, 8 + check, 0);
    Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "older"}}, 8 + check, 9 + check);
  }
  v1::JobInfo info = Info(job->id);
  EXPECT_EQ(info.state(), v1::JOB_SUCCEEDED) << info.reason();
  EXPECT_EQ(info.plan().check_tries(), 2u);
  EXPECT_THAT(info.plan().steps(6).detail(),
              HasSubstr("Healthy and replayed the active copy's stream through generation "
                        "0x0000000B"));
  EXPECT_THAT(info.plan().steps(6).detail(), HasSubstr("its digests were not compared"));
}

TEST_F(ReseedPlanTest, AnAllCopiesRestoreStoppedPartWayGoesFirst) {
  const std::string restore = StartRestore();
  Finish("node2", v1::JOB_FAILED);  // step 1 stops
  ASSERT_EQ(Info(restore).state(), v1::JOB_FAILED);
  auto refused = Reseed("node2");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              HasSubstr(absl::StrCat("the all-copies restore ", restore, " stopped at step 1")));
}

TEST_F(ReseedPlanTest, ACopyMissingADatabasesDigestFailsAtOnceWhateverWasWritten) {
  auto job = Reseed("node2");
  ASSERT_TRUE(job.ok()) << job.status();
  for (int i = 0; i < 3; ++i) Finish("node2");
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}}, 9, 0);
  Finish("node2", v1::JOB_SUCCEEDED, {}, 9);
  v1::JobInfo info = Info(job->id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_EQ(info.plan().check_tries(), 0u);
  EXPECT_THAT(info.reason(), HasSubstr("DB02 on node2 has no digest"));
}

TEST_F(ReseedPlanTest, DigestsThatDifferAtTheSamePointFailTheReseed) {
  auto job = Reseed("node2");
  ASSERT_TRUE(job.ok()) << job.status();
  for (int i = 0; i < 3; ++i) Finish("node2");
  // The first check is not comparable, the second is, and differs.
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}}, 9, 0);
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "abd"}}, 9);
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "abc"}}, 10);
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "abd"}}, 10);
  v1::JobInfo info = Info(job->id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("DB02 on node2 is abd, not abc"));
  EXPECT_THAT(info.reason(), HasSubstr("no mail was written during the check"));
  EXPECT_THAT(info.plan().next_action(), HasSubstr("holds the restored data"));
}

// An all-copies restore checks again too, and fails when the active copy
// never stopped being written to: its copies must be shown to agree.
TEST_F(RestorePlanTest, MailWrittenDuringEveryCheckFailsAnAllCopiesRestoreAfterThreeChecks) {
  const std::string id = StartRestore();
  RunToStep7();
  for (uint32_t check = 1; check <= 3; ++check) {
    ASSERT_EQ(Last("node1"), "copy-op/digest") << check;
    Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "newer"}}, 8 + check, 0);
    Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "older"}}, 8 + check);
    Finish("node3", v1::JOB_SUCCEEDED, {{"DB02", "older"}}, 8 + check);
  }
  v1::JobInfo info = Info(id);
  EXPECT_EQ(info.state(), v1::JOB_FAILED);
  EXPECT_THAT(info.reason(), HasSubstr("during each of 3 checks"));

  // A re-run, when the unit is quieter, checks three times again.
  EXPECT_EQ(StartRestore(), id);
  ASSERT_EQ(Last("node1"), "copy-op/digest");
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "newer"}}, 12, 0);
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "older"}}, 12);
  Finish("node3", v1::JOB_SUCCEEDED, {{"DB02", "older"}}, 12);
  EXPECT_FALSE(IsFinalJobState(Info(id).state())) << Info(id).reason();
  Finish("node1", v1::JOB_SUCCEEDED, {{"DB02", "same"}}, 13);
  Finish("node2", v1::JOB_SUCCEEDED, {{"DB02", "same"}}, 13);
  Finish("node3", v1::JOB_SUCCEEDED, {{"DB02", "same"}}, 13);
  EXPECT_EQ(Info(id).state(), v1::JOB_SUCCEEDED) << Info(id).reason();
}

}  // namespace
}  // namespace dagvault::coordinator
