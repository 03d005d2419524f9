#include "coordinator/server/job_manager.h"

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/backup_type.h"
#include "common/clock.h"
#include "common/events.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/schedule/policy.h"
#include "coordinator/server/restore_plan_steps.h"
#include "coordinator/server/unit_history_cache.h"
#include "spdlog/spdlog.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

// The agent's phases that move an attempt along (not its end).
std::optional<JobState> StateOfPhase(v1::JobState phase) {
  switch (phase) {
    case v1::JOB_PREPARING:
    case v1::JOB_FROZEN:
    case v1::JOB_TRANSFERRING:
    case v1::JOB_VERIFYING:
    case v1::JOB_COMPLETING:
      return FromProto(phase);
    default:
      return std::nullopt;
  }
}

// The source-selection policy a start request asks for.
absl::StatusOr<SelectionPolicy> SelectionPolicyOf(const v1::StartBackupRequest& request) {
  SelectionPolicy policy;
  if (!request.source_mode().empty()) {
    auto mode = ParseSourceMode(request.source_mode());
    if (!mode.ok()) return mode.status();
    policy.mode = *mode;
  }
  policy.preferred.assign(request.preferred().begin(), request.preferred().end());
  if (request.max_copy_queue() != 0) policy.max_copy_queue = request.max_copy_queue();
  if (request.max_replay_queue() != 0) policy.max_replay_queue = request.max_replay_queue();
  return policy;
}

}  // namespace

void ExitOnCatalogFailure(const absl::Status& status) {
  logging::Get("coordinator")
      ->critical(
          "stopping: {}; the catalog and this coordinator's memory would disagree. Fix the "
          "catalog's storage and start the coordinator again: it takes its jobs back from "
          "the catalog, and the agents send their results again",
          status);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
  std::_Exit(3);
}

JobManager::JobManager(Catalog* catalog, Topology* topology, JobManagerOptions options)
    : catalog_(catalog),
      policies_(options.policies ? options.policies : ReadPoliciesEachTime(catalog)),
      topology_(topology),
      options_(std::move(options)),
      clock_(options_.clock),
      owned_leases_(options_.leases == nullptr
                        ? std::make_unique<CatalogLeaseStore>(catalog, options_.clock)
                        : nullptr),
      leases_(options_.leases == nullptr ? owned_leases_.get() : options_.leases) {}

void JobManager::CatalogFailed(const absl::Status& status, const std::string& what) {
  const absl::Status s = Annotate(status, absl::StrCat("catalog write failed: ", what));
  if (options_.fail_stop) {
    logging::Get("coordinator")->error("{}", s);
    options_.fail_stop(s);
    return;
  }
  ExitOnCatalogFailure(s);
}

void JobManager::ReleaseLeaseOf(Active& a) {
  if (!a.holds_lease()) return;
  absl::Status s = leases_->Release(a.record.unit, a.record.id);
  if (!s.ok()) {
    CatalogFailed(s, absl::StrCat("releasing the lease of unit ", a.record.unit, " held by job ",
                                  a.record.id));
  }
}

void JobManager::Record(Active& a, JobState state, const std::string& message, int attempt) {
  const absl::Time now = clock_->Now();
  a.record.state = state;
  a.record.updated = now;
  if (a.all_copies) a.record.plan = a.restore_plan.SerializeAsString();
  if (attempt == 0 && !a.record.attempts.empty()) attempt = Current(a).number;
  absl::Status s = catalog_->UpdateJob(a.record, JobEvent{now, attempt, state, message});
  if (!s.ok()) {
    CatalogFailed(s, absl::StrCat("job ", a.record.id, " ", JobStateName(state), ": ", message));
  } else if (state == JobState::kAssigned || IsFinal(state)) {
    a.record.dequeues.reset();  // taken off the scheduler's queue by that write
    if (IsFinal(state) && options_.observer != nullptr) options_.observer->JobEnded(a.record);
  }
  Changed(&a);
}

SourceHistory JobManager::HistoryOf(const std::string& unit) {
  auto jobs = catalog_->ListJobs(unit, kSourceHistoryJobs);
  return jobs.ok() ? SourceHistoryOf(*jobs) : SourceHistory();
}

