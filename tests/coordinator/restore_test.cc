// Orchestrated restores with real processes (issue 7): every copy restored
// after a disaster, to a point in time and rolled forward; a restore over
// another database's files refused; a restore stopped by a killed agent
// during step 3 and step 5 and resumed by its re-run; a lost passive copy
// reseeded from the repository.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "repository/repository.h"
#include "repository/repository_test_util.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {
namespace {

using ::testing::HasSubstr;

// `dagvault restore start ARGS --wait`: the exit code and the job.
std::pair<int, v1::JobInfo> RestoreWait(Deployment& d, std::vector<std::string> args) {
  args.insert(args.begin(), {"restore", "start"});
  args.push_back("--wait");
  return JobCommand(d, args);
}

// The digest of DB02 on every node, each as UnitDigest prints it.
std::vector<std::string> AllDigests(Deployment& d) {
  std::vector<std::string> out;
  for (int i = 0; i < d.cluster().size(); ++i) out.push_back(UnitDigest(d.cluster(), i, "DB02"));
  return out;
}

// The high generation of backup `manifest`, from `backup list`.
uint32_t HighGeneration(Deployment& d, const std::string& manifest) {
  v1::ListBackupsResponse list;
  absl::Status listed = d.CliJson({"backup", "list", "--unit", "DB02"}, &list);
  EXPECT_TRUE(listed.ok()) << listed;
  for (const auto& b : list.backups()) {
    if (b.manifest() == manifest) return b.high_generation();
  }
  ADD_FAILURE() << "no backup " << manifest;
  return 0;
}

TEST(DeploymentRestore, EveryCopyIsRestoredAfterADisasterToAPointInTimeAndRolledForward) {
  Deployment d(Options(), "restore-all");
  ASSERT_OK(d.Start());
  v1::JobInfo full = LoadAndBackUp(d, 1, 0, 60, "full");
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED);
  const std::string at_full = UnitDigest(d.cluster(), kNode1, "DB02");
  v1::JobInfo inc = LoadAndBackUp(d, 1, 60, 60, "incremental");
  ASSERT_EQ(inc.state(), v1::JOB_SUCCEEDED);
  const std::string at_inc = UnitDigest(d.cluster(), kNode1, "DB02");
  Load(d, kNode1, 2, 0, 40);  // after the last backup: only in the server's logs
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  const std::string newest = UnitDigest(d.cluster(), kNode1, "DB02");
  ASSERT_NE(at_full, at_inc);
  ASSERT_NE(at_inc, newest);

  // The databases are lost, the logs survive: rolled forward, every copy
  // reaches the newest data.
  Wipe(d, /*databases_only=*/true);
  auto [rolled_exit, rolled] = RestoreWait(d, {"--unit", "DB02", "--roll-forward"});
  ASSERT_EQ(rolled_exit, 0) << rolled.DebugString() << d.AgentLog(kNode1);
  ExpectPlanDone(rolled);
  EXPECT_EQ(rolled.plan().active_node(), "node1");
  ExpectEveryCopyHolds(d, newest);

  // To the Full's restore point, over the mounted unit: every copy goes back.
  const uint32_t full_high = HighGeneration(d, full.manifest());
  auto [pit_exit, pit] =
      RestoreWait(d, {"--unit", "DB02", "--to-generation", absl::StrFormat("0x%08X", full_high)});
  ASSERT_EQ(pit_exit, 0) << pit.DebugString();
  ExpectPlanDone(pit);
  EXPECT_EQ(pit.plan().manifests_size(), 1);
  ExpectEveryCopyHolds(d, at_full);

  // Everything of the unit is lost: the newest restore point on every copy.
  Wipe(d, /*databases_only=*/false);
  auto [latest_exit, latest] = RestoreWait(d, {"--unit", "DB02", "--to", "latest"});
  ASSERT_EQ(latest_exit, 0) << latest.DebugString();
  ExpectPlanDone(latest);
  EXPECT_EQ(latest.plan().manifests_size(), 2);
  ExpectEveryCopyHolds(d, at_inc);

  // Replication resumed: new mail reaches every copy, and they stay Healthy.
  Load(d, kNode1, 3, 0, 50);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  const std::vector<std::string> after = AllDigests(d);
  EXPECT_EQ(after[1], after[0]);
  EXPECT_EQ(after[2], after[0]);
  EXPECT_NE(after[0], at_inc);
  for (const char* node : {"node2", "node3"}) {
    EXPECT_TRUE(WaitCopyState(d, "DB02", node, v1::HEALTHY)) << node;
  }

