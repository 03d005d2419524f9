#include "tests/faults/cell_run.h"

#include <signal.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/job_state.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing::faults {

namespace v1 = dagvault::v1;

namespace {

constexpr char kLibFaketime[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
// Past the lease (4 s in these deployments), and past the writers' session
// timeout (3 s).
constexpr absl::Duration kOutage = absl::Seconds(7);

}  // namespace

StepInfo InfoOf(Step s) {
  switch (s) {
    case Step::kPreparing:
      return {"preparing", "agent.backup.prepared", "preparing", 0};
    case Step::kFrozen:
      return {"frozen", "agent.backup.frozen", "frozen", 0};
    case Step::kTransferring:
      return {"transferring", "agent.backup.segment_read", "transferring", 0};
    case Step::kVerifying:
      return {"verifying", "repository.backup.index_written", "verifying", 0};
    case Step::kCompleting:
      return {"completing", "agent.backup.completing", "completing", 0};
    // The points of node-agent/daemon/copy_operations.cc and
    // node-agent/jobs/restore_job.cc.
    case Step::kSuspend:
      return {"restore.1-suspend", "agent.copy_op.suspend", "", 1};
    case Step::kDismount:
      return {"restore.2-dismount", "agent.copy_op.dismount", "", 2};
    case Step::kRestore:
      return {"restore.3-restore", "agent.restore.step", "", 3};
    case Step::kReplay:
      return {"restore.4-replay", "agent.restore.replaying", "", 4};
    case Step::kPassiveRestore:
      return {"restore.5-passive", "agent.restore.passive", "", 5};
    case Step::kResume:
      return {"restore.6-resume", "agent.copy_op.resume", "", 6};
    case Step::kConfirm:
      return {"restore.7-confirm", "agent.copy_op.digest", "", 7};
  }
  return {"?", "?", "?", 0};
}

bool IsRestore(Step s) { return InfoOf(s).plan_step != 0; }

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kKill9:
      return "kill-9";
    case Fault::kStop:
      return "sigstop";
    case Fault::kClockForward:
      return "clock+1h";
    case Fault::kClockBack:
      return "clock-1h";
    case Fault::kRepositoryFull:
      return "repo-full";
    case Fault::kNetworkCut:
      return "net-cut";
    case Fault::kLogVolumeFull:
      return "log-volume-full";
  }
  return "?";
}

const char* VictimName(Victim v) {
  switch (v) {
    case Victim::kCoordinator:
      return "coordinator";
    case Victim::kSourceAgent:
      return "source-agent";
    case Victim::kSourceMailstored:
      return "source-mailstored";
    case Victim::kActiveMailstored:
      return "active-mailstored";
    case Victim::kSourceNode:
      return "source-node";
    case Victim::kActiveNode:
      return "active-node";
    case Victim::kStepAgent:
      return "step-agent";
    case Victim::kStepMailstored:
      return "step-mailstored";
    case Victim::kStepNode:
      return "step-node";
  }
  return "?";
}

bool RepositoryOnS3() {
  const char* where = std::getenv("DAGVAULT_FAULT_REPOSITORY");
  return where != nullptr && std::string(where) == "s3";
}

std::string WhyNotOnS3(const Cell& cell) {
  if (cell.fault == Fault::kRepositoryFull) {
    return "a full repository is a full filesystem; a bucket has no size to fill";
  }
  if (cell.fault == Fault::kNetworkCut) {
    return "the nodes' network namespaces do not reach radosgw on the host's 127.0.0.1";
  }
  return "";
}

bool IsClock(Fault f) { return f == Fault::kClockForward || f == Fault::kClockBack; }

CellResult CellRun::Run() {
  const absl::Time began = absl::Now();
  result_.cell = cell_;
  Scenario();
  result_.seconds = absl::ToDoubleSeconds(absl::Now() - began);
  if (d_) result_.logs = d_->cluster().root();
  return result_;
}

bool CellRun::Check(const absl::Status& s, const std::string& what) {
  if (!s.ok()) Violation(absl::StrCat(what, ": ", s.message()));
  return s.ok();
}

bool CellRun::StartDeployment() {
  DeploymentOptions o = Options({{"DAGVAULT_DELAY_AT", absl::StrCat(step_.point, ":", kDwellMs)}});
  if (cell_.fault == Fault::kRepositoryFull) o.repository_tmpfs_bytes = 96 << 20;
  if (RepositoryOnS3()) {
    // A prefix of its own in the run's bucket (tests/s3/ceph-rgw.sh).
    auto store = repository::testing::MakeTestStore(repository::testing::Backend::kS3, "fault");
    if (!Check(store.status(), "an S3 repository for the cell")) return false;
    o.repository_url = store->location;
  }
  if (cell_.fault == Fault::kNetworkCut) o.network_namespaces = true;
  if (cell_.fault == Fault::kLogVolumeFull) {
    o.unit_volume_bytes = 64 << 20;
    o.unit_volume_node = cell_.victim == Victim::kActiveMailstored ? kNode1 : kNode3;
    o.unit_volume_unit = kUnit;
  }
  std::string tag = absl::StrCat("fault-", cell_.Name());
  for (char& c : tag) {
    if (c == '/' || c == '+') c = '_';
  }
  d_ = std::make_unique<Deployment>(o, tag);
  return Check(d_->Start(), "the deployment started");
}

