#include "coordinator/server/unit_history_cache.h"

#include <set>

#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/rpo/rpo.h"

namespace dagvault::coordinator {

SourceHistory SourceHistoryOf(const std::vector<JobRecord>& newest_first) {
  SourceHistory h;
  // The newest attempt on each node decides whether that node failed last.
  std::set<std::string> seen;
  for (const JobRecord& j : newest_first) {
    // Backups only: a restore, or a verification, ran where it was told.
    if (j.kind != "backup") continue;
    if (h.last_success_node.empty() && j.state == JobState::kSucceeded && !j.attempts.empty()) {
      h.last_success_node = j.attempts.back().node;
    }
    for (auto it = j.attempts.rbegin(); it != j.attempts.rend(); ++it) {
      if (!seen.insert(it->node).second) continue;
      if (it->state == JobState::kFailed) h.failed_last.insert(it->node);
    }
  }
  return h;
}

absl::StatusOr<std::shared_ptr<const UnitHistory>> UnitHistoryCache::Of(const std::string& unit,
                                                                        bool keep) {
  // Read before the queries: a write that lands during them moves the
  // version past this one, and the next call reads again.
  const uint64_t version = catalog_->UnitVersion(unit);
  if (keep) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = entries_.find(unit);
    if (it != entries_.end() && it->second.version == version) return it->second.history;
  }
  ASSIGN_OR_RETURN(std::vector<BackupRecord> backups, catalog_->Backups(unit));
  ASSIGN_OR_RETURN(std::vector<ChainBreakRecord> breaks, catalog_->ChainBreaks(unit));
  ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, catalog_->ListJobs(unit, kSourceHistoryJobs));
  auto history = std::make_shared<UnitHistory>();
  history->chains = ChainFactsOf(ShowChains(unit, backups, breaks));
  history->sources = SourceHistoryOf(jobs);
  for (JobRecord& j : jobs) {  // newest first
    if (j.kind == "backup") {
      history->last_backup_job = std::make_unique<const JobRecord>(std::move(j));
      break;
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  ++reads_;
  if (keep) entries_[unit] = Entry{version, history};
  return std::shared_ptr<const UnitHistory>(std::move(history));
}

uint64_t UnitHistoryCache::reads() const {
  std::lock_guard<std::mutex> l(mu_);
  return reads_;
}

}  // namespace dagvault::coordinator
