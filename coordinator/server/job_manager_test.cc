// JobManager against a real SQLite catalog and fake agent channels: the
// paths of the job state machine that the multi-process tests reach only
// with luck or slowly (a lost assignment, a stale result, a cancel with no
// agent, restart recovery of a stuck lease).
#include "coordinator/server/job_manager.h"

#include <condition_variable>
#include <future>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/testing/small_tmpfs.h"
#include "common/testing/temp_dir.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "coordinator/server/fake_agent_channel.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

using FakeChannel = FakeAgentChannel;

class JobManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = SqliteCatalog::Open(dir_.Sub("catalog.db"));
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = std::move(*c);
    topology_ = std::make_unique<Topology>(catalog_.get(), absl::Seconds(30), &clock_);
    jobs_ = MakeJobs();
    for (const char* node : {"node1", "node2", "node3"}) Connect(node);
  }

  std::unique_ptr<JobManager> MakeJobs() {
    JobManagerOptions o;
    o.lease_ttl = absl::Milliseconds(300);
    o.report_grace = absl::Milliseconds(100);
    o.writer_session_timeout = absl::Seconds(1);
    o.clock = &clock_;
    o.fail_stop = [this](const absl::Status& s) { fail_stops_.push_back(s); };
    return std::make_unique<JobManager>(catalog_.get(), topology_.get(), o);
  }

  void Connect(const std::string& node) {
    auto channel = std::make_shared<FakeChannel>();
    channels_[node] = channel;
    v1::Register hello;
    hello.set_node(node);
    topology_->Connected(hello, channel);
    Report(node, {});
  }

  // node1 holds the active copy of DB02; the others are healthy passives.
  void Report(const std::string& node, std::vector<v1::RunningJob> running) {
    v1::NodeReport r;
    r.set_node(node);
    v1::CopyStatus* c = r.add_copies();
    c->set_unit("DB02");
    c->set_node(node);
    c->set_role(node == "node1" ? v1::ACTIVE : v1::PASSIVE);
    c->set_state(node == "node1" ? v1::MOUNTED : v1::HEALTHY);
    for (auto& j : running) *r.add_running() = j;
    topology_->Report(r);
    jobs_->OnReport(r);
  }

  v1::RunningJob Running(const std::string& job, uint32_t attempt) {
    v1::RunningJob r;
    r.set_job(job);
    r.set_attempt(attempt);
    r.set_unit("DB02");
    r.set_phase(v1::JOB_TRANSFERRING);
    return r;
  }

  // An agent's word that attempt `attempt` of `job` ended in `phase`.
  static v1::JobUpdate Ended(const std::string& job, uint32_t attempt, v1::JobState phase,
                             const std::string& error) {
    v1::JobUpdate u;
    u.set_job(job);
    u.set_attempt(attempt);
    u.set_phase(phase);
    u.set_error(error);
    return u;
  }

  // An agent's word that attempt `attempt` of `job` succeeded with the
  // verified Full `manifest` of DB02 from node2.
  static v1::JobUpdate Succeeded(const std::string& job, uint32_t attempt,
                                 const std::string& manifest) {
    v1::JobUpdate u;
    u.set_job(job);
    u.set_attempt(attempt);
    u.set_phase(v1::JOB_SUCCEEDED);
    v1::Manifest* m = u.mutable_result()->mutable_summary();
    m->set_id(manifest);
    m->set_unit("DB02");
    m->set_type(v1::FULL);
    m->set_source_node("node2");
    (*m->mutable_labels())["verified"] = "pages=1";
    u.mutable_result()->set_manifest(manifest);
    return u;
  }

  JobRecord Start(const std::string& type = "full", std::vector<std::string> prefer = {}) {
    v1::StartBackupRequest request;
    request.set_unit("DB02");
    request.set_type(type == "full" ? v1::FULL : v1::INCREMENTAL);
    for (auto& p : prefer) request.add_preferred(p);
    auto job = jobs_->StartBackup(request);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : JobRecord{};
  }

  // A Full on node2 whose lease then expires: attempt 2 runs elsewhere.
  JobRecord StartAndLoseTheFirstAttempt() {
    JobRecord job = Start("full", {"node2"});
    Report("node2", {Running(job.id, 1)});
    clock_.Advance(absl::Milliseconds(400));  // longer than the 300 ms lease
    jobs_->Tick();
    return job;
  }

  FakeClock clock_{absl::Now()};
  std::vector<absl::Status> fail_stops_;
  ::dagvault::testing::TempDir dir_{"jobs"};
  std::unique_ptr<SqliteCatalog> catalog_;
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<JobManager> jobs_;
  std::map<std::string, std::shared_ptr<FakeChannel>> channels_;
};

