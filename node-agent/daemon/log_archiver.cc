#include "node-agent/daemon/log_archiver.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "node-agent/verify/unit_verifier.h"
#include "repository/chain.h"

namespace dagvault::agent {

namespace v1 = dagvault::v1;

LogArchiver::LogArchiver(std::string node, RepositoryFn repository, MetadataFn metadata,
                         RollFn roll, Clock* clock, Options options)
    : node_(std::move(node)),
      repository_(std::move(repository)),
      metadata_(std::move(metadata)),
      roll_(std::move(roll)),
      clock_(clock),
      options_(std::move(options)) {
  if (options_.state_path.empty()) return;
  auto kept = ReadFileToString(options_.state_path);
  v1::UnacknowledgedSegments segments;
  if (kept.ok() && segments.ParseFromString(*kept)) {
    pending_.assign(segments.segments().begin(), segments.segments().end());
  }
}

void LogArchiver::AddPendingLocked(const v1::Manifest& summary) {
  for (const auto& m : pending_) {
    if (m.id() == summary.id()) return;
  }
  pending_.push_back(summary);
  PersistPendingLocked();
}

void LogArchiver::PersistPendingLocked() {
  if (options_.state_path.empty()) return;
  v1::UnacknowledgedSegments segments;
  for (const auto& m : pending_) *segments.add_segments() = m;
  if (absl::Status s = WriteFileAtomically(options_.state_path, segments.SerializeAsString(), 0600);
      !s.ok()) {
    logging::Get("agent.archive")
        ->error("could not keep {} unacknowledged log archive segment(s) on disk: {}",
                pending_.size(), s);
  }
}

void LogArchiver::SetUnits(const std::vector<std::string>& units) {
  std::lock_guard<std::mutex> l(mu_);
  const std::set<std::string> wanted(units.begin(), units.end());
  for (auto it = units_.begin(); it != units_.end();) {
    it = wanted.count(it->first) ? std::next(it) : units_.erase(it);
  }
  for (const auto& u : wanted) units_.try_emplace(u);
}

void LogArchiver::SetRolls(const std::map<std::string, uint32_t>& seconds_by_unit) {
  std::lock_guard<std::mutex> l(mu_);
  rolls_ = seconds_by_unit;
}

void LogArchiver::Acknowledged(const std::vector<std::string>& manifests) {
  const std::set<std::string> done(manifests.begin(), manifests.end());
  std::lock_guard<std::mutex> l(mu_);
  if (std::erase_if(pending_, [&](const v1::Manifest& m) { return done.count(m.id()) != 0; }) !=
      0) {
    PersistPendingLocked();
  }
}

int LogArchiver::RunOnce() {
  std::vector<std::string> units;
  std::map<std::string, uint32_t> rolls;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [unit, state] : units_) {
      if (state.retry_at <= clock_->Monotonic()) units.push_back(unit);
    }
    rolls = rolls_;
  }
  if (units.empty() && rolls.empty()) return 0;
  auto log = logging::Get("agent.archive");
  absl::StatusOr<v1::WriterMetadata> metadata = metadata_();
  if (metadata.ok() && !rolls.empty()) {
    for (const auto& w : metadata->writers()) {
      for (const auto& u : w.units()) {
        auto it = rolls.find(u.unit());
        if (it == rolls.end() || u.copy().role() != v1::ACTIVE) continue;
        const int64_t since = u.copy().open_generation_since_us();
        if (since == 0 || clock_->Now() - absl::FromUnixMicros(since) < absl::Seconds(it->second)) {
          continue;
        }
        // Closed now, it is archived on this pass (here) or once a passive
        // copy has it.
        if (absl::Status rolled = roll_(u.unit()); !rolled.ok()) {
          log->warn("unit {}: closing its open log generation for archiving: {}", u.unit(),
                    rolled.message());
        }
      }
    }
    if (!units.empty()) metadata = metadata_();  // after the rolls
  }
  int written = 0;
  for (const std::string& unit : units) {
    UnitState state;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = units_.find(unit);
      if (it == units_.end()) continue;
      state = it->second;
    }
    // One unit's segments one after another, until it has none left.
    absl::StatusOr<bool> wrote = metadata.ok() ? ArchiveNext(unit, state, *metadata)
                                               : absl::StatusOr<bool>(metadata.status());
    int unit_written = 0;
    while (wrote.ok() && *wrote) {
      ++written;
      ++unit_written;
      wrote = ArchiveNext(unit, state, *metadata);
    }
    if (!wrote.ok()) {
      if (const uint32_t g = ChainBreakGenerationOf(wrote.status()); g != 0 && state.base) {
        state.break_after = state.base->manifest;
        state.break_generation = g;
      }
      if (state.error != wrote.status().message()) {
        log->warn("unit {}: log archiving: {}", unit, wrote.status().message());
        state.error_since = clock_->Now();
      }
      state.error = std::string(wrote.status().message());
      state.base.reset();  // from the repository again
      state.retry_at = clock_->Monotonic() + options_.retry_after_error;
    } else {
      if (!state.error.empty()) log->info("unit {}: log archiving goes on", unit);
      state.error.clear();
      if (unit_written != 0) {
        state.break_after.clear();
        state.break_generation = 0;
      }
    }
    std::lock_guard<std::mutex> l(mu_);
    auto it = units_.find(unit);
    if (it != units_.end()) {
      // What the pass learned, unless the unit was taken away meanwhile.
      it->second = state;
    }
  }
  return written;
}

