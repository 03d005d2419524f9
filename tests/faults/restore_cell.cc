// A cell whose job is an all-copies restore of DB02 after a disaster on
// node1 (coordinator/server/restore_plan.cc): the fault strikes while the
// plan is at its step, on the node the step runs on. The restore must then
// finish with re-runs of the same command, and every copy must hold the
// restore point's data.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/job_state.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/faults/cell_run.h"
#include "tests/faults/cells.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing::faults {
namespace {

namespace v1 = dagvault::v1;

constexpr uint64_t kMailbox = 5, kItems = 80;
// The re-runs an operator may need: one for the fault's own stop, one more
// for a step that a restarted process failed on its way back.
constexpr int kReruns = 2;

bool Ended(const v1::JobInfo& j) { return IsFinalJobState(j.state()); }

std::string Outcome(const absl::StatusOr<v1::JobInfo>& j) {
  if (!j.ok()) return std::string(j.status().message());
  return absl::StrCat(JobStateName(j->state()),
                      j->state() == v1::JOB_SUCCEEDED ? "" : ": " + j->reason());
}

class RestoreCell : public CellRun {
 public:
  using CellRun::CellRun;

 private:
  void Scenario() override {
    if (!StartDeployment()) return;
    // The restore point: a Full of kItems items. Newer mail is lost with
    // node1's files and not in it.
    Load(*d_, kNode1, kMailbox, 0, kItems);
    if (!Check(d_->cluster().WaitConverged(kNode1, kUnit), "every copy has the items")) return;
    const v1::JobInfo full = BackupWait(*d_, {"--unit", kUnit, "--type", "full"});
    if (full.state() != v1::JOB_SUCCEEDED) {
      Violation(absl::StrCat("the Full before the restore failed: ", full.reason()));
      return;
    }
    const std::string restored = UnitDigest(d_->cluster(), kNode1, kUnit);
    Load(*d_, kNode1, kMailbox, kItems, 40);
    if (!Check(d_->cluster().WaitConverged(kNode1, kUnit), "every copy has the newer items")) {
      return;
    }
    Wipe(*d_, /*databases_only=*/false);

    auto [code, job] = JobCommand(*d_, {"restore", "start", "--unit", kUnit});
    if (code != 0 || job.id().empty()) {
      Violation("the restore did not start");
      return;
    }
    // Strike when the plan runs the step, on the node it runs on.
    int step_node = -1;
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (absl::Now() < deadline) {
      auto info = d_->Job(job.id());
      if (info.ok() && info->plan().steps_size() >= step_.plan_step &&
          info->plan().steps(step_.plan_step - 1).state() == v1::STEP_RUNNING) {
        // Steps run on several nodes at once: the first node the step's
        // operation runs on (the active copy's restore covers 3 and 4).
        const uint32_t want = step_.plan_step == 4 ? 3 : step_.plan_step;
        std::string node;
        for (const auto& p : info->plan().progress()) {
          if (p.step() == want && node.empty()) node = p.node();
        }
        for (int i = 0; i < d_->cluster().size(); ++i) {
          if (!node.empty() && d_->cluster().node(i).name == node) step_node = i;
        }
        if (step_node >= 0) {
          result_.injected = true;
          break;
        }
      }
      if (info.ok() && Ended(*info)) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (result_.injected) Strike(step_node);
    auto done = d_->WaitJob(job.id(), absl::Minutes(4));
    result_.job_outcome = Outcome(done);
    EndFault();
    Recover(/*mounted=*/false);

    // 7. A stopped restore resumes with a re-run of the same command.
    for (int run = 0; run < kReruns && !(done.ok() && done->state() == v1::JOB_SUCCEEDED); ++run) {
      (void)Check(d_->WaitReporting(absl::Seconds(60)), "every node reports before the re-run");
      auto [rerun_code, rerun] = JobCommand(*d_, {"restore", "start", "--unit", kUnit, "--wait"});
      done = rerun;
      absl::StrAppend(&result_.job_outcome, "; re-run: ", Outcome(done));
    }
    if (!done.ok() || done->state() != v1::JOB_SUCCEEDED) {
      Violation(
          absl::StrCat("the restore did not finish after ", kReruns, " re-runs: ", Outcome(done)));
      return;
    }
    CheckInvariants(restored);
  }

  void CheckInvariants(const std::string& restored) {
    // 1. Every copy holds the restore point: every item acknowledged before
    //    the Full, nothing of what came after.
    (void)Check(d_->cluster().WaitMounted(kNode1, kUnit), "the active copy is mounted");
    (void)Check(d_->cluster().WaitConverged(kNode1, kUnit), "every copy replayed the restore");
    for (int i = 0; i < d_->cluster().size(); ++i) {
      const std::string digest = UnitDigest(d_->cluster(), i, kUnit);
      if (digest != restored) {
        Violation(absl::StrCat(d_->cluster().node(i).name, " holds ", digest,
                               ", not the restore point's ", restored));
      }
    }
    // 2. No lease outlives its TTL.
    CheckLeases();
    // 3, 4. The repository checks clean and rebuilds the catalog.
    CheckRepository(CataloguedBackups());
    // 5. The next backup succeeds (a Full: the restore started the unit's
    //    log stream from the restore point).
    CheckNextBackup("full");
  }
};

}  // namespace

CellResult RunRestoreCell(const Cell& cell) { return RestoreCell(cell).Run(); }

}  // namespace dagvault::testing::faults