TEST_F(JobManagerTest, AnAssignmentTheAgentNeverRunsIsLostAndRetriedElsewhere) {
  JobRecord job = Start("full", {"node2", "node3"});
  ASSERT_EQ(job.attempts.size(), 1u);
  EXPECT_EQ(job.attempts[0].node, "node2");
  ASSERT_EQ(channels_["node2"]->Assignments().size(), 1u);
  clock_.Advance(absl::Milliseconds(150));  // past the report grace
  Report("node2", {});                      // ... and node2 does not list it
  auto info = jobs_->Info(job.id, true);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->attempts_size(), 2);
  EXPECT_THAT(info->attempts(0).reason(), HasSubstr("the agent on node2 no longer runs it"));
  EXPECT_EQ(info->attempts(1).node(), "node3");
  auto retry = channels_["node3"]->Assignments();
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].attempt(), 2u);
  EXPECT_GT(retry[0].wait_for_writer_seconds(), 1u);  // the dead session's timeout, and more
  // The lease moved with it.
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].holder_node, "node3");
}

TEST_F(JobManagerTest, AReportIsQuietOnlyWhileItsNodeRunsNothingAndHandsOverNothing) {
  v1::NodeReport report;
  report.set_node("node2");
  EXPECT_TRUE(jobs_->ReportIsQuiet(report));
  JobRecord job = Start("full", {"node2"});
  ASSERT_EQ(job.attempts.size(), 1u);
  // The node's job is looked at with each of its reports, even one that
  // does not list it (it may have lost it).
  EXPECT_FALSE(jobs_->ReportIsQuiet(report));
  v1::NodeReport other;
  other.set_node("node3");
  EXPECT_TRUE(jobs_->ReportIsQuiet(other));
  // A job the node runs, or a result it hands over, is never quiet.
  *other.add_running() = Running("a-job-of-a-former-leader", 1);
  EXPECT_FALSE(jobs_->ReportIsQuiet(other));
  other.clear_running();
  *other.add_undelivered() = Ended("a-job-of-a-former-leader", 1, v1::JOB_FAILED, "lost");
  EXPECT_FALSE(jobs_->ReportIsQuiet(other));
  // Once the job has ended, node2's reports are quiet again.
  jobs_->OnJobUpdate("node2", Succeeded(job.id, 1, "m1"));
  auto info = jobs_->Info(job.id, true);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_SUCCEEDED);
  EXPECT_TRUE(jobs_->ReportIsQuiet(report));
}

TEST_F(JobManagerTest, ALeaseThatIsNotRenewedExpiresAndASecondLossFailsTheJob) {
  JobRecord job = Start("full", {"node2", "node3"});
  Report("node2", {Running(job.id, 1)});
  clock_.Advance(absl::Milliseconds(400));  // node2 says nothing more
  jobs_->Tick();
  auto info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->attempts_size(), 2);
  EXPECT_THAT(info->attempts(0).reason(), HasSubstr("its lease expired: node2 has not reported"));
  clock_.Advance(absl::Milliseconds(400));
  jobs_->Tick();
  info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_FAILED);
  EXPECT_THAT(info->reason(), HasSubstr("attempt 2 on node3 lost"));
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  EXPECT_TRUE(leases->empty());
}

TEST_F(JobManagerTest, AResultOfAnAbandonedAttemptIsAcknowledgedButNotApplied) {
  JobRecord job = StartAndLoseTheFirstAttempt();
  jobs_->OnJobUpdate("node2", Ended(job.id, 1, v1::JOB_FAILED, "too late"));
  EXPECT_EQ(channels_["node2"]->Count(v1::CoordinatorMessage::kAck), 1);
  auto info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  EXPECT_NE(info->state(), v1::JOB_FAILED);  // attempt 2 still runs
  // And node2 still running attempt 1 is told to stop.
  Report("node2", {Running(job.id, 1)});
  EXPECT_EQ(channels_["node2"]->Count(v1::CoordinatorMessage::kCancel), 1);
}