absl::StatusOr<bool> LogArchiver::ArchiveNext(const std::string& unit, UnitState& state,
                                              const v1::WriterMetadata& metadata) {
  const v1::UnitMetadata* found = nullptr;
  for (const auto& w : metadata.writers()) {
    for (const auto& u : w.units()) {
      if (u.unit() == unit) found = &u;
    }
  }
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat("node ", node_, " holds no copy of unit ", unit));
  }
  const v1::CopyStatus& copy = found->copy();
  const bool active = copy.role() == v1::ACTIVE;
  // What this copy holds closed: the active copy's closed generations, a
  // passive copy's copied (and checked) ones.
  uint32_t available = active ? copy.last_log_generation() : copy.last_inspected_generation();
  ASSIGN_OR_RETURN(const repository::Repository* repo, repository_());
  if (!state.base) {
    ASSIGN_OR_RETURN(ArchiveBase base, ArchiveBaseFromRepository(*repo, unit));
    {
      // A segment written just before a restart may never have been
      // acknowledged: the latest go to the coordinator again.
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& m : base.recent_segments) AddPendingLocked(m);
    }
    base.recent_segments.clear();
    state.base = std::move(base);
    state.archived_through = state.base->high_generation;
  }
  if (!state.break_after.empty() && state.base->manifest == state.break_after) {
    // The stream was found not to follow this piece; until a new chain
    // starts, uploading the same logs again would only find it again.
    return absl::FailedPreconditionError(state.error);
  }
  if (available <= state.base->high_generation) return false;
  const uint32_t waiting = available - state.base->high_generation;
  if (waiting < options_.max_generations_per_segment &&
      clock_->Monotonic() - state.last_segment_at < options_.min_segment_interval) {
    return false;  // batched into the next segment
  }
  LogArchiveSpec spec;
  spec.unit = unit;
  spec.node = node_;
  spec.source_copy = active ? "active" : "passive";
  spec.log_dir = found->log_dir();
  spec.log_prefix = found->log_prefix();
  spec.low_generation = state.base->high_generation + 1;
  // The active copy reports a generation closed a moment before its file
  // has its closed name: archive up to the newest whose file is there.
  while (available > state.base->high_generation &&
         !PathExists(LogFilePath(spec.log_dir, spec.log_prefix, available))) {
    --available;
  }
  if (available <= state.base->high_generation) return false;
  spec.high_generation =
      std::min(available, spec.low_generation + options_.max_generations_per_segment - 1);
  ASSIGN_OR_RETURN(LogArchiveResult result, ArchiveLogs(*repo, spec, *state.base));
  ASSIGN_OR_RETURN(state.base, ArchiveBaseOf(result.summary));
  state.archived_through = state.base->high_generation;
  state.last_segment_at = clock_->Monotonic();
  std::lock_guard<std::mutex> l(mu_);
  AddPendingLocked(result.summary);
  return true;
}

void LogArchiver::FillReport(v1::NodeReport* report) {
  std::lock_guard<std::mutex> l(mu_);
  for (size_t i = 0; i < pending_.size() && static_cast<int>(i) < options_.max_segments_per_report;
       ++i) {
    *report->add_archived_segments() = pending_[i];
  }
  for (const auto& [unit, state] : units_) {
    v1::ArchiveProgress* p = report->add_archives();
    p->set_unit(unit);
    p->set_archived_through(state.archived_through);
    if (!state.error.empty()) {
      p->set_error(state.error);
      p->set_error_since_us(absl::ToUnixMicros(state.error_since));
    }
    if (state.break_generation != 0) {
      p->set_break_generation(state.break_generation);
      p->set_break_after_manifest(state.break_after);
    }
  }
}

}  // namespace dagvault::agent
