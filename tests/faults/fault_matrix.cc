#include "tests/faults/fault_matrix.h"

#include <signal.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "tests/coordinator/deployment.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing::faults {
namespace {

namespace v1 = dagvault::v1;

constexpr char kUnit[] = "DB02";
constexpr uint64_t kMailbox = 7, kItems = 200;
constexpr char kLibFaketime[] = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
// How long the source agent dwells at the step: long enough to see it and
// strike on a loaded machine.
constexpr int kDwellMs = 4000;

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
  }
  return "?";
}

struct StepInfo {
  const char* name;
  const char* state;  // the job's state at the step
  const char* point;  // where the source agent dwells
};

StepInfo InfoOf(Step s) {
  switch (s) {
    case Step::kPreparing:
      return {"preparing", "preparing", "agent.backup.prepared"};
    case Step::kFrozen:
      return {"frozen", "frozen", "agent.backup.frozen"};
    case Step::kTransferring:
      return {"transferring", "transferring", "agent.backup.segment_read"};
    case Step::kVerifying:
      return {"verifying", "verifying", "repository.backup.index_written"};
    case Step::kCompleting:
      return {"completing", "completing", "agent.backup.completing"};
  }
  return {"?", "?", "?"};
}

bool IsClock(Fault f) { return f == Fault::kClockForward || f == Fault::kClockBack; }

// The source is node3's passive copy (the job prefers it); node1 is active.
int NodeOf(Victim v) { return v == Victim::kActiveMailstored ? kNode1 : kNode3; }

class CellRun {
 public:
  explicit CellRun(const Cell& cell) : cell_(cell), step_(InfoOf(cell.step)) {}

