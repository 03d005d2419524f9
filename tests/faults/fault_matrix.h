// The fault matrix (issue 15, docs/guarantees.md): a whole deployment of
// real processes (Deployment: three mailstored nodes, a coordinator, an
// agent per node, over mutual TLS) in which one fault hits one process at
// one named step of a Full backup or of an all-copies restore; then the
// system recovers and the invariants are checked. One cell per (fault,
// victim, step).
#pragma once

#include <string>
#include <vector>

namespace dagvault::testing::faults {

enum class Fault {
  kKill9,           // kill -9, then started again
  kStop,            // SIGSTOP for longer than the lease, then SIGCONT
  kClockForward,    // its wall clock steps an hour ahead (libfaketime)
  kClockBack,       // ... an hour back
  kRepositoryFull,  // the repository's filesystem fills up until the job ends
  kNetworkCut,      // its host's link is down for longer than the lease
  kLogVolumeFull,   // the unit's volume on its node fills up until the job ends
};
enum class Victim {
  kCoordinator,
  // A backup's: the source is node3's passive copy; node1 is active.
  kSourceAgent,
  kSourceMailstored,
  kActiveMailstored,
  kSourceNode,  // the whole host (network faults)
  kActiveNode,
  // A restore's: the node the step is running on when the fault strikes.
  kStepAgent,
  kStepMailstored,
  kStepNode,
};
// The job's state when the fault strikes; an agent is held there by a delay
// at a named point.
enum class Step {
  // A Full backup.
  kPreparing,
  kFrozen,
  kTransferring,
  kVerifying,
  kCompleting,
  // The seven steps of an all-copies restore (coordinator/server/restore_plan.cc).
  kSuspend,
  kDismount,
  kRestore,
  kReplay,
  kPassiveRestore,  // step 5: a passive copy restored from the repository
  kResume,
  kConfirm,
};
bool IsRestore(Step s);

struct Cell {
  Fault fault;
  Victim victim;
  Step step;
  std::string Name() const;
};

struct CellResult {
  Cell cell;
  bool injected = false;    // the job reached the step and the fault struck
  std::string job_outcome;  // the faulted job's end
  std::vector<std::string> violations;
  double seconds = 0;
  std::string logs;  // the deployment's folder (kept with DAGVAULT_KEEP_TEST_DIRS=1)
};

// Every meaningful cell (a full repository hits the agent's writes: it has
// one victim, the source agent's job).
std::vector<Cell> AllCells();
// A representative slice for the default suite: each fault, each victim,
// each kind of step at least once.
std::vector<Cell> SliceCells();

// Runs one cell in a deployment of its own.
CellResult RunCell(const Cell& cell);

// The table: one line per cell, then cells run, faults survived (injected
// with no violation) and invariant violations.
std::string Table(const std::vector<CellResult>& results);

}  // namespace dagvault::testing::faults