  // A new database where the old one was lost carries another signature:
  // the restore stops at step 3 without touching it, and a forced re-run
  // resumes there.
  Wipe(d, /*databases_only=*/false);
  ASSERT_OK(d.cluster().Admin(kNode1, "mount", "DB02"));  // created anew, empty
  ProcessResult refused = d.Cli({"restore", "start", "--unit", "DB02", "--wait"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out, HasSubstr("it belongs to another database"));
  EXPECT_THAT(refused.out, HasSubstr("stopped at step 3"));
  EXPECT_THAT(refused.out, HasSubstr("--force-overwrite-different-database"));
  auto [forced_exit, forced] =
      RestoreWait(d, {"--unit", "DB02", "--force-overwrite-different-database"});
  ASSERT_EQ(forced_exit, 0) << forced.DebugString();
  ExpectPlanDone(forced);
  EXPECT_EQ(forced.plan().resumed(), 1u);
  ExpectEveryCopyHolds(d, at_inc);

  // No lease is left; a backup runs again.
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0);
  v1::JobInfo again = BackupWait(d, {"--unit", "DB02", "--type", "full"});
  EXPECT_EQ(again.state(), v1::JOB_SUCCEEDED) << again.reason();
}

TEST(DeploymentRestore, ARestoreStoppedByAKilledAgentInStep3And5ResumesWhenRunAgain) {
  // Every piece of the active copy's restore waits 3 s, and of a passive
  // copy's 8 s (longer than a lease): time to kill.
  Deployment d(
      Options({{"DAGVAULT_DELAY_AT", "agent.restore.step:3000,agent.restore.passive:8000"}}),
      "restore-resume");
  ASSERT_OK(d.Start());
  std::string at_full;
  ASSERT_NO_FATAL_FAILURE(BackUpThenLoseDb02(d, &at_full));

  auto start = [&] {
    auto [exit_code, job] = JobCommand(d, {"restore", "start", "--unit", "DB02"});
    EXPECT_EQ(exit_code, 0) << job.DebugString();
    return job;
  };
  // Killed during step 3 on node1: the passive copies' restores, running at
  // the same time (step 5), stop with the plan.
  v1::JobInfo job = start();
  ASSERT_TRUE(WaitForStep(d, job.id(), 3, "node1")) << d.CoordinatorLog();
  ASSERT_TRUE(WaitForStep(d, job.id(), 5, "node2")) << d.CoordinatorLog();
  d.KillAgent(kNode1);
  auto stopped = d.WaitJob(job.id());
  ASSERT_OK(stopped.status());
  EXPECT_EQ(stopped->state(), v1::JOB_FAILED);
  EXPECT_THAT(stopped->reason(), HasSubstr("stopped at step 3"));
  EXPECT_THAT(stopped->reason(), HasSubstr("do not mount it"));
  EXPECT_EQ(stopped->plan().steps(0).state(), v1::STEP_DONE);
  EXPECT_EQ(stopped->plan().steps(1).state(), v1::STEP_DONE);
  EXPECT_EQ(stopped->plan().steps(2).state(), v1::STEP_FAILED);
  EXPECT_EQ(stopped->plan().steps(4).state(), v1::STEP_FAILED);
  ProcessResult shown = d.Cli({"job", "show", job.id()});
  EXPECT_THAT(shown.out, HasSubstr("3. failed"));
  EXPECT_THAT(shown.out, HasSubstr("next: the unit is dismounted on node1"));

  // The re-run resumes the same job at step 3, with step 5 again beside it;
  // node2's agent is killed in step 5. node2 does not hold up the active
  // copy: it is to be reseeded from it, and since it is still away then,
  // the plan stops at step 5 with the active copy restored and mounted.
  ASSERT_OK(d.StartAgent(kNode1));
  ASSERT_OK(d.WaitReporting());
  v1::JobInfo resumed = start();
  EXPECT_EQ(resumed.id(), job.id());
  ASSERT_TRUE(WaitForStep(d, job.id(), 5, "node2")) << d.CoordinatorLog();
  d.KillAgent(kNode2);
  stopped = d.WaitJob(job.id(), absl::Minutes(2));
  ASSERT_OK(stopped.status());
  EXPECT_EQ(stopped->state(), v1::JOB_FAILED);
  EXPECT_THAT(stopped->reason(), HasSubstr("stopped at step 5"));
  EXPECT_EQ(stopped->plan().steps(3).state(), v1::STEP_DONE);
  ASSERT_EQ(stopped->plan().reseeded_from_active_size(), 1);
  EXPECT_EQ(stopped->plan().reseeded_from_active(0).node(), "node2");
  EXPECT_EQ(UnitDigest(d.cluster(), kNode1, "DB02"), at_full);  // the active copy is restored

  ASSERT_OK(d.StartAgent(kNode2));
  ASSERT_OK(d.WaitReporting());
  v1::JobInfo last = start();
  EXPECT_EQ(last.id(), job.id());
  auto done = d.WaitJob(job.id(), absl::Minutes(3));
  ASSERT_OK(done.status());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->reason();
  ExpectPlanDone(*done);
  EXPECT_EQ(done->plan().resumed(), 2u);
  ExpectEveryCopyHolds(d, at_full);
}

