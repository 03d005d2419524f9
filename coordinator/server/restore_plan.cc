// Restore jobs (DESIGN.md §5, issue 7): StartRestore for every mode, and
// the all-copies restore, after which every copy of the unit holds the
// restored data. The plan is seven recorded steps, each made of
// operations the node agents carry out on their own copies:
//
//   1. suspend replication on every passive copy;
//   2. dismount the active copy;
//   3. restore the chain through the Store writer on the active copy's node;
//   4. replay and mount (the same operation as 3; it ends when mounted);
//   5. reseed every passive copy from the restored data;
//   6. resume replication;
//   7. confirm that every copy is Healthy and that the digests agree.
//
// Operations run one at a time, each as an attempt of the job, with the
// lease rules of any attempt. A failure stops the plan at its step, with the
// reason and the next safe action; a re-run of the same restore resumes it
// at that step (every operation is safe to repeat).
#include <algorithm>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/server/job_manager.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

constexpr const char* kStepNames[] = {
    "suspend replication on every passive copy",           "dismount the active copy",
    "restore the chain through the Store writer",          "replay the logs and mount",
    "reseed every passive copy from the restored data",    "resume replication",
    "confirm every copy is Healthy and the digests agree",
};

std::string Gen(uint32_t g) { return absl::StrFormat("0x%08X", g); }

v1::RestoreStep* StepOf(v1::RestorePlan& plan, uint32_t number) {
  return plan.mutable_steps(static_cast<int>(number) - 1);
}

// The step the plan is at: the first not done; nullptr when all are.
v1::RestoreStep* CurrentStep(v1::RestorePlan& plan) {
  for (auto& step : *plan.mutable_steps()) {
    if (step.state() != v1::STEP_DONE) return &step;
  }
  return nullptr;
}

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

std::string RestoreCommand(const v1::RestorePlan& plan, const std::string& unit) {
  return absl::StrCat(
      "dagvault restore start --unit ", unit,
      plan.to_generation() != 0 ? absl::StrCat(" --to-generation ", Gen(plan.to_generation()))
                                : std::string(),
      plan.roll_forward() ? " --roll-forward" : "",
      plan.force_overwrite_different_database() ? " --force-overwrite-different-database" : "");
}

// What is safe to do when the plan stopped at `step`.
std::string NextSafeAction(const v1::RestorePlan& plan, const std::string& unit, uint32_t step) {
  const std::string rerun =
      absl::StrCat("run `", RestoreCommand(plan, unit), "` again to resume at step ", step);
  const std::string passives = plan.passive_nodes().empty()
                                   ? std::string("(none)")
                                   : absl::StrJoin(plan.passive_nodes(), ", ");
  switch (step) {
    case 1:
    case 2:
      return absl::StrCat("nothing has been restored yet; the passive copies on ", passives,
                          " may be suspended and the active copy on ", plan.active_node(),
                          " dismounted. ", rerun,
                          ", or resume replication and mount the active copy to abandon it");
    case 3:
      return absl::StrCat("the unit is dismounted on ", plan.active_node(),
                          " and its files may be half restored: do not mount it. The passive "
                          "copies on ",
                          passives, " are suspended and untouched. ", rerun,
                          " (the chain is restored again)");
    case 4:
      // The replay may have finished and mounted the unit without the
      // coordinator hearing of it: the re-run then sees (restored_by) that
      // this restore mounted it and goes on.
      return absl::StrCat("the unit on ", plan.active_node(),
                          " is dismounted with its files half replayed, or was replayed and "
                          "mounted by this restore without the coordinator hearing of it; do "
                          "not mount it by hand. The passive copies on ",
                          passives, " are suspended and untouched. ", rerun,
                          " (the chain is restored again unless this restore already mounted it)");
    case 5:
    case 6:
      return absl::StrCat("the active copy on ", plan.active_node(),
                          " is mounted with the restored data (through generation ",
                          Gen(plan.restored_generation()),
                          "); passive copies not yet reseeded or resumed may hold the old data. ",
                          rerun);
    default:
      return absl::StrCat("every copy was reseeded from the restored data; ", rerun,
                          " to check them again");
  }
}

}  // namespace

