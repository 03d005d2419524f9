// The scheduler against a real SQLite catalog, a fake clock and a fake job
// starter: when backups are queued, that a missed run runs once, the
// limits, priority, and a busy unit.
#include "coordinator/schedule/scheduler.h"

#include "common/testing/temp_dir.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "coordinator/schedule/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Starts "jobs" that run until finished by the test; every unit's backup
// would run on the node the test says.
class FakeStarter : public BackupStarter {
 public:
  absl::StatusOr<JobRecord> Start(const v1::StartBackupRequest& r,
                                  const std::string& why) override {
    if (busy.count(r.unit()) != 0) {
      return absl::FailedPreconditionError(absl::StrCat("unit ", r.unit(), " is being backed up"));
    }
    if (auto e = errors.find(r.unit()); e != errors.end()) return e->second;
    started.push_back(absl::StrCat(r.unit(), ":", v1::BackupType_Name(r.type())));
    whys.push_back(why);
    JobRecord j;
    j.id = absl::StrCat("job-", started.size());
    j.unit = r.unit();
    j.created = absl::FromUnixSeconds(1795305630);
    // As JobManager does: the job's assignment takes it off the queue.
    j.state = JobState::kAssigned;
    j.dequeues = r.type();
    if (absl::Status s = catalog->CreateJob(j); !s.ok()) return s;
    JobAttempt a;
    a.node = NodeOf(r.unit());
    j.attempts.push_back(a);
    running.push_back(a.node);
    return j;
  }
  absl::StatusOr<JobRecord> RecordFailedStart(const v1::StartBackupRequest& r,
                                              const std::string& /*why*/,
                                              const absl::Status& error) override {
    failed.push_back(absl::StrCat(r.unit(), ":", error.message()));
    JobRecord j;
    j.unit = r.unit();
    j.state = JobState::kFailed;
    return j;
  }
  std::vector<std::string> RunningBackupNodes() override { return running; }
  absl::StatusOr<JobRecord> StartVerification(const v1::StartRestoreRequest& r,
                                              const std::string& why) override {
    if (auto e = verify_errors.find(r.unit()); e != verify_errors.end()) return e->second;
    verified.push_back(r);
    whys.push_back(why);
    JobRecord j;
    j.id = absl::StrCat("verify-", verified.size());
    j.unit = r.unit();
    return j;
  }
  absl::StatusOr<std::string> WouldRunOn(const v1::StartBackupRequest& r) override {
    return NodeOf(r.unit());
  }
  std::string NodeOf(const std::string& unit) {
    auto it = node_of.find(unit);
    return it == node_of.end() ? "node2" : it->second;
  }

  Catalog* catalog = nullptr;
  std::vector<std::string> started, whys, running, failed;
  std::map<std::string, absl::Status> errors;  // Start fails with these
  std::vector<v1::StartRestoreRequest> verified;
  std::map<std::string, absl::Status> verify_errors;  // StartVerification fails with these
  std::set<std::string> busy;
  std::map<std::string, std::string> node_of;
};

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = SqliteCatalog::Open(dir_.Sub("catalog.db"));
    ASSERT_TRUE(c.ok());
    catalog_ = std::move(*c);
    jobs_.catalog = catalog_.get();
  }
  void Put(const std::string& name, std::vector<std::string> units, const std::string& full,
           const std::string& incremental, int priority = 0, uint32_t per_node = 0,
           uint32_t total = 0) {
    v1::Policy p;
    p.set_name(name);
    for (auto& u : units) p.add_units(u);
    p.set_full_schedule(full);
    p.set_incremental_schedule(incremental);
    p.set_priority(priority);
    p.set_max_jobs_per_node(per_node);
    p.set_max_jobs(total);
    ASSERT_TRUE(catalog_->PutPolicy(p).ok());
  }
  ::dagvault::testing::TempDir dir_{"scheduler"};
  std::unique_ptr<SqliteCatalog> catalog_;
  // Sunday 2026-11-22 00:00:30 UTC.
  FakeClock clock_{absl::FromUnixSeconds(1795305630)};
  FakeStarter jobs_;
};

TEST_F(SchedulerTest, ABackupRunsWhenItsScheduleSaysAndAMissedRunRunsOnce) {
  Put("hourly", {"DB02"}, "", "0 * * * *");
  Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
  scheduler.Tick();  // the schedule starts counting now
  EXPECT_TRUE(jobs_.started.empty());
  clock_.Advance(absl::Minutes(59));  // 00:59:30
  scheduler.Tick();
  EXPECT_TRUE(jobs_.started.empty());
  clock_.Advance(absl::Seconds(31));  // 01:00:01
  scheduler.Tick();
  EXPECT_THAT(jobs_.started, ElementsAre("DB02:INCREMENTAL"));
  EXPECT_THAT(jobs_.whys[0], HasSubstr("scheduled by policy hourly"));
  scheduler.Tick();  // not twice for one time
  EXPECT_EQ(jobs_.started.size(), 1u);
  // The coordinator is down for five hours: a new scheduler (a restart)
  // runs the missed schedule once.
  clock_.Advance(absl::Hours(5));
  Scheduler restarted(catalog_.get(), &jobs_, &clock_);
  restarted.Tick();
  restarted.Tick();
  EXPECT_EQ(jobs_.started.size(), 2u);
}