absl::StatusOr<JobRecord> JobManager::StartBackup(const v1::StartBackupRequest& request,
                                                  const std::string& requested_by,
                                                  bool from_schedule) {
  if (request.unit().empty())
    return absl::InvalidArgumentError("backup start: --unit U is required");
  if (request.type() == v1::BACKUP_TYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError("backup start: the backup type is missing");
  }
  if (request.type() == v1::LOG_ARCHIVE) {
    return absl::InvalidArgumentError(
        "backup start: a log archive is no backup type; set --archive-logs on the unit's policy");
  }
  auto selection_policy = SelectionPolicyOf(request);
  if (!selection_policy.ok()) return selection_policy.status();
  const SelectionPolicy& policy = *selection_policy;
  if (!topology_->UnitKnown(request.unit())) {
    return absl::NotFoundError(absl::StrCat("unit ", request.unit(),
                                            ": no agent has reported a copy of it; "
                                            "`dagvault status` lists the units"));
  }
  Outbox outbox;
  JobRecord result;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<StartingGuard> starting,
                     ReserveUnit(request.unit(), /*restore=*/false, /*wait=*/!from_schedule));
    auto backups = catalog_->Backups(request.unit());
    if (!backups.ok()) return backups.status();
    auto breaks = catalog_->ChainBreaks(request.unit());
    if (!breaks.ok()) return breaks.status();

    // No one else sees the job until it is placed, after its assignment
    // is recorded (and before it is sent, so that the agent's first update
    // finds it).
    auto slot = std::make_shared<Slot>();
    Active& a = slot->a;
    a.policy = policy;
    a.plan = PlanBackup(request.unit(), request.type(), *backups, *breaks);
    JobRecord& r = a.record;
    r.id = NewJobId("backup");
    r.unit = request.unit();
    r.type = a.plan.type;
    r.source_mode = SourceModeName(policy.mode);
    r.preferred = policy.preferred;
    r.created = r.updated = clock_->Now();
    if (!a.plan.promoted_because.empty()) {
      r.reason = absl::StrCat("requested ", BackupTypeTitle(request.type()),
                              " promoted to Full: ", a.plan.promoted_because);
    }
    r.state = JobState::kQueued;
    // The scheduler's queued backup of this unit and type leaves the queue
    // in the transaction that assigns (or ends) the job.
    if (from_schedule) r.dequeues = request.type();
    if (absl::Status s = catalog_->CreateJob(r); !s.ok()) return s;
    if (!requested_by.empty()) Record(a, JobState::kQueued, requested_by);
    if (!r.reason.empty()) Record(a, JobState::kQueued, r.reason);
    const bool assigned = Assign(a, 1, "", &outbox);
    result = a.record;
    if (assigned) Place(slot);
  }
  Send(outbox);
  return result;
}

absl::StatusOr<JobRecord> JobManager::RecordFailedStart(const v1::StartBackupRequest& request,
                                                        const std::string& why,
                                                        const absl::Status& error) {
  JobRecord r;
  r.id = NewJobId("backup");
  r.unit = request.unit();
  r.type = request.type();
  r.source_mode = request.source_mode();
  r.preferred.assign(request.preferred().begin(), request.preferred().end());
  r.created = r.updated = clock_->Now();
  r.state = JobState::kFailed;
  r.reason = absl::StrCat(why, ": could not start: ", error.message());
  r.dequeues = request.type();
  // One transaction: the failed job, and the backup off the queue.
  RETURN_IF_ERROR(catalog_->CreateJob(r));
  events::Emit(
      "coordinator", spdlog::level::warn, events::EventId::kJobFailed,
      absl::StrCat("job ", r.id, " (unit ", r.unit, ") failed to start: ", error.message()),
      {{"unit", r.unit}, {"job", r.id}, {"kind", r.kind}, {"reason", r.reason}});
  if (options_.observer != nullptr) options_.observer->JobEnded(r);
  Changed();
  return r;
}

std::pair<std::string, std::string> JobManager::NextSource(const v1::StartBackupRequest& request) {
  return NextSource(request, HistoryOf(request.unit()));
}

std::pair<std::string, std::string> JobManager::NextSource(const v1::StartBackupRequest& request,
                                                           const SourceHistory& history) {
  auto selection_policy = SelectionPolicyOf(request);
  if (!selection_policy.ok()) return {"", std::string(selection_policy.status().message())};
  const SelectionPolicy& policy = *selection_policy;
  const Selection s = SelectSource(topology_->CopiesOf(request.unit()), policy, history);
  if (!s.ok()) return {"", s.Explain(request.unit(), policy.mode)};
  return {s.ranked.front().node, s.ranked.front().why};
}

