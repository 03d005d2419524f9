// Backup jobs as the coordinator runs them (DESIGN.md §5, issue 6):
//
//   StartBackup: plan the type from the catalog's chains (an Incremental
//   with no valid chain becomes a Full, and says why), select the source
//   copy, take the unit's backup-in-progress lease, record the job and
//   its first attempt, and send the assignment to the node's agent.
//
//   The agent's updates move the job through the state machine (assigned
//   → preparing → frozen → transferring → verifying → completing →
//   succeeded, failed or cancelled); each change is written with its time.
//
//   A lease lives while its node reports the job. When it expires (the node
//   died, or its agent restarted and no longer runs the job), the attempt
//   fails and the job is retried once on the next qualifying copy.
//
//   After a coordinator restart, Recover() takes the unfinished jobs and
//   their leases back from the catalog, and gives their agents one lease
//   period to report them (running, or finished while it was down).
//
// Locking: each unfinished job has a lock of its own, held across its
// catalog writes so that they happen in the order of its state changes.
// The manager's lock (mu_) guards only which jobs exist and what they show
// (Info, Running, the unit checks), and is never held across a catalog or
// lease-store call: a remote catalog's latency delays the job it writes
// for, not the coordinator. Order: a job's lock, then mu_; never the other
// way round.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/catalog/catalog.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/leases/lease_store.h"
#include "coordinator/schedule/scheduler.h"
#include "coordinator/selection/source_selection.h"
#include "coordinator/server/topology.h"
#include "dagvault/v1/admin.pb.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault::coordinator {

// Told of what the metrics count (coordinator_metrics.h). Called with the
// job's own lock held: record and return, never call back.
class JobObserver {
 public:
  virtual ~JobObserver() = default;
  // A job reached a final state (written to the catalog).
  virtual void JobEnded(const JobRecord& job) = 0;
  // A backup job's result, catalogued, just before it ends in success.
  virtual void BackupSucceeded(const JobRecord& job, const std::string& node,
                               const dagvault::v1::BackupJobResult& result) = 0;
  // An attempt's lease ran out before its agent reported it.
  virtual void LeaseExpired(const std::string& unit, const std::string& node) = 0;
  // A restore verification ended (recorded in the catalog).
  virtual void VerificationEnded(const dagvault::v1::RestoreVerification& verification) = 0;
};

struct JobManagerOptions {
  absl::Duration lease_ttl = absl::Seconds(30);
  // The writers end a session not heard from for this long: a retry waits
  // that long for a dead attempt's backup-in-progress to be released.
  absl::Duration writer_session_timeout = absl::Seconds(60);
  // How long after an assignment its agent's reports must list the job.
  absl::Duration report_grace = absl::Seconds(12);
  // Leases, grace periods and timeouts run on its monotonic reading; the
  // wall time is only written down.
  Clock* clock = RealClock();
  // Null: the catalog's (CatalogLeaseStore).
  LeaseStore* leases = nullptr;
  // Called when a catalog write fails where the coordinator's memory and
  // its catalog would otherwise disagree (a job's state change, a lease's
  // release or renewal). Empty: log it and exit the process (fail-stop;
  // after a restart Recover() takes the truth from the catalog, and agents
  // send their unacknowledged results again). Tests record it instead.
  std::function<void(const absl::Status&)> fail_stop;
  JobObserver* observer = nullptr;
  // Empty: the catalog's, read at every assignment.
  PolicyReader policies;
};

// The default fail-stop: logs at critical and exits with status 3.
[[noreturn]] void ExitOnCatalogFailure(const absl::Status& status);

class JobManager : public BackupStarter {
 public:
  JobManager(Catalog* catalog, Topology* topology, JobManagerOptions options);

  absl::Status Recover();