TEST_F(SchedulerTest, LimitsHoldAndTheQueueRunsInPriorityOrder) {
  // Three units due at once; one backup per node; U1 and U2 on node2, U3 on node3.
  Put("low", {"U1", "U2"}, "", "* * * * *", /*priority=*/0, /*per_node=*/1);
  Put("high", {"U3"}, "", "* * * * *", /*priority=*/5, /*per_node=*/1);
  jobs_.node_of = {{"U1", "node2"}, {"U2", "node2"}, {"U3", "node3"}};
  Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
  scheduler.Tick();
  clock_.Advance(absl::Minutes(1));
  scheduler.Tick();
  // U3 first (priority), then U1; U2 waits for node2.
  EXPECT_THAT(jobs_.started, ElementsAre("U3:INCREMENTAL", "U1:INCREMENTAL"));
  auto queue = scheduler.Queue();
  ASSERT_EQ(queue.size(), 1u);
  EXPECT_EQ(queue[0].unit, "U2");
  EXPECT_THAT(queue[0].waiting_for, HasSubstr("node2 runs 1 backups (policy limit 1 per node)"));
  jobs_.running = {"node3"};  // U1 finished
  scheduler.Tick();
  EXPECT_THAT(jobs_.started, ElementsAre("U3:INCREMENTAL", "U1:INCREMENTAL", "U2:INCREMENTAL"));
}

TEST_F(SchedulerTest, ADeploymentLimitAndABusyUnitKeepBackupsQueued) {
  Put("all", {"U1", "U2"}, "* * * * *", "", 0, 0, /*total=*/1);
  Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
  scheduler.Tick();
  clock_.Advance(absl::Minutes(1));
  jobs_.busy.insert("U1");  // a backup started by hand holds U1
  scheduler.Tick();
  EXPECT_THAT(jobs_.started, ElementsAre("U2:FULL"));
  auto queue = scheduler.Queue();
  ASSERT_EQ(queue.size(), 1u);
  EXPECT_THAT(queue[0].waiting_for, HasSubstr("unit U1 is being backed up"));
  // U1 is free, but U2's backup still runs: the deployment limit holds it.
  jobs_.busy.clear();
  scheduler.Tick();
  ASSERT_EQ(scheduler.Queue().size(), 1u);
  EXPECT_THAT(scheduler.Queue()[0].waiting_for,
              HasSubstr("the deployment runs 1 backups (policy limit 1)"));
  jobs_.running.clear();
  scheduler.Tick();
  EXPECT_THAT(jobs_.started, ElementsAre("U2:FULL", "U1:FULL"));
  EXPECT_TRUE(scheduler.Queue().empty());
}

TEST_F(SchedulerTest, AfterAStartItQueuesButStartsNothingUntilTheAgentsReport) {
  Put("minutely", {"DB02"}, "", "* * * * *");
  Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
  scheduler.Tick();
  clock_.Advance(absl::Minutes(1));
  scheduler.HoldUntil(clock_.Now() + absl::Seconds(15));
  scheduler.Tick();
  EXPECT_TRUE(jobs_.started.empty());
  ASSERT_EQ(scheduler.Queue().size(), 1u);
  EXPECT_THAT(scheduler.Queue()[0].waiting_for, HasSubstr("agents are reporting"));
  clock_.Advance(absl::Seconds(15));
  scheduler.Tick();
  EXPECT_THAT(jobs_.started, ElementsAre("DB02:INCREMENTAL"));
}

TEST_F(SchedulerTest, AFullDueWithAnIncrementalSupersedesIt) {
  Put("both", {"DB02"}, "0 1 * * *", "0 * * * *");
  Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
  scheduler.Tick();
  clock_.Advance(absl::Hours(1));  // 01:00:30: both are due
  jobs_.busy.insert("DB02");       // so both stay queued
  scheduler.Tick();
  auto queue = scheduler.Queue();
  ASSERT_EQ(queue.size(), 1u);
  EXPECT_EQ(queue[0].type, v1::FULL);
}

