// The highly available shape (issue 18, docs/ha.md) as real processes:
// coordinators on etcd and PostgreSQL, agents and mailstored, and the
// failures it is built for: the leader killed or paused, etcd losing
// quorum, PostgreSQL restarting in the middle of a job.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/job_state.h"
#include "common/testing/subprocess.h"
#include "common/testing/temp_dir.h"
#include "coordinator/catalog/postgres_test_util.h"
#include "coordinator/etcd/etcd_test_cluster.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;
using ::testing::Not;

// A Full of DB02 that takes a while (1.5 s per segment read), with a lease
// long enough that no failover below outlasts it.
DeploymentOptions SlowFullOptions() {
  DeploymentOptions options = Options({{"DAGVAULT_DELAY_AT", "agent.backup.segment_read:1500"}});
  options.lease_ttl_ms = 15000;
  return options;
}

// Two coordinators (the first leads) on `etcd` and the PostgreSQL database
// `catalog`, with a 3 s leader lease.
DeploymentOptions HaOptions(const std::string& catalog, v1::EtcdConfig etcd) {
  DeploymentOptions options = SlowFullOptions();
  options.catalog = catalog;
  options.etcd = std::move(etcd);
  options.etcd.set_leader_ttl_ms(3000);
  options.standby_coordinator = true;
  return options;
}

// Until the standby says it leads.
bool WaitStandbyLeads(Deployment& d, absl::Duration timeout = absl::Seconds(30)) {
  return WaitFor(
      [&] {
        v1::LeaderInfo who;
        return d.CliJson({"status", "--leader"}, &who).ok() && who.this_one() &&
               who.this_address() != d.coordinator_address();
      },
      timeout);
}

// How many backup writer sessions of DB02 the mailstored nodes began, from
// their logs (mailstore/server/writer.cc: "[unit DB02] ... backup
// prepared through the ... writer (session ID)"), each session once however
// many of a node's log files show its line.
int Db02BackupSessions(Deployment& d) {
  std::set<std::pair<int, std::string>> sessions;
  for (int i = 0; i < d.cluster().size(); ++i) {
    const std::string log = d.cluster().LogOf(i);
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      if (!absl::StrContains(line, "[unit DB02]") || !absl::StrContains(line, "backup prepared")) {
        continue;
      }
      const size_t at = line.rfind("(session ");
      if (at != absl::string_view::npos) sessions.insert({i, std::string(line.substr(at))});
    }
  }
  return static_cast<int>(sessions.size());
}

// What a log file holds after its first `from` bytes.
std::string LogAfter(const std::string& log, size_t from) {
  return from < log.size() ? log.substr(from) : std::string();
}

// Two coordinators on etcd and PostgreSQL: the leader is killed with -9 in
// the middle of a Full; the standby takes over, the agent follows it, and
// the same job finishes under the same lease and token, catalogued once.
TEST(HighAvailability, WhenTheLeaderCoordinatorIsKilledMidBackupTheStandbyFinishesTheJobOnce) {
  coordinator::testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  auto etcd = coordinator::SharedEtcdTestCluster();
  ASSERT_OK(etcd.status());
  Deployment d(HaOptions(db.conninfo(), (*etcd)->Config("/ha-failover/")), "ha-failover");
  ASSERT_OK(d.Start());
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(StartTransferringFull(d, &job));
  const uint64_t token = FencingTokenOf(job);
  ASSERT_NE(token, 0u);
  ASSERT_GT(d.StandbyPid(), 0) << d.StandbyLog();

  const absl::Time killed = absl::Now();
  d.KillCoordinator();
  // The standby leads within the leader's TTL and a poll, recovered.
  ASSERT_TRUE(WaitStandbyLeads(d)) << d.StandbyLog();
  const absl::Duration failover = absl::Now() - killed;
  std::cerr << "failover: the standby led " << absl::FormatDuration(failover)
            << " after the leader was killed\n";

  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.StandbyLog();
  EXPECT_EQ(done->attempts_size(), 1) << "the same attempt, not a second writer session";
  EXPECT_EQ(FencingTokenOf(*done), token) << "the same lease";
  // mailstored's own account: one writer session for the unit, ever.
  EXPECT_EQ(Db02BackupSessions(d), 1);
  ASSERT_NO_FATAL_FAILURE(ExpectOneBackupOfAndNoLease(d, job.id()));
  EXPECT_THAT(d.StandbyLog(), HasSubstr("won the election"));
}