  // The job as recorded. A job for which no copy qualifies is recorded as
  // failed with every copy's reasons, and returned (not an error). A unit
  // another job holds is refused, naming the holder.
  // `requested_by`, when given, is recorded as the job's first event
  // ("scheduled by policy nightly (...)").
  // `from_schedule`: it takes the scheduler's queued backup of the unit and
  // type off the queue when it is assigned.
  absl::StatusOr<JobRecord> StartBackup(const dagvault::v1::StartBackupRequest& request,
                                        const std::string& requested_by = "",
                                        bool from_schedule = false);

  // A passed verification's content digests against the newest of
  // `earlier` (newest first) that passed for the same restore point: a
  // difference fails it, naming the database and both digests.
  static void CompareWithEarlierVerifications(
      const std::vector<dagvault::v1::RestoreVerification>& earlier,
      dagvault::v1::RestoreVerification* v);

  // BackupStarter, for the scheduler.
  absl::StatusOr<JobRecord> Start(const dagvault::v1::StartBackupRequest& request,
                                  const std::string& why) override {
    return StartBackup(request, why, /*from_schedule=*/true);
  }
  absl::StatusOr<JobRecord> RecordFailedStart(const dagvault::v1::StartBackupRequest& request,
                                              const std::string& why,
                                              const absl::Status& error) override;
  std::vector<std::string> RunningBackupNodes() override;
  absl::StatusOr<std::string> WouldRunOn(const dagvault::v1::StartBackupRequest& request) override;
  absl::StatusOr<JobRecord> StartVerification(const dagvault::v1::StartRestoreRequest& request,
                                              const std::string& why) override {
    return StartRestore(request, why);
  }
  // Where a backup as `request` asks would read from now: the node and why
  // it ranks first; or no node and why no copy qualifies.
  std::pair<std::string, std::string> NextSource(const dagvault::v1::StartBackupRequest& request);
  // The same with the unit's history already read (UnitHistoryCache).
  std::pair<std::string, std::string> NextSource(const dagvault::v1::StartBackupRequest& request,
                                                 const SourceHistory& history);
  // A restore. Mode all-copies (the default): the recorded seven-step plan
  // of restore_plan.cc, after which every copy holds the restored data; a
  // re-run of a plan that stopped resumes it at the step that failed. Mode
  // rdb: a Recovery Database on a named node; production is untouched.
  // Mode node: through one node's Store writer (a mounted unit there gets a
  // Recovery Database beside it). Refused while a backup of the unit holds
  // its lease, and for a chain with a gap or break before the target,
  // naming the generation. A lost restore attempt is not retried
  // elsewhere: its target is that node.
  // `requested_by` names who asked, in the job's events.
  absl::StatusOr<JobRecord> StartRestore(const dagvault::v1::StartRestoreRequest& request,
                                         const std::string& requested_by = "the operator");
  // Rebuilds the passive copy of a unit on one node from the newest chain
  // in the repository (reseed_plan.cc): a plan of steps 1, 5, 6 and 7 of an
  // all-copies restore on that copy. Refused for the active copy, for a
  // Healthy copy unless forced, and when the active copy's reported stream
  // cannot continue the chain (naming the generation).
  absl::StatusOr<JobRecord> StartReseed(const dagvault::v1::StartReseedRequest& request,
                                        const std::string& requested_by = "the operator");
  absl::StatusOr<JobRecord> Cancel(const std::string& job,
                                   const std::string& requested_by = "the operator");

  void OnJobUpdate(const std::string& node, const dagvault::v1::JobUpdate& update);
  void OnReport(const dagvault::v1::NodeReport& report);
  // Whether OnReport(report) would only read memory: the node runs no job
  // and has no result to hand over. Such a report (nearly all of them) is
  // handled on the stream's own thread; another may write the catalog.
  bool ReportIsQuiet(const dagvault::v1::NodeReport& report);
  // Expires leases; called every second.
  void Tick();

  // The job with its live progress (and events, if asked).
  absl::StatusOr<dagvault::v1::JobInfo> Info(const std::string& job, bool with_events);
  std::vector<dagvault::v1::JobInfo> Running();
  // Blocks until any job changes after `seen`, or `timeout`; returns the
  // change counter now.
  uint64_t WaitForChange(uint64_t seen, absl::Duration timeout);
  uint64_t ChangeCounter();