TEST_F(SchedulerTest, AQueuedBackupSurvivesACoordinatorRestartAndStartsOnce) {
  Put("nightly", {"U1", "U2"}, "* * * * *", "");
  {
    Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
    scheduler.Tick();  // starts counting
    clock_.Advance(absl::Minutes(1));
    jobs_.busy = {"U1", "U2"};  // both held by backups started by hand
    scheduler.Tick();           // fired: both queued, both wait
    EXPECT_TRUE(jobs_.started.empty());
    EXPECT_EQ(scheduler.Queue().size(), 2u);
  }  // the coordinator stops
  auto kept = catalog_->QueuedBackups();
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ((*kept)[0].policy, "nightly");
  jobs_.busy = {"U2"};
  {
    Scheduler restarted(catalog_.get(), &jobs_, &clock_);
    restarted.Tick();  // the same minute: nothing fires again
    EXPECT_THAT(jobs_.started, ElementsAre("U1:FULL"));
    auto queue = restarted.Queue();
    ASSERT_EQ(queue.size(), 1u);
    EXPECT_EQ(queue[0].unit, "U2");
  }
  jobs_.busy.clear();
  {
    Scheduler again(catalog_.get(), &jobs_, &clock_);
    again.Tick();
    again.Tick();
    // U2 once; U1 not a second time: its job took it off the queue.
    EXPECT_THAT(jobs_.started, ElementsAre("U1:FULL", "U2:FULL"));
    EXPECT_TRUE(again.Queue().empty());
  }
  kept = catalog_->QueuedBackups();
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(kept->empty());
}

TEST_F(SchedulerTest, AStartThatFailsForAnotherReasonIsAFailedJobNotALogLine) {
  Put("nightly", {"U1"}, "* * * * *", "");
  Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
  scheduler.Tick();
  clock_.Advance(absl::Minutes(1));
  jobs_.errors["U1"] = absl::InvalidArgumentError("source mode \"sideways\" is not known");
  scheduler.Tick();
  EXPECT_THAT(jobs_.failed, ElementsAre("U1:source mode \"sideways\" is not known"));
  EXPECT_TRUE(scheduler.Queue().empty());
}

TEST_F(SchedulerTest,
       AVerifyScheduleStartsOneVerificationPerUnitOnceAFiringWithThePolicysSettings) {
  v1::Policy p;
  p.set_name("nightly");
  p.add_units("SG01");
  p.add_units("DB02");
  p.set_full_schedule("0 1 * * *");
  p.set_verify_schedule("0 3 * * *");
  p.set_verify_node("node3");
  p.set_verify_random_point(true);
  p.set_verify_off_production(true);
  p.set_verify_sample_items(7);
  ASSERT_TRUE(ValidatePolicy(p, {}).ok());
  ASSERT_TRUE(catalog_->PutPolicy(p).ok());
  // DB02's verification cannot start (its node carries production): the
  // firing still counts, and SG01's runs.
  jobs_.verify_errors["DB02"] = absl::FailedPreconditionError("node node3 is not used");
  Scheduler scheduler(catalog_.get(), &jobs_, &clock_);
  scheduler.Tick();  // 00:00:30: the schedule starts counting now
  EXPECT_TRUE(jobs_.verified.empty());
  clock_.Advance(absl::Hours(3));  // 03:00:30
  scheduler.Tick();
  ASSERT_EQ(jobs_.verified.size(), 1u);
  const v1::StartRestoreRequest& r = jobs_.verified[0];
  EXPECT_EQ(r.unit(), "SG01");
  EXPECT_EQ(r.node(), "node3");
  EXPECT_TRUE(r.verify().requested());
  EXPECT_TRUE(r.verify().random_point());
  EXPECT_TRUE(r.verify().off_production());
  EXPECT_EQ(r.verify().sample_items(), 7u);
  EXPECT_EQ(r.verify().policy(), "nightly");
  scheduler.Tick();  // not twice for one firing
  EXPECT_EQ(jobs_.verified.size(), 1u);
  // Missed for three days while the coordinator was down: once.
  clock_.Advance(absl::Hours(72));
  Scheduler restarted(catalog_.get(), &jobs_, &clock_);
  restarted.Tick();
  restarted.Tick();
  EXPECT_EQ(jobs_.verified.size(), 2u);
  // No backup came due in between that the verify schedule started.
  for (const auto& s : jobs_.started) EXPECT_THAT(s, HasSubstr("FULL"));
}

TEST(PolicyValidation, VerifySettingsNeedAVerifyScheduleAndItMustParse) {
  v1::Policy p;
  p.set_name("p");
  p.add_units("DB02");
  p.set_full_schedule("0 1 * * *");
  p.set_verify_node("node3");
  auto refused = ValidatePolicy(p, {});
  EXPECT_THAT(refused.message(), HasSubstr("need a verify schedule"));
  p.set_verify_schedule("at three");
  refused = ValidatePolicy(p, {});
  EXPECT_THAT(refused.message(), HasSubstr("--verify"));
  p.set_verify_schedule("0 3 * * 0");
  EXPECT_TRUE(ValidatePolicy(p, {}).ok());
}

}  // namespace
}  // namespace dagvault::coordinator
