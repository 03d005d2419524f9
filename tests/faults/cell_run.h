// What every cell of the fault matrix shares (fault_matrix.h): the
// deployment, striking the victim, recovering, and the invariants that do
// not depend on the job. BackupCell and RestoreCell (backup_cell.cc,
// restore_cell.cc) drive their job to the step and check the rest.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "tests/coordinator/deployment.h"
#include "tests/faults/fault_matrix.h"

namespace dagvault::testing::faults {

inline constexpr char kUnit[] = "DB02";
// How long an agent dwells at the step: long enough to see it and strike on
// a loaded machine.
inline constexpr int kDwellMs = 4000;

struct StepInfo {
  const char* name;
  const char* point;  // where the agent dwells
  // A backup's: the job's state at the step. A restore's: the plan's step.
  const char* state;
  int plan_step;
};
StepInfo InfoOf(Step s);
const char* FaultName(Fault f);
const char* VictimName(Victim v);
bool IsClock(Fault f);
// DAGVAULT_FAULT_REPOSITORY=s3: each cell's repository is a fresh prefix in
// the run's S3 bucket ($DAGVAULT_TEST_S3) instead of a folder.
bool RepositoryOnS3();
// Why a cell cannot run with its repository on S3, or "".
std::string WhyNotOnS3(const Cell& cell);

class CellRun {
 public:
  explicit CellRun(const Cell& cell) : cell_(cell), step_(InfoOf(cell.step)) {}
  virtual ~CellRun() = default;

  CellResult Run();

 protected:
  // The job, from after the deployment started to its invariants.
  virtual void Scenario() = 0;

  // Starts the deployment with the agents dwelling at the step.
  bool StartDeployment();
  void Violation(const std::string& what) { result_.violations.push_back(what); }
  bool Check(const absl::Status& s, const std::string& what);

  // The victim (at `step_node`, the node the job's step runs on) starts
  // again under libfaketime, its wall clock driven by a file.
  bool UnderFaketime(int step_node);
  // The fault, on the victim at `step_node`; it lasts until it is over (a
  // kill restarted, a stop continued, a cut healed) or, for a full
  // filesystem, until EndFault.
  void Strike(int step_node);
  void EndFault();
  // Whatever died stays dead no longer: every process runs, every link is
  // up, every node reports; with `mounted`, node1's active copy mounts.
  void Recover(bool mounted);

  // Invariants every job keeps.
  // No lease outlives its TTL: within a TTL and a report or two of the
  // job's end, every lease left belongs to a running job.
  void CheckLeases();
  // The catalog's backups of the unit (and which verified ones cover up to
  // which generation).
  std::set<std::string> CataloguedBackups(uint32_t* covered = nullptr);
  // `repo check --read-data` is clean, and a catalog rebuilt from the
  // repository lists `catalogued`.
  void CheckRepository(const std::set<std::string>& catalogued);
  // New mail on node1 reaches every copy and a backup of `type` succeeds.
  void CheckNextBackup(const std::string& type);

  const Cell cell_;
  const StepInfo step_;
  CellResult result_;
  std::unique_ptr<Deployment> d_;

 private:
  enum class Kind { kCoordinator, kAgent, kMailstored, kHost };
  struct Target {
    Kind kind;
    int node;  // for agents, mailstored and hosts of nodes
  };
  Target TargetOf(int step_node) const;
  // Starts the target again (with the faketime environment, if any).
  bool Restart(const Target& t, bool killed);
  pid_t PidOf(const Target& t);
  int HostOf(const Target& t) const;

  std::map<std::string, std::string> env_;
  std::string stamp_;
};

}  // namespace dagvault::testing::faults
