// Restore jobs (DESIGN.md §5, issue 7): StartRestore for every mode, and
// the start (or resumption) of an all-copies restore, after which every
// copy of the unit holds the restored data. The plan is seven recorded
// steps, each made of operations the node agents carry out on their own
// copies (restore_plan_run.cc runs them, several nodes at once):
//
//   1. suspend replication on every passive copy;
//   2. dismount the active copy;
//   3. restore the chain through the Store writer on the active copy's node;
//   4. replay and mount (the same operation as 3; it ends when mounted);
//   5. restore every passive copy from the repository, at the same time as
//      3 and 4 (or, where that fails, reseed it from the restored data);
//   6. resume replication;
//   7. confirm that every copy is Healthy and that the digests agree.
//
// Each operation is an attempt of the job, with the lease rules of any
// attempt. A failure stops the plan at its step, with the reason and the
// next safe action; a re-run of the same restore resumes it at the first
// step not done (every operation is safe to repeat).
#include <algorithm>
#include <map>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/server/job_manager.h"
#include "coordinator/server/restore_plan_steps.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

bool SameTarget(const v1::RestorePlan& a, const v1::RestorePlan& b) {
  return std::equal(a.manifests().begin(), a.manifests().end(), b.manifests().begin(),
                    b.manifests().end()) &&
         a.to_generation() == b.to_generation() && a.roll_forward() == b.roll_forward();
}

bool SameCopies(const v1::RestorePlan& a, const v1::RestorePlan& b) {
  std::vector<std::string> pa(a.passive_nodes().begin(), a.passive_nodes().end());
  std::vector<std::string> pb(b.passive_nodes().begin(), b.passive_nodes().end());
  std::sort(pa.begin(), pa.end());
  std::sort(pb.begin(), pb.end());
  return a.active_node() == b.active_node() && pa == pb;
}

}  // namespace

absl::StatusOr<JobRecord> JobManager::StartRestore(const v1::StartRestoreRequest& request,
                                                   const std::string& requested_by) {
  if (request.unit().empty())
    return absl::InvalidArgumentError("restore start: --unit U is required");
  if (request.has_items()) {
    // An item-level restore: a Recovery Database restore with a plan.
    v1::StartRestoreRequest rdb = request;
    ASSIGN_OR_RETURN(v1::RestorePlan item_plan, PrepareItemRestore(&rdb));
    return StartSingleRestore(rdb, &item_plan, requested_by);
  }
  if (request.verify().requested()) {
    // A restore verification (verification_plan.cc): one start of a
    // unit's verification at a time, so that two never share a unit.
    std::lock_guard<std::mutex> starting(verification_start_mu_);
    v1::StartRestoreRequest rdb = request;
    ASSIGN_OR_RETURN(v1::RestorePlan plan, PrepareVerification(&rdb, requested_by));
    return StartSingleRestore(rdb, &plan, requested_by);
  }
  return StartSingleRestore(request, nullptr, requested_by);
}