 private:
  struct Active {
    JobRecord record;
    SelectionPolicy policy;
    PlannedBackup plan;
    std::set<std::string> tried;
    // Monotonic readings (Clock::Monotonic).
    absl::Duration assigned_at = -absl::InfiniteDuration();
    absl::Duration lease_deadline = -absl::InfiniteDuration();
    absl::Duration lease_written_at = -absl::InfiniteDuration();
    // The current lease's fencing token, sent with every assignment.
    uint64_t fencing_token = 0;
    double bytes_per_second = 0;
    bool cancel_requested = false;
    // An all-copies restore: its plan, written with every Record.
    bool all_copies = false;
    // A restore verification (verification_plan.cc): it holds no lease of
    // the unit (lease_deadline still bounds how long its agent may stay
    // silent), and no other job of the unit waits for it.
    bool verification = false;
    bool holds_lease() const { return !verification; }
    bool verification_recorded = false;  // its result is in the catalog
    dagvault::v1::RestorePlan restore_plan;
    // The plan's operations in flight, by node: a node runs at most one at
    // a time, and different nodes run theirs at once (the passive copies'
    // restores beside the active copy's, say). Each is an attempt of the
    // job with a deadline of its own, renewed by its node's reports.
    struct Operation {
      int attempt = 0;
      uint32_t step = 0;
      absl::Duration assigned_at;  // monotonic
      absl::Duration deadline;
      // Sent while its node was not connected: sent again when the node
      // reports without it.
      bool undelivered = false;
      // In flight when the plan was taken over from the catalog (a
      // restart, a failover): sent once more if its agent reports without
      // it (lost, or never received; each step is safe to repeat), instead
      // of stopping the plan.
      bool resend_if_lost = false;
      // Step 5's restore from the repository (not a reseed from the active
      // copy): a failure falls back to the reseed.
      bool repository_restore = false;
    };
    std::map<std::string, Operation> operations;
    // The bytes of the restores this run of the plan has finished, so that
    // the job's figures do not shrink when one ends (not kept across a
    // takeover).
    uint64_t finished_bytes = 0;
    // What Info, Running and the unit checks show: the record and rate as
    // last changed, and the nodes the plan's operations run on. Guarded by
    // mu_ (written with the job's lock held too).
    JobRecord shown;
    double shown_bytes_per_second = 0;
    std::set<std::string> shown_operation_nodes;
  };
  // An unfinished job and its lock (see Locking above).
  struct Slot {
    std::mutex mu;
    Active a;            // guarded by mu
    bool ended = false;  // guarded by mu: taken off active_, nothing more to do
  };
  using SlotPtr = std::shared_ptr<Slot>;
  using Outbox =
      std::vector<std::pair<std::shared_ptr<AgentChannel>, dagvault::v1::CoordinatorMessage>>;

  JobAttempt& Current(Active& a) { return a.record.attempts.back(); }
  // Whether attempt `number` on `node` is one the job runs now: its
  // current attempt, or for a plan, the operation in flight on `node`.
  static bool RunsAttempt(const Active& a, const std::string& node, int number);
  // The attempt numbered `number` (an all-copies restore's operations are
  // numbered in the order they were sent).
  static JobAttempt* AttemptOf(Active& a, int number);
  // Writes the job with an event. A failed write is a fail-stop
  // (options.fail_stop): memory and catalog would disagree.
  // `attempt`: the attempt the event is about (a plan's operations run
  // at once); 0: the newest.
  void Record(Active& a, JobState state, const std::string& message, int attempt = 0);
  // The fail-stop, naming what could not be written.
  void CatalogFailed(const absl::Status& status, const std::string& what);
  // Releases the job's lease; a failure is a fail-stop.
  void ReleaseLeaseOf(Active& a);
  // Selects a source and sends attempt `number`; false when nothing
  // qualifies (the job has then failed, with the reasons).
  bool Assign(Active& a, int number, const std::string& previous_failure, Outbox* outbox);
  // The current attempt of a backup or a one-node restore was lost: a
  // backup is retried once on the next qualifying copy.
  void LoseAttempt(Active& a, const std::string& reason, Outbox* outbox);
  void Finish(Active& a, JobState state, const std::string& reason);
  // Extends the lease from monotonic `now`. When the store says the job
  // no longer holds it, the lease runs out at once (the next Tick loses the
  // attempt).
  void RenewLocked(Active& a, absl::Duration now);
  void Ack(const std::string& node, const std::string& job, uint32_t attempt, Outbox* outbox);
  SourceHistory HistoryOf(const std::string& unit);

