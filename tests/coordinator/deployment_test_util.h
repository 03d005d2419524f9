// Helpers shared by the multi-process deployment tests.
#pragma once

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "repository/repository.h"
#include "repository/repository_test_util.h"
#include "tests/coordinator/deployment.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing {

namespace v1 = dagvault::v1;

inline DeploymentOptions Options(std::map<std::string, std::string> agent_env = {}) {
  DeploymentOptions o;
  o.lab = FastLab(/*lag_seconds=*/0);  // three copies that all qualify
  // A dead agent's writer session ends after this, releasing the unit.
  o.lab.backup_session_timeout_ms = 3000;
  o.agent_env = std::move(agent_env);
  return o;
}

// `dagvault ARGS --json` for a command that prints a job: its exit code
// and the job.
inline std::pair<int, v1::JobInfo> JobCommand(Deployment& d, std::vector<std::string> args) {
  args.push_back("--json");
  ProcessResult r = d.Cli(args);
  v1::JobInfo job;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &job, options).ok())
      << r.out << r.err << "\ncoordinator:\n"
      << d.CoordinatorLog();
  // An error before any job started (the answer is an error, not a job).
  EXPECT_FALSE(job.id().empty()) << r.out << r.err;
  return {r.exit_code, job};
}

// A backup started with --wait: its final record.
inline v1::JobInfo BackupWait(Deployment& d, std::vector<std::string> args, int expect_exit = 0) {
  args.insert(args.begin(), {"backup", "start"});
  args.push_back("--wait");
  auto [exit_code, job] = JobCommand(d, args);
  EXPECT_EQ(exit_code, expect_exit) << job.DebugString() << "\ncoordinator:\n"
                                    << d.CoordinatorLog();
  return job;
}

// DB02 with 300 items in closed generations that every copy has replayed.
inline void LoadDb02(Deployment& d) {
  PutItems(d.cluster(), kNode1, "DB02", Databases("DB02"), 1, 0, 300);
  ASSERT_OK(d.cluster().RollLog(kNode1, "DB02"));
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
}

inline std::string LastNode(const v1::JobInfo& j) {
  return j.attempts_size() == 0 ? "" : j.attempts(j.attempts_size() - 1).node();
}

// Waits until the coordinator sees `unit`'s copy on `node` in `state`.
inline bool WaitCopyState(Deployment& d, const std::string& unit, const std::string& node,
                          v1::CopyState state) {
  return WaitFor(
      [&] {
        auto s = d.Status();
        if (!s.ok()) return false;
        for (const auto& c : s->copies()) {
          if (c.status().unit() == unit && c.status().node() == node)
            return c.status().state() == state;
        }
        return false;
      },
      absl::Seconds(20));
}

// A lossy failover of DB02: node1 dies, node2's copy (suspended until
// now) is resumed and activated with what it has; returns once the
// coordinator sees it active and mounted (from node2's next report).
inline void FailOverLossilyToNode2(Deployment& d) {
  d.cluster().KillNode(kNode1);
  ASSERT_OK(d.cluster().Admin(kNode2, "resume", "DB02"));
  ASSERT_OK(d.cluster().Activate(kNode2, "DB02", "node2", /*lossy=*/true));
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = d.Status();
        if (!st.ok()) return false;
        for (const auto& c : st->copies()) {
          if (c.status().unit() == "DB02" && c.status().node() == "node2") {
            return c.status().role() == v1::ACTIVE && c.status().state() == v1::MOUNTED;
          }
        }
        return false;
      },
      absl::Seconds(20)));
}

// Items into DB02 on node `active`, then its current log closed.
inline void Load(Deployment& d, int active, uint64_t mailbox, uint64_t first, uint64_t count) {
  PutItems(d.cluster(), active, "DB02", Databases("DB02"), mailbox, first, count);
  ASSERT_OK(d.cluster().RollLog(active, "DB02"));
}

