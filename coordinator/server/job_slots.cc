// JobManager's bookkeeping of unfinished jobs (job_manager.h, Locking):
// which jobs exist and what they show, the reservation of a unit while a
// job of it starts, and the read paths (Info, Running, the change
// counter) that never wait for a job's own lock.
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/job_state.h"
#include "coordinator/server/job_manager.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

void JobManager::Changed(Active* a) {
  std::lock_guard<std::mutex> l(mu_);
  if (a != nullptr) {
    a->shown = a->record;
    a->shown_bytes_per_second = a->bytes_per_second;
    a->shown_operation_nodes.clear();
    for (const auto& [node, op] : a->operations) a->shown_operation_nodes.insert(node);
  }
  ++changes_;
  changed_.notify_all();
}

JobManager::SlotPtr JobManager::Find(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = active_.find(id);
  return it == active_.end() ? nullptr : it->second;
}

bool JobManager::RunsOnLocked(const Slot& slot, const std::string& node) {
  // A plan's operations run on several nodes at once.
  if (slot.a.all_copies) return slot.a.shown_operation_nodes.count(node) != 0;
  const JobRecord& shown = slot.a.shown;
  return !shown.attempts.empty() && shown.attempts.back().node == node;
}

std::vector<JobManager::SlotPtr> JobManager::Slots(const std::string& node) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<SlotPtr> out;
  out.reserve(active_.size());
  for (const auto& [id, slot] : active_) {
    if (node.empty() || RunsOnLocked(*slot, node)) out.push_back(slot);
  }
  return out;
}

bool JobManager::ReportIsQuiet(const v1::NodeReport& report) {
  // Archived segments are catalogued: not in memory alone.
  if (report.running_size() != 0 || report.undelivered_size() != 0 ||
      report.archived_segments_size() != 0) {
    return false;
  }
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [id, slot] : active_) {
    if (RunsOnLocked(*slot, report.node())) return false;
  }
  return true;
}

void JobManager::Place(const SlotPtr& slot) {
  std::lock_guard<std::mutex> l(mu_);
  // What it shows from the start (a job recorded only by CreateJob so far
  // has not passed through Changed).
  slot->a.shown = slot->a.record;
  slot->a.shown_bytes_per_second = slot->a.bytes_per_second;
  slot->a.shown_operation_nodes.clear();
  for (const auto& [node, op] : slot->a.operations) slot->a.shown_operation_nodes.insert(node);
  active_[slot->a.record.id] = slot;
  ++changes_;
  changed_.notify_all();
}

void JobManager::Retire(Slot& slot) {
  slot.ended = true;
  std::lock_guard<std::mutex> l(mu_);
  auto it = active_.find(slot.a.record.id);
  if (it != active_.end() && it->second.get() == &slot) active_.erase(it);
  ++changes_;
  changed_.notify_all();
}

JobManager::StartingGuard::~StartingGuard() {
  std::lock_guard<std::mutex> l(m_->mu_);
  m_->units_starting_.erase(unit_);
  m_->changed_.notify_all();
}

absl::StatusOr<std::unique_ptr<JobManager::StartingGuard>> JobManager::ReserveUnit(
    const std::string& unit, bool restore, bool wait) {
  std::unique_lock<std::mutex> l(mu_);
  // Another start of the unit finishes first (its catalog reads and
  // writes, milliseconds), so that this one sees the job it made. The
  // scheduler does not wait (it runs on the ticker thread): the unit is
  // busy, and its queued backup waits for its turn.
  const bool free = changed_.wait_for(l, std::chrono::seconds(wait ? 30 : 0),
                                      [&] { return units_starting_.count(unit) == 0; });
  if (!free) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", unit, " is busy: another backup or restore of it is being started",
                     wait ? " (for 30 s: the catalog may be slow to answer)" : ""));
  }
  for (const auto& [id, slot] : active_) {
    const JobRecord& r = slot->a.shown;
    // A restore verification shares the unit (verification_plan.cc).
    if (r.unit != unit || slot->a.verification) continue;
    if (restore && r.kind == "restore") {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", unit, " is being ", absl::StartsWith(id, "reseed") ? "reseeded" : "restored",
          " by job ", id, "; wait for it or cancel it"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", unit, " is being ",
        absl::StartsWith(id, "reseed") ? "reseeded"
        : r.kind == "restore"          ? "restored"
                                       : "backed up",
        ": job ", id, " on ", r.attempts.empty() ? std::string("?") : r.attempts.back().node,
        " holds its backup-in-progress lease (", JobStateName(r.state), " since ",
        FormatUtc(r.created), ")", restore ? "; restore when it has ended" : ""));
  }
  units_starting_.insert(unit);
  return std::make_unique<StartingGuard>(this, unit);
}

std::vector<std::string> JobManager::RunningBackupNodes() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  for (const auto& [id, slot] : active_) {
    const JobRecord& r = slot->a.shown;
    if (r.kind == "backup" && !r.attempts.empty()) out.push_back(r.attempts.back().node);
  }
  return out;
}

v1::JobInfo JobManager::InfoLocked(const JobRecord& record, const Active* active) {
  v1::JobInfo info = JobInfoOf(record);
  if (active != nullptr) info.set_bytes_per_second(active->shown_bytes_per_second);
  return info;
}

absl::StatusOr<v1::JobInfo> JobManager::Info(const std::string& job, bool with_events) {
  v1::JobInfo info;
  bool found = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = active_.find(job);
    if (it != active_.end()) {
      info = InfoLocked(it->second->a.shown, &it->second->a);
      found = true;
    }
  }
  if (!found) {
    auto record = catalog_->GetJob(job);
    if (!record.ok()) return record.status();
    info = InfoLocked(*record, nullptr);
  }
  if (with_events) {
    auto events = catalog_->JobEvents(job);
    if (!events.ok()) return events.status();
    for (const auto& e : *events) {
      v1::JobEventInfo* ei = info.add_events();
      ei->set_time_us(absl::ToUnixMicros(e.time));  // an event always has its time
      ei->set_attempt(static_cast<uint32_t>(e.attempt));
      ei->set_state(ToProto(e.state));
      ei->set_message(e.message);
    }
  }
  return info;
}

std::vector<v1::JobInfo> JobManager::Running() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<v1::JobInfo> out;
  for (const auto& [id, slot] : active_) out.push_back(InfoLocked(slot->a.shown, &slot->a));
  return out;
}

uint64_t JobManager::WaitForChange(uint64_t seen, absl::Duration timeout) {
  std::unique_lock<std::mutex> l(mu_);
  changed_.wait_for(l, absl::ToChronoMilliseconds(timeout), [&] { return changes_ != seen; });
  return changes_;
}

uint64_t JobManager::ChangeCounter() {
  std::lock_guard<std::mutex> l(mu_);
  return changes_;
}

void JobManager::Send(Outbox& outbox) {
  for (auto& [channel, message] : outbox) channel->Send(message);
}

}  // namespace dagvault::coordinator