// What node1's mailstored has sent `node` of DB02's logs or seeds, in bytes.
uint64_t SentBy1(Deployment& d, const std::string& node, bool seeds) {
  auto copy = d.cluster().Copy(kNode1, "DB02");
  EXPECT_TRUE(copy.ok()) << copy.status();
  if (!copy.ok()) return 0;
  const auto& sent = seeds ? copy->seed_bytes_sent() : copy->log_bytes_sent();
  auto it = sent.find(node);
  return it == sent.end() ? 0 : it->second;
}

// Reseed from the repository (issue 19 §2): a passive copy lost with its
// files is rebuilt by its own node's agent from the newest chain while the
// active copy stays mounted; the active node sends it only the logs after
// the chain's end. A Healthy copy is reseeded only when forced.
TEST(DeploymentReseed, ALostPassiveCopyIsRebuiltFromTheRepositoryAndGetsOnlyNewerLogs) {
  Deployment d(Options(), "reseed");
  ASSERT_OK(d.Start());
  v1::JobInfo full = LoadAndBackUp(d, 1, 0, 60, "full");
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED);
  const uint32_t full_high = HighGeneration(d, full.manifest());
  Load(d, kNode1, 2, 0, 40);  // after the backup: in the active copy's logs only
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));

  // Refused for the active copy and, unforced, for a Healthy one.
  ProcessResult active = d.Cli({"reseed", "--unit", "DB02", "--node", "node1"});
  EXPECT_EQ(active.exit_code, 1) << active.out << active.err;
  EXPECT_THAT(active.out + active.err, HasSubstr("is the active copy"));
  ProcessResult healthy = d.Cli({"reseed", "--unit", "DB02", "--node", "node2"});
  EXPECT_EQ(healthy.exit_code, 1) << healthy.out << healthy.err;
  EXPECT_THAT(healthy.out + healthy.err, HasSubstr("add --force"));

  // node2's copy is lost: suspended, its daemon stopped, its files gone.
  const uint64_t logs_before = SentBy1(d, "node2", false);
  const uint64_t seeds_before = SentBy1(d, "node2", true);
  ASSERT_OK(d.cluster().Admin(kNode2, "suspend", "DB02"));
  d.cluster().StopNode(kNode2);
  const std::string dir = d.cluster().node(kNode2).config.data_root() + "/DB02";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename() != "copy.state") std::filesystem::remove_all(entry.path());
  }
  ASSERT_OK(d.cluster().StartNode(kNode2));
  ASSERT_TRUE(WaitCopyState(d, "DB02", "node2", v1::SUSPENDED)) << d.CoordinatorLog();
  Load(d, kNode1, 3, 0, 20);  // the active copy runs on

  auto [exit_code, job] = JobCommand(d, {"reseed", "--unit", "DB02", "--node", "node2", "--wait"});
  ASSERT_EQ(exit_code, 0) << job.DebugString() << d.AgentLog(kNode2);
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED);
  ASSERT_TRUE(job.plan().reseed());
  for (int n : {2, 3, 4}) EXPECT_EQ(job.plan().steps(n - 1).state(), v1::STEP_SKIPPED) << n;
  for (int n : {1, 5, 6, 7}) {
    EXPECT_EQ(job.plan().steps(n - 1).state(), v1::STEP_DONE)
        << n << ": " << job.plan().steps(n - 1).detail();
  }
  EXPECT_THAT(job.plan().steps(4).detail(),
              HasSubstr(absl::StrFormat("replayed through generation 0x%08X", full_high)));
  ProcessResult shown = d.Cli({"job", "show", job.id()});
  EXPECT_THAT(shown.out, HasSubstr("reseed from the repository of DB02 on node2"));
  EXPECT_THAT(shown.out, HasSubstr("2. skipped"));
  const std::string active_digest = UnitDigest(d.cluster(), kNode1, "DB02");
  ExpectEveryCopyHolds(d, active_digest);

  // The active node sent node2 no seed, and exactly the generations after
  // the chain's end: never the databases.
  auto copy = d.cluster().Copy(kNode1, "DB02");
  ASSERT_OK(copy);
  uint64_t newer_logs = 0;
  for (uint32_t g = full_high + 1; g <= copy->last_log_generation(); ++g) {
    newer_logs += std::filesystem::file_size(absl::StrFormat(
        "%s/DB02/logs/E01%08X.log", d.cluster().node(kNode1).config.data_root(), g));
  }
  EXPECT_EQ(SentBy1(d, "node2", true), seeds_before);
  EXPECT_EQ(SentBy1(d, "node2", false) - logs_before, newer_logs);
  EXPECT_GT(newer_logs, 0u);
  const uint64_t database =
      std::filesystem::file_size(d.cluster().node(kNode1).config.data_root() + "/DB02/DB02.edb");
  std::cerr << "reseed from the repository: node1 sent node2 " << newer_logs << " bytes of logs ("
            << copy->last_log_generation() - full_high << " generations) and no seed; its database "
            << "is " << database << " bytes\n";

  // Forced, a Healthy copy is rebuilt the same way.
  auto [forced_exit, forced] =
      JobCommand(d, {"reseed", "--unit", "DB02", "--node", "node3", "--force", "--wait"});
  ASSERT_EQ(forced_exit, 0) << forced.DebugString();
  ExpectEveryCopyHolds(d, UnitDigest(d.cluster(), kNode1, "DB02"));
  for (const char* node : {"node2", "node3"}) {
    EXPECT_TRUE(WaitCopyState(d, "DB02", node, v1::HEALTHY)) << node;
  }
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0);
}