TEST_F(JobManagerTest, ALateSuccessOfAnAbandonedAttemptIsStillCatalogued) {
  JobRecord job = StartAndLoseTheFirstAttempt();
  jobs_->OnJobUpdate("node2", Succeeded(job.id, 1, "20261122T120000.000000Z-00000001"));
  EXPECT_EQ(channels_["node2"]->Count(v1::CoordinatorMessage::kAck), 1);
  auto backups = catalog_->Backups("DB02");
  ASSERT_TRUE(backups.ok());
  ASSERT_EQ(backups->size(), 1u);
  EXPECT_EQ((*backups)[0].job, job.id);
  EXPECT_TRUE((*backups)[0].verified);
}

TEST_F(JobManagerTest, ARestoreIsRefusedWithABadTargetNoBackupToRestoreOrWhileABackupRuns) {
  v1::StartRestoreRequest r;
  r.set_unit("DB02");
  // Without a target it restores every copy: nothing to restore yet.
  EXPECT_THAT(std::string(jobs_->StartRestore(r).status().message()),
              HasSubstr("has no Full backup"));
  r.set_recovery_database("DB02-RDB");
  auto no_path = jobs_->StartRestore(r);
  EXPECT_EQ(no_path.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_path.status().message()), HasSubstr("--rdb NAME --node N --path DIR"));
  r.set_mode("all-copies");
  EXPECT_THAT(std::string(jobs_->StartRestore(r).status().message()),
              HasSubstr("--node and --rdb belong to modes node and rdb"));
  r.clear_mode();
  r.set_node("node3");
  r.set_path("/srv/rdb");
  auto nothing = jobs_->StartRestore(r);
  EXPECT_THAT(std::string(nothing.status().message()), HasSubstr("has no Full backup"));
  // A backup of the unit holds its lease.
  JobRecord backup = Start("full", {"node2"});
  auto busy = jobs_->StartRestore(r);
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(busy.status().message()),
              HasSubstr("is being backed up: job " + backup.id + " on node2"));
  r.set_node("node9");
  EXPECT_THAT(std::string(jobs_->StartRestore(r).status().message()),
              HasSubstr("node node9 does not report"));
}

TEST_F(JobManagerTest, CancellingAJobWhoseAgentIsGoneEndsItAtOnce) {
  JobRecord job = Start("full", {"node2"});
  topology_->Disconnected("node2", channels_["node2"]);
  auto cancelled = jobs_->Cancel(job.id);
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state, JobState::kCancelled);
  EXPECT_THAT(cancelled->reason, HasSubstr("while node2 was not connected"));
  auto again = jobs_->Cancel(job.id);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("has already ended: cancelled"));
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  EXPECT_TRUE(leases->empty());
}

TEST_F(JobManagerTest, AnIncrementalWithNoChainIsPromotedAndAnUnknownUnitIsRefused) {
  JobRecord job = Start("incremental");
  EXPECT_EQ(job.type, v1::FULL);
  EXPECT_THAT(job.reason, HasSubstr("requested Incremental promoted to Full"));
  EXPECT_THAT(job.reason, HasSubstr("has no Full backup"));
  v1::StartBackupRequest unknown;
  unknown.set_unit("SG99");
  unknown.set_type(v1::FULL);
  auto refused = jobs_->StartBackup(unknown);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("SG99"));
}

TEST_F(JobManagerTest, ARestartedCoordinatorWaitsForTheAgentAndReleasesStuckLeases) {
  JobRecord job = Start("full", {"node2"});
  // A lease whose job is not running (left by a crash in between).
  ASSERT_TRUE(
      catalog_->AcquireLease("SG01", "gone-job", "node1", absl::Now(), absl::Hours(1)).ok());
  jobs_ = MakeJobs();  // the coordinator restarts
  ASSERT_TRUE(jobs_->Recover().ok());
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].job, job.id);
  // node2 reports the job as still running: it goes on, with the same attempt.
  Report("node2", {Running(job.id, 1)});
  jobs_->OnJobUpdate("node2", Ended(job.id, 1, v1::JOB_CANCELLED, "cancelled"));
  auto info = jobs_->Info(job.id, true);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_CANCELLED);
  EXPECT_EQ(info->attempts_size(), 1);
  bool waited = false;
  for (const auto& e : info->events()) waited |= e.message().find("coordinator restarted") == 0;
  EXPECT_TRUE(waited);
}

