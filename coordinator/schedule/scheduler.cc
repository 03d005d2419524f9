#include "coordinator/schedule/scheduler.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/events.h"
#include "common/logging.h"
#include "coordinator/schedule/cron.h"
#include "coordinator/schedule/policy.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

namespace {

struct Kind {
  const char* name;
  v1::BackupType type;
  const std::string& (v1::Policy::*schedule)() const;
};

const Kind kKinds[] = {{"full", v1::FULL, &v1::Policy::full_schedule},
                       {"incremental", v1::INCREMENTAL, &v1::Policy::incremental_schedule},
                       {"differential", v1::DIFFERENTIAL, &v1::Policy::differential_schedule}};

const v1::Policy* FindPolicy(const std::vector<v1::Policy>& policies, const std::string& name) {
  for (const auto& p : policies) {
    if (p.name() == name) return &p;
  }
  return nullptr;
}

}  // namespace

void Scheduler::Tick() {
  auto policies = policies_();
  if (!policies.ok()) {
    logging::Get("scheduler")->error("cannot read the policies: {}", policies.status());
    return;
  }
  std::lock_guard<std::mutex> l(mu_);
  if (!LoadLocked()) return;
  const absl::Time now = clock_->Now();
  QueueDue(**policies, now);
  if (now < hold_until_) {
    for (auto& q : queue_) q.waiting_for = "the coordinator has just started; agents are reporting";
    return;
  }
  StartAllowed(**policies);
  StartDueVerifications(**policies, now);
}

void Scheduler::StartDueVerifications(const std::vector<v1::Policy>& policies, absl::Time now) {
  auto log = logging::Get("scheduler");
  for (const auto& p : policies) {
    if (p.verify_schedule().empty()) continue;
    auto schedule = CronSchedule::Parse(p.verify_schedule());
    if (!schedule.ok()) continue;  // refused when the policy was set
    auto last = catalog_->LastFired(p.name(), "verify");
    if (!last.ok()) {
      log->error("policy {}: {}", p.name(), last.status());
      continue;
    }
    const bool first = *last == absl::InfinitePast();
    const absl::Time due = first ? now : schedule->Next(*last);
    if (!first && due > now) continue;
    // Recorded first: a firing runs once, even if the coordinator stops
    // while its verifications start.
    if (absl::Status s = catalog_->SetLastFired(p.name(), "verify", now); !s.ok()) {
      log->error("policy {}: the verify schedule's firing could not be recorded: {}", p.name(), s);
      continue;
    }
    if (first) continue;  // a new schedule starts counting now
    log->info("policy {}: restore verification due at {} for {} unit(s)", p.name(), FormatUtc(due),
              p.units_size());
    for (const auto& unit : p.units()) {
      v1::StartRestoreRequest request;
      request.set_unit(unit);
      request.set_node(p.verify_node());
      v1::VerifyRestore* verify = request.mutable_verify();
      verify->set_requested(true);
      verify->set_random_point(p.verify_random_point());
      verify->set_sample_items(p.verify_sample_items());
      verify->set_off_production(p.verify_off_production());
      verify->set_policy(p.name());
      const std::string why =
          absl::StrCat("scheduled by policy ", p.name(), " (", FormatUtc(due), ")");
      auto job = starter_->StartVerification(request, why);
      if (job.ok()) {
        log->info("policy {}: restore verification {} of {} started", p.name(), job->id, unit);
        continue;
      }
      const bool expected = absl::StrContains(job.status().message(), "has no restore point") ||
                            absl::StrContains(job.status().message(), "has no Full backup") ||
                            absl::StrContains(job.status().message(), "is being verified");
      if (expected) {
        log->info("policy {}: no restore verification of {} now: {}", p.name(), unit,
                  job.status().message());
        continue;
      }
      events::Emit("scheduler", spdlog::level::err, events::EventId::kVerificationFailed,
                   absl::StrCat("the scheduled restore verification of unit ", unit,
                                " could not start: ", job.status().message()),
                   {{"unit", unit}, {"policy", p.name()}});
    }
  }
}

bool Scheduler::LoadLocked() {
  if (loaded_) return true;
  auto queued = catalog_->QueuedBackups();
  if (!queued.ok()) {
    logging::Get("scheduler")
        ->error("cannot read the queue of scheduled backups: {}", queued.status());
    return false;
  }
  for (const auto& q : *queued) {
    queue_.push_back({q, "queued before a restart"});
  }
  if (!queue_.empty()) {
    logging::Get("scheduler")
        ->info("{} scheduled backup(s) still queued from before the coordinator started",
               queue_.size());
  }
  loaded_ = true;
  return true;
}

std::vector<QueuedBackup> Scheduler::Queue() {
  std::lock_guard<std::mutex> l(mu_);
  return queue_;
}