absl::StatusOr<std::string> JobManager::WouldRunOn(const v1::StartBackupRequest& request) {
  if (auto policy = SelectionPolicyOf(request); !policy.ok()) return policy.status();
  auto [node, why] = NextSource(request);
  if (node.empty()) return absl::NotFoundError(why);
  return node;
}

bool JobManager::Assign(Active& a, int number, const std::string& previous_failure,
                        Outbox* outbox) {
  std::vector<CopyView> copies = topology_->CopiesOf(a.record.unit);
  // A retry goes elsewhere.
  std::vector<CopyView> candidates;
  std::vector<std::string> excluded;
  for (auto& c : copies) {
    if (number > 1 && a.tried.count(c.status.node()) != 0) {
      excluded.push_back(c.status.node());
      continue;
    }
    candidates.push_back(std::move(c));
  }
  const Selection selection = SelectSource(candidates, a.policy, HistoryOf(a.record.unit));
  auto fail = [&](const std::string& why) {
    std::string reason = previous_failure.empty() ? why : absl::StrCat(previous_failure, "; ", why);
    a.record.reason =
        a.record.reason.empty() ? reason : absl::StrCat(a.record.reason, "; ", reason);
    Finish(a, JobState::kFailed, reason);
    return false;
  };
  if (!selection.ok()) {
    std::string why = selection.Explain(a.record.unit, a.policy.mode);
    if (!excluded.empty()) {
      absl::StrAppend(&why, " (already tried: ", absl::StrJoin(excluded, ", "), ")");
    }
    return fail(why);
  }
  auto policies = policies_();
  if (!policies.ok()) {
    return fail(absl::StrCat("the unit's policy could not be read from the catalog (",
                             policies.status().message(), ")"));
  }
  const absl::Duration retention = UnitBackupRetention(**policies, a.record.unit, clock_->Now());
  const RankedCopy& chosen = selection.ranked.front();
  for (const RejectedCopy& r : selection.rejected) {
    events::Emit("coordinator", spdlog::level::info, events::EventId::kCopySkipped,
                 absl::StrCat("job ", a.record.id, ": the copy of ", a.record.unit, " on ", r.node,
                              " was skipped: ", absl::StrJoin(r.reasons, "; ")),
                 {{"unit", a.record.unit},
                  {"job", a.record.id},
                  {"node", r.node},
                  {"reason", absl::StrJoin(r.reasons, "; ")}});
  }
  const absl::Duration now = clock_->Monotonic();
  auto lease = leases_->Acquire(a.record.unit, a.record.id, chosen.node, options_.lease_ttl);
  if (!lease.ok()) return fail(std::string(lease.status().message()));
  a.tried.insert(chosen.node);
  JobAttempt attempt;
  attempt.number = number;
  attempt.node = chosen.node;
  attempt.state = JobState::kAssigned;
  attempt.started = clock_->Now();
  a.record.attempts.push_back(attempt);
  a.assigned_at = now;
  a.lease_deadline = now + options_.lease_ttl;
  a.lease_written_at = now;
  a.fencing_token = lease->token;
  Record(a, JobState::kAssigned,
         absl::StrCat("attempt ", number, ": ", BackupTypeTitle(a.record.type), " from the ",
                      chosen.active ? "active" : "passive", " copy on ", chosen.node, " (",
                      chosen.why, "), fencing token ", lease->token));
  v1::CoordinatorMessage m;
  v1::JobAssignment* job = m.mutable_assignment();
  job->set_job(a.record.id);
  job->set_attempt(static_cast<uint32_t>(number));
  job->set_unit(a.record.unit);
  job->set_type(a.record.type);
  job->set_base_high_generation(a.plan.base_high_generation);
  job->set_base_high_log_sha256(a.plan.base_high_log_sha256);
  for (const auto& [generation, sha256] : a.plan.base_logs) {
    v1::ChainLog* log = job->add_base_logs();
    log->set_generation(generation);
    log->set_sha256(sha256);
  }
  job->set_max_copy_queue(a.policy.max_copy_queue);
  job->set_max_replay_queue(a.policy.max_replay_queue);
  job->set_expect_active(chosen.active);
  job->set_fencing_token(a.fencing_token);
  // Under Object Lock the backup stays immutable as long as its unit's
  // policy may need it.
  job->set_retain_seconds(static_cast<uint64_t>(absl::ToInt64Seconds(retention)));
  // A dead or cancelled earlier attempt's writer session may hold the unit
  // until the writers' session timeout ends it: the agent waits that long.
  job->set_wait_for_writer_seconds(
      static_cast<uint32_t>(absl::ToInt64Seconds(options_.writer_session_timeout) + 15));
  if (auto channel = topology_->ChannelOf(chosen.node)) outbox->emplace_back(channel, m);
  return true;
}

