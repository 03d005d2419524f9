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

}  // namespace dagvault::testing