// Items into DB02 on node1 until every copy has them, then a backup of
// `type` through the coordinator: its final record (it must succeed).
inline v1::JobInfo LoadAndBackUp(Deployment& d, uint64_t mailbox, uint64_t first, uint64_t count,
                                 const std::string& type) {
  Load(d, kNode1, mailbox, first, count);
  const absl::Status converged = d.cluster().WaitConverged(kNode1, "DB02");
  EXPECT_TRUE(converged.ok()) << converged;
  v1::JobInfo job = BackupWait(d, {"--unit", "DB02", "--type", type});
  EXPECT_EQ(job.state(), v1::JOB_SUCCEEDED) << job.reason();
  return job;
}

// A backup of DB02 that fails because no passive copy qualifies: both
// passive copies suspended, then a passive-only Incremental, refused (exit 1).
// The copies stay suspended.
inline void FailAPassiveOnlyBackup(Deployment& d) {
  ASSERT_OK(d.cluster().Admin(kNode2, "suspend", "DB02"));
  ASSERT_OK(d.cluster().Admin(kNode3, "suspend", "DB02"));
  ASSERT_TRUE(WaitCopyState(d, "DB02", "node2", v1::SUSPENDED));
  ASSERT_TRUE(WaitCopyState(d, "DB02", "node3", v1::SUSPENDED));
  ProcessResult refused = d.Cli({"backup", "start", "--unit", "DB02", "--type", "incremental",
                                 "--source-mode", "passive-only"});
  EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
}

// The disaster: DB02's active copy on node1 dismounted and its files gone
// (all of them, or the databases only).
inline void Wipe(Deployment& d, bool databases_only) {
  namespace fs = std::filesystem;
  ASSERT_OK(d.cluster().Admin(kNode1, "dismount", "DB02"));
  const std::string dir = d.cluster().node(kNode1).config.data_root() + "/DB02";
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".edb") fs::remove(entry.path());
  }
  if (databases_only) return;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename() != "copy.state") fs::remove_all(entry.path());
  }
}

// The ids of every manifest in the deployment's repository.
inline std::vector<std::string> RepositoryManifests(Deployment& d) {
  auto repo = repository::Repository::Open(d.repo(), repository::testing::TestPassphrase());
  EXPECT_TRUE(repo.ok()) << repo.status();
  if (!repo.ok()) return {};
  auto manifests = repo->ListManifests();
  EXPECT_TRUE(manifests.ok()) << manifests.status();
  return manifests.ok() ? *manifests : std::vector<std::string>{};
}

// Waits until the job's current attempt is transferring, and returns it.
inline absl::StatusOr<v1::JobInfo> WaitTransferring(Deployment& d, const std::string& job) {
  absl::StatusOr<v1::JobInfo> last;
  WaitFor(
      [&] {
        last = d.Job(job);
        return last.ok() &&
               (last->state() == v1::JOB_TRANSFERRING || last->state() == v1::JOB_VERIFYING ||
                last->state() == v1::JOB_SUCCEEDED || last->state() == v1::JOB_FAILED);
      },
      absl::Seconds(30));
  return last;
}

// `dagvault backup start ARGS --json`, without waiting: the job as started.
inline v1::JobInfo Start(Deployment& d, std::vector<std::string> args) {
  args.insert(args.begin(), {"backup", "start"});
  args.push_back("--json");
  ProcessResult started = d.Cli(args);
  EXPECT_EQ(started.exit_code, 0) << started.err;
  v1::JobInfo job;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(started.out, &job).ok()) << started.out;
  return job;
}

// The disaster an all-copies restore repairs: a Full of DB02, 80 items
// more that no backup has, then every file of the unit on node1 lost.
// `at_full`: DB02's digest at the Full, what a restore brings back.
inline void BackUpThenLoseDb02(Deployment& d, std::string* at_full) {
  v1::JobInfo full = LoadAndBackUp(d, 1, 0, 80, "full");
  ASSERT_EQ(full.state(), v1::JOB_SUCCEEDED);
  *at_full = UnitDigest(d.cluster(), kNode1, "DB02");
  Load(d, kNode1, 1, 80, 80);
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  Wipe(d, /*databases_only=*/false);
}