  CellResult Run() {
    const absl::Time began = absl::Now();
    result_.cell = cell_;
    DeploymentOptions o =
        Options({{"DAGVAULT_DELAY_AT", absl::StrCat(step_.point, ":", kDwellMs)}});
    if (cell_.fault == Fault::kRepositoryFull) o.repository_tmpfs_bytes = 96 << 20;
    std::string tag = absl::StrCat("fault-", cell_.Name());
    for (char& c : tag) {
      if (c == '/' || c == '+') c = '_';
    }
    d_ = std::make_unique<Deployment>(o, tag);
    if (!Check(d_->Start(), "the deployment started")) return Finish(began);
    if (IsClock(cell_.fault) && !UnderFaketime()) return Finish(began);
    Load(*d_, kNode1, kMailbox, 0, kItems);
    if (!Check(d_->cluster().WaitConverged(kNode1, kUnit), "every copy has the items")) {
      return Finish(began);
    }
    for (int i = 0; i < d_->cluster().size(); ++i) {
      auto c = d_->cluster().Copy(i, kUnit);
      if (c.ok()) lowest_before_[c->node()] = c->lowest_log_generation();
    }

    auto [code, job] = JobCommand(
        *d_, {"backup", "start", "--unit", kUnit, "--type", "full", "--prefer", "node3"});
    if (code != 0 || job.id().empty()) {
      Violation("the backup did not start");
      return Finish(began);
    }
    // Strike when the job is at the step.
    const absl::Time deadline = absl::Now() + absl::Seconds(90);
    while (absl::Now() < deadline) {
      auto info = d_->Job(job.id());
      if (info.ok() && info->state() == step_.state) {
        result_.injected = true;
        break;
      }
      if (info.ok() && (info->state() == "succeeded" || info->state() == "failed")) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (result_.injected) Strike();
    auto done = d_->WaitJob(job.id(), absl::Minutes(4));
    result_.job_outcome =
        done.ok()
            ? absl::StrCat(done->state(), done->state() == "succeeded" ? "" : ": " + done->reason())
            : std::string(done.status().message());
    if (cell_.fault == Fault::kRepositoryFull && d_->repository_fs()) d_->repository_fs()->Unfill();
    Recover();
    CheckInvariants();
    return Finish(began);
  }

 private:
  CellResult Finish(absl::Time began) {
    result_.seconds = absl::ToDoubleSeconds(absl::Now() - began);
    if (d_) result_.logs = d_->cluster().root();
    return result_;
  }

  void Violation(const std::string& what) { result_.violations.push_back(what); }
  bool Check(const absl::Status& s, const std::string& what) {
    if (!s.ok()) Violation(absl::StrCat(what, ": ", s.message()));
    return s.ok();
  }

  // The victim starts again under libfaketime, its wall clock driven by a
  // file (the monotonic clock is left alone, as a real clock step does).
  bool UnderFaketime() {
    stamp_ = d_->cluster().root() + "/faketime.stamp";
    if (!Check(WriteFileAtomically(stamp_, "+0\n"), "faketime stamp")) return false;
    env_ = {{"LD_PRELOAD", kLibFaketime},
            {"FAKETIME_TIMESTAMP_FILE", stamp_},
            {"FAKETIME_NO_CACHE", "1"},
            {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}};
    if (!PathExists(kLibFaketime)) {
      Violation(
          absl::StrCat(kLibFaketime, " is missing (deploy/install-deps.sh installs faketime)"));
      return false;
    }
    return Restart(/*killed=*/false);
  }

  // Starts the victim again (with the faketime environment, if any).
  bool Restart(bool killed) {
    switch (cell_.victim) {
      case Victim::kCoordinator:
        if (!killed) d_->KillCoordinator();
        return Check(d_->StartCoordinator(env_), "the coordinator started again");
      case Victim::kSourceAgent:
        d_->KillAgent(kNode3);
        return Check(d_->StartAgent(kNode3, env_), "the agent started again");
      case Victim::kSourceMailstored:
      case Victim::kActiveMailstored: {
        const int i = NodeOf(cell_.victim);
        if (!killed) (void)d_->cluster().StopNode(i);
        return Check(d_->cluster().StartNode(i, {}, env_), "mailstored started again");
      }
    }
    return false;
  }

  pid_t VictimPid() {
    switch (cell_.victim) {
      case Victim::kCoordinator:
        return d_->CoordinatorPid();
      case Victim::kSourceAgent:
        return d_->AgentPid(kNode3);
      default:
        return d_->cluster().Pid(NodeOf(cell_.victim));
    }
  }

  void Strike() {
    switch (cell_.fault) {
      case Fault::kKill9:
        switch (cell_.victim) {
          case Victim::kCoordinator:
            d_->KillCoordinator();
            break;
          case Victim::kSourceAgent:
            d_->KillAgent(kNode3);
            break;
          default:
            d_->cluster().KillNode(NodeOf(cell_.victim));
        }
        absl::SleepFor(absl::Seconds(1));
        (void)Restart(/*killed=*/true);
        break;
      case Fault::kStop: {
        const pid_t pid = VictimPid();
        if (pid <= 0 || kill(pid, SIGSTOP) != 0) {
          Violation("the victim could not be stopped");
          break;
        }
        // Past the lease (4 s in these deployments), and past the writers'
        // session timeout (3 s).
        absl::SleepFor(absl::Seconds(7));
        kill(pid, SIGCONT);
        break;
      }
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
    }
  }

  // Whatever died stays dead no longer: every process runs, every node
  // reports.
  void Recover() {
    for (int i = 0; i < d_->cluster().size(); ++i) {
      if (!d_->cluster().Running(i)) (void)Check(d_->cluster().StartNode(i), "node restart");
    }
    if (d_->CoordinatorPid() <= 0) (void)Check(d_->StartCoordinator(), "coordinator restart");
    for (int i = 0; i < d_->cluster().size(); ++i) {
      if (!d_->AgentRunning(i)) (void)Check(d_->StartAgent(i), "agent restart");
    }
    (void)Check(d_->cluster().WaitMounted(kNode1, kUnit), "the active copy is mounted");
    (void)Check(d_->WaitReporting(absl::Seconds(60)), "every node reports");
  }

  void CheckInvariants() {
    auto& cluster = d_->cluster();
    // 1. Every item acknowledged before the fault is on the active copy
    //    (and so in the newest restore point or still to be backed up).
    uint64_t missing = 0;
    for (uint64_t item = 0; item < kItems; ++item) {
      const auto& dbs = Databases(kUnit);
      auto got = cluster.Get(kNode1, kUnit, dbs[item % dbs.size()], kMailbox, item);
      if (!got.ok() || !got->has_value() || **got != ItemValue(kMailbox, item)) ++missing;
    }
    if (missing > 0)
      Violation(absl::StrCat(missing, " acknowledged items are not on the active copy"));

    // 2. No lease outlives its TTL: within a TTL and a report or two of
    //    the job's end, every lease left belongs to a running job.
    std::vector<std::string> held;
    const bool clear = WaitFor(
        [&] {
          held.clear();
          auto catalog = coordinator::SqliteCatalog::Open(cluster.root() + "/catalog.db");
          if (!catalog.ok()) return false;
          auto leases = (*catalog)->Leases();
          if (!leases.ok()) return false;
          for (const auto& l : *leases) {
            auto job = d_->Job(l.job);
            if (!job.ok() || job->state() == "succeeded" || job->state() == "failed" ||
                job->state() == "cancelled") {
              held.push_back(absl::StrCat(l.unit, " by ", l.job));
            }
          }
          return held.empty();
        },
        absl::Seconds(15));
    if (!clear) Violation(absl::StrCat("leases held past their job: ", absl::StrJoin(held, ", ")));

    // 3. No generation is truncated unless a verified Full or Incremental
    //    covers it.
    v1::ListBackupsResponse listed;
    (void)Check(d_->CliJson({"backup", "list", "--unit", kUnit}, &listed), "backup list");
    uint32_t covered = 0;
    std::set<std::string> catalogued;
    for (const auto& b : listed.backups()) {
      catalogued.insert(b.manifest());
      if (b.verified() && (b.type() == v1::FULL || b.type() == v1::INCREMENTAL)) {
        covered = std::max(covered, b.high_generation());
      }
    }
    for (int i = 0; i < cluster.size(); ++i) {
      auto c = cluster.Copy(i, kUnit);
      if (!c.ok()) continue;
      const uint32_t lowest = c->lowest_log_generation();
      if (lowest > lowest_before_[c->node()] && lowest > covered + 1) {
        Violation(absl::StrFormat(
            "%s truncated up to generation 0x%08X, but verified backups cover only 0x%08X",
            c->node(), lowest - 1, covered));
      }
    }

    // 4. The repository checks clean, reading every chunk.
    ProcessResult check =
        RunProcess({BinaryPath("dagvault"), "repo", "check", "--repo", d_->repo(), "--read-data",
                    "--passphrase-file", cluster.root() + "/passphrase"});
    if (!check.ok()) Violation(absl::StrCat("repo check --read-data: ", check.out, check.err));

    // 5. A catalog rebuilt from the repository lists the same backups.
    ProcessResult rebuilt = d_->Cli({"catalog", "rebuild"});
    v1::ListBackupsResponse after;
    if (!rebuilt.ok() || !d_->CliJson({"backup", "list", "--unit", kUnit}, &after).ok()) {
      Violation(absl::StrCat("catalog rebuild: ", rebuilt.err));
    } else {
      std::set<std::string> found;
      for (const auto& b : after.backups()) found.insert(b.manifest());
      if (found != catalogued) {
        Violation(absl::StrCat("the catalog listed {", absl::StrJoin(catalogued, ", "),
                               "} but the repository holds {", absl::StrJoin(found, ", "), "}"));
      }
    }

    // 6. The next backup of the unit succeeds.
    Load(*d_, kNode1, kMailbox, kItems, 20);
    (void)Check(cluster.WaitConverged(kNode1, kUnit), "every copy has the new items");
    const v1::JobInfo next = BackupWait(*d_, {"--unit", kUnit, "--type", "incremental"});
    if (next.state() != "succeeded") {
      Violation(
          absl::StrCat("the next backup did not succeed: ", next.state(), " ", next.reason()));
    }
  }

  const Cell cell_;
  const StepInfo step_;
  CellResult result_;
  std::unique_ptr<Deployment> d_;
  std::map<std::string, std::string> env_;
  std::string stamp_;
  std::map<std::string, uint32_t> lowest_before_;
};

}  // namespace