void JobManager::Finish(Active& a, JobState state, const std::string& reason) {
  // A verification that ends without its agent's outcome (lost, cancelled,
  // never assigned after a restart) is recorded too, as inconclusive.
  if (a.verification && !a.verification_recorded && state != JobState::kSucceeded) {
    RecordItemRestoreResult(a, v1::RestoreJobResult(), false, reason,
                            /*cancelled=*/state == JobState::kCancelled);
  }
  const absl::Time now = clock_->Now();
  if (!a.record.attempts.empty()) {
    JobAttempt& attempt = Current(a);
    if (!IsFinal(attempt.state)) {
      attempt.state = state;
      attempt.ended = now;
      if (state != JobState::kSucceeded) attempt.reason = reason;
    }
    ReleaseLeaseOf(a);
  }
  if (state != JobState::kSucceeded && a.record.reason.find(reason) == std::string::npos) {
    a.record.reason =
        a.record.reason.empty() ? reason : absl::StrCat(a.record.reason, "; ", reason);
  }
  Record(a, state, state == JobState::kSucceeded ? "succeeded" : reason);
  if (state == JobState::kFailed) {
    const std::string node = a.record.attempts.empty() ? "" : Current(a).node;
    events::Emit("coordinator", spdlog::level::warn, events::EventId::kJobFailed,
                 absl::StrCat("job ", a.record.id, " (unit ", a.record.unit, ") failed: ", reason),
                 {{"unit", a.record.unit},
                  {"job", a.record.id},
                  {"kind", a.record.kind},
                  {"node", node},
                  {"reason", reason}});
    return;
  }
  logging::Get("coordinator")
      ->info("job {} (unit {}) {}{}", a.record.id, a.record.unit, JobStateName(state),
             state == JobState::kSucceeded ? "" : absl::StrCat(": ", reason));
}

void JobManager::LoseAttempt(Active& a, const std::string& reason, Outbox* outbox) {
  JobAttempt& attempt = Current(a);
  attempt.state = JobState::kFailed;
  attempt.ended = clock_->Now();
  attempt.reason = reason;
  const std::string lost =
      absl::StrCat("attempt ", attempt.number, " on ", attempt.node, " lost: ", reason);
  logging::Get("coordinator")->warn("job {} (unit {}): {}", a.record.id, a.record.unit, lost);
  ReleaseLeaseOf(a);
  if (a.cancel_requested) {
    Finish(a, JobState::kCancelled, absl::StrCat("cancelled; ", lost));
    return;
  }
  if (attempt.number >= 2 || a.record.kind == "restore") {
    Finish(a, JobState::kFailed, lost);
    return;
  }
  Record(a, JobState::kQueued, absl::StrCat(lost, "; retrying once on the next qualifying copy"));
  Assign(a, attempt.number + 1, lost, outbox);
}

void JobManager::RenewLocked(Active& a, absl::Duration now) {
  if (a.lease_deadline < now) return;  // ran out: Tick loses the attempt
  a.lease_deadline = now + options_.lease_ttl;
  // The store's copy matters only across a coordinator restart (which
  // renews every lease anyway): written a few times per period, not at
  // every report.
  if (!a.holds_lease() || now - a.lease_written_at < options_.lease_ttl / 3) return;
  a.lease_written_at = now;
  absl::Status s = leases_->Renew(a.record.unit, a.record.id, options_.lease_ttl);
  if (absl::IsNotFound(s)) {
    logging::Get("coordinator")
        ->warn("job {} (unit {}): {}", a.record.id, a.record.unit, s.message());
    a.lease_deadline = now - absl::Nanoseconds(1);
  } else if (!s.ok()) {
    CatalogFailed(s, absl::StrCat("renewing the lease of unit ", a.record.unit, " held by job ",
                                  a.record.id));
  }
}

void JobManager::Ack(const std::string& node, const std::string& job, uint32_t attempt,
                     Outbox* outbox) {
  auto channel = topology_->ChannelOf(node);
  if (!channel) return;
  v1::CoordinatorMessage m;
  m.mutable_ack()->set_job(job);
  m.mutable_ack()->set_attempt(attempt);
  outbox->emplace_back(channel, m);
}