TEST_F(JobManagerTest, EveryLeaseCarriesAGreaterFencingTokenToTheAgent) {
  JobRecord job = StartAndLoseTheFirstAttempt();  // attempt 1 on node2, attempt 2 elsewhere
  auto first = channels_["node2"]->Assignments();
  ASSERT_EQ(first.size(), 1u);
  std::vector<v1::JobAssignment> second;
  for (const char* node : {"node1", "node3"}) {
    for (auto& a : channels_[node]->Assignments()) second.push_back(a);
  }
  ASSERT_EQ(second.size(), 1u);
  EXPECT_GT(first[0].fencing_token(), 0u);
  EXPECT_GT(second[0].fencing_token(), first[0].fencing_token());
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok() && leases->size() == 1u);
  EXPECT_EQ((*leases)[0].token, second[0].fencing_token());
  auto info = jobs_->Info(job.id, true);
  ASSERT_TRUE(info.ok());
  bool said = false;
  for (const auto& e : info->events()) {
    said |= e.message().find(absl::StrCat("fencing token ", second[0].fencing_token())) !=
            std::string::npos;
  }
  EXPECT_TRUE(said);
  // Released and taken again by the next job: still greater.
  v1::JobUpdate done;
  done.set_job(job.id);
  done.set_attempt(2);
  done.set_phase(v1::JOB_FAILED);
  done.set_error("stopped by the test");
  jobs_->OnJobUpdate(info->attempts(1).node(), done);
  JobRecord next = Start("full", {"node2"});
  auto again = channels_["node2"]->Assignments();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_GT(again[1].fencing_token(), second[0].fencing_token());
}

TEST_F(JobManagerTest, AWallClockStepNeitherExpiresALeaseEarlyNorExtendsIt) {
  JobRecord job = Start("full", {"node2"});
  Report("node2", {Running(job.id, 1)});
  // An hour forward, then two back: the lease (300 ms) is untouched.
  clock_.StepWallClock(absl::Hours(1));
  jobs_->Tick();
  clock_.StepWallClock(-absl::Hours(2));
  jobs_->Tick();
  auto info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->attempts_size(), 1);
  EXPECT_EQ(info->state(), v1::JOB_ASSIGNED);
  // Real time passing ends it, wherever the wall clock stands.
  clock_.Advance(absl::Milliseconds(301));
  jobs_->Tick();
  info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->attempts_size(), 2);
  EXPECT_THAT(info->attempts(0).reason(), HasSubstr("its lease expired"));
}

TEST_F(JobManagerTest, ACatalogWriteThatFailsStopsTheCoordinatorInsteadOfGoingOn) {
  // The catalog on a filesystem that fills up.
  ::dagvault::testing::SmallTmpfs fs(dir_.Sub("small"), 2 << 20);
  ASSERT_TRUE(fs.ok()) << fs.error();
  auto c = SqliteCatalog::Open(fs.path() + "/catalog.db");
  ASSERT_TRUE(c.ok()) << c.status();
  catalog_ = std::move(*c);
  topology_ = std::make_unique<Topology>(catalog_.get(), absl::Seconds(30), &clock_);
  jobs_ = MakeJobs();
  for (const char* node : {"node1", "node2", "node3"}) Connect(node);
  JobRecord job = Start("full", {"node2"});
  ASSERT_TRUE(fail_stops_.empty());

  ASSERT_TRUE(fs.Fill());
  // The job's end cannot be written: memory and catalog would disagree,
  // so the coordinator stops (here: the test's fail-stop records it).
  jobs_->OnJobUpdate("node2", Ended(job.id, 1, v1::JOB_FAILED, "writer refused"));
  ASSERT_FALSE(fail_stops_.empty());
  EXPECT_THAT(std::string(fail_stops_[0].message()),
              HasSubstr("catalog write failed: releasing the lease of unit DB02"));

  // With room again, a restarted coordinator finds the job as the catalog
  // last had it, and nothing half-written: the failed write left no trace.
  fs.Unfill();
  jobs_ = MakeJobs();
  ASSERT_TRUE(jobs_->Recover().ok());
  auto info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_ASSIGNED);
  auto leases = catalog_->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ((*leases)[0].job, job.id);
}