absl::StatusOr<JobRecord> JobManager::StartSingleRestore(const v1::StartRestoreRequest& request,
                                                         const v1::RestorePlan* item_plan,
                                                         const std::string& requested_by) {
  // A verification holds no lease and waits for no job of the unit.
  const bool verification = item_plan != nullptr && item_plan->has_verification();
  const std::string mode = !request.mode().empty()                ? request.mode()
                           : !request.recovery_database().empty() ? "rdb"
                           : !request.node().empty()              ? "node"
                                                                  : "all-copies";
  if (mode != "all-copies" && mode != "rdb" && mode != "node") {
    return absl::InvalidArgumentError(
        absl::StrCat("restore start: unknown mode \"", mode, "\" (all-copies, rdb, node)"));
  }
  if (mode == "rdb" && (request.recovery_database().empty() || request.node().empty() ||
                        (request.path().empty() && item_plan == nullptr))) {
    return absl::InvalidArgumentError(
        "restore start: a Recovery Database needs --rdb NAME --node N --path DIR");
  }
  if (mode == "node" && request.node().empty()) {
    return absl::InvalidArgumentError("restore start: mode node needs --node N");
  }
  if (mode == "all-copies" && (!request.node().empty() || !request.recovery_database().empty())) {
    return absl::InvalidArgumentError(
        "restore start: an all-copies restore acts on every copy; --node and --rdb belong to "
        "modes node and rdb");
  }
  if (!topology_->UnitKnown(request.unit())) {
    return absl::NotFoundError(
        absl::StrCat("unit ", request.unit(), ": no agent has reported a copy of it"));
  }
  if (mode != "all-copies" && !topology_->Reporting(request.node())) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", request.node(), " does not report: its agent must run to restore"));
  }
  Outbox outbox;
  JobRecord result;
  {
    // Refused while any job of the unit runs (a backup holds its lease, or
    // is about to take it again for a retry), naming it.
    std::unique_ptr<StartingGuard> starting;
    if (!verification) {
      ASSIGN_OR_RETURN(starting, ReserveUnit(request.unit(), /*restore=*/true, /*wait=*/true));
    }
    auto backups = catalog_->Backups(request.unit());
    if (!backups.ok()) return backups.status();
    auto breaks = catalog_->ChainBreaks(request.unit());
    if (!breaks.ok()) return breaks.status();
    uint32_t target = 0;
    auto chain = RestorePlan(request.unit(), *backups, *breaks, request.to_generation(),
                             request.to_time_us() != 0 ? absl::FromUnixMicros(request.to_time_us())
                                                       : absl::InfinitePast(),
                             &target);
    if (!chain.ok()) return chain.status();
    std::vector<std::string> ids;
    for (const auto& m : *chain) ids.push_back(m.id());
    if (mode == "all-copies") {
      auto started = StartAllCopiesRestore(request, ids, target, requested_by, &outbox);
      if (!started.ok()) return started.status();
      result = *started;
    } else {
      auto slot = std::make_shared<Slot>();
      Active& a = slot->a;
      JobRecord& r = a.record;
      r.id = NewJobId("restore");
      r.kind = "restore";
      r.unit = request.unit();
      r.type = chain->front().type();
      r.created = r.updated = clock_->Now();
      r.manifest = chain->back().id();
      r.state = JobState::kQueued;
      // An item restore's looks at other restore points, from the same
      // reads as its chain (item_restore_plan.cc).
      const uint32_t point = target != 0 ? target : chain->back().high_generation();
      std::vector<v1::ItemProbe> probes;
      if (item_plan != nullptr && item_plan->has_items()) {
        probes = ItemProbesOf(r.unit, *backups, *breaks, point, chain->back().frozen_us());
      }
      if (item_plan != nullptr) {
        v1::RestorePlan plan = *item_plan;
        for (const auto& probe : probes) *plan.mutable_items()->add_probes() = probe;
        for (const auto& id : ids) plan.add_manifests(id);
        plan.set_to_generation(target);
        if (verification) {
          v1::RestoreVerification* v = plan.mutable_verification();
          v->set_job(r.id);
          for (const auto& id : ids) v->add_manifests(id);
          v->set_generation(point);
          v->set_restore_point_us(chain->back().frozen_us());
        }
        r.plan = plan.SerializeAsString();
      }
      if (verification) {
        a.verification = true;
        if (absl::Status s = catalog_->CreateJob(r); !s.ok()) return s;
      } else {
        // The unit's lease, like a backup's: it keeps backups away while
        // the restore runs, and its fencing token goes to the writer.
        auto lease = leases_->Acquire(r.unit, r.id, request.node(), options_.lease_ttl);
        if (!lease.ok()) return lease.status();
        if (absl::Status s = catalog_->CreateJob(r); !s.ok()) {
          if (absl::Status released = leases_->Release(r.unit, r.id); !released.ok()) {
            CatalogFailed(released, absl::StrCat("releasing the lease of unit ", r.unit));
          }
          return s;
        }
        a.fencing_token = lease->token;
      }
      JobAttempt attempt;
      attempt.node = request.node();
      attempt.state = JobState::kAssigned;
      attempt.started = clock_->Now();
      r.attempts.push_back(attempt);
      a.assigned_at = clock_->Monotonic();
      a.lease_deadline = a.assigned_at + options_.lease_ttl;
      a.lease_written_at = a.assigned_at;
      a.tried.insert(request.node());
      Record(a, JobState::kQueued, absl::StrCat("requested by ", requested_by));
      Record(a, JobState::kAssigned,
             absl::StrCat(
                 "attempt 1: ",
                 verification           ? "restore verification"
                 : item_plan != nullptr ? "item-level restore"
                                        : "restore",
                 " of ", r.unit,
                 mode == "rdb"
                     ? absl::StrCat(" as recovery database ", request.recovery_database(), " on ",
                                    request.node(),
                                    request.path().empty() ? std::string()
                                                           : absl::StrCat(" at ", request.path()))
                     : absl::StrCat(" through the Store writer of ", request.node()),
                 " from ", absl::StrJoin(ids, ", "),
                 target == 0 ? std::string(", to the chain's end")
                             : absl::StrFormat(", to generation 0x%08X", target)));
      v1::CoordinatorMessage m;
      *m.mutable_assignment() = RestoreAssignmentOf(r, ids, target, request);
      for (const auto& probe : probes) {
        *m.mutable_assignment()->mutable_restore()->mutable_items()->add_probes() = probe;
      }
      m.mutable_assignment()->set_fencing_token(a.fencing_token);
      if (auto channel = topology_->ChannelOf(request.node())) outbox.emplace_back(channel, m);
      result = r;
      Place(slot);
    }
  }
  Send(outbox);
  return result;
}