void JobManager::OnJobUpdate(const std::string& node, const v1::JobUpdate& u) {
  auto log = logging::Get("coordinator");
  const bool final = IsFinalJobState(u.phase());
  Outbox outbox;
  {
    SlotPtr slot = Find(u.job());
    std::unique_lock<std::mutex> job_lock;
    if (slot != nullptr) job_lock = std::unique_lock<std::mutex>(slot->mu);
    const bool current = slot != nullptr && !slot->ended &&
                         RunsAttempt(slot->a, node, static_cast<int>(u.attempt()));
    if (!current) {
      // A result the coordinator already has (sent again before the ack
      // arrived), or of an attempt it gave up on: acknowledged so that the
      // agent forgets it.
      if (final) {
        // A success, or a failure whose BackupComplete went unacknowledged.
        if (u.result().has_summary() && BackupRecordOf(u.result().summary()).verified) {
          // Verified and in the repository, and its node may have
          // truncated after it: a real backup, so the catalog lists it.
          BackupRecord b = BackupRecordOf(u.result().summary());
          b.job = u.job();
          absl::Status s = catalog_->PutBackup(b);
          if (!s.ok()) {
            log->error("catalog: backup {} of job {}: {}", b.manifest, u.job(), s);
            return;  // not acknowledged: the agent sends it again
          }
          log->info("job {} attempt {} on {}: backup {} catalogued", u.job(), u.attempt(), node,
                    b.manifest);
        }
        Ack(node, u.job(), u.attempt(), &outbox);
      }
    } else if (slot->a.all_copies) {
      const absl::Duration now = clock_->Monotonic();
      RenewLocked(slot->a, now);
      if (slot->a.lease_deadline < now) {
        // The unit's lease is no longer this plan's: nothing more is sent.
        FailPlan(slot->a, JobState::kFailed,
                 absl::StrCat("its lease on unit ", slot->a.record.unit,
                              " was lost (the lease store no longer holds it, or it ran out)"),
                 &outbox);
        Retire(*slot);
      } else {
        slot->a.operations[node].deadline = now + options_.lease_ttl;
        if (OnPlanUpdate(slot->a, node, u, &outbox)) Retire(*slot);
      }
    } else {
      Active& a = slot->a;
      JobAttempt& attempt = Current(a);
      const absl::Time now = clock_->Now();
      RenewLocked(a, clock_->Monotonic());
      if (!u.writer_instance().empty()) attempt.writer_instance = u.writer_instance();
      if (u.bytes_total() > 0) {
        a.record.bytes_done = u.bytes_done();
        a.record.bytes_total = u.bytes_total();
        a.bytes_per_second = u.bytes_per_second();
      }
      BackupRecord b;
      std::string mismatch;
      bool done = false;  // the update is fully handled (and `a` may be gone)
      if (u.phase() == v1::JOB_SUCCEEDED && a.record.kind == "restore") {
        const auto& r = u.restore_result();
        Record(a, a.record.state,
               absl::StrCat("restored on ", node,
                            r.recovery_database().empty()
                                ? std::string(" at the unit's own location")
                                : absl::StrCat(" as recovery database ", r.recovery_database()),
                            ", replayed through generation ",
                            absl::StrFormat("0x%08X", r.last_generation()),
                            r.message().empty() ? "" : absl::StrCat(" (", r.message(), ")")));
        RecordItemRestoreResult(a, r, /*succeeded=*/true, "");
        Finish(a, JobState::kSucceeded, "");
        Retire(*slot);
        Ack(node, u.job(), u.attempt(), &outbox);
        done = true;
      } else if (u.phase() == v1::JOB_SUCCEEDED) {
        b = BackupRecordOf(u.result().summary());
        b.job = a.record.id;
        if (b.unit != a.record.unit || b.manifest != u.result().manifest() || !b.verified) {
          mismatch = absl::StrCat("the agent reported success with backup ", b.manifest,
                                  " of unit ", b.unit, b.verified ? "" : " (not verified)",
                                  ", which is not this job's verified result; not recorded");
        }
      }
      if (done) {
        // recorded above
      } else if (!mismatch.empty()) {
        Finish(a, JobState::kFailed, mismatch);
        Retire(*slot);
        Ack(node, u.job(), u.attempt(), &outbox);
      } else if (u.phase() == v1::JOB_SUCCEEDED) {
        absl::Status s = catalog_->PutBackup(b);
        if (!s.ok()) {
          // Not acknowledged: the agent sends it again.
          log->error("catalog: backup {} of job {}: {}", b.manifest, a.record.id, s);
        } else {
          a.record.manifest = b.manifest;
          a.record.bytes_done = u.result().logical_bytes();
          a.record.bytes_total = u.result().logical_bytes();
          attempt.writer_instance = u.result().writer_instance();
          if (options_.observer != nullptr) {
            options_.observer->BackupSucceeded(a.record, node, u.result());
          }
          Finish(a, JobState::kSucceeded, "");
          Retire(*slot);
          Ack(node, u.job(), u.attempt(), &outbox);
        }
      } else if (final) {
        std::string reason = u.error();
        if (u.result().has_summary()) {
          // A verified backup whose BackupComplete went unacknowledged: the
          // writer may have truncated after it, so it is catalogued although
          // the job failed (and not acknowledged until it is).
          BackupRecord kept = BackupRecordOf(u.result().summary());
          kept.job = a.record.id;
          if (kept.unit != a.record.unit || !kept.verified) {
            log->warn(
                "job {}: a failure carried backup {} of unit {}, which is not this job's "
                "verified backup; not recorded",
                a.record.id, kept.manifest, kept.unit);
          } else if (absl::Status s = catalog_->PutBackup(kept); !s.ok()) {
            log->error("catalog: backup {} of job {}: {}", kept.manifest, a.record.id, s);
            return;  // not acknowledged: the agent sends it again
          } else {
            a.record.manifest = kept.manifest;
            absl::StrAppend(&reason, "; the verified backup ", kept.manifest,
                            " is catalogued all the same");
          }
        }
        if (u.chain_break_generation() != 0 && !a.plan.base_manifest.empty()) {
          const ChainBreakRecord broken{
              a.record.unit, a.plan.base_manifest, u.chain_break_generation(), u.error(),
              now,           a.record.id};
          if (absl::Status s = catalog_->PutChainBreak(broken); !s.ok()) {
            log->error("catalog: chain break of unit {}: {}", a.record.unit, s);
          }
          events::Emit(
              "coordinator", spdlog::level::warn, events::EventId::kChainBroken,
              absl::StrCat("the chain of unit ", a.record.unit, " is broken at generation ",
                           absl::StrFormat("0x%08X", u.chain_break_generation()), " after ",
                           a.plan.base_manifest, ": ", u.error()),
              {{"unit", a.record.unit},
               {"job", a.record.id},
               {"node", node},
               {"generation", absl::StrFormat("0x%08X", u.chain_break_generation())},
               {"after", a.plan.base_manifest}});
          absl::StrAppend(&reason, "; the chain is broken at generation ",
                          absl::StrFormat("0x%08X", u.chain_break_generation()),
                          ": the next Incremental of ", a.record.unit, " becomes a Full");
        }
        if (a.record.kind == "restore") {
          RecordItemRestoreResult(a, u.restore_result(), false, u.error(),
                                  /*cancelled=*/u.phase() == v1::JOB_CANCELLED);
        }
        Finish(a, u.phase() == v1::JOB_CANCELLED ? JobState::kCancelled : JobState::kFailed,
               reason);
        Retire(*slot);
        Ack(node, u.job(), u.attempt(), &outbox);
      } else if (auto state = StateOfPhase(u.phase()); state && *state != attempt.state) {
        attempt.state = *state;
        Record(a, *state,
               absl::StrCat("attempt ", attempt.number, " on ", node, ": ",
                            dagvault::JobStateName(u.phase())));
      } else {
        Changed(&a);  // progress only: for watchers, not the catalog
      }
    }
  }
  Send(outbox);
}