TEST_F(JobManagerTest, AScheduledBackupThatCannotStartIsRecordedAsAFailedJobAndLeavesTheQueue) {
  ASSERT_TRUE(catalog_
                  ->FireSchedule("nightly", "full", clock_.Now(),
                                 {{"nightly", "DB02", v1::FULL, 0, clock_.Now()}}, true)
                  .ok());
  v1::StartBackupRequest request;
  request.set_unit("DB02");
  request.set_type(v1::FULL);
  auto failed = jobs_->RecordFailedStart(request, "scheduled by policy nightly",
                                         absl::InvalidArgumentError("no such source mode"));
  ASSERT_TRUE(failed.ok()) << failed.status();
  auto info = jobs_->Info(failed->id, true);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_FAILED);
  EXPECT_THAT(info->reason(),
              HasSubstr("scheduled by policy nightly: could not start: no such source mode"));
  auto queued = catalog_->QueuedBackups();
  ASSERT_TRUE(queued.ok());
  EXPECT_TRUE(queued->empty());
}

TEST_F(JobManagerTest, AVerifiedBackupWhoseCompletionWasNotAcknowledgedIsCataloguedAndTheJobFails) {
  JobRecord job = Start("full", {"node2"});
  v1::JobUpdate failed;
  failed.set_job(job.id);
  failed.set_attempt(1);
  failed.set_phase(v1::JOB_FAILED);
  failed.set_error("BackupComplete was not acknowledged");
  v1::Manifest* m = failed.mutable_result()->mutable_summary();
  m->set_id("20261122T120000.000000Z-00000002");
  m->set_unit("DB02");
  m->set_type(v1::FULL);
  m->set_source_node("node2");
  (*m->mutable_labels())["verified"] = "pages=1";
  failed.mutable_result()->set_manifest(m->id());
  jobs_->OnJobUpdate("node2", failed);
  auto info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_FAILED);
  EXPECT_THAT(info->reason(),
              HasSubstr("the verified backup " + m->id() + " is catalogued all the same"));
  auto backups = catalog_->Backups("DB02");
  ASSERT_TRUE(backups.ok());
  ASSERT_EQ(backups->size(), 1u);
  EXPECT_EQ((*backups)[0].manifest, m->id());
  EXPECT_EQ(channels_["node2"]->Count(v1::CoordinatorMessage::kAck), 1);
}

TEST_F(JobManagerTest, AJobTheCoordinatorCreatedButNeverAssignedEndsAtRestartAndStaysQueued) {
  // The coordinator stopped between creating a scheduled job and assigning
  // it: the catalog has the job, with no attempt, and the queued backup.
  ASSERT_TRUE(catalog_
                  ->FireSchedule("nightly", "full", clock_.Now(),
                                 {{"nightly", "DB02", v1::FULL, 0, clock_.Now()}}, true)
                  .ok());
  JobRecord never;
  never.id = "backup-never-assigned";
  never.unit = "DB02";
  never.created = never.updated = clock_.Now();
  never.dequeues = v1::FULL;  // a created job does not leave the queue yet
  ASSERT_TRUE(catalog_->CreateJob(never).ok());
  auto queued = catalog_->QueuedBackups();
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 1u);

  jobs_ = MakeJobs();  // the restart
  ASSERT_TRUE(jobs_->Recover().ok());
  auto info = jobs_->Info(never.id, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_FAILED);
  EXPECT_THAT(info->reason(), HasSubstr("stopped before it assigned this job; it never ran"));
  // Not dropped: the scheduler still has it to run.
  queued = catalog_->QueuedBackups();
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->size(), 1u);
  auto unfinished = catalog_->UnfinishedJobs();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_TRUE(unfinished->empty());
}

// The assignment tells the agent how long its unit's policy may need the
// backup (the Object Lock date); a unit in no policy gets none.
TEST_F(JobManagerTest, AnAssignmentCarriesItsUnitsRetention) {
  JobRecord unpolicied = Start("full", {"node2"});
  auto first = channels_["node2"]->Assignments();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].retain_seconds(), 0u);
  ASSERT_TRUE(jobs_->Cancel(unpolicied.id).ok());
  jobs_->OnJobUpdate("node2", Ended(unpolicied.id, 1, v1::JOB_CANCELLED, "cancelled"));

  v1::Policy policy;
  policy.set_name("weekly");
  policy.add_units("DB02");
  policy.set_full_schedule("0 1 * * sun");
  policy.set_keep_days(30);
  ASSERT_TRUE(catalog_->PutPolicy(policy).ok());
  Start("full", {"node2"});
  auto second = channels_["node2"]->Assignments();
  ASSERT_EQ(second.size(), 2u);
  // 30 days kept, a week between Fulls, a day's margin.
  EXPECT_EQ(second[1].retain_seconds(), uint64_t{38} * 24 * 3600);
}

