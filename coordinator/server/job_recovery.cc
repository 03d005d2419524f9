// JobManager::Recover: a coordinator that starts (or becomes leader)
// rebuilds the jobs that were in flight from the catalog and the leases,
// so that each carries on under its own lease or ends saying why.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/schedule/policy.h"
#include "coordinator/server/job_manager.h"
#include "coordinator/server/restore_plan_steps.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

absl::Status JobManager::Recover() {
  auto log = logging::Get("coordinator");
  auto jobs = catalog_->UnfinishedJobs();
  if (!jobs.ok()) return jobs.status();
  auto leases = leases_->List();
  if (!leases.ok()) return leases.status();
  const absl::Duration now = clock_->Monotonic();
  for (const JobRecord& r : *jobs) {
    if (IsFinal(r.state)) continue;
    v1::RestorePlan recorded;
    // An item-level restore's or a verification's plan is a record of its
    // one assignment, not an all-copies restore's steps.
    const bool single = !r.plan.empty() && recorded.ParseFromString(r.plan) &&
                        (recorded.has_items() || recorded.has_verification());
    if (r.attempts.empty() && (r.plan.empty() || single)) {
      // Created, but the coordinator stopped before it assigned it: it
      // never ran. It ends here, saying so; a scheduled backup is still in
      // the scheduler's queue (it leaves it only with its assignment).
      JobRecord ended = r;
      ended.state = JobState::kFailed;
      ended.updated = clock_->Now();
      ended.reason = "the coordinator stopped before it assigned this job; it never ran";
      RETURN_IF_ERROR(
          catalog_->UpdateJob(ended, JobEvent{ended.updated, 0, JobState::kFailed, ended.reason}));
      log->warn("job {} (unit {}): {}", r.id, r.unit, ended.reason);
      continue;
    }
    auto slot = std::make_shared<Slot>();
    std::lock_guard<std::mutex> job_lock(slot->mu);
    Active& a = slot->a;
    a.record = r;
    if (!r.plan.empty()) {
      // An all-copies restore carries on from its recorded step: its agent
      // reports the operation in flight (still running, or its result
      // re-sent), and an operation lost on the way is sent again once.
      // (An item-level restore's plan is a record of its one assignment.)
      a.all_copies = !single && a.restore_plan.ParseFromString(r.plan);
      a.verification = single && recorded.has_verification();
      if (a.all_copies && r.attempts.empty()) {
        // Recorded before its first operation went out: the operator's
        // re-run starts it.
        FailPlan(a, JobState::kFailed, "the coordinator restarted before its first step began");
        continue;
      }
    }
    if (!a.all_copies) {
      auto mode = ParseSourceMode(r.source_mode);
      if (mode.ok()) a.policy.mode = *mode;
      a.policy.preferred = r.preferred;
      // What a retry needs: the chain the job follows.
      auto backups = catalog_->Backups(r.unit);
      auto breaks = catalog_->ChainBreaks(r.unit);
      if (backups.ok() && breaks.ok()) a.plan = PlanBackup(r.unit, r.type, *backups, *breaks);
    }
    for (const auto& attempt : r.attempts) a.tried.insert(attempt.node);
    for (const auto& lease : *leases) {
      if (lease.job == r.id) a.fencing_token = lease.token;
    }
    a.assigned_at = now;
    // Its agent has one lease period to report it, running or finished.
    a.lease_deadline = now + options_.lease_ttl;
    a.lease_written_at = now;
    std::vector<std::string> waiting_for;
    if (a.all_copies) {
      // The operations in flight, each sent once more if its agent reports
      // without it (lost, or never received; each is safe to repeat).
      for (JobAttempt& attempt : a.record.attempts) {
        if (IsFinal(attempt.state)) continue;
        const uint32_t step = NextStepOfNode(a.restore_plan, attempt.node);
        if (step == 0) {
          // Its node has nothing left to do in the plan: a stale attempt
          // (its report, if any, is answered with a cancel).
          attempt.state = JobState::kCancelled;
          attempt.ended = clock_->Now();
          attempt.reason = "no longer part of the plan when the coordinator took it over";
          continue;
        }
        Active::Operation& op = a.operations[attempt.node];
        op.attempt = attempt.number;
        op.step = step;
        op.assigned_at = now;
        op.deadline = now + options_.lease_ttl;
        op.resend_if_lost = true;
        // As recorded when it was sent.
        for (const auto& p : a.restore_plan.progress()) {
          if (p.node() == attempt.node) op.repository_restore = p.repository_restore();
        }
      }
      // Progress is shown only for the operations in flight.
      auto* progress = a.restore_plan.mutable_progress();
      for (int i = progress->size() - 1; i >= 0; --i) {
        if (a.operations.count(progress->Get(i).node()) == 0) progress->DeleteSubrange(i, 1);
      }
      for (const auto& [node, op] : a.operations) {
        waiting_for.push_back(absl::StrCat(node, " to report attempt ", op.attempt));
      }
    } else {
      waiting_for.push_back(
          absl::StrCat(Current(a).node, " to report attempt ", Current(a).number));
    }
    Record(a, a.record.state,
           absl::StrCat("coordinator restarted: waiting up to ",
                        absl::FormatDuration(options_.lease_ttl), " for ",
                        waiting_for.empty() ? std::string("nothing (no operation was in flight)")
                                            : absl::StrJoin(waiting_for, ", ")));
    if (absl::Status s =
            a.holds_lease() ? leases_->Renew(r.unit, r.id, options_.lease_ttl) : absl::OkStatus();
        !s.ok() && !absl::IsNotFound(s)) {
      return Annotate(s, absl::StrCat("renewing the lease of job ", r.id));
    }
    log->info("job {} (unit {}) was {} on {} when the coordinator stopped: waiting for its agent",
              r.id, r.unit, JobStateName(r.state), Current(a).node);
    Place(slot);
    if (a.all_copies && a.operations.empty()) {
      // Stopped between two operations: the next ones go out now (to
      // agents not yet connected they are sent again when they report).
      Outbox outbox;
      AdvancePlan(a, &outbox);
      if (IsFinal(a.record.state)) Retire(*slot);
      Send(outbox);
    }
  }
  // A lease whose job is not running is a stuck backup-in-progress: gone.
  for (const LeaseRecord& lease : *leases) {
    if (Find(lease.job) == nullptr) {
      log->warn("releasing the lease on unit {} held by job {}, which is not running", lease.unit,
                lease.job);
      RETURN_IF_ERROR(leases_->Release(lease.unit, lease.job));
    }
  }
  return absl::OkStatus();
}

}  // namespace dagvault::coordinator