// Waits until DB02 has `chain_count` chains and the newest has its logs
// archived through `generation`, without a break in the archive; `chains`
// is `chain show` then.
void WaitArchivedThrough(Deployment& d, uint32_t generation, v1::ShowChainsResponse* chains,
                         int chain_count = 1) {
  ASSERT_TRUE(WaitFor(
      [&] {
        *chains = v1::ShowChainsResponse();
        return d.CliJson({"chain", "show", "--unit", "DB02"}, chains).ok() &&
               chains->chains_size() == chain_count &&
               chains->chains(chain_count - 1).archived_high_generation() >= generation;
      },
      absl::Seconds(60)))
      << chains->DebugString() << d.AgentLog(kNode1) << d.AgentLog(kNode2) << d.AgentLog(kNode3);
  EXPECT_FALSE(chains->chains(chain_count - 1).archive_broken()) << chains->DebugString();
  EXPECT_FALSE(chains->chains(chain_count - 1).broken()) << chains->DebugString();
}

// Continuous log archiving (issue 19 §1): a policy with --archive-logs has
// one agent archive every closed generation of the unit as it arrives on
// its copy (a passive copy: node2 or node3); after the unit is lost, every
// copy is restored to the newest archived generation: mail written after
// the last backup is back.
TEST(DeploymentArchive, EveryCopyIsRestoredToTheNewestArchivedGeneration) {
  Deployment d(Options(), "archive");
  ASSERT_OK(d.Start());
  v1::JobInfo full = LoadAndBackUp(d, 1, 0, 60, "full");
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED);
  ProcessResult set = d.Cli({"policy", "set", "--name", "archived", "--unit", "DB02", "--full",
                             "0 1 * * *", "--archive-logs"});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  EXPECT_THAT(set.out, HasSubstr("closed logs archived as they close"));
  // Mail after the Full, in several generations.
  for (uint64_t round = 0; round < 4; ++round) Load(d, kNode1, 7, round * 20, 20);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  auto active = d.cluster().Copy(kNode1, "DB02");
  ASSERT_OK(active);
  const uint32_t newest = active->last_log_generation();
  const std::string written = UnitDigest(d.cluster(), kNode1, "DB02");

  // The archive reaches the newest closed generation.
  v1::ShowChainsResponse chains;
  ASSERT_NO_FATAL_FAILURE(WaitArchivedThrough(d, newest, &chains));
  ProcessResult shown = d.Cli({"chain", "show", "--unit", "DB02"});
  EXPECT_THAT(shown.out, HasSubstr("archived logs:"));
  v1::ListBackupsResponse list;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &list));
  std::set<std::string> archived_from;
  for (const auto& b : list.backups()) {
    if (b.type() == v1::LOG_ARCHIVE) archived_from.insert(b.source_node());
  }
  EXPECT_EQ(archived_from.size(), 1u) << list.DebugString();
  EXPECT_EQ(archived_from.count("node1"), 0u) << "a healthy passive copy archives";

  // The unit is lost; the restore's newest point is the archive's end.
  Wipe(d, /*databases_only=*/false);
  auto [exit_code, restored] = RestoreWait(d, {"--unit", "DB02"});
  ASSERT_EQ(exit_code, 0) << restored.DebugString();
  ExpectPlanDone(restored);
  EXPECT_GT(restored.plan().manifests_size(), 1);
  EXPECT_GE(restored.plan().restored_generation(), newest);
  ExpectEveryCopyHolds(d, written);
}