// A lease store whose Release (or Acquire) waits while held: a remote
// catalog (or etcd) that is slow to answer one job's write.
class SlowLeases : public LeaseStore {
 public:
  SlowLeases(Catalog* catalog, Clock* clock) : inner_(catalog, clock) {}
  absl::StatusOr<LeaseRecord> Acquire(const std::string& unit, const std::string& job,
                                      const std::string& holder_node, absl::Duration ttl) override {
    Wait(hold_acquire_);
    return inner_.Acquire(unit, job, holder_node, ttl);
  }
  absl::Status Renew(const std::string& unit, const std::string& job, absl::Duration ttl) override {
    return inner_.Renew(unit, job, ttl);
  }
  absl::Status Release(const std::string& unit, const std::string& job) override {
    Wait(hold_release_);
    return inner_.Release(unit, job);
  }
  absl::StatusOr<std::vector<LeaseRecord>> List() override { return inner_.List(); }

  void HoldRelease(bool hold) { Set(hold_release_, hold); }
  void HoldAcquire(bool hold) { Set(hold_acquire_, hold); }
  bool WaitUntilSomeoneWaits() {
    std::unique_lock<std::mutex> l(mu_);
    return changed_.wait_for(l, std::chrono::seconds(10), [&] { return waiting_; });
  }

 private:
  void Set(bool& flag, bool value) {
    std::lock_guard<std::mutex> l(mu_);
    flag = value;
    changed_.notify_all();
  }
  void Wait(const bool& hold) {
    std::unique_lock<std::mutex> l(mu_);
    if (!hold) return;
    waiting_ = true;
    changed_.notify_all();
    changed_.wait(l, [&] { return !hold; });
    waiting_ = false;
  }

  CatalogLeaseStore inner_;
  std::mutex mu_;
  std::condition_variable changed_;
  bool hold_release_ = false;
  bool hold_acquire_ = false;
  bool waiting_ = false;
};

TEST_F(JobManagerTest, OneJobsSlowCatalogWriteDoesNotHoldUpTheCoordinator) {
  SlowLeases leases(catalog_.get(), &clock_);
  JobManagerOptions o;
  o.lease_ttl = absl::Milliseconds(300);
  o.report_grace = absl::Milliseconds(100);
  o.clock = &clock_;
  o.leases = &leases;
  o.fail_stop = [this](const absl::Status& s) { fail_stops_.push_back(s); };
  jobs_ = std::make_unique<JobManager>(catalog_.get(), topology_.get(), o);
  JobRecord job = Start("full", {"node2"});
  ASSERT_EQ(job.attempts.size(), 1u);

  // The job's success: catalogued, then its lease's release hangs.
  leases.HoldRelease(true);
  const v1::JobUpdate done = Succeeded(job.id, 1, "20261204T090000.000000Z-00000001");
  std::thread agent([&] { jobs_->OnJobUpdate("node2", done); });
  ASSERT_TRUE(leases.WaitUntilSomeoneWaits());

  // Meanwhile everything else answers (each within 10 s, or the test
  // fails instead of hanging on the job's lock).
  auto answers = [](auto call) {
    auto f = std::async(std::launch::async, call);
    return f.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  };
  EXPECT_TRUE(answers([&] {
    auto running = jobs_->Running();
    ASSERT_EQ(running.size(), 1u);
    EXPECT_EQ(running[0].id(), job.id);
  }));
  EXPECT_TRUE(answers([&] { EXPECT_TRUE(jobs_->Info(job.id, true).ok()); }));
  EXPECT_TRUE(answers([&] {
    // The unit is still held: refused at once, naming the job.
    v1::StartBackupRequest again;
    again.set_unit("DB02");
    again.set_type(v1::FULL);
    auto refused = jobs_->StartBackup(again);
    EXPECT_THAT(std::string(refused.status().message()), HasSubstr(job.id));
  }));
  EXPECT_TRUE(answers([&] { Report("node2", {}); }));
  EXPECT_TRUE(answers([&] { Report("node3", {}); }));
  EXPECT_TRUE(answers([&] {
    clock_.Advance(absl::Milliseconds(400));  // past the lease: the busy job is left alone
    jobs_->Tick();
  }));

  leases.HoldRelease(false);
  agent.join();
  auto info = jobs_->Info(job.id, false);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state(), v1::JOB_SUCCEEDED);
  EXPECT_EQ(info->attempts_size(), 1);
  EXPECT_TRUE(jobs_->Running().empty());
  auto held = catalog_->Leases();
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(held->empty());
  EXPECT_TRUE(fail_stops_.empty());
}