CellRun::Target CellRun::TargetOf(int step_node) const {
  switch (cell_.victim) {
    case Victim::kCoordinator:
      return {Kind::kCoordinator, -1};
    case Victim::kSourceAgent:
    case Victim::kStepAgent:
      return {Kind::kAgent, step_node};
    case Victim::kSourceMailstored:
    case Victim::kStepMailstored:
      return {Kind::kMailstored, step_node};
    case Victim::kActiveMailstored:
      return {Kind::kMailstored, kNode1};
    case Victim::kSourceNode:
    case Victim::kStepNode:
      return {Kind::kHost, step_node};
    case Victim::kActiveNode:
      return {Kind::kHost, kNode1};
  }
  return {Kind::kCoordinator, -1};
}

int CellRun::HostOf(const Target& t) const {
  return t.kind == Kind::kCoordinator ? kCoordinatorHost : HostOfNode(t.node);
}

pid_t CellRun::PidOf(const Target& t) {
  switch (t.kind) {
    case Kind::kCoordinator:
      return d_->CoordinatorPid();
    case Kind::kAgent:
      return d_->AgentPid(t.node);
    case Kind::kMailstored:
      return d_->cluster().Pid(t.node);
    case Kind::kHost:
      return -1;
  }
  return -1;
}

bool CellRun::Restart(const Target& t, bool killed) {
  switch (t.kind) {
    case Kind::kCoordinator:
      if (!killed) d_->KillCoordinator();
      return Check(d_->StartCoordinator(env_), "the coordinator started again");
    case Kind::kAgent:
      d_->KillAgent(t.node);
      return Check(d_->StartAgent(t.node, env_), "the agent started again");
    case Kind::kMailstored:
      if (!killed) (void)d_->cluster().StopNode(t.node);
      return Check(d_->cluster().StartNode(t.node, {}, env_), "mailstored started again");
    case Kind::kHost:
      break;
  }
  Violation("a host cannot be restarted");
  return false;
}