void JobManager::OnReport(const v1::NodeReport& report) {
  for (const auto& u : report.undelivered()) OnJobUpdate(report.node(), u);
  Outbox outbox;
  {
    const absl::Duration now = clock_->Monotonic();
    // Jobs the node still has: running, or finished with a result the
    // coordinator has not taken yet (it could not write it, say).
    std::set<std::pair<std::string, uint32_t>> running;
    for (const auto& u : report.undelivered()) running.insert({u.job(), u.attempt()});
    for (const auto& r : report.running()) {
      running.insert({r.job(), r.attempt()});
      SlotPtr slot = Find(r.job());
      std::unique_lock<std::mutex> job_lock;
      if (slot != nullptr) {
        // A job busy with a change of its own (a slow catalog write) is
        // renewed by the next report: the agents' handlers do not queue up
        // behind it.
        job_lock = std::unique_lock<std::mutex>(slot->mu, std::try_to_lock);
        if (!job_lock.owns_lock()) continue;
      }
      const bool current = slot != nullptr && !slot->ended &&
                           RunsAttempt(slot->a, report.node(), static_cast<int>(r.attempt()));
      if (!current) {
        // Not a job this coordinator runs there (it gave up on it, or it
        // never was): the agent stops it, which ends its writer session.
        v1::CoordinatorMessage m;
        m.mutable_cancel()->set_job(r.job());
        m.mutable_cancel()->set_attempt(r.attempt());
        m.mutable_cancel()->set_reason("the coordinator no longer runs this attempt");
        if (auto channel = topology_->ChannelOf(report.node())) outbox.emplace_back(channel, m);
        continue;
      }
      RenewLocked(slot->a, now);
      if (slot->a.all_copies && slot->a.lease_deadline >= now) {
        slot->a.operations[report.node()].deadline = now + options_.lease_ttl;
      }
    }
    for (const SlotPtr& slot : Slots(report.node())) {
      // A job busy with a change of its own is looked at with the next
      // report: this agent's stream does not wait on its catalog write.
      std::unique_lock<std::mutex> job_lock(slot->mu, std::try_to_lock);
      if (!job_lock.owns_lock()) continue;
      Active& a = slot->a;
      if (slot->ended) continue;
      if (a.all_copies) {
        auto op = a.operations.find(report.node());
        if (op == a.operations.end()) continue;
        if (running.count({a.record.id, static_cast<uint32_t>(op->second.attempt)}) != 0) continue;
        if (now - op->second.assigned_at < options_.report_grace) continue;
        LoseOperation(
            a, report.node(),
            absl::StrCat("the agent on ", report.node(),
                         " no longer runs it (the agent restarted, or never received it)"),
            &outbox, /*not_running=*/true);
        if (IsFinal(a.record.state)) Retire(*slot);
        continue;
      }
      if (a.record.attempts.empty() || Current(a).node != report.node()) continue;
      if (running.count({a.record.id, static_cast<uint32_t>(Current(a).number)}) != 0) continue;
      if (now - a.assigned_at < options_.report_grace) continue;
      LoseAttempt(a,
                  absl::StrCat("the agent on ", report.node(),
                               " no longer runs it (the agent restarted, or never received it)"),
                  &outbox);
      if (IsFinal(a.record.state)) Retire(*slot);
    }
  }
  Send(outbox);
}

