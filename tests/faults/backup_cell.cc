// A cell whose job is a Full backup of DB02 from node3's passive copy (the
// job prefers it; node1 is active): the fault strikes at the backup's step.
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/job_state.h"
#include "tests/coordinator/deployment_test_util.h"
#include "tests/faults/cell_run.h"
#include "tests/faults/cells.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::testing::faults {
namespace {

namespace v1 = dagvault::v1;

constexpr uint64_t kMailbox = 7, kItems = 200;
constexpr int kSource = kNode3;

class BackupCell : public CellRun {
 public:
  using CellRun::CellRun;

 private:
  void Scenario() override {
    if (!StartDeployment()) return;
    if (IsClock(cell_.fault) && !UnderFaketime(kSource)) return;
    Load(*d_, kNode1, kMailbox, 0, kItems);
    if (!Check(d_->cluster().WaitConverged(kNode1, kUnit), "every copy has the items")) return;
    for (int i = 0; i < d_->cluster().size(); ++i) {
      auto c = d_->cluster().Copy(i, kUnit);
      if (c.ok()) lowest_before_[c->node()] = c->lowest_log_generation();
    }

    auto [code, job] = JobCommand(
        *d_, {"backup", "start", "--unit", kUnit, "--type", "full", "--prefer", "node3"});
    if (code != 0 || job.id().empty()) {
      Violation("the backup did not start");
      return;
    }
    // Strike when the job is at the step.
    const absl::Time deadline = absl::Now() + absl::Seconds(90);
    while (absl::Now() < deadline) {
      auto info = d_->Job(job.id());
      if (info.ok() && JobStateName(info->state()) == step_.state) {
        result_.injected = true;
        break;
      }
      if (info.ok() && (info->state() == v1::JOB_SUCCEEDED || info->state() == v1::JOB_FAILED))
        break;
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (result_.injected) Strike(kSource);
    // A full volume bites only what writes to it: mail keeps arriving on
    // the active copy while the job runs (and, for the source's volume,
    // its logs keep coming to the passive copy).
    std::atomic<bool> stop{false};
    std::thread mail;
    if (cell_.fault == Fault::kLogVolumeFull && result_.injected) {
      mail = std::thread([&] { MailUntil(stop); });
    }
    auto done = d_->WaitJob(job.id(), absl::Minutes(4));
    stop = true;
    if (mail.joinable()) mail.join();
    result_.job_outcome =
        done.ok() ? absl::StrCat(JobStateName(done->state()),
                                 done->state() == v1::JOB_SUCCEEDED ? "" : ": " + done->reason())
                  : std::string(done.status().message());
    EndFault();
    Recover(/*mounted=*/true);
    CheckInvariants();
  }

  // Items into node1 one by one, closing a log every 20, until `stop`;
  // the ones acknowledged are kept in acknowledged_.
  void MailUntil(const std::atomic<bool>& stop) {
    const auto& dbs = Databases(kUnit);
    for (uint64_t item = kItems; !stop; ++item) {
      if (d_->cluster()
              .Put(kNode1, kUnit, dbs[item % dbs.size()], kMailbox, item, ItemValue(kMailbox, item))
              .ok()) {
        acknowledged_.push_back(item);
      } else {
        ++refused_;
      }
      if (item % 20 == 0) (void)d_->cluster().RollLog(kNode1, kUnit);
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  void CheckInvariants() {
    auto& cluster = d_->cluster();
    // 1. Every item acknowledged before or during the fault is on the
    //    active copy (and so in the newest restore point or still to be
    //    backed up).
    std::vector<uint64_t> items = acknowledged_;
    for (uint64_t item = 0; item < kItems; ++item) items.push_back(item);
    uint64_t missing = 0;
    for (uint64_t item : items) {
      const auto& dbs = Databases(kUnit);
      auto got = cluster.Get(kNode1, kUnit, dbs[item % dbs.size()], kMailbox, item);
      if (!got.ok() || !got->has_value() || **got != ItemValue(kMailbox, item)) ++missing;
    }
    if (missing > 0)
      Violation(absl::StrCat(missing, " acknowledged items are not on the active copy"));
    if (cell_.fault == Fault::kLogVolumeFull) {
      absl::StrAppend(&result_.job_outcome, " (during the fault: ", acknowledged_.size(),
                      " items acknowledged, ", refused_, " refused)");
    }

    // 2. No lease outlives its TTL.
    CheckLeases();

    // 3. No generation is truncated unless a verified Full or Incremental
    //    covers it.
    uint32_t covered = 0;
    const std::set<std::string> catalogued = CataloguedBackups(&covered);
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

    // 4, 5. The repository checks clean, reading every chunk, and a catalog
    //    rebuilt from it lists the same backups.
    CheckRepository(catalogued);

    // 6. The next backup of the unit succeeds.
    CheckNextBackup("incremental");
  }

  std::map<std::string, uint32_t> lowest_before_;
  std::vector<uint64_t> acknowledged_;
  uint64_t refused_ = 0;
};

}  // namespace

CellResult RunBackupCell(const Cell& cell) { return BackupCell(cell).Run(); }

}  // namespace dagvault::testing::faults