v1::JobAssignment JobManager::RestoreAssignmentOf(const JobRecord& record,
                                                  const std::vector<std::string>& chain,
                                                  uint32_t target,
                                                  const v1::StartRestoreRequest& request) {
  v1::JobAssignment job;
  job.set_job(record.id);
  job.set_attempt(static_cast<uint32_t>(record.attempts.size()));
  job.set_unit(record.unit);
  job.set_type(record.type);
  job.set_kind(v1::JOB_RESTORE);
  job.set_wait_for_writer_seconds(
      static_cast<uint32_t>(absl::ToInt64Seconds(options_.writer_session_timeout) + 15));
  v1::RestoreAssignment* restore = job.mutable_restore();
  for (const auto& id : chain) restore->add_manifests(id);
  restore->set_to_generation(target);
  restore->set_roll_forward(request.roll_forward());
  restore->set_mount(request.mount());
  restore->set_recovery_database(request.recovery_database());
  restore->set_path(request.path());
  restore->set_force_overwrite_different_database(request.force_overwrite_different_database());
  if (request.has_items()) *restore->mutable_items() = request.items();
  if (request.verify().requested()) {
    v1::VerificationSpec* v = restore->mutable_verification();
    v->set_requested(true);
    v->set_sample_items(VerificationSampleItems(request));
    std::random_device seed;
    v->set_seed((uint64_t{seed()} << 32) | seed());
  }
  return job;
}

absl::StatusOr<std::optional<JobManager::StoppedPlan>> JobManager::StoppedAllCopiesRestore(
    const std::string& unit) {
  ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, catalog_->ListJobs(unit, 20));
  for (const JobRecord& r : jobs) {
    if (r.kind != "restore" || r.plan.empty()) continue;
    StoppedPlan stopped{r, {}};
    if (!stopped.plan.ParseFromString(r.plan)) break;
    // A reseed of one copy, an item-level restore or a restore
    // verification: not an all-copies restore.
    if (stopped.plan.reseed() || stopped.plan.has_items() || stopped.plan.has_verification()) {
      continue;
    }
    if (FirstStepNotDone(stopped.plan) == nullptr) break;
    return stopped;
  }
  return std::nullopt;
}