// The RPO of continuous archiving (issue 19 §1): DB02 written for a minute
// without pause, its open generation closed every 2 s (--archive-roll),
// then its active server crashes and its files are lost. Every copy is
// restored to the newest archived generation; the items it holds are the
// first ones written, with no hole, and reach every item acknowledged
// more than a few seconds (the roll, the copy and the upload) before the
// crash.
TEST(DeploymentArchive, AUnitWrittenForAMinuteLosesOnlyItsLastSecondsWithItsActiveCopy) {
  Deployment d(Options(), "archive-rpo");
  ASSERT_OK(d.Start());
  ASSERT_EQ(LoadAndBackUp(d, 1, 0, 20, "full").state(), v1::JOB_SUCCEEDED);
  ProcessResult set = d.Cli({"policy", "set", "--name", "archived", "--unit", "DB02", "--full",
                             "0 1 * * *", "--archive-logs", "--archive-roll", "2s"});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  std::vector<absl::Time> acknowledged;  // by item
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (absl::Now() < until) {
    const uint64_t item = acknowledged.size();
    ASSERT_OK(d.cluster().Put(kNode1, "DB02", "DB02", 9, item, ItemValue(9, item)));
    acknowledged.push_back(absl::Now());
    absl::SleepFor(absl::Milliseconds(20));
  }
  // The active server crashes; its files are lost with it.
  d.cluster().KillNode(kNode1);
  const absl::Time crashed = absl::Now();
  const std::string dir = d.cluster().node(kNode1).config.data_root() + "/DB02";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename() != "copy.state") std::filesystem::remove_all(entry.path());
  }
  ASSERT_OK(d.cluster().StartNode(kNode1));
  ASSERT_TRUE(WaitCopyState(d, "DB02", "node1", v1::DISMOUNTED)) << d.CoordinatorLog();
  // What the passive copies had copied is archived too: wait until it is.
  absl::SleepFor(absl::Seconds(3));

  auto [exit_code, restored] = RestoreWait(d, {"--unit", "DB02"});
  ASSERT_EQ(exit_code, 0) << restored.DebugString();
  ExpectPlanDone(restored);
  uint64_t present = 0;
  while (present < acknowledged.size()) {
    auto got = d.cluster().Get(kNode1, "DB02", "DB02", 9, present);
    ASSERT_OK(got);
    if (!got->has_value()) break;
    EXPECT_EQ(**got, ItemValue(9, present));
    ++present;
  }
  for (uint64_t item = present; item < acknowledged.size(); ++item) {
    auto got = d.cluster().Get(kNode1, "DB02", "DB02", 9, item);
    ASSERT_OK(got);
    ASSERT_FALSE(got->has_value()) << "item " << item << " is present after missing item "
                                   << present << ": the restored items have a hole";
  }
  ASSERT_GT(present, 0u);
  const absl::Duration lost = crashed - acknowledged[present - 1];
  std::cerr << "archive RPO: " << present << " of " << acknowledged.size()
            << " items restored; the newest restored item was acknowledged "
            << absl::FormatDuration(lost) << " before the crash\n";
  EXPECT_LT(lost, absl::Seconds(15)) << "the archive lags by more than the roll and an upload";
  ExpectEveryCopyHolds(d, UnitDigest(d.cluster(), kNode1, "DB02"));
}