// The leader is paused (SIGSTOP) in the middle of a Full for longer than
// its leader lease. The standby takes over and the agent, which the paused
// leader no longer answers, moves to it; the job goes on under the same
// lease. When the old leader runs again it sees at once that its deadline
// has passed and exits without a step: no assignment, no job record
// written after it woke, and the new leader's job is untouched.
TEST(HighAvailability, ALeaderPausedPastItsLeaseDoesNotActAfterItWakes) {
  coordinator::testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  auto etcd = coordinator::SharedEtcdTestCluster();
  ASSERT_OK(etcd.status());
  Deployment d(HaOptions(db.conninfo(), (*etcd)->Config("/ha-paused/")), "ha-paused");
  ASSERT_OK(d.Start());
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(StartTransferringFull(d, &job));
  const uint64_t token = FencingTokenOf(job);
  ASSERT_NE(token, 0u);

  const pid_t paused = d.CoordinatorPid();
  ASSERT_GT(paused, 0);
  ASSERT_EQ(kill(paused, SIGSTOP), 0);
  ASSERT_TRUE(WaitStandbyLeads(d)) << d.StandbyLog();
  // The agent of the job's node has moved to the new leader: the job's
  // record, now written by the new leader, shows its progress again.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto j = d.Job(job.id());
        return j.ok() && (j->bytes_done() > job.bytes_done() || j->state() == v1::JOB_SUCCEEDED);
      },
      absl::Seconds(30)))
      << d.StandbyLog();

  const size_t log_at_wake = d.CoordinatorLog().size();
  ASSERT_EQ(kill(paused, SIGCONT), 0);
  auto ended = d.WaitCoordinatorExit(absl::Seconds(20));
  ASSERT_TRUE(ended.has_value()) << "the woken leader still runs";
  EXPECT_EQ(ended->exit_code, 4);
  const std::string after_wake = LogAfter(d.CoordinatorLog(), log_at_wake);
  EXPECT_THAT(after_wake, HasSubstr("no longer the leader"));
  // Nothing acted: no job changed state, nothing was assigned.
  EXPECT_THAT(after_wake, Not(HasSubstr(absl::StrCat("job ", job.id()))));
  EXPECT_THAT(after_wake, Not(HasSubstr("assign")));

  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.StandbyLog();
  EXPECT_EQ(done->attempts_size(), 1);
  EXPECT_EQ(FencingTokenOf(*done), token);
  EXPECT_EQ(Db02BackupSessions(d), 1);
  ASSERT_NO_FATAL_FAILURE(ExpectOneBackupOfAndNoLease(d, job.id()));
}

