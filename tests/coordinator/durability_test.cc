// What must survive an agent's death (issue 15): a result the coordinator
// has not acknowledged, and a backup whose manifest was written but whose
// result was never kept.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <tuple>

#include "absl/time/clock.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

// Agents that die at `point`, with a lease long enough for a restart.
DeploymentOptions Crashing(const std::string& point) {
  DeploymentOptions o = Options({{"DAGVAULT_CRASH_AT", point}});
  o.lease_ttl_ms = 20000;  // the restart in the tests fits in the lease
  return o;
}

// Starts `d`, loads DB02, starts a Full from node3 and waits until node3's
// agent has died at its crash point.
void BackUpUntilTheSourceAgentDies(Deployment& d, v1::JobInfo* job) {
  ASSERT_OK(d.Start());
  Load(d, kNode1, 1, 0, 100);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  int code = 0;
  std::tie(code, *job) =
      JobCommand(d, {"backup", "start", "--unit", "DB02", "--type", "full", "--prefer", "node3"});
  ASSERT_EQ(code, 0);
  ASSERT_EQ(LastNode(*job), "node3");
  ASSERT_TRUE(WaitFor([&] { return !d.AgentRunning(kNode3); }, absl::Seconds(120)))
      << d.AgentLog(kNode3);
}

TEST(Durability, AnAgentKilledAfterItsBackupCompletedReportsItsKeptResultOnce) {
  // Every agent dies right after it has kept a job's result on disk and
  // before it sends it (after BackupComplete: the logs may be truncated).
  Deployment d(Crashing("agent.result.kept"), "kept-result");
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(BackUpUntilTheSourceAgentDies(d, &job));
  EXPECT_EQ(RepositoryManifests(d).size(), 1u);  // written, and not yet known to the coordinator

  ASSERT_OK(d.StartAgent(kNode3));
  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->DebugString() << d.CoordinatorLog();
  // One attempt: the backup was not run again...
  ASSERT_EQ(done->attempts_size(), 1) << done->DebugString();
  EXPECT_EQ(done->attempts(0).node(), "node3");
  EXPECT_THAT(d.AgentLog(kNode3), HasSubstr("result kept from before the restart"));
  // ...it is catalogued once, and no manifest is orphaned.
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &backups));
  ASSERT_EQ(backups.backups_size(), 1);
  EXPECT_EQ(backups.backups(0).job(), job.id());
  EXPECT_EQ(backups.backups(0).manifest(), done->manifest());
  EXPECT_EQ(RepositoryManifests(d), std::vector<std::string>{done->manifest()});
}

TEST(Durability, AnAgentKilledBetweenItsManifestAndBackupCompleteGetsTheBackupCatalogued) {
  // Every agent dies right after the manifest is written and before
  // BackupComplete: the backup is verified and durable, nothing is
  // truncated, and no result was kept yet; only the commit intent was.
  Deployment d(Crashing("agent.backup.completing"), "commit-intent");
  v1::JobInfo job;
  ASSERT_NO_FATAL_FAILURE(BackUpUntilTheSourceAgentDies(d, &job));
  const std::vector<std::string> written = RepositoryManifests(d);
  ASSERT_EQ(written.size(), 1u);

  ASSERT_OK(d.StartAgent(kNode3));
  auto done = d.WaitJob(job.id());
  ASSERT_OK(done.status());
  // The job failed (its completion never reached the writer)...
  EXPECT_EQ(done->state(), v1::JOB_FAILED) << done->DebugString();
  EXPECT_THAT(done->reason(),
              HasSubstr("the verified backup " + written[0] + " is catalogued all the same"));
  EXPECT_THAT(d.AgentLog(kNode3),
              HasSubstr("reported to the coordinator so that it is catalogued"));
  // ...but its backup is catalogued, not orphaned.
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &backups));
  ASSERT_EQ(backups.backups_size(), 1);
  EXPECT_EQ(backups.backups(0).manifest(), written[0]);
  EXPECT_EQ(RepositoryManifests(d), written);
}

}  // namespace
}  // namespace dagvault::testing