void JobManager::Tick() {
  Outbox outbox;
  for (const SlotPtr& slot : Slots()) {
    // A job busy with a change of its own (an update, a catalog write that
    // is slow) is looked at again in a second: the round does not wait.
    std::unique_lock<std::mutex> job_lock(slot->mu, std::try_to_lock);
    if (!job_lock.owns_lock()) continue;
    Active& a = slot->a;
    // Read after the job's lock: an update that renewed the lease while
    // this round waited for it counts.
    const absl::Duration now = clock_->Monotonic();
    if (slot->ended || a.record.attempts.empty()) continue;
    if (a.all_copies) {
      // Each node's operation has a deadline of its own: one node gone
      // silent stops the plan, however busy the others are.
      for (const auto& [node, op] : a.operations) {
        if (now <= op.deadline) continue;
        const std::string silent = node;
        if (options_.observer != nullptr) options_.observer->LeaseExpired(a.record.unit, silent);
        events::Emit("coordinator", spdlog::level::warn, events::EventId::kLeaseExpired,
                     absl::StrCat("the lease of unit ", a.record.unit, " held by job ", a.record.id,
                                  " on ", silent, " expired"),
                     {{"unit", a.record.unit}, {"job", a.record.id}, {"node", silent}});
        LoseOperation(a, silent,
                      absl::StrCat("its lease expired: ", silent, " has not reported the job for ",
                                   absl::FormatDuration(options_.lease_ttl), " (last report from ",
                                   silent, " at ", FormatUtc(topology_->LastReport(silent)), ")"),
                      &outbox, /*not_running=*/false);
        if (IsFinal(a.record.state)) Retire(*slot);
        break;  // the plan has stopped, or the operations changed
      }
      if (slot->ended || IsFinal(a.record.state)) continue;
      if (now > a.lease_deadline) {
        // The unit's lease is gone (the store no longer has it, or no node
        // reported for a lease period): the plan stops, whatever runs.
        FailPlan(a, a.cancel_requested ? JobState::kCancelled : JobState::kFailed,
                 absl::StrCat("its lease on unit ", a.record.unit,
                              " was lost (no node reported the plan's operations for ",
                              absl::FormatDuration(options_.lease_ttl),
                              ", or the lease store no longer holds it)"),
                 &outbox);
        Retire(*slot);
      }
      continue;
    }
    if (now <= a.lease_deadline) continue;
    const std::string& id = a.record.id;
    {
      const std::string node = Current(a).node;
      // A verification holds no lease: its agent only went silent.
      if (a.holds_lease()) {
        if (options_.observer != nullptr) options_.observer->LeaseExpired(a.record.unit, node);
        events::Emit("coordinator", spdlog::level::warn, events::EventId::kLeaseExpired,
                     absl::StrCat("the lease of unit ", a.record.unit, " held by job ", id, " on ",
                                  node, " expired"),
                     {{"unit", a.record.unit}, {"job", id}, {"node", node}});
      }
      LoseAttempt(a,
                  absl::StrCat(a.holds_lease() ? "its lease expired: " : "its agent went silent: ",
                               node, " has not reported the job for ",
                               absl::FormatDuration(options_.lease_ttl), " (last report from ",
                               node, " at ", FormatUtc(topology_->LastReport(node)), ")"),
                  &outbox);
      if (IsFinal(a.record.state)) Retire(*slot);
    }
  }
  Send(outbox);
}