// An archiving agent killed in the middle of uploading a segment (its
// packs and index written, its manifest not): after it restarts, the
// archive goes on from what the repository holds, without a gap.
TEST(DeploymentArchive, AnArchiverKilledMidUploadLeavesNoGap) {
  Deployment d(Options(), "archive-kill");
  ASSERT_OK(d.Start());
  ASSERT_EQ(LoadAndBackUp(d, 1, 0, 20, "full").state(), v1::JOB_SUCCEEDED);
  // Either passive node may archive: both die at their first segment's
  // upload, once its index is written and before its manifest is.
  for (int i : {kNode2, kNode3}) {
    d.KillAgent(i);
    ASSERT_OK(d.StartAgent(i, {{"DAGVAULT_CRASH_AT", "repository.backup.index_written"}}));
  }
  ASSERT_OK(d.WaitReporting());
  ProcessResult set = d.Cli({"policy", "set", "--name", "archived", "--unit", "DB02", "--full",
                             "0 1 * * *", "--archive-logs"});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  Load(d, kNode1, 7, 0, 20);
  auto crashed = [&](int i) {
    return absl::StrContains(d.AgentLog(i), "crash point reached, killing self");
  };
  ASSERT_TRUE(WaitFor([&] { return crashed(kNode2) || crashed(kNode3); }, absl::Seconds(60)))
      << d.CoordinatorLog();
  for (int i : {kNode2, kNode3}) {
    d.KillAgent(i);
    ASSERT_OK(d.StartAgent(i));
  }
  ASSERT_OK(d.WaitReporting());
  Load(d, kNode1, 7, 20, 20);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  auto active = d.cluster().Copy(kNode1, "DB02");
  ASSERT_OK(active);
  v1::ShowChainsResponse chains;
  ASSERT_NO_FATAL_FAILURE(WaitArchivedThrough(d, active->last_log_generation(), &chains));
  // Every archived generation after the Full is a restore point.
  const uint32_t full_high = chains.chains(0).full().high_generation();
  EXPECT_EQ(chains.chains(0).archived_low_generation(), full_high + 1);
}

// A lossy failover under continuous archiving (issue 19 §1): the active
// copy on node1 archives generations the suspended passive copies never
// got; node1 dies and node2 is activated with --lossy. node2's new stream
// does not follow the archive: its archiver names the generation, the
// coordinator records the chain break like a backup's (the old chain's
// restore points end at the last archived generation of the old stream),
// the next Incremental becomes a Full, and the new stream is archived
// after it.
TEST(DeploymentArchive, ALossyFailoverBreaksTheArchiveWhichGoesOnAfterTheNextFull) {
  Deployment d(Options(), "archive-lossy");
  ASSERT_OK(d.Start());
  ASSERT_EQ(LoadAndBackUp(d, 1, 0, 20, "full").state(), v1::JOB_SUCCEEDED);
  ASSERT_OK(d.cluster().Admin(kNode2, "suspend", "DB02"));
  ASSERT_OK(d.cluster().Admin(kNode3, "suspend", "DB02"));
  ProcessResult set = d.Cli({"policy", "set", "--name", "archived", "--unit", "DB02", "--full",
                             "0 1 * * *", "--archive-logs"});
  ASSERT_EQ(set.exit_code, 0) << set.out << set.err;
  Load(d, kNode1, 7, 0, 20);
  Load(d, kNode1, 7, 20, 20);
  auto old_active = d.cluster().Copy(kNode1, "DB02");
  ASSERT_OK(old_active);
  const uint32_t old_newest = old_active->last_log_generation();
  v1::ShowChainsResponse chains;
  ASSERT_NO_FATAL_FAILURE(WaitArchivedThrough(d, old_newest, &chains));
  EXPECT_EQ(chains.chains(0).archived_source_node(), "node1");

  ASSERT_NO_FATAL_FAILURE(FailOverLossilyToNode2(d));
  auto activated = d.cluster().Copy(kNode2, "DB02");
  ASSERT_OK(activated);
  ASSERT_LT(activated->last_log_generation(), old_newest) << "node2 should have lost generations";
  // The new stream reaches past the archive's end, with other logs.
  for (uint64_t round = 0;; ++round) {
    ASSERT_LT(round, 20u);
    Load(d, kNode2, 8, round * 10, 10);
    auto now = d.cluster().Copy(kNode2, "DB02");
    ASSERT_OK(now);
    if (now->last_log_generation() > old_newest) break;
  }

  ASSERT_TRUE(WaitFor(
      [&] {
        chains = v1::ShowChainsResponse();
        return d.CliJson({"chain", "show", "--unit", "DB02"}, &chains).ok() &&
               chains.chains_size() == 1 && chains.chains(0).broken();
      },
      absl::Seconds(60)))
      << chains.DebugString() << d.AgentLog(kNode2) << d.CoordinatorLog();
  const v1::ChainInfo& broken = chains.chains(0);
  EXPECT_EQ(broken.broken_at_generation(), old_newest + 1) << broken.DebugString();
  EXPECT_THAT(broken.broken_reason(), HasSubstr("archiving from node2"));
  EXPECT_THAT(broken.broken_reason(), HasSubstr("the log stream diverged"));
  // What node1 archived stays restorable, up to the break.
  EXPECT_EQ(broken.archived_high_generation(), old_newest);
  ASSERT_GT(broken.restore_points_size(), 0);
  EXPECT_EQ(broken.restore_points(broken.restore_points_size() - 1).generation(), old_newest);
  EXPECT_THAT(chains.next_incremental(), HasSubstr("Full: the newest chain"));
  EXPECT_THAT(d.CoordinatorLog(), HasSubstr("[DV1004 chain_broken unit=DB02"));
  EXPECT_THAT(d.CoordinatorLog(),
              HasSubstr(absl::StrFormat("generation=0x%08X after=", old_newest + 1)));
  ProcessResult shown = d.Cli({"chain", "show", "--unit", "DB02"});
  EXPECT_THAT(shown.out, HasSubstr("broken at generation"));
  // The archiver tried once: no segment of the new stream was written on
  // the old chain, and it does not upload the same logs again meanwhile.
  v1::ListBackupsResponse list;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &list));
  for (const auto& b : list.backups()) {
    if (b.type() == v1::LOG_ARCHIVE) {
      EXPECT_EQ(b.source_node(), "node1") << b.DebugString();
    }
  }

  v1::JobInfo promoted =
      BackupWait(d, {"--unit", "DB02", "--type", "incremental", "--source-mode", "active-only"});
  EXPECT_EQ(promoted.state(), v1::JOB_SUCCEEDED) << promoted.reason();
  EXPECT_EQ(promoted.type(), v1::FULL);
  EXPECT_THAT(promoted.reason(), HasSubstr("requested Incremental promoted to Full"));
  Load(d, kNode2, 8, 500, 10);
  Load(d, kNode2, 8, 510, 10);
  auto new_active = d.cluster().Copy(kNode2, "DB02");
  ASSERT_OK(new_active);
  ASSERT_NO_FATAL_FAILURE(
      WaitArchivedThrough(d, new_active->last_log_generation(), &chains, /*chain_count=*/2));
  EXPECT_EQ(chains.chains(1).archived_low_generation(),
            chains.chains(1).full().high_generation() + 1);
  EXPECT_EQ(chains.chains(1).archived_source_node(), "node2");
  EXPECT_TRUE(chains.chains(0).broken());
}

