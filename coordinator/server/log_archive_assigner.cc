#include "coordinator/server/log_archive_assigner.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/events.h"
#include "common/logging.h"
#include "coordinator/selection/source_selection.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

LogArchiveAssigner::LogArchiveAssigner(Catalog* catalog, Topology* topology, PolicyReader policies)
    : catalog_(catalog), topology_(topology), policies_(std::move(policies)) {}

void LogArchiveAssigner::Tick() {
  auto log = logging::Get("coordinator.archive");
  auto policies = policies_();
  if (!policies.ok()) {
    log->warn("log archiving: the policies cannot be read: {}", policies.status());
    return;
  }
  std::map<std::string, std::set<std::string>> wanted;           // node → units
  std::map<std::string, std::map<std::string, uint32_t>> rolls;  // node → unit → seconds
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, std::string> chosen;
  for (const v1::Policy& p : **policies) {
    if (!p.archive_logs()) continue;
    SelectionPolicy selection;
    if (auto mode =
            ParseSourceMode(p.source_mode().empty() ? "passive-then-active" : p.source_mode());
        mode.ok()) {
      selection.mode = *mode;
    }
    selection.preferred.assign(p.preferred().begin(), p.preferred().end());
    if (p.max_copy_queue() != 0) selection.max_copy_queue = p.max_copy_queue();
    if (p.max_replay_queue() != 0) selection.max_replay_queue = p.max_replay_queue();
    for (const std::string& unit : p.units()) {
      const std::vector<CopyView> copies = topology_->CopiesOf(unit);
      if (copies.empty()) continue;
      if (p.archive_roll_seconds() != 0) {
        for (const CopyView& c : copies) {
          if (c.status.role() == v1::ACTIVE)
            rolls[c.status.node()][unit] = p.archive_roll_seconds();
        }
      }
      // The current archiver stays while it qualifies.
      SourceHistory history;
      if (auto it = archiver_.find(unit); it != archiver_.end()) {
        history.last_success_node = it->second;
      }
      const Selection s = SelectSource(copies, selection, history);
      if (!s.ok()) continue;  // nothing qualifies: no archiver until one does
      RankedCopy best = s.ranked.front();
      for (const RankedCopy& r : s.ranked) {
        if (r.node == history.last_success_node) best = r;
      }
      chosen[unit] = best.node;
      wanted[best.node].insert(unit);
    }
  }
  for (const auto& [unit, node] : chosen) {
    auto it = archiver_.find(unit);
    if (it == archiver_.end() || it->second != node) {
      log->info("unit {}: its closed logs are archived from {}{}", unit, node,
                it == archiver_.end() ? "" : absl::StrCat(" (was ", it->second, ")"));
    }
  }
  archiver_ = std::move(chosen);
  // Every node that was sent a set, and every node that has one now.
  for (const auto& [node, sent] : sent_) wanted.try_emplace(node);
  for (const auto& [node, unit_rolls] : rolls) wanted.try_emplace(node);
  for (const auto& [node, units] : wanted) {
    std::shared_ptr<AgentChannel> channel = topology_->ChannelOf(node);
    if (channel == nullptr) continue;
    Sent& sent = sent_[node];
    const std::map<std::string, uint32_t>& node_rolls = rolls[node];
    if (sent.channel.lock() == channel && sent.units == units && sent.rolls == node_rolls) {
      continue;
    }
    v1::CoordinatorMessage m;
    v1::ArchiveAssignments* a = m.mutable_archive();
    for (const auto& u : units) a->add_units(u);
    for (const auto& [unit, seconds] : node_rolls) {
      v1::RollEvery* r = a->add_rolls();
      r->set_unit(unit);
      r->set_seconds(seconds);
    }
    if (channel->Send(m)) {
      sent.channel = channel;
      sent.units = units;
      sent.rolls = node_rolls;
    }
  }
}

void LogArchiveAssigner::OnReport(const v1::NodeReport& report) {
  // Segments first: a break may name the segment this very report brings.
  CatalogueSegments(report);
  for (const v1::ArchiveProgress& p : report.archives()) {
    if (p.break_generation() != 0) RecordBreak(report.node(), p);
  }
}

