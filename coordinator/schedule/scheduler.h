// The scheduler (issue 7): runs the policies' backups when their schedules
// say, within their concurrency limits, and their restore verifications
// (issue 20 §2) when verify_schedule says.
//
// Every second: each schedule that has come due queues a backup of each
// unit of its policy (once: a unit already queued for that type is not
// queued twice). A schedule missed while the coordinator was down is due
// once at start-up, not once per missed time: the last time each schedule
// fired is kept in the catalog, in one transaction with the backups it
// queued, and a queued backup leaves the catalog's queue in the
// transaction that creates its job; so a coordinator restart neither
// drops nor doubles a due backup. Queued backups start in priority order
// (higher first, then oldest) when the deployment and the node they would
// run on are under their policy's limits and no other job holds the unit;
// otherwise they wait.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "coordinator/catalog/catalog.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

// What the scheduler needs of the job manager: a seam, so that it is
// tested with a fake clock and fake jobs.
class BackupStarter {
 public:
  virtual ~BackupStarter() = default;
  // Starts it now. FailedPrecondition while another job holds the unit,
  // NotFound while no agent reports it (the backup stays queued); any
  // other error is recorded with RecordFailedStart.
  virtual absl::StatusOr<JobRecord> Start(const dagvault::v1::StartBackupRequest& request,
                                          const std::string& why) = 0;
  // Records a backup that could not start as a failed job, with `error`,
  // for the operator to see; it leaves the queue with it.
  virtual absl::StatusOr<JobRecord> RecordFailedStart(
      const dagvault::v1::StartBackupRequest& request, const std::string& why,
      const absl::Status& error) = 0;
  // The nodes of the backups running now, one entry per job.
  virtual std::vector<std::string> RunningBackupNodes() = 0;
  // The node a backup of `request` would read from now.
  virtual absl::StatusOr<std::string> WouldRunOn(
      const dagvault::v1::StartBackupRequest& request) = 0;
  // Starts a restore verification now (StartRestoreRequest.verify).
  virtual absl::StatusOr<JobRecord> StartVerification(
      const dagvault::v1::StartRestoreRequest& request, const std::string& why) = 0;
};

// What the catalog keeps of a queued backup, and why it waits.
struct QueuedBackup : QueuedBackupRecord {
  std::string waiting_for;  // why it has not started yet
};

class Scheduler {
 public:
  // `policies` empty: read from the catalog at every tick.
  Scheduler(Catalog* catalog, BackupStarter* starter, Clock* clock, PolicyReader policies = {})
      : catalog_(catalog),
        policies_(policies ? std::move(policies) : ReadPoliciesEachTime(catalog)),
        starter_(starter),
        clock_(clock) {}

  // Queues what came due since each schedule last fired (once), then
  // starts what the limits allow.
  void Tick();
  std::vector<QueuedBackup> Queue();
  // Queue but start nothing before `t`: after a coordinator start, the
  // agents need a moment to report the copies a backup would choose from.
  void HoldUntil(absl::Time t) {
    std::lock_guard<std::mutex> l(mu_);
    hold_until_ = t;
  }

 private:
  // The queue as the catalog keeps it, once.
  bool LoadLocked();
  void QueueDue(const std::vector<dagvault::v1::Policy>& policies, absl::Time now);
  void StartAllowed(const std::vector<dagvault::v1::Policy>& policies);
  // Each verify_schedule that came due starts a verification of each unit
  // of its policy (once, however many firings were missed). A unit that
  // cannot be verified now is not queued: the next firing tries again, and
  // the reason is logged (as event DV1010 unless the unit is simply busy
  // verifying or has nothing to verify yet).
  void StartDueVerifications(const std::vector<dagvault::v1::Policy>& policies, absl::Time now);

  Catalog* catalog_;
  const PolicyReader policies_;
  BackupStarter* starter_;
  Clock* clock_;
  std::mutex mu_;
  std::vector<QueuedBackup> queue_;
  bool loaded_ = false;
  absl::Time hold_until_ = absl::InfinitePast();
};

}  // namespace dagvault::coordinator