std::string Cell::Name() const {
  return absl::StrCat(FaultName(fault), "/", VictimName(victim), "/", InfoOf(step).name);
}

std::vector<Cell> AllCells() {
  std::vector<Cell> out;
  for (Fault f : {Fault::kKill9, Fault::kStop, Fault::kClockForward, Fault::kClockBack}) {
    for (Victim v : {Victim::kCoordinator, Victim::kSourceAgent, Victim::kSourceMailstored,
                     Victim::kActiveMailstored}) {
      for (Step s : {Step::kPreparing, Step::kFrozen, Step::kTransferring, Step::kVerifying,
                     Step::kCompleting}) {
        out.push_back({f, v, s});
      }
    }
  }
  for (Step s : {Step::kTransferring, Step::kVerifying}) {
    out.push_back({Fault::kRepositoryFull, Victim::kSourceAgent, s});
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
  };
}

CellResult RunCell(const Cell& cell) { return CellRun(cell).Run(); }

std::string Table(const std::vector<CellResult>& results) {
  std::string out = absl::StrFormat("%-45s %-8s %-7s %-10s %s\n", "cell", "struck", "secs",
                                    "violations", "the faulted job");
  size_t struck = 0, survived = 0, violations = 0;
  for (const auto& r : results) {
    std::string outcome = r.job_outcome.substr(0, 90);
    absl::StrAppend(
        &out, absl::StrFormat("%-45s %-8s %-7.1f %-10d %s\n", r.cell.Name(),
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