void LogArchiveAssigner::CatalogueSegments(const v1::NodeReport& report) {
  if (report.archived_segments_size() == 0) return;
  auto log = logging::Get("coordinator.archive");
  v1::CoordinatorMessage ack;
  for (const v1::Manifest& m : report.archived_segments()) {
    bool holds = false;
    for (const CopyView& c : topology_->CopiesOf(m.unit()))
      holds |= c.status.node() == report.node();
    const BackupRecord record = BackupRecordOf(m);
    if (m.type() != v1::LOG_ARCHIVE || m.id().empty() || m.source_node() != report.node() ||
        !holds || !record.verified) {
      log->warn(
          "node {} reported segment {} of unit {} that is no verified log archive of a copy it "
          "holds; "
          "ignored",
          report.node(), m.id(), m.unit());
      ack.mutable_archive_ack()->add_manifests(m.id());
      continue;
    }
    if (absl::Status s = catalog_->PutBackup(record); !s.ok()) {
      log->warn("unit {}: log archive segment {} not catalogued yet: {}", m.unit(), m.id(), s);
      continue;  // reported again
    }
    ack.mutable_archive_ack()->add_manifests(m.id());
  }
  if (ack.archive_ack().manifests_size() == 0) return;
  if (auto channel = topology_->ChannelOf(report.node())) channel->Send(ack);
}

void LogArchiveAssigner::RecordBreak(const std::string& node, const v1::ArchiveProgress& p) {
  const std::pair<std::string, std::string> key(p.unit(), p.break_after_manifest());
  {
    std::lock_guard<std::mutex> l(mu_);
    if (recorded_breaks_.count(key) != 0) return;
    // Only the unit's current archiver speaks for the archive: a report
    // from one the unit has just moved away from may be stale.
    auto archiver = archiver_.find(p.unit());
    if (archiver == archiver_.end() || archiver->second != node) return;
  }
  auto log = logging::Get("coordinator.archive");
  bool holds = false;
  for (const CopyView& c : topology_->CopiesOf(p.unit())) holds |= c.status.node() == node;
  auto backups = catalog_->Backups(p.unit());
  auto breaks = catalog_->ChainBreaks(p.unit());
  if (!backups.ok() || !breaks.ok()) {
    log->warn("unit {}: the archive break {} reported cannot be checked yet: {}", p.unit(), node,
              !backups.ok() ? backups.status() : breaks.status());
    return;  // reported again
  }
  const bool catalogued = std::any_of(backups->begin(), backups->end(), [&](const BackupRecord& b) {
    return b.manifest == p.break_after_manifest();
  });
  if (!holds || !catalogued) {
    log->warn(
        "node {} reported that unit {}'s logs do not follow {}, which is no catalogued backup "
        "of a copy it holds; ignored",
        node, p.unit(), p.break_after_manifest());
    return;
  }
  const bool known = std::any_of(breaks->begin(), breaks->end(), [&](const ChainBreakRecord& b) {
    return b.after_manifest == p.break_after_manifest();
  });
  if (!known) {
    const std::string generation = absl::StrFormat("0x%08X", p.break_generation());
    const std::string reason = absl::StrCat("archiving from ", node, ": ", p.error());
    const ChainBreakRecord broken{
        p.unit(), p.break_after_manifest(), p.break_generation(), reason, absl::Now(), ""};
    if (absl::Status s = catalog_->PutChainBreak(broken); !s.ok()) {
      log->error("catalog: chain break of unit {}: {}", p.unit(), s);
      return;  // reported again
    }
    events::Emit("coordinator", spdlog::level::warn, events::EventId::kChainBroken,
                 absl::StrCat("the chain of unit ", p.unit(), " is broken at generation ",
                              generation, " after ", p.break_after_manifest(), ": ", reason,
                              "; the next Incremental of ", p.unit(),
                              " becomes a Full, and archiving goes on after it"),
                 {{"unit", p.unit()},
                  {"node", node},
                  {"generation", generation},
                  {"after", p.break_after_manifest()}});
  }
  std::lock_guard<std::mutex> l(mu_);
  recorded_breaks_.insert(key);
}

std::string LogArchiveAssigner::ArchiverOf(const std::string& unit) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = archiver_.find(unit);
  return it == archiver_.end() ? "" : it->second;
}

}  // namespace dagvault::coordinator
