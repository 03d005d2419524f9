// The fault matrix (issue 15, docs/guarantees.md): a whole deployment of
// real processes (Deployment: three mailstored nodes, a coordinator, an
// agent per node, over mutual TLS) in which one fault hits one process at
// one named step of a Full backup; then the system recovers and the
// invariants are checked. One cell per (fault, victim, step).
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
};
enum class Victim { kCoordinator, kSourceAgent, kSourceMailstored, kActiveMailstored };
// The job's state when the fault strikes; the source agent is held there
// by a delay at the named point.
enum class Step { kPreparing, kFrozen, kTransferring, kVerifying, kCompleting };

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
// each step at least once.
std::vector<Cell> SliceCells();

// Runs one cell in a deployment of its own.
CellResult RunCell(const Cell& cell);

// The table: one line per cell, then cells run, faults survived (injected
// with no violation) and invariant violations.
std::string Table(const std::vector<CellResult>& results);

}  // namespace dagvault::testing::faults