absl::StatusOr<JobRecord> JobManager::Cancel(const std::string& job,
                                             const std::string& requested_by) {
  Outbox outbox;
  JobRecord out;
  {
    SlotPtr slot = Find(job);
    std::unique_lock<std::mutex> job_lock;
    if (slot != nullptr) job_lock = std::unique_lock<std::mutex>(slot->mu);
    if (slot == nullptr || slot->ended) {
      auto record = catalog_->GetJob(job);
      if (!record.ok()) return record.status();
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job, " has already ended: ", JobStateName(record->state),
                       record->reason.empty() ? "" : absl::StrCat(" (", record->reason, ")")));
    }
    Active& a = slot->a;
    a.cancel_requested = true;
    if (a.all_copies) {
      // Every operation in flight is asked to stop; the plan stops when
      // the first answers (the others are cancelled with it).
      std::vector<std::string> waiting;
      for (const auto& [node, op] : a.operations) {
        auto channel = topology_->ChannelOf(node);
        if (!channel) continue;
        v1::CoordinatorMessage m;
        m.mutable_cancel()->set_job(job);
        m.mutable_cancel()->set_attempt(static_cast<uint32_t>(op.attempt));
        m.mutable_cancel()->set_reason("cancelled by the operator");
        outbox.emplace_back(channel, m);
        waiting.push_back(node);
      }
      if (waiting.empty()) {
        FailPlan(a, JobState::kCancelled,
                 absl::StrCat("cancelled by ", requested_by,
                              " while no node running its operations was connected"),
                 &outbox);
        out = a.record;
        Retire(*slot);
      } else {
        Record(a, a.record.state,
               absl::StrCat("cancel requested by ", requested_by, "; waiting for ",
                            absl::StrJoin(waiting, ", "), " to stop"));
        out = a.record;
      }
      Send(outbox);
      return out;
    }
    const std::string node = Current(a).node;
    auto channel = topology_->ChannelOf(node);
    if (channel) {
      Record(
          a, a.record.state,
          absl::StrCat("cancel requested by ", requested_by, "; waiting for ", node, " to stop"));
      v1::CoordinatorMessage m;
      m.mutable_cancel()->set_job(job);
      m.mutable_cancel()->set_attempt(static_cast<uint32_t>(Current(a).number));
      m.mutable_cancel()->set_reason("cancelled by the operator");
      outbox.emplace_back(channel, m);
      out = a.record;
    } else {
      // Its agent is gone: if it comes back still running the job, its
      // report is answered with a cancel.
      const std::string why =
          absl::StrCat("cancelled by ", requested_by, " while ", node, " was not connected");
      Finish(a, JobState::kCancelled, why);
      out = a.record;
      Retire(*slot);
    }
  }
  Send(outbox);
  return out;
}

}  // namespace dagvault::coordinator