TEST(DeploymentRetention, ExpiryKeepsTheNewestChainsAndAPruneInterruptedByACrashFinishes) {
  Deployment d(Options(), "retention");
  ASSERT_OK(d.Start());
  // Three chains: Full+Incremental, Full+Incremental, Full.
  std::vector<v1::JobInfo> backups;
  std::vector<std::string> digests;  // at each backup
  const char* types[] = {"full", "incremental", "full", "incremental", "full"};
  for (int i = 0; i < 5; ++i) {
    backups.push_back(LoadAndBackUp(d, 1, static_cast<uint64_t>(i) * 40, 40, types[i]));
    ASSERT_EQ(backups.back().state(), v1::JOB_SUCCEEDED);
    digests.push_back(UnitDigest(d.cluster(), kNode1, "DB02"));
  }
  ASSERT_EQ(RepositoryManifests(d).size(), 5u);
  ProcessResult set = d.Cli({"policy", "set", "--name", "keep2", "--unit", "DB02", "--full",
                             "0 3 1 1 *", "--keep-chains", "2"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  ProcessResult dry = d.Cli({"expire", "--dry-run"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_THAT(dry.out, HasSubstr("would expire DB02 chain " + backups[0].manifest() + ", " +
                                 backups[1].manifest()));
  EXPECT_EQ(RepositoryManifests(d).size(), 5u);

  // The coordinator dies right after the catalog step: the catalog no
  // longer lists the first chain, the repository still holds it.
  d.KillCoordinator();
  ASSERT_OK(d.StartCoordinator({{"DAGVAULT_CRASH_AT", "coordinator.expire.catalog_written"}}));
  ProcessResult crashed = d.Cli({"expire"});
  EXPECT_NE(crashed.exit_code, 0);
  ASSERT_TRUE(d.WaitCoordinatorExit(absl::Seconds(20)).has_value())
      << "expire: " << crashed.exit_code << " " << crashed.out << crashed.err << "\n"
      << d.CoordinatorLog();
  EXPECT_EQ(RepositoryManifests(d).size(), 5u);

  // Started again, it finishes the prune before anything else.
  ASSERT_OK(d.StartCoordinator());
  // The agents reconnect after their backoff; the restores below need
  // node2 to report.
  ASSERT_OK(d.WaitReporting());
  ASSERT_TRUE(WaitFor([&] { return RepositoryManifests(d).size() == 3u; }, absl::Seconds(30)))
      << d.CoordinatorLog();
  v1::ListBackupsResponse listed;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &listed));
  std::vector<std::string> kept;
  for (const auto& b : listed.backups()) kept.push_back(b.manifest());
  EXPECT_THAT(kept, ::testing::ElementsAre(backups[2].manifest(), backups[3].manifest(),
                                           backups[4].manifest()));
  // A rebuild from the repository agrees; a second run expires nothing.
  ProcessResult rebuilt = d.Cli({"catalog", "rebuild"});
  EXPECT_THAT(rebuilt.out, HasSubstr("catalog rebuilt: 3 backups"));
  ProcessResult again = d.Cli({"expire"});
  EXPECT_THAT(again.out, HasSubstr("no chain is past its policy's retention"));

  // The pruned repository is clean, reading every chunk.
  ProcessResult check =
      RunProcess({BinaryPath("dagvault"), "repo", "check", "--repo", d.repo(), "--read-data",
                  "--passphrase-file", d.cluster().root() + "/passphrase"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

  // Every kept restore point restores, beside production.
  struct Point {
    int backup;
    std::string name;
  };
  for (const Point& p : {Point{2, "KEPT-FULL"}, Point{3, "KEPT-INC"}, Point{4, "KEPT-NEWEST"}}) {
    std::vector<std::string> args = {
        "--unit", "DB02",  "--rdb",  p.name,
        "--node", "node2", "--path", d.cluster().root() + "/rdb/" + p.name};
    if (p.backup != 4) {
      args.push_back("--to-generation");
      args.push_back(absl::StrFormat("0x%08X", HighGeneration(d, backups[p.backup].manifest())));
    }
    auto [exit_code, job] = RestoreWait(d, args);
    ASSERT_EQ(exit_code, 0) << job.DebugString() << d.CoordinatorLog();
    EXPECT_EQ(UnitDigest(d.cluster(), kNode2, "DB02", p.name), digests[p.backup]) << p.name;
  }
}

// The same deployment with its repository in an S3 bucket with Object Lock
// (the test run's radosgw, tests/s3/ceph-rgw.sh): a Full and an
// Incremental taken by the agents, each locked as long as the unit's
// policy needs it, every copy restored from them after everything was
// lost, and the repository checked by reading every chunk back.
TEST(DeploymentS3, EveryCopyIsRestoredFromALockedRepositoryInAnS3Bucket) {
  auto store =
      repository::testing::MakeTestStore(repository::testing::Backend::kS3Locked, "deploy");
  if (absl::IsUnavailable(store.status())) GTEST_SKIP() << store.status();
  ASSERT_OK(store.status());
  DeploymentOptions options = Options();
  options.repository_url = store->location;
  options.object_lock_days = 1;
  Deployment d(options, "restore-s3");
  ASSERT_OK(d.Start());
  // Kept two days, a Full once a year (on 1 January, so none fires during
  // the test): each backup is locked for 2 + 365 + 1 days.
  ProcessResult policy = d.Cli({"policy", "set", "--name", "yearly", "--unit", "DB02", "--full",
                                "0 1 1 1 *", "--keep-days", "2"});
  ASSERT_EQ(policy.exit_code, 0) << policy.out << policy.err;
  v1::JobInfo full = LoadAndBackUp(d, 1, 0, 60, "full");
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED) << full.reason() << d.AgentLog(kNode2);
  v1::JobInfo inc = LoadAndBackUp(d, 1, 60, 60, "incremental");
  ASSERT_EQ(inc.state(), v1::JOB_SUCCEEDED) << inc.reason();
  const std::string at_inc = UnitDigest(d.cluster(), kNode1, "DB02");
  for (const v1::JobInfo* job : {&full, &inc}) {
    auto head = store->store->Head(repository::Repository::ManifestKey(job->manifest()));
    ASSERT_OK(head.status());
    ASSERT_TRUE(head->retain_until.has_value()) << job->manifest();
    EXPECT_GT(*head->retain_until, absl::Now() + absl::Hours(24 * 367)) << job->manifest();
  }

  Wipe(d, /*databases_only=*/false);
  auto [exit_code, restored] = RestoreWait(d, {"--unit", "DB02", "--to", "latest"});
  ASSERT_EQ(exit_code, 0) << restored.DebugString() << d.AgentLog(kNode1);
  ExpectPlanDone(restored);
  EXPECT_EQ(restored.plan().manifests_size(), 2);
  ExpectEveryCopyHolds(d, at_inc);

  // Nothing of it is on a local disk: the bucket holds the packs.
  auto packs = repository::ListAll(*store->store, "packs/");
  ASSERT_OK(packs.status());
  EXPECT_FALSE(packs->empty());
  ProcessResult check =
      RunProcess({BinaryPath("dagvault"), "repo", "check", "--repo", d.repo(), "--read-data",
                  "--passphrase-file", d.cluster().root() + "/passphrase"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("no errors"));
}

}  // namespace
}  // namespace dagvault::testing