void Scheduler::QueueDue(const std::vector<v1::Policy>& policies, absl::Time now) {
  auto log = logging::Get("scheduler");
  for (const auto& p : policies) {
    for (const Kind& kind : kKinds) {
      const std::string& text = (p.*kind.schedule)();
      if (text.empty()) continue;
      auto schedule = CronSchedule::Parse(text);
      if (!schedule.ok()) continue;  // refused when the policy was set
      auto last = catalog_->LastFired(p.name(), kind.name);
      if (!last.ok()) {
        log->error("policy {}: {}", p.name(), last.status());
        continue;
      }
      if (*last == absl::InfinitePast()) {
        // A new schedule starts counting now.
        if (absl::Status s = catalog_->SetLastFired(p.name(), kind.name, now); !s.ok()) {
          log->error("policy {}: {}", p.name(), s);
        }
        continue;
      }
      const absl::Time due = schedule->Next(*last);
      if (due > now) continue;
      // Due; and however many times it was missed, it runs once. A Full
      // supersedes a queued Incremental or Differential of the unit;
      // nothing is queued twice.
      const bool full = kind.type == v1::FULL;
      std::vector<QueuedBackupRecord> queued;
      for (const auto& unit : p.units()) {
        if (!full && std::any_of(queue_.begin(), queue_.end(), [&](const QueuedBackup& q) {
              return q.unit == unit && (q.type == v1::FULL || q.type == kind.type);
            })) {
          continue;
        }
        queued.push_back({p.name(), unit, kind.type, p.priority(), due});
      }
      // The firing and its queue together, or neither: the next tick
      // tries again.
      if (absl::Status s = catalog_->FireSchedule(p.name(), kind.name, now, queued, full);
          !s.ok()) {
        log->error("policy {}: the {} schedule's firing could not be recorded: {}", p.name(),
                   kind.name, s);
        continue;
      }
      for (const auto& q : queued) {
        if (full) {
          queue_.erase(std::remove_if(queue_.begin(), queue_.end(),
                                      [&](const QueuedBackup& e) { return e.unit == q.unit; }),
                       queue_.end());
        }
        queue_.push_back({q, "queued"});
      }
      log->info(
          "policy {}: {} backup due at {} for {} unit(s){}", p.name(), kind.name, FormatUtc(due),
          p.units_size(),
          schedule->Next(due) <= now ? " (runs missed while the coordinator was down: once)" : "");
    }
  }
}

void Scheduler::StartAllowed(const std::vector<v1::Policy>& policies) {
  auto log = logging::Get("scheduler");
  std::stable_sort(queue_.begin(), queue_.end(), [](const QueuedBackup& a, const QueuedBackup& b) {
    return a.priority != b.priority ? a.priority > b.priority : a.due < b.due;
  });
  std::vector<std::string> running = starter_->RunningBackupNodes();
  std::map<std::string, uint32_t> per_node;
  for (const auto& node : running) ++per_node[node];
  uint32_t total = static_cast<uint32_t>(running.size());
  std::vector<QueuedBackup> waiting;
  for (QueuedBackup& q : queue_) {
    const v1::Policy* p = FindPolicy(policies, q.policy);
    if (p == nullptr) {
      if (absl::Status s = catalog_->RemoveQueued(q.unit, q.type); !s.ok()) {
        log->error("queued backup of {}: {}", q.unit, s);
        waiting.push_back(q);
        continue;
      }
      log->warn("dropped the queued backup of {}: policy {} was removed", q.unit, q.policy);
      continue;
    }
    if (p->max_jobs() != 0 && total >= p->max_jobs()) {
      q.waiting_for = absl::StrCat("the deployment runs ", total, " backups (policy limit ",
                                   p->max_jobs(), ")");
      waiting.push_back(q);
      continue;
    }
    const v1::StartBackupRequest request = BackupRequestOf(*p, q.unit, q.type);
    std::string node;
    if (p->max_jobs_per_node() != 0) {
      auto where = starter_->WouldRunOn(request);
      if (where.ok()) {
        node = *where;
        if (per_node[node] >= p->max_jobs_per_node()) {
          q.waiting_for = absl::StrCat(node, " runs ", per_node[node], " backups (policy limit ",
                                       p->max_jobs_per_node(), " per node)");
          waiting.push_back(q);
          continue;
        }
      }
      // No qualifying copy: started anyway, so that the job records why.
    }
    const std::string why =
        absl::StrCat("scheduled by policy ", q.policy, " (", FormatUtc(q.due), ")");
    auto job = starter_->Start(request, why);
    // Busy (another job holds the unit), or no agent reports it yet: later.
    if (!job.ok() && (job.status().code() == absl::StatusCode::kFailedPrecondition ||
                      job.status().code() == absl::StatusCode::kNotFound)) {
      q.waiting_for = std::string(job.status().message());
      waiting.push_back(q);
      continue;
    }
    if (!job.ok()) {
      // Recorded as a failed job the operator sees, and off the queue.
      auto failed = starter_->RecordFailedStart(request, why, job.status());
      if (!failed.ok()) {
        log->error(
            "policy {}: the backup of {} could not start ({}) nor be recorded as failed "
            "({}); it stays queued",
            q.policy, q.unit, job.status(), failed.status());
        q.waiting_for = std::string(job.status().message());
        waiting.push_back(q);
      }
      continue;
    }
    if (!job->attempts.empty()) {
      ++total;
      ++per_node[job->attempts.back().node];
    }
  }
  queue_ = std::move(waiting);
}

}  // namespace dagvault::coordinator
