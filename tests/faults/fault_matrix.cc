#include "tests/faults/fault_matrix.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tests/faults/cell_run.h"
#include "tests/faults/cells.h"

namespace dagvault::testing::faults {

std::string Cell::Name() const {
  return absl::StrCat(FaultName(fault), "/", VictimName(victim), "/", InfoOf(step).name);
}

std::vector<Cell> AllCells() {
  constexpr Step kBackupSteps[] = {Step::kPreparing, Step::kFrozen, Step::kTransferring,
                                   Step::kVerifying, Step::kCompleting};
  constexpr Step kRestoreSteps[] = {Step::kSuspend, Step::kDismount,       Step::kRestore,
                                    Step::kReplay,  Step::kPassiveRestore, Step::kResume,
                                    Step::kConfirm};
  std::vector<Cell> out;
  // A backup: a process fault on each process of the job.
  for (Fault f : {Fault::kKill9, Fault::kStop, Fault::kClockForward, Fault::kClockBack}) {
    for (Victim v : {Victim::kCoordinator, Victim::kSourceAgent, Victim::kSourceMailstored,
                     Victim::kActiveMailstored}) {
      for (Step s : kBackupSteps) out.push_back({f, v, s});
    }
  }
  // ... a network cut of each host of the job.
  for (Victim v : {Victim::kCoordinator, Victim::kSourceNode, Victim::kActiveNode}) {
    for (Step s : kBackupSteps) out.push_back({Fault::kNetworkCut, v, s});
  }
  // ... a full filesystem where the job writes: the repository (the source
  // agent's writes) and the unit's volume on the source and active node.
  for (Step s : {Step::kTransferring, Step::kVerifying}) {
    out.push_back({Fault::kRepositoryFull, Victim::kSourceAgent, s});
  }
  for (Victim v : {Victim::kSourceMailstored, Victim::kActiveMailstored}) {
    for (Step s : {Step::kFrozen, Step::kTransferring}) {
      out.push_back({Fault::kLogVolumeFull, v, s});
    }
  }
  // An all-copies restore: each fault that stops a step, on each part of
  // it, at each of its seven steps. (A clock step moves no monotonic
  // deadline, and a restore's writes are its steps' own.) A network cut
  // takes a node's agent and mailstored together: one victim, not two.
  for (Fault f : {Fault::kKill9, Fault::kStop, Fault::kNetworkCut}) {
    const std::vector<Victim> victims =
        f == Fault::kNetworkCut ? std::vector<Victim>{Victim::kCoordinator, Victim::kStepNode}
                                : std::vector<Victim>{Victim::kCoordinator, Victim::kStepAgent,
                                                      Victim::kStepMailstored};
    for (Victim v : victims) {
      for (Step s : kRestoreSteps) out.push_back({f, v, s});
    }
  }
  return out;
}

std::vector<Cell> SliceCells() {
  return {
      {Fault::kKill9, Victim::kSourceAgent, Step::kTransferring},
      {Fault::kKill9, Victim::kSourceMailstored, Step::kCompleting},
      {Fault::kKill9, Victim::kCoordinator, Step::kVerifying},
      {Fault::kKill9, Victim::kActiveMailstored, Step::kFrozen},
      {Fault::kStop, Victim::kSourceAgent, Step::kPreparing},
      {Fault::kStop, Victim::kCoordinator, Step::kTransferring},
      {Fault::kClockBack, Victim::kSourceAgent, Step::kTransferring},
      {Fault::kClockForward, Victim::kCoordinator, Step::kTransferring},
      {Fault::kRepositoryFull, Victim::kSourceAgent, Step::kTransferring},
      {Fault::kNetworkCut, Victim::kSourceNode, Step::kTransferring},
      {Fault::kLogVolumeFull, Victim::kSourceMailstored, Step::kTransferring},
      {Fault::kKill9, Victim::kStepAgent, Step::kPassiveRestore},
      {Fault::kNetworkCut, Victim::kCoordinator, Step::kRestore},
      {Fault::kKill9, Victim::kCoordinator, Step::kReplay},
  };
}

CellResult RunCell(const Cell& cell) {
  return IsRestore(cell.step) ? RunRestoreCell(cell) : RunBackupCell(cell);
}

std::string Table(const std::vector<CellResult>& results) {
  std::string out = absl::StrFormat("%-52s %-8s %-7s %-10s %s\n", "cell", "struck", "secs",
                                    "violations", "the faulted job");
  size_t struck = 0, survived = 0, violations = 0;
  for (const auto& r : results) {
    // The job's end, short; and how its re-runs ended, if it had any.
    std::string outcome = r.job_outcome.substr(0, 70);
    if (const size_t rerun = r.job_outcome.rfind("; re-run: "); rerun != std::string::npos) {
      absl::StrAppend(&outcome, " ...", r.job_outcome.substr(rerun, 40));
    }
    absl::StrAppend(
        &out, absl::StrFormat("%-52s %-8s %-7.1f %-10d %s\n", r.cell.Name(),
                              r.injected ? "yes" : "NO", r.seconds, r.violations.size(), outcome));
    for (const auto& v : r.violations) absl::StrAppend(&out, "    violation: ", v, "\n");
    if (!r.violations.empty()) absl::StrAppend(&out, "    logs: ", r.logs, "\n");
    struck += r.injected;
    survived += r.injected && r.violations.empty();
    violations += r.violations.size();
  }
  absl::StrAppend(
      &out, absl::StrFormat("cells run: %d; faults struck: %d; faults survived: %d; invariant "
                            "violations: %d\n",
                            results.size(), struck, survived, violations));
  return out;
}

}  // namespace dagvault::testing::faults