// etcd loses quorum (its leader killed, then a second member of three)
// while a Full runs. Nobody can renew a lease: the leader stands down and
// exits, the standby cannot campaign and says why, nothing is assigned
// (while catalog reads are still answered, by the standby), and the agent
// stops its job before its lease could have run out (nothing truncated). When the members return,
// the standby leads, the job ends once with its record written once, and a new backup of the unit
// runs.
TEST(HighAvailability, WithoutEtcdQuorumNobodyActsAndWorkResumesWhenItReturns) {
  coordinator::testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  TempDir etcd_dir("ha-quorum-etcd");
  auto etcd = coordinator::EtcdTestCluster::Start(etcd_dir.path(), 3);
  ASSERT_OK(etcd.status());
  DeploymentOptions options = HaOptions(db.conninfo(), (*etcd)->Config("/ha-quorum/"));
  // A transfer that outlasts the lease, which the outage outlasts.
  options.agent_env["DAGVAULT_DELAY_AT"] = "agent.backup.segment_read:6000";
  options.lease_ttl_ms = 8000;
  Deployment d(options, "ha-quorum");
  ASSERT_OK(d.Start());
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(StartTransferringFull(d, &job));
  // While a leader is known, a standby sends even a catalog read to it
  // (only the leader has a running job's live progress).
  ProcessResult via_standby;
  EXPECT_TRUE(WaitFor(
      [&] {
        via_standby = RunProcess({BinaryPath("dagvault"), "job", "show", job.id(), "--coordinator",
                                  d.standby_address(), "--certs", d.certs()},
                                 {}, absl::Seconds(30));
        return via_standby.exit_code == 0 &&
               absl::StrContains(via_standby.err, "the leader is at " + d.coordinator_address());
      },
      absl::Seconds(20)))
      << via_standby.err;
  EXPECT_THAT(via_standby.err, Not(HasSubstr("reading the shared catalog")));

  auto first = (*etcd)->Leader();
  ASSERT_OK(first.status());
  (*etcd)->Kill(*first);
  const int second = (*first + 1) % 3;
  (*etcd)->Kill(second);

  // The leader cannot renew its lease: it stands down and exits.
  auto ended = d.WaitCoordinatorExit(absl::Seconds(30));
  ASSERT_TRUE(ended.has_value()) << d.CoordinatorLog() << "\nstandby:\n" << d.StandbyLog();
  EXPECT_EQ(ended->exit_code, 4);
  EXPECT_THAT(d.CoordinatorLog(), HasSubstr("no longer the leader"));
  // Nobody leads, and once the standby has found etcd silent (its own
  // request timeout) the command line says why; no start is accepted.
  ProcessResult refused;
  EXPECT_TRUE(WaitFor(
      [&] {
        refused = d.Cli({"backup", "start", "--unit", "DB02", "--type", "full"});
        EXPECT_EQ(refused.exit_code, 1) << refused.out;
        return absl::StrContains(refused.err, "etcd does not answer");
      },
      absl::Seconds(30)))
      << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("no coordinator leads"));
  // Reads still work: the standby answers them from the shared catalog.
  const ProcessResult shown = d.Cli({"job", "show", job.id(), "--json"});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr(job.id()));
  EXPECT_THAT(shown.err, HasSubstr("reading the shared catalog through the standby at " +
                                   d.standby_address()));
  const ProcessResult policies = d.Cli({"policy", "list"});
  EXPECT_EQ(policies.exit_code, 0) << policies.err;
  // The job's agent stops it before its lease could have run out.
  const std::string node = LastNode(job);
  const int source = node == "node3" ? kNode3 : node == "node2" ? kNode2 : kNode1;
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(d.AgentLog(source), "its lease is gone"); },
                      absl::Milliseconds(options.lease_ttl_ms) + absl::Seconds(10)))
      << d.AgentLog(source);

  // Quorum returns; the old leader is started again (as the service
  // manager would) and stands by.
  ASSERT_OK((*etcd)->Restart(*first));
  ASSERT_OK((*etcd)->Restart(second));
  ASSERT_TRUE(WaitStandbyLeads(d, absl::Seconds(60))) << d.StandbyLog();
  ASSERT_OK(d.StartCoordinator({}, /*wait=*/false));

  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  ASSERT_TRUE(done->state() == v1::JOB_SUCCEEDED || done->state() == v1::JOB_FAILED)
      << done->DebugString();
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &backups));
  EXPECT_EQ(backups.backups_size(), done->state() == v1::JOB_SUCCEEDED ? 1 : 0)
      << done->DebugString();
  // No lost or doubled job: the unit is free, and the next backup runs once.
  v1::JobInfo next = BackupWait(d, {"--unit", "DB02", "--type", "full"});
  EXPECT_EQ(next.state(), v1::JOB_SUCCEEDED) << next.DebugString();
  EXPECT_EQ(next.attempts_size(), 1);
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0) << status->DebugString();
  std::cerr << "quorum loss: the job " << job.id() << " ended " << JobStateName(done->state())
            << " (" << done->reason() << ")\n";
}

// An all-copies restore interrupted by a failover: the leader is killed
// while node1 restores (step 3, 3 s per piece). The standby leads, the
// restore's result reaches it, and the plan carries on from its recorded
// step to the end: every copy holds the restore point.
TEST(HighAvailability, ARestorePlanInterruptedByAFailoverCarriesOnAndEveryCopyEndsEqual) {
  coordinator::testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  auto etcd = coordinator::SharedEtcdTestCluster();
  ASSERT_OK(etcd.status());
  DeploymentOptions options = HaOptions(db.conninfo(), (*etcd)->Config("/ha-restore/"));
  options.agent_env = {{"DAGVAULT_DELAY_AT", "agent.restore.step:3000"}};
  Deployment d(options, "ha-restore");
  ASSERT_OK(d.Start());
  std::string at_full;
  ASSERT_NO_FATAL_FAILURE(BackUpThenLoseDb02(d, &at_full));

  auto [exit_code, job] = JobCommand(d, {"restore", "start", "--unit", "DB02"});
  ASSERT_EQ(exit_code, 0) << job.DebugString();
  ASSERT_TRUE(WaitForStep(d, job.id(), 3, "node1")) << d.CoordinatorLog();
  d.KillCoordinator();
  ASSERT_TRUE(WaitStandbyLeads(d)) << d.StandbyLog();

  auto done = d.WaitJob(job.id(), absl::Minutes(3));
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.StandbyLog();
  ExpectPlanDone(*done);
  ExpectEveryCopyHolds(d, at_full);
  bool taken_over = false;
  for (const auto& e : done->events()) {
    taken_over |= absl::StrContains(e.message(), "coordinator restarted");
  }
  EXPECT_TRUE(taken_over) << done->DebugString();
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0) << status->DebugString();
}

