// Reseed from the repository (issue 19 §2, `dagvault reseed`): a failed or
// diverged passive copy is rebuilt from the newest chain in the repository
// by its own node's agent, instead of from the active copy over the
// network. The job is an all-copies restore's plan on that one copy with
// steps 2 to 4 skipped (the active copy stays mounted and its stream goes
// on), run by restore_plan_run.cc:
//
//   1. suspend replication on the copy;
//   5. restore the newest chain into it through the Replication writer,
//      once its writer has checked that the chain's last log generation is
//      in the active copy's stream (the join), and replay it;
//   6. resume replication: the active copy ships only the generations after
//      the chain's end;
//   7. the active copy closes a generation, the copy replays through it and
//      is Healthy, and the digests are compared.
//
// A re-run starts at step 1 (each step is safe to repeat, and the copy is
// rebuilt from the repository again).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/copy_state.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/server/job_manager.h"
#include "coordinator/server/restore_plan_steps.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

absl::StatusOr<JobRecord> JobManager::StartReseed(const v1::StartReseedRequest& request,
                                                  const std::string& requested_by) {
  const std::string& unit = request.unit();
  const std::string& node = request.node();
  if (unit.empty()) return absl::InvalidArgumentError("reseed: --unit U is required");
  if (node.empty()) {
    return absl::InvalidArgumentError("reseed: --node N is required (where the passive copy is)");
  }
  if (!topology_->UnitKnown(unit)) {
    return absl::NotFoundError(absl::StrCat("unit ", unit, ": no agent has reported a copy of it"));
  }
  std::optional<CopyView> target, active;
  std::vector<std::string> nodes;
  for (const CopyView& c : topology_->CopiesOf(unit)) {
    nodes.push_back(c.status.node());
    if (c.status.node() == node) target = c;
    if (c.status.role() == v1::ACTIVE) active = c;
  }
  if (!target) {
    return absl::NotFoundError(absl::StrCat("unit ", unit, " has no copy on ", node,
                                            " (its copies are on ", absl::StrJoin(nodes, ", "),
                                            ")"));
  }
  if (target->status.role() == v1::ACTIVE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the copy of ", unit, " on ", node,
        " is the active copy; a reseed rebuilds a passive copy. Restore the active copy with "
        "`dagvault restore start --unit ",
        unit, "` (every copy then holds the restored data)"));
  }
  if (!target->node_reporting) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", node, " cannot reseed its copy now: ", target->node_down_reason,
                     " (its agent and mailstored must run)"));
  }
  if (!active) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", unit, " has no active copy: activate one first (replication continues from it)"));
  }
  if (!active->node_reporting) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the active copy's node ", active->status.node(), " is not available: ",
        active->node_down_reason, " (its agent closes a generation for the final check)"));
  }
  if (active->status.state() != v1::MOUNTED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the active copy of ", unit, " on ", active->status.node(), " is ",
        CopyStateName(active->status.state()),
        ", not Mounted: a reseed continues the mounted active copy's stream (restore the unit "
        "with `dagvault restore start --unit ",
        unit, "` if it was lost)"));
  }
  if (target->status.state() == v1::HEALTHY && !request.force()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the copy of %s on %s is Healthy (replayed through 0x%08X); a reseed discards it and "
        "rebuilds it from the repository: add --force to do so anyway",
        unit, node, target->status.last_replayed_generation()));
  }
  Outbox outbox;
  JobRecord result;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<StartingGuard> starting,
                     ReserveUnit(unit, /*restore=*/true, /*wait=*/true));
    // An all-copies restore stopped part-way owns the copies' state (its
    // re-run resumes with the passive copies suspended): it goes first.
    ASSIGN_OR_RETURN(std::optional<StoppedPlan> earlier, StoppedAllCopiesRestore(unit));
    if (earlier) {
      const v1::RestoreStep* stopped = FirstStepNotDone(earlier->plan);
      const std::string& id = earlier->record.id;
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", unit, ": the all-copies restore ", id, " stopped at step ", stopped->number(),
          " (", stopped->name(),
          "); finish it first by running its `dagvault restore start` again (job show ", id,
          " says how)"));
    }
    ASSIGN_OR_RETURN(auto backups, catalog_->Backups(unit));
    ASSIGN_OR_RETURN(auto breaks, catalog_->ChainBreaks(unit));
    uint32_t stop_at = 0;
    auto chain = RestorePlan(unit, backups, breaks, 0, absl::InfinitePast(), &stop_at);
    if (!chain.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", unit, ": no chain to reseed the copy on ", node, " from (",
          chain.status().message(), "); take a Full backup first, or reseed from the active copy"));
    }
    const uint32_t end = chain->back().high_generation();
    std::vector<std::string> ids;
    for (const auto& m : *chain) ids.push_back(m.id());
    // What the coordinator can tell from the active copy's report; its
    // writer checks the log hashes before the copy's files go (step 5).
    const v1::CopyStatus& a = active->status;
    const std::string no_join = absl::StrFormat(
        "unit %s: no chain joins the active copy's current log stream: the newest chain (%s) "
        "ends at generation 0x%08X, and the active copy on %s ",
        unit, absl::StrJoin(ids, ", "), end, a.node());
    const std::string next =
        absl::StrCat("; take a Full backup first (dagvault backup start --unit ", unit,
                     " --type full), then reseed");
    if (a.last_log_generation() != 0 && a.last_log_generation() < end) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%shas closed generations only through 0x%08X: its stream is not the "
                          "backup's (a lossy failover after the backup?)%s",
                          no_join, a.last_log_generation(), next));
    }
    if (a.lowest_log_generation() != 0 && a.lowest_log_generation() > end + 1) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%skeeps generations from 0x%08X on: 0x%08X to 0x%08X were truncated, so replication "
          "could not continue from the restored copy%s",
          no_join, a.lowest_log_generation(), end + 1, a.lowest_log_generation() - 1, next));
    }

    Active plan_job;
    plan_job.all_copies = true;
    JobRecord& r = plan_job.record;
    const absl::Time now = clock_->Now();
    r.id = NewJobId("reseed");
    r.kind = "restore";
    r.unit = unit;
    r.created = r.updated = now;
    r.manifest = ids.back();
    r.source_mode = "reseed";
    r.state = JobState::kQueued;
    v1::RestorePlan& plan = plan_job.restore_plan;
    plan.set_reseed(true);
    plan.set_active_node(a.node());
    plan.add_passive_nodes(node);
    for (const auto& id : ids) plan.add_manifests(id);
    for (uint32_t n = 1; n <= 7; ++n) {
      v1::RestoreStep* step = plan.add_steps();
      step->set_number(n);
      step->set_name(ReseedStepName(n));
      step->set_step(static_cast<v1::RestoreStepKind>(n));
      if (n >= 2 && n <= 4) {
        step->set_state(v1::STEP_SKIPPED);
        step->set_detail("not part of a reseed: the active copy stays mounted");
        continue;
      }
      step->set_state(v1::STEP_PENDING);
      if (n == 7) step->add_nodes(a.node());
      step->add_nodes(node);
    }
    r.plan = plan.SerializeAsString();
    ASSIGN_OR_RETURN(auto lease, leases_->Acquire(unit, r.id, node, options_.lease_ttl));
    plan_job.lease_written_at = clock_->Monotonic();
    plan_job.lease_deadline = plan_job.lease_written_at + options_.lease_ttl;
    plan_job.fencing_token = lease.token;
    if (absl::Status s = catalog_->CreateJob(r); !s.ok()) {
      if (absl::Status released = leases_->Release(unit, r.id); !released.ok()) {
        CatalogFailed(released, absl::StrCat("releasing the lease of unit ", unit));
      }
      return s;
    }
    Record(plan_job, JobState::kQueued,
           absl::StrFormat(
               "reseed of the copy of %s on %s from the repository: %s, through "
               "generation 0x%08X; the active copy on %s then ships the generations "
               "after it; requested by %s%s",
               unit, node, absl::StrJoin(ids, ", "), end, a.node(), requested_by,
               target->status.state() == v1::HEALTHY ? " (--force: the copy was Healthy)" : ""));
    auto slot = std::make_shared<Slot>();
    std::lock_guard<std::mutex> job_lock(slot->mu);
    slot->a = std::move(plan_job);
    Place(slot);
    AdvancePlan(slot->a, &outbox);
    result = slot->a.record;
    if (IsFinal(slot->a.record.state)) Retire(*slot);
  }
  Send(outbox);
  return result;
}

}  // namespace dagvault::coordinator