absl::StatusOr<JobRecord> JobManager::StartAllCopiesRestore(const v1::StartRestoreRequest& request,
                                                            const std::vector<std::string>& chain,
                                                            uint32_t target,
                                                            const std::string& requested_by,
                                                            Outbox* outbox) {
  // Every copy takes part: each node must report, and one copy must be active.
  v1::RestorePlan plan;
  std::vector<std::string> down;
  for (const CopyView& c : topology_->CopiesOf(request.unit())) {
    if (!c.node_reporting) {
      down.push_back(c.status.node());
    } else if (c.status.role() == v1::ACTIVE) {
      plan.set_active_node(c.status.node());
    } else {
      plan.add_passive_nodes(c.status.node());
    }
  }
  if (!down.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", request.unit(), ": an all-copies restore needs every copy's node, and ",
        absl::StrJoin(down, ", "),
        " does not report; start its agent, or restore beside production with --rdb"));
  }
  if (plan.active_node().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", request.unit(), " has no active copy: activate one first"));
  }
  for (const auto& id : chain) plan.add_manifests(id);
  plan.set_to_generation(target);
  plan.set_roll_forward(request.roll_forward());
  plan.set_force_overwrite_different_database(request.force_overwrite_different_database());

  // A plan of this unit that stopped part-way, for the same restore point,
  // is resumed rather than started again.
  std::string earlier_note;
  Active a;
  ASSIGN_OR_RETURN(std::optional<StoppedPlan> stopped, StoppedAllCopiesRestore(request.unit()));
  if (stopped) {
    const JobRecord& r = stopped->record;
    v1::RestorePlan& earlier = stopped->plan;
    if (!SameTarget(earlier, plan)) {
      earlier_note =
          absl::StrCat("; job ", r.id, " stopped at step ", FirstStepNotDone(earlier)->number(),
                       " for another restore point: this one starts at step 1");
    } else if (!SameCopies(earlier, plan)) {
      earlier_note =
          absl::StrCat("; job ", r.id, " stopped at step ", FirstStepNotDone(earlier)->number(),
                       " with the active copy on ", earlier.active_node(),
                       "; the copies have moved since: this one starts at step 1");
    } else {
      a.record = r;
      a.restore_plan = earlier;
    }
  }
  const absl::Time now = clock_->Now();
  a.all_copies = true;
  const bool resuming = !a.record.id.empty();
  if (!resuming) {
    JobRecord& r = a.record;
    r.id = NewJobId("restore");
    r.kind = "restore";
    r.unit = request.unit();
    r.created = now;
    r.manifest = chain.back();
    r.source_mode = "all-copies";
    a.restore_plan = plan;
    for (uint32_t n = 1; n <= 7; ++n) {
      v1::RestoreStep* step = a.restore_plan.add_steps();
      step->set_number(n);
      step->set_name(RestoreStepName(n));
      step->set_step(static_cast<v1::RestoreStepKind>(n));
      step->set_state(v1::STEP_PENDING);
      if (n == 2 || n == 3 || n == 4) {
        step->add_nodes(plan.active_node());
      } else {
        if (n == 7) step->add_nodes(plan.active_node());
        for (const auto& p : plan.passive_nodes()) step->add_nodes(p);
      }
    }
  }
  a.record.state = JobState::kQueued;
  a.record.updated = now;
  a.record.reason.clear();
  a.restore_plan.set_force_overwrite_different_database(
      request.force_overwrite_different_database());
  a.restore_plan.clear_next_action();
  a.record.plan = a.restore_plan.SerializeAsString();
  auto lease = leases_->Acquire(request.unit(), a.record.id, a.restore_plan.active_node(),
                                options_.lease_ttl);
  if (!lease.ok()) return lease.status();
  a.lease_written_at = clock_->Monotonic();
  a.lease_deadline = a.lease_written_at + options_.lease_ttl;
  a.fencing_token = lease->token;
  if (resuming) {
    v1::RestorePlan& p = a.restore_plan;
    p.set_resumed(p.resumed() + 1);
    // Every step not done runs again, on every node (each operation is
    // safe to repeat). Steps 3 and 4 are one operation: a stop in either
    // restores again. A passive copy whose restore from the repository
    // failed last time is tried from the repository again, unless the
    // active copy is mounted already (then step 5 reseeds from it).
    if (StepOf(p, 4)->state() != v1::STEP_DONE) {
      StepOf(p, 3)->set_state(v1::STEP_PENDING);
      p.set_active_prepared(false);
    }
    for (auto& step : *p.mutable_steps()) {
      if (step.state() == v1::STEP_DONE) continue;
      step.set_state(v1::STEP_PENDING);
      step.clear_done_nodes();
    }
    p.clear_reseeded_from_active();
    p.clear_progress();
    p.clear_check_tries();  // a re-run checks three times again
    Record(a, JobState::kQueued,
           absl::StrCat("resumed by ", requested_by, " at step ",
                        FirstStepNotDone(a.restore_plan)->number(), " (",
                        FirstStepNotDone(a.restore_plan)->name(), ")"));
  } else {
    if (absl::Status s = catalog_->CreateJob(a.record); !s.ok()) {
      if (absl::Status r = leases_->Release(request.unit(), a.record.id); !r.ok()) {
        CatalogFailed(r, absl::StrCat("releasing the lease of unit ", request.unit()));
      }
      return s;
    }
    Record(
        a, JobState::kQueued,
        absl::StrCat("all-copies restore of ", a.record.unit, " from ", absl::StrJoin(chain, ", "),
                     target == 0 ? std::string(", to the chain's end")
                                 : absl::StrCat(", to generation ", GenerationHex(target)),
                     request.roll_forward() ? ", rolled forward" : "", "; active copy on ",
                     a.restore_plan.active_node(), ", passive copies on ",
                     a.restore_plan.passive_nodes().empty()
                         ? std::string("(none)")
                         : absl::StrJoin(a.restore_plan.passive_nodes(), ", "),
                     earlier_note, "; requested by ", requested_by));
  }
  auto slot = std::make_shared<Slot>();
  std::lock_guard<std::mutex> job_lock(slot->mu);
  slot->a = std::move(a);
  // Placed before its first operation goes out, so that the agent's first
  // update finds it; the job's lock keeps that update waiting until the
  // plan has recorded the step.
  Place(slot);
  AdvancePlan(slot->a, outbox);
  JobRecord out = slot->a.record;
  if (IsFinal(slot->a.record.state)) Retire(*slot);
  return out;
}

}  // namespace dagvault::coordinator