  // All-copies restores (restore_plan.cc). `chain` is the restore point's
  // chain, `target` the generation replay stops at (0: its end).
  absl::StatusOr<JobRecord> StartAllCopiesRestore(const dagvault::v1::StartRestoreRequest& request,
                                                  const std::vector<std::string>& chain,
                                                  uint32_t target, const std::string& requested_by,
                                                  Outbox* outbox);
  // The unit's newest all-copies restore (not a reseed), when its plan
  // stopped part-way; nothing when it finished or there is none.
  struct StoppedPlan {
    JobRecord record;
    dagvault::v1::RestorePlan plan;
  };
  absl::StatusOr<std::optional<StoppedPlan>> StoppedAllCopiesRestore(const std::string& unit);
  // Modes rdb and node, and item-level restores (with `item_plan`): one
  // restore assignment on one node.
  absl::StatusOr<JobRecord> StartSingleRestore(const dagvault::v1::StartRestoreRequest& request,
                                               const dagvault::v1::RestorePlan* item_plan,
                                               const std::string& requested_by);
  // Item-level restores (item_restore_plan.cc). PrepareItemRestore checks
  // an item restore's request, chooses its node where none is named, and
  // turns it into a Recovery Database restore (`request` gains the
  // database's name and mount): the plan to record with the job, its three
  // steps pending. RecordItemRestoreResult fills that plan in from the
  // agent's result.
  absl::StatusOr<dagvault::v1::RestorePlan> PrepareItemRestore(
      dagvault::v1::StartRestoreRequest* request);
  // The other restore points (nearest in time first, a few) an item
  // restore looks at when the selection is not at its own, `chosen`
  // (frozen at `chosen_us`); from the same catalog reads as its chain.
  std::vector<dagvault::v1::ItemProbe> ItemProbesOf(const std::string& unit,
                                                    const std::vector<BackupRecord>& backups,
                                                    const std::vector<ChainBreakRecord>& breaks,
                                                    uint32_t chosen, int64_t chosen_us);
  void RecordItemRestoreResult(Active& a, const dagvault::v1::RestoreJobResult& result,
                               bool succeeded, const std::string& error, bool cancelled = false);
  // Restore verifications (verification_plan.cc). PrepareVerification
  // checks the request, chooses the node (and, on request, a random
  // restore point) and turns it into a Recovery Database restore without
  // a lease: the plan to record with the job. RecordVerificationResult
  // fills the plan in from the agent's outcome, records it in the catalog
  // per restore point, and raises DV1010 when it failed.
  absl::StatusOr<dagvault::v1::RestorePlan> PrepareVerification(
      dagvault::v1::StartRestoreRequest* request, const std::string& requested_by);
  static uint32_t VerificationSampleItems(const dagvault::v1::StartRestoreRequest& request);
  void RecordVerificationResult(Active& a, dagvault::v1::RestorePlan& plan,
                                const dagvault::v1::RestoreJobResult& result, bool succeeded,
                                const std::string& error, bool cancelled);
  // Marks the steps whose every node has finished as done, sends every
  // operation the plan can run now (on each node without one in flight),
  // or ends the job when every step is done.
  void AdvancePlan(Active& a, Outbox* outbox);
  // An update of the plan's current operation; true when the job ended.
  bool OnPlanUpdate(Active& a, const std::string& node, const dagvault::v1::JobUpdate& update,
                    Outbox* outbox);
  // Stops the plan at `step` (null: its first step not done) with `reason`
  // and the next safe action; operations still in flight on other nodes
  // are cancelled (their cancels go to `outbox`, if given).
  void FailPlan(Active& a, JobState state, const std::string& reason, Outbox* outbox = nullptr,
                dagvault::v1::RestoreStep* step = nullptr);
  // Step 5 on `node` reseeds from the active copy, since its restore from
  // the repository failed (`why`).
  void FallBackToReseed(Active& a, const std::string& node, int attempt, const std::string& why,
                        Outbox* outbox);
  // The plan's operation on `node` was lost. `not_running`: its agent
  // reported without it (rather than saying nothing for a lease period,
  // when it may still run it).
  void LoseOperation(Active& a, const std::string& node, const std::string& reason, Outbox* outbox,
                     bool not_running);
  void SendOperation(Active& a, const std::string& node, uint32_t step,
                     dagvault::v1::JobAssignment assignment, const std::string& what,
                     bool repository_restore, Outbox* outbox);
  // The restore assignment of the chain (steps 3 and 4, and mode rdb or node).
  dagvault::v1::JobAssignment RestoreAssignmentOf(const JobRecord& record,
                                                  const std::vector<std::string>& chain,
                                                  uint32_t target,
                                                  const dagvault::v1::StartRestoreRequest& request);
  dagvault::v1::JobInfo InfoLocked(const JobRecord& record, const Active* active);
  void Send(Outbox& outbox);
  // Something changed for watchers (WaitForChange); with `a`, what it shows
  // is updated. Takes mu_: never called with it held.
  void Changed(Active* a = nullptr);
  // The unfinished job `id`, or null.
  SlotPtr Find(const std::string& id);
  // The unfinished jobs (whose current attempt runs on `node`, if given),
  // for a round over them, each then locked alone.
  std::vector<SlotPtr> Slots(const std::string& node = "");
  // Whether the job's current attempt, as shown, runs on `node`; mu_ held
  // (`shown` is guarded by it).
  static bool RunsOnLocked(const Slot& slot, const std::string& node);
  // Puts a job, whose lock the caller holds or which no one else can see
  // yet, among the unfinished ones.
  void Place(const SlotPtr& slot);
  // Takes an ended job off the unfinished ones; its lock is held.
  void Retire(Slot& slot);
  // Refuses a start while an unfinished job or another start holds the
  // unit (naming it; FailedPrecondition, which the scheduler reads as
  // "busy"); otherwise marks the unit as starting until the returned guard
  // goes. `wait`: a start under way is waited for (up to 30 s) first.
  class StartingGuard {
   public:
    StartingGuard(JobManager* m, std::string unit) : m_(m), unit_(std::move(unit)) {}
    ~StartingGuard();

   private:
    JobManager* m_;
    std::string unit_;
  };
  absl::StatusOr<std::unique_ptr<StartingGuard>> ReserveUnit(const std::string& unit, bool restore,
                                                             bool wait);

  Catalog* catalog_;
  const PolicyReader policies_;
  Topology* topology_;
  const JobManagerOptions options_;
  Clock* const clock_;
  std::unique_ptr<LeaseStore> owned_leases_;
  LeaseStore* leases_;
  std::mutex mu_;
  // Held while a restore verification starts (restore_plan.cc).
  std::mutex verification_start_mu_;
  std::condition_variable changed_;
  uint64_t changes_ = 0;                   // guarded by mu_
  std::map<std::string, SlotPtr> active_;  // guarded by mu_: unfinished jobs, by id
  std::set<std::string> units_starting_;   // guarded by mu_: a start is under way
};

// "KIND-YYYYMMDDTHHMMSS-xxxx": unique, and sorts by time.
std::string NewJobId(const std::string& kind);

// A job's admin-API view without live progress.
dagvault::v1::JobInfo JobInfoOf(const JobRecord& record);

}  // namespace dagvault::coordinator