bool CellRun::UnderFaketime(int step_node) {
  stamp_ = d_->cluster().root() + "/faketime.stamp";
  if (!Check(WriteFileAtomically(stamp_, "+0\n"), "faketime stamp")) return false;
  env_ = {{"LD_PRELOAD", kLibFaketime},
          {"FAKETIME_TIMESTAMP_FILE", stamp_},
          {"FAKETIME_NO_CACHE", "1"},
          {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
  if (!PathExists(kLibFaketime)) {
    Violation(absl::StrCat(kLibFaketime, " is missing (deploy/install-deps.sh installs faketime)"));
    return false;
  }
  return Restart(TargetOf(step_node), /*killed=*/false);
}

void CellRun::Strike(int step_node) {
  const Target t = TargetOf(step_node);
  switch (cell_.fault) {
    case Fault::kKill9:
      switch (t.kind) {
        case Kind::kCoordinator:
          d_->KillCoordinator();
          break;
        case Kind::kAgent:
          d_->KillAgent(t.node);
          break;
        case Kind::kMailstored:
          d_->cluster().KillNode(t.node);
          break;
        case Kind::kHost:
          Violation("a host cannot be killed");
          return;
      }
      absl::SleepFor(absl::Seconds(1));
      (void)Restart(t, /*killed=*/true);
      break;
    case Fault::kStop: {
      const pid_t pid = PidOf(t);
      if (pid <= 0 || kill(pid, SIGSTOP) != 0) {
        Violation("the victim could not be stopped");
        break;
      }
      absl::SleepFor(kOutage);
      kill(pid, SIGCONT);
      break;
    }
    case Fault::kNetworkCut:
      if (!d_->network()->Cut(HostOf(t))) {
        Violation(absl::StrCat("the cut: ", d_->network()->error()));
        break;
      }
      absl::SleepFor(kOutage);
      if (!d_->network()->Heal(HostOf(t))) {
        Violation(absl::StrCat("the heal: ", d_->network()->error()));
      }
      break;
    case Fault::kClockForward:
    case Fault::kClockBack:
      (void)Check(
          WriteFileAtomically(stamp_, cell_.fault == Fault::kClockForward ? "+1h\n" : "-1h\n"),
          "the clock step");
      break;
    case Fault::kRepositoryFull:
      if (!d_->repository_fs() || !d_->repository_fs()->Fill()) {
        Violation("the repository's filesystem could not be filled");
      }
      break;
    case Fault::kLogVolumeFull:
      if (!d_->unit_volume() || !d_->unit_volume()->Fill()) {
        Violation("the unit's volume could not be filled");
      }
      break;
  }
}

void CellRun::EndFault() {
  if (cell_.fault == Fault::kRepositoryFull && d_->repository_fs()) d_->repository_fs()->Unfill();
  if (cell_.fault == Fault::kLogVolumeFull && d_->unit_volume()) {
    // What an operator does after a full log volume: free space, then mount
    // the unit if the failure dismounted it (the active copy does that).
    d_->unit_volume()->Unfill();
    auto copy = d_->cluster().Copy(kNode1, kUnit);
    if (copy.ok() && copy->state() == v1::DISMOUNTED) {
      (void)Check(d_->cluster().Admin(kNode1, "mount", kUnit), "the operator's mount");
    }
  }
}

void CellRun::Recover(bool mounted) {
  if (d_->network() != nullptr) {
    for (int h = 0; h <= d_->cluster().size(); ++h) (void)d_->network()->Heal(h);
  }
  for (int i = 0; i < d_->cluster().size(); ++i) {
    if (!d_->cluster().Running(i)) (void)Check(d_->cluster().StartNode(i), "node restart");
  }
  if (d_->CoordinatorPid() <= 0) (void)Check(d_->StartCoordinator(), "coordinator restart");
  for (int i = 0; i < d_->cluster().size(); ++i) {
    if (!d_->AgentRunning(i)) (void)Check(d_->StartAgent(i), "agent restart");
  }
  if (mounted) (void)Check(d_->cluster().WaitMounted(kNode1, kUnit), "the active copy is mounted");
  (void)Check(d_->WaitReporting(absl::Seconds(60)), "every node reports");
}

void CellRun::CheckLeases() {
  std::vector<std::string> held;
  const bool clear = WaitFor(
      [&] {
        held.clear();
        auto catalog = coordinator::SqliteCatalog::Open(d_->cluster().root() + "/catalog.db");
        if (!catalog.ok()) return false;
        auto leases = (*catalog)->Leases();
        if (!leases.ok()) return false;
        for (const auto& l : *leases) {
          auto job = d_->Job(l.job);
          if (!job.ok() || IsFinalJobState(job->state())) {
            held.push_back(absl::StrCat(l.unit, " by ", l.job));
          }
        }
        return held.empty();
      },
      absl::Seconds(15));
  if (!clear) Violation(absl::StrCat("leases held past their job: ", absl::StrJoin(held, ", ")));
}

std::set<std::string> CellRun::CataloguedBackups(uint32_t* covered) {
  // An attempt the coordinator gave up on may still be finishing on its
  // node (a BackupComplete that waits out an unreachable active copy): its
  // verified backup reaches the catalog when its result is delivered. The
  // catalog is read once it lists what the repository holds, or after 30 s
  // (then invariant 5 names what it lacks).
  std::set<std::string> out;
  const std::vector<std::string> held = RepositoryManifests(*d_);
  const std::set<std::string> in_repository(held.begin(), held.end());
  v1::ListBackupsResponse listed;
  WaitFor(
      [&] {
        listed.Clear();
        out.clear();
        if (!d_->CliJson({"backup", "list", "--unit", kUnit}, &listed).ok()) return false;
        for (const auto& b : listed.backups()) out.insert(b.manifest());
        return out == in_repository;
      },
      absl::Seconds(30));
  for (const auto& b : listed.backups()) {
    if (covered != nullptr && b.verified() &&
        (b.type() == v1::FULL || b.type() == v1::INCREMENTAL)) {
      *covered = std::max(*covered, b.high_generation());
    }
  }
  return out;
}

void CellRun::CheckRepository(const std::set<std::string>& catalogued) {
  ProcessResult check =
      RunProcess({BinaryPath("dagvault"), "repo", "check", "--repo", d_->repo(), "--read-data",
                  "--passphrase-file", d_->cluster().root() + "/passphrase"});
  if (!check.ok()) Violation(absl::StrCat("repo check --read-data: ", check.out, check.err));

  ProcessResult rebuilt = d_->Cli({"catalog", "rebuild"});
  v1::ListBackupsResponse after;
  if (!rebuilt.ok() || !d_->CliJson({"backup", "list", "--unit", kUnit}, &after).ok()) {
    Violation(absl::StrCat("catalog rebuild: ", rebuilt.err));
    return;
  }
  std::set<std::string> found;
  for (const auto& b : after.backups()) found.insert(b.manifest());
  if (found != catalogued) {
    Violation(absl::StrCat("the catalog listed {", absl::StrJoin(catalogued, ", "),
                           "} but the repository holds {", absl::StrJoin(found, ", "), "}"));
  }
}

void CellRun::CheckNextBackup(const std::string& type) {
  PutItems(d_->cluster(), kNode1, kUnit, Databases(kUnit), /*mailbox=*/99, 0, 20);
  (void)Check(d_->cluster().RollLog(kNode1, kUnit), "a log roll");
  (void)Check(d_->cluster().WaitConverged(kNode1, kUnit), "every copy has the new items");
  const v1::JobInfo next = BackupWait(*d_, {"--unit", kUnit, "--type", type});
  if (next.state() != v1::JOB_SUCCEEDED) {
    Violation(absl::StrCat("the next backup did not succeed: ", JobStateName(next.state()), " ",
                           next.reason()));
  }
}

}  // namespace dagvault::testing::faults