// The leader's host is cut off in the middle of a Full (its link down, as
// a pulled cable: no reset, every packet lost): it reaches neither etcd,
// nor the standby, nor the agents. It stands down before its lease could
// have run out and exits; the standby, on a host of its own, leads; the
// agent gives up the silent stream and follows it; the job finishes under
// the same lease, catalogued once.
TEST(HighAvailability, ALeaderCutOffFromTheNetworkStandsDownAndTheStandbyFinishesTheJob) {
  coordinator::testing::PostgresTestDatabase db;  // on a Unix socket: every namespace sees it
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  DeploymentOptions options = HaOptions(db.conninfo(), v1::EtcdConfig());
  options.network_namespaces = true;
  Deployment d(options, "ha-partition");
  ASSERT_NE(d.network(), nullptr);
  ASSERT_TRUE(d.network()->ok()) << d.network()->error();
  // etcd listens on the bridge, where every host reaches it.
  TempDir etcd_dir("ha-partition-etcd");
  auto etcd = coordinator::EtcdTestCluster::Start(etcd_dir.path(), 1, /*tls=*/false,
                                                  d.network()->bridge_address());
  ASSERT_OK(etcd.status());
  v1::EtcdConfig etcd_config = (*etcd)->Config("/ha-partition/");
  etcd_config.set_leader_ttl_ms(3000);
  d.set_etcd(etcd_config);
  ASSERT_OK(d.Start());
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(StartTransferringFull(d, &job));
  const uint64_t token = FencingTokenOf(job);
  ASSERT_NE(token, 0u);

  ASSERT_TRUE(d.network()->Cut(kCoordinatorHost)) << d.network()->error();
  ASSERT_TRUE(WaitStandbyLeads(d)) << d.StandbyLog();
  // Cut off, the old leader cannot renew: it stands down and exits.
  auto ended = d.WaitCoordinatorExit(absl::Seconds(30));
  ASSERT_TRUE(ended.has_value()) << d.CoordinatorLog();
  EXPECT_EQ(ended->exit_code, 4);
  ASSERT_TRUE(d.network()->Heal(kCoordinatorHost)) << d.network()->error();

  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.StandbyLog();
  EXPECT_EQ(done->attempts_size(), 1);
  EXPECT_EQ(FencingTokenOf(*done), token);
  EXPECT_EQ(Db02BackupSessions(d), 1);
  ASSERT_NO_FATAL_FAILURE(ExpectOneBackupOfAndNoLease(d, job.id()));
}

// PostgreSQL restarts (killed the way a crash would, down 3 s) in the
// middle of a Full: the coordinator reconnects, the job finishes, and its
// record and its backup are written once.
TEST(HighAvailability, APostgresRestartMidBackupLeavesOneRecordOfTheJob) {
  coordinator::testing::PrivatePostgres pg;
  ASSERT_FALSE(pg.conninfo().empty());
  DeploymentOptions options = SlowFullOptions();
  options.catalog = pg.conninfo();
  Deployment d(options, "ha-pg-restart");
  ASSERT_OK(d.Start());
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(StartTransferringFull(d, &job));
  ASSERT_OK(pg.Restart(absl::Seconds(3)));
  auto done = d.WaitJob(job.id());
  ASSERT_TRUE(done.ok()) << done.status() << "\n" << d.CoordinatorLog();
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.CoordinatorLog();
  EXPECT_EQ(done->attempts_size(), 1);
  ASSERT_NO_FATAL_FAILURE(ExpectOneBackupOfAndNoLease(d, job.id()));
  v1::ListJobsResponse jobs;
  ASSERT_OK(d.CliJson({"job", "list"}, &jobs));
  int records = 0;
  for (const auto& j : jobs.jobs()) records += j.id() == job.id() ? 1 : 0;
  EXPECT_EQ(records, 1);
}

}  // namespace
}  // namespace dagvault::testing