absl::StatusOr<JobRecord> JobManager::StartRestore(const v1::StartRestoreRequest& request,
                                                   const std::string& requested_by) {
  if (request.unit().empty())
    return absl::InvalidArgumentError("restore start: --unit U is required");
  const std::string mode = !request.mode().empty()                ? request.mode()
                           : !request.recovery_database().empty() ? "rdb"
                           : !request.node().empty()              ? "node"
                                                                  : "all-copies";
  if (mode != "all-copies" && mode != "rdb" && mode != "node") {
    return absl::InvalidArgumentError(
        absl::StrCat("restore start: unknown mode \"", mode, "\" (all-copies, rdb, node)"));
  }
  if (mode == "rdb" &&
      (request.recovery_database().empty() || request.node().empty() || request.path().empty())) {
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
    ASSIGN_OR_RETURN(std::unique_ptr<StartingGuard> starting,
                     ReserveUnit(request.unit(), /*restore=*/true, /*wait=*/true));
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
      // The unit's lease, like a backup's: it keeps backups away while the
      // restore runs, and its fencing token goes to the writer.
      auto lease = leases_->Acquire(r.unit, r.id, request.node(), options_.lease_ttl);
      if (!lease.ok()) return lease.status();
      if (absl::Status s = catalog_->CreateJob(r); !s.ok()) {
        if (absl::Status released = leases_->Release(r.unit, r.id); !released.ok()) {
          CatalogFailed(released, absl::StrCat("releasing the lease of unit ", r.unit));
        }
        return s;
      }
      a.fencing_token = lease->token;
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
             absl::StrCat("attempt 1: restore of ", r.unit,
                          mode == "rdb"
                              ? absl::StrCat(" as recovery database ", request.recovery_database(),
                                             " on ", request.node(), " at ", request.path())
                              : absl::StrCat(" through the Store writer of ", request.node()),
                          " from ", absl::StrJoin(ids, ", "),
                          target == 0 ? std::string(", to the chain's end")
                                      : absl::StrFormat(", to generation 0x%08X", target)));
      v1::CoordinatorMessage m;
      *m.mutable_assignment() = RestoreAssignmentOf(r, ids, target, request);
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
  return job;
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
  auto jobs = catalog_->ListJobs(request.unit(), 20);
  if (!jobs.ok()) return jobs.status();
  for (const JobRecord& r : *jobs) {
    if (r.kind != "restore" || r.plan.empty()) continue;
    v1::RestorePlan earlier;
    if (!earlier.ParseFromString(r.plan) || CurrentStep(earlier) == nullptr) break;
    if (!SameTarget(earlier, plan)) {
      earlier_note =
          absl::StrCat("; job ", r.id, " stopped at step ", CurrentStep(earlier)->number(),
                       " for another restore point: this one starts at step 1");
      break;
    }
    if (!SameCopies(earlier, plan)) {
      earlier_note =
          absl::StrCat("; job ", r.id, " stopped at step ", CurrentStep(earlier)->number(),
                       " with the active copy on ", earlier.active_node(),
                       "; the copies have moved since: this one starts at step 1");
      break;
    }
    a.record = r;
    a.restore_plan = earlier;
    break;
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
      step->set_name(kStepNames[n - 1]);
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
  a.fencing_token = lease->token;
  if (resuming) {
    v1::RestoreStep* step = CurrentStep(a.restore_plan);
    a.restore_plan.set_resumed(a.restore_plan.resumed() + 1);
    // Steps 3 and 4 are one operation: a stop in either restores again.
    if (step->number() == 4) StepOf(a.restore_plan, 3)->set_state(v1::STEP_PENDING);
    if (step->state() == v1::STEP_FAILED) step->set_state(v1::STEP_PENDING);
    Record(a, JobState::kQueued,
           absl::StrCat("resumed by ", requested_by, " at step ",
                        CurrentStep(a.restore_plan)->number(), " (",
                        CurrentStep(a.restore_plan)->name(), ")"));
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
                                 : absl::StrCat(", to generation ", Gen(target)),
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

void JobManager::SendOperation(Active& a, const std::string& node, v1::JobAssignment assignment,
                               const std::string& what, Outbox* outbox) {
  // A takeover's one resend covers only the operation in flight then.
  a.resend_lost_step = false;
  JobAttempt attempt;
  attempt.number = static_cast<int>(a.record.attempts.size()) + 1;
  attempt.node = node;
  attempt.state = JobState::kAssigned;
  attempt.started = clock_->Now();
  a.record.attempts.push_back(attempt);
  a.assigned_at = clock_->Monotonic();
  a.lease_deadline = a.assigned_at + options_.lease_ttl;
  assignment.set_job(a.record.id);
  assignment.set_fencing_token(a.fencing_token);
  assignment.set_attempt(static_cast<uint32_t>(attempt.number));
  assignment.set_unit(a.record.unit);
  Record(a, JobState::kAssigned,
         absl::StrCat("step ", CurrentStep(a.restore_plan)->number(), ": ", what, " on ", node));
  v1::CoordinatorMessage m;
  *m.mutable_assignment() = std::move(assignment);
  auto channel = topology_->ChannelOf(node);
  if (channel) outbox->emplace_back(channel, m);
  // An agent that is not connected (it is reconnecting, say to a new
  // leader) gets the operation again once it reports without it; one that
  // stays away is found by the lease: the step fails.
  a.operation_undelivered = channel == nullptr;
}

void JobManager::AdvancePlan(Active& a, Outbox* outbox) {
  while (true) {
    v1::RestoreStep* step = CurrentStep(a.restore_plan);
    if (step == nullptr) {
      Finish(a, JobState::kSucceeded, "");
      return;
    }
    if (step->state() != v1::STEP_RUNNING) {
      step->set_state(v1::STEP_RUNNING);
      step->set_started_us(clock_->NowMicros());
      step->clear_done_nodes();
      step->clear_detail();
      if (step->number() == 7) {
        a.restore_plan.clear_digests();
        a.restore_plan.clear_check_generation();
      }
    }
    const uint32_t n = step->number();
    // The next node the step has not finished on.
    std::string node;
    for (const auto& candidate : step->nodes()) {
      if (std::find(step->done_nodes().begin(), step->done_nodes().end(), candidate) ==
          step->done_nodes().end()) {
        node = candidate;
        break;
      }
    }
    if (node.empty()) {
      if (n == 7) {
        // Every copy's digest is in: each copy must have every database the
        // active copy has, each with the active copy's digest.
        std::map<std::string, std::map<std::string, std::string>> by_node;  // node → db → digest
        for (const auto& d : a.restore_plan.digests()) by_node[d.node()][d.database()] = d.sha256();
        const auto expected = by_node[a.restore_plan.active_node()];
        std::vector<std::string> differ;
        if (expected.empty()) differ.push_back("the active copy reported no database digest");
        for (const auto& copy_node : step->nodes()) {
          const auto& got = by_node[copy_node];
          for (const auto& [db, digest] : expected) {
            auto it = got.find(db);
            if (it == got.end() || it->second.empty()) {
              differ.push_back(absl::StrCat(db, " on ", copy_node, " has no digest"));
            } else if (it->second != digest) {
              differ.push_back(
                  absl::StrCat(db, " on ", copy_node, " is ", it->second, ", not ", digest));
            }
          }
          if (got.size() != expected.size()) {
            differ.push_back(absl::StrCat(copy_node, " has ", got.size(),
                                          " database(s), the active copy ", expected.size()));
          }
        }
        if (!differ.empty()) {
          FailPlan(a, JobState::kFailed,
                   absl::StrCat("the copies' digests differ at generation ",
                                Gen(a.restore_plan.check_generation()), ": ",
                                absl::StrJoin(differ, "; "),
                                " (mail written during the check also makes them differ)"));
          return;
        }
        std::vector<std::string> summary;
        for (const auto& [db, digest] : expected) summary.push_back(absl::StrCat(db, " ", digest));
        step->set_detail(
            absl::StrCat("every copy holds the same data: ", absl::StrJoin(summary, ", ")));
      }
      step->set_state(v1::STEP_DONE);
      step->set_ended_us(clock_->NowMicros());
      Record(a, a.record.state,
             absl::StrCat("step ", n, " done: ", step->name(),
                          step->detail().empty() ? "" : absl::StrCat(" (", step->detail(), ")")));
      continue;
    }
    v1::JobAssignment job;
    job.set_kind(v1::JOB_COPY_OPERATION);
    switch (n) {
      case 1:
        job.mutable_copy_op()->set_op(v1::COPY_SUSPEND);
        SendOperation(a, node, job, "suspend replication", outbox);
        return;
      case 2:
        job.mutable_copy_op()->set_op(v1::COPY_DISMOUNT);
        SendOperation(a, node, job, "dismount", outbox);
        return;
      case 3:
      case 4: {
        if (n == 4) {
          // Restored files with a failed replay: restored again.
          StepOf(a.restore_plan, 3)->set_state(v1::STEP_RUNNING);
          step->set_state(v1::STEP_PENDING);
        }
        v1::StartRestoreRequest request;
        request.set_roll_forward(a.restore_plan.roll_forward());
        request.set_mount(true);
        request.set_force_overwrite_different_database(
            a.restore_plan.force_overwrite_different_database());
        std::vector<std::string> chain(a.restore_plan.manifests().begin(),
                                       a.restore_plan.manifests().end());
        // SendOperation numbers it as the next attempt.
        job = RestoreAssignmentOf(a.record, chain, a.restore_plan.to_generation(), request);
        job.mutable_restore()->set_refuse_if_mounted(true);  // never a recovery database here
        SendOperation(a, node, job,
                      absl::StrCat("restore ", absl::StrJoin(chain, ", "), " and mount"), outbox);
        return;
      }
      case 5:
        job.mutable_copy_op()->set_op(v1::COPY_RESEED);
        SendOperation(a, node, job, "reseed from the restored active copy", outbox);
        return;
      case 6:
        job.mutable_copy_op()->set_op(v1::COPY_RESUME);
        SendOperation(a, node, job, "resume replication", outbox);
        return;
      default: {
        job.mutable_copy_op()->set_op(v1::COPY_DIGEST);
        // The active copy first (it is the step's first node): it closes
        // the generation the passive copies then replay through.
        job.mutable_copy_op()->set_wait_for_generation(
            node == a.restore_plan.active_node() ? 0 : a.restore_plan.check_generation());
        SendOperation(a, node, job, "digest every database", outbox);
        return;
      }
    }
  }
}

bool JobManager::OnPlanUpdate(Active& a, const std::string& node, const v1::JobUpdate& u,
                              Outbox* outbox) {
  JobAttempt& attempt = Current(a);
  v1::RestoreStep* step = CurrentStep(a.restore_plan);
  const bool final = IsFinalJobState(u.phase());
  if (u.bytes_total() > 0) {
    a.record.bytes_done = u.bytes_done();
    a.record.bytes_total = u.bytes_total();
    a.bytes_per_second = u.bytes_per_second();
  }
  if (!final) {
    if (step != nullptr && step->number() == 3 && u.phase() == v1::JOB_COMPLETING) {
      // The chain is in place; the writer replays and mounts.
      step->set_state(v1::STEP_DONE);
      step->set_ended_us(clock_->NowMicros());
      v1::RestoreStep* replay = StepOf(a.restore_plan, 4);
      replay->set_state(v1::STEP_RUNNING);
      replay->set_started_us(clock_->NowMicros());
      attempt.state = JobState::kCompleting;
      Record(a, JobState::kCompleting,
             absl::StrCat("step 3 done: the chain is restored on ", node,
                          "; step 4: replaying and mounting"));
    } else if (step != nullptr && step->number() == 3 && u.phase() == v1::JOB_TRANSFERRING &&
               attempt.state != JobState::kTransferring) {
      attempt.state = JobState::kTransferring;
      Record(a, JobState::kTransferring, absl::StrCat("step 3: restoring on ", node));
    } else {
      Changed(&a);
    }
    return false;
  }
  Ack(node, u.job(), u.attempt(), outbox);
  if (u.phase() != v1::JOB_SUCCEEDED) {
    FailPlan(a, u.phase() == v1::JOB_CANCELLED ? JobState::kCancelled : JobState::kFailed,
             absl::StrCat(node, ": ", u.error()));
    return true;
  }
  attempt.state = JobState::kSucceeded;
  attempt.ended = clock_->Now();
  if (step == nullptr) {  // every step was already done: the plan ends
    AdvancePlan(a, outbox);
    return IsFinal(a.record.state);
  }
  if (a.cancel_requested) {
    // The operation finished before the cancel reached it: the plan stops here.
    step->add_done_nodes(node);
    FailPlan(a, JobState::kCancelled,
             absl::StrCat("cancelled by the operator (", node, " had finished its part of step ",
                          step->number(), ")"));
    return true;
  }
  if (step->number() == 3 || step->number() == 4) {
    // Restored, replayed and mounted: both steps are done, whether or not
    // the "completing" progress update arrived (progress may be lost).
    const auto& r = u.restore_result();
    const int64_t now_us = clock_->NowMicros();
    for (uint32_t n : {3u, 4u}) {
      v1::RestoreStep* s = StepOf(a.restore_plan, n);
      if (s->started_us() == 0) s->set_started_us(now_us);
      if (s->state() != v1::STEP_DONE) s->set_ended_us(now_us);
      s->set_state(v1::STEP_DONE);
      if (s->done_nodes().empty()) s->add_done_nodes(node);
    }
    step = StepOf(a.restore_plan, 4);
    a.restore_plan.set_restored_generation(r.last_generation());
    step->set_detail(absl::StrCat("replayed through generation ", Gen(r.last_generation()),
                                  r.message().empty() ? "" : absl::StrCat("; ", r.message())));
    Record(a, a.record.state, absl::StrCat("step 4 done on ", node, ": ", step->detail()));
    AdvancePlan(a, outbox);
    return IsFinal(a.record.state);
  }
  if (step->number() == 7) {
    if (node == a.restore_plan.active_node()) {
      a.restore_plan.set_check_generation(u.copy_result().generation());
    }
    for (const auto& d : u.copy_result().digests()) {
      v1::CopyDigest* digest = a.restore_plan.add_digests();
      digest->set_node(node);
      digest->set_database(d.database());
      digest->set_sha256(d.sha256());
      digest->set_generation(node == a.restore_plan.active_node() ? u.copy_result().generation()
                                                                  : d.generation());
      digest->set_items(d.items());
    }
  }
  step->add_done_nodes(node);
  Record(a, a.record.state,
         absl::StrCat("step ", step->number(), " on ", node, ": ",
                      u.has_copy_result() ? u.copy_result().message() : step->detail()));
  AdvancePlan(a, outbox);
  return IsFinal(a.record.state);
}

void JobManager::FailPlan(Active& a, JobState state, const std::string& reason) {
  v1::RestoreStep* step = CurrentStep(a.restore_plan);
  const uint32_t n = step == nullptr ? 7 : step->number();
  if (step != nullptr) {
    step->set_state(v1::STEP_FAILED);
    step->set_ended_us(clock_->NowMicros());
    step->set_detail(reason);
  }
  a.restore_plan.set_next_action(NextSafeAction(a.restore_plan, a.record.unit, n));
  logging::Get("coordinator")
      ->warn("restore {} of {} stopped at step {}: {}", a.record.id, a.record.unit, n, reason);
  Finish(a, state,
         absl::StrCat("stopped at step ", n, " (", kStepNames[n - 1], "): ", reason,
                      ". Next: ", a.restore_plan.next_action()));
}

}  // namespace dagvault::coordinator