// DB02 loaded, and a Full of it started through the coordinator and
// transferring: `job` is its record then.
inline void StartTransferringFull(Deployment& d, v1::JobInfo* job) {
  ASSERT_NO_FATAL_FAILURE(LoadDb02(d));
  const v1::JobInfo started = Start(d, {"--unit", "DB02", "--type", "full"});
  ASSERT_FALSE(started.id().empty());
  auto moving = WaitTransferring(d, started.id());
  ASSERT_OK(moving.status());
  *job = *moving;
}

// The fencing token the job's assignment carried (its "assigned" event).
inline uint64_t FencingTokenOf(const v1::JobInfo& job) {
  for (const auto& e : job.events()) {
    const std::string kToken = "fencing token ";
    const size_t at = e.message().find(kToken);
    if (at != std::string::npos) {
      return std::strtoull(e.message().c_str() + at + kToken.size(), nullptr, 10);
    }
  }
  return 0;
}

// The job's backup is catalogued once, and no lease is left on any unit.
inline void ExpectOneBackupOfAndNoLease(Deployment& d, const std::string& job) {
  v1::ListBackupsResponse backups;
  ASSERT_OK(d.CliJson({"backup", "list", "--unit", "DB02"}, &backups));
  ASSERT_EQ(backups.backups_size(), 1);
  EXPECT_EQ(backups.backups(0).job(), job);
  auto status = d.Status();
  ASSERT_OK(status.status());
  EXPECT_EQ(status->leases_size(), 0) << status->DebugString();
}

// Every copy of DB02 holds `expected` (passive copies once they have
// replayed what the active copy on node1 closed).
inline void ExpectEveryCopyHolds(Deployment& d, const std::string& expected) {
  ASSERT_OK(d.cluster().WaitConverged(kNode1, "DB02"));
  for (int i = 0; i < d.cluster().size(); ++i) {
    EXPECT_EQ(UnitDigest(d.cluster(), i, "DB02"), expected) << "node" << i + 1;
  }
}

inline void ExpectPlanDone(const v1::JobInfo& job) {
  ASSERT_TRUE(job.has_plan()) << job.DebugString();
  ASSERT_EQ(job.plan().steps_size(), 7);
  for (const auto& step : job.plan().steps()) {
    EXPECT_EQ(step.state(), v1::STEP_DONE)
        << step.number() << " " << step.name() << ": " << step.detail();
  }
  // Step 7's digests: every database of every copy, all equal.
  EXPECT_EQ(job.plan().digests_size(), 3 * static_cast<int>(Databases("DB02").size()));
}

// Polls the job until step `step` runs on `node`.
inline bool WaitForStep(Deployment& d, const std::string& job, uint32_t step,
                        const std::string& node) {
  return WaitFor(
      [&] {
        auto j = d.Job(job);
        if (!j.ok() || j->plan().steps_size() < static_cast<int>(step)) return false;
        if (j->plan().steps(static_cast<int>(step) - 1).state() != v1::STEP_RUNNING) return false;
        // Steps run on several nodes at once: the node's own operation.
        for (const auto& p : j->plan().progress()) {
          if (p.node() == node && p.step() == step) return true;
        }
        return false;
      },
      absl::Seconds(60));
}

inline int NodeIndexOf(const std::string& node) {
  return node == "node1" ? kNode1 : node == "node2" ? kNode2 : kNode3;
}

// No Recovery Database left mounted or on disk (under data_root/rdb) on
// node i: what an item restore or a verification leaves behind.
inline void ExpectNoRecoveryDatabase(Deployment& d, int i) {
  auto st = d.cluster().Status(i);
  ASSERT_OK(st);
  for (const auto& u : st->units()) EXPECT_FALSE(u.recovery_database()) << u.unit();
  const std::string rdb_root = d.cluster().node(i).config.data_root() + "/rdb";
  if (std::filesystem::exists(rdb_root)) {
    EXPECT_TRUE(std::filesystem::is_empty(rdb_root)) << rdb_root;
  }
}

}  // namespace dagvault::testing