TEST_F(JobManagerTest, AStartOfAUnitAnotherStartHoldsWaitsForItOrIsBusyForTheScheduler) {
  SlowLeases leases(catalog_.get(), &clock_);
  JobManagerOptions o;
  o.lease_ttl = absl::Milliseconds(300);
  o.clock = &clock_;
  o.leases = &leases;
  o.fail_stop = [this](const absl::Status& s) { fail_stops_.push_back(s); };
  jobs_ = std::make_unique<JobManager>(catalog_.get(), topology_.get(), o);
  v1::StartBackupRequest request;
  request.set_unit("DB02");
  request.set_type(v1::FULL);
  // The operator's start takes the unit's lease slowly.
  leases.HoldAcquire(true);
  absl::StatusOr<JobRecord> first = absl::UnknownError("not started");
  std::thread op([&] { first = jobs_->StartBackup(request, "requested by ops"); });
  ASSERT_TRUE(leases.WaitUntilSomeoneWaits());
  // The scheduler does not wait on its ticker thread: busy, which it reads
  // as "try later" (FailedPrecondition), not as a failed backup.
  auto scheduled = jobs_->Start(request, "scheduled by policy nightly");
  EXPECT_EQ(scheduled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(scheduled.status().message()),
              HasSubstr("unit DB02 is busy: another backup or restore of it is being started"));
  // Another operator's start waits for the first, then names its job.
  absl::StatusOr<JobRecord> second = absl::UnknownError("not started");
  std::thread other([&] { second = jobs_->StartBackup(request, "requested by someone else"); });
  absl::SleepFor(absl::Milliseconds(100));
  leases.HoldAcquire(false);
  op.join();
  other.join();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("unit DB02 is being backed up: job " + first->id));
  EXPECT_EQ(jobs_->Running().size(), 1u);
}

TEST(VerificationDigests, ARestorePointThatRestoresOtherContentThanBeforeFailsNamingBoth) {
  auto verification = [](const std::string& job, const std::string& last, uint32_t generation,
                         const std::string& digest) {
    v1::RestoreVerification v;
    v.set_job(job);
    v.set_unit("DB02");
    v.add_manifests("full-1");
    if (last != "full-1") v.add_manifests(last);
    v.set_generation(generation);
    v.set_passed(true);
    v1::DatabaseCheck* d = v.add_databases();
    d->set_database("DB02");
    d->set_sha256(digest);
    d->set_items(90);
    return v;
  };
  // Newest first: another point's, a failed one of the same point, then
  // the passed one of the same point that decides.
  std::vector<v1::RestoreVerification> earlier = {verification("v4", "inc-2", 6, "cc"),
                                                  verification("v3", "inc-1", 5, "ee"),
                                                  verification("v2", "inc-1", 5, "aa")};
  earlier[1].set_passed(false);
  v1::RestoreVerification same = verification("v5", "inc-1", 5, "aa");
  JobManager::CompareWithEarlierVerifications(earlier, &same);
  EXPECT_TRUE(same.passed());
  EXPECT_TRUE(same.problems().empty());
  v1::RestoreVerification other = verification("v6", "inc-1", 5, "bb");
  JobManager::CompareWithEarlierVerifications(earlier, &other);
  EXPECT_FALSE(other.passed());
  ASSERT_EQ(other.problems_size(), 1);
  EXPECT_THAT(other.problems(0), HasSubstr("database DB02: content digest bb"));
  EXPECT_THAT(other.problems(0), HasSubstr("differs from aa"));
  EXPECT_THAT(other.problems(0), HasSubstr("verification v2 of the same restore point"));
  // A point verified for the first time has nothing to differ from.
  v1::RestoreVerification first = verification("v7", "inc-3", 7, "dd");
  JobManager::CompareWithEarlierVerifications(earlier, &first);
  EXPECT_TRUE(first.passed());
}

}  // namespace
}  // namespace dagvault::coordinator
