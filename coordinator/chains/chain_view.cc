#include "coordinator/chains/chain_view.h"

#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/backup_type.h"
#include "common/clock.h"
#include "repository/chain.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using repository::Chain;

std::string Gen(uint32_t g) { return absl::StrFormat("0x%08X", g); }

const v1::Manifest& LastPiece(const Chain& c) {
  return c.incrementals.empty() ? *c.full : *c.incrementals.back();
}

// The unit's chains, with the recorded breaks applied to the chain whose
// last piece each names.
std::vector<Chain> ChainsOf(const std::string& unit, const std::vector<BackupRecord>& backups,
                            const std::vector<ChainBreakRecord>& breaks) {
  std::vector<const v1::Manifest*> summaries;
  summaries.reserve(backups.size());
  for (const auto& b : backups) summaries.push_back(&b.chain_summary);
  std::vector<Chain> chains = repository::AssembleChains(summaries, unit);
  for (Chain& c : chains) {
    if (c.broken) continue;
    for (const auto& b : breaks) {
      if (b.unit != unit) continue;
      if (b.after_manifest == LastPiece(c).id()) {
        c.broken = repository::ChainBreak{b.generation, b.reason};
        // Past a recorded break, no archived log extends this chain.
        c.archived.clear();
        c.archive_broken.reset();
        continue;
      }
      // An archiver found its copy's stream does not follow this segment:
      // the chain ends with it.
      for (size_t i = 0; i < c.archived.size(); ++i) {
        if (c.archived[i]->id() != b.after_manifest) continue;
        c.archived.resize(i + 1);
        c.broken = repository::ChainBreak{b.generation, b.reason};
        c.archive_broken.reset();
        break;
      }
    }
  }
  return chains;
}

using RecordIndex = absl::flat_hash_map<std::string, const BackupRecord*>;

v1::CatalogBackup BackupOf(const v1::Manifest& m, const RecordIndex& records) {
  auto it = records.find(m.id());
  return it != records.end() ? CatalogBackupOf(*it->second) : CatalogBackupOf(BackupRecordOf(m));
}

PlannedBackup PlanFromChains(const std::string& unit, v1::BackupType requested,
                             const std::vector<Chain>& chains) {
  PlannedBackup plan;
  plan.type = requested;
  auto promote = [&](const std::string& why) {
    plan.type = v1::FULL;
    plan.promoted_because = why;
    return plan;
  };
  if (!chains.empty() && chains.back().broken) {
    const Chain& c = chains.back();
    return promote(absl::StrCat("the newest chain (Full ", c.full->id(),
                                ") is broken at generation ", Gen(c.broken->generation), ": ",
                                c.broken->reason));
  }
  auto base = repository::BaseFor(chains, requested, unit);
  if (!base.ok()) return promote(std::string(base.status().message()));
  const v1::ManifestFile* log = repository::FindLog(*base, base->high_generation());
  if (log == nullptr) {
    return promote(absl::StrCat("backup ", base->id(),
                                " does not hold the log of its high generation ",
                                Gen(base->high_generation())));
  }
  plan.base_manifest = base->id();
  plan.base_high_generation = base->high_generation();
  plan.base_high_log_sha256 = log->sha256();
  for (const auto& f : base->files()) {
    if (f.role() == "log") plan.base_logs.emplace_back(f.generation(), f.sha256());
  }
  return plan;
}

}  // namespace

v1::CatalogBackup CatalogBackupOf(const BackupRecord& b) {
  v1::CatalogBackup out;
  out.set_manifest(b.manifest);
  out.set_unit(b.unit);
  out.set_type(b.type);
  out.set_source_node(b.source_node);
  out.set_writer_instance(b.writer_instance);
  out.set_low_generation(b.low_generation);
  out.set_high_generation(b.high_generation);
  out.set_logical_bytes(b.logical_bytes);
  out.set_new_bytes(b.new_bytes);
  out.set_stored_bytes(b.stored_bytes);
  if (b.started != absl::InfinitePast()) out.set_started_us(absl::ToUnixMicros(b.started));
  if (b.finished != absl::InfinitePast()) out.set_finished_us(absl::ToUnixMicros(b.finished));
  out.set_verified(b.verified);
  out.set_job(b.job);
  // The agent writes the freeze window into the manifest's labels, so a
  // rebuilt catalog knows it too.
  if (const auto it = b.chain_summary.labels().find("freeze_window_us");
      it != b.chain_summary.labels().end()) {
    int64_t us = 0;
    if (absl::SimpleAtoi(it->second, &us)) out.set_freeze_window_us(us);
  }
  return out;
}

v1::ShowChainsResponse ShowChains(const std::string& unit, const std::vector<BackupRecord>& backups,
                                  const std::vector<ChainBreakRecord>& breaks) {
  v1::ShowChainsResponse out;
  const std::vector<Chain> chains = ChainsOf(unit, backups, breaks);
  RecordIndex records;
  records.reserve(backups.size());
  for (const auto& b : backups) records[b.manifest] = &b;
  for (const Chain& c : chains) {
    v1::ChainInfo* info = out.add_chains();
    info->set_unit(unit);
    *info->mutable_full() = BackupOf(*c.full, records);
    auto point = [&](const v1::Manifest& m) {
      v1::RestorePoint* p = info->add_restore_points();
      p->set_generation(m.high_generation());
      p->set_time_us(m.frozen_us());
      p->set_manifest(m.id());
    };
    point(*c.full);
    for (const v1::Manifest* m : c.incrementals) {
      *info->add_incrementals() = BackupOf(*m, records);
      point(*m);
    }
    for (const v1::Manifest* m : c.differentials) {
      *info->add_differentials() = BackupOf(*m, records);
      point(*m);
    }
    if (c.broken) {
      info->set_broken(true);
      info->set_broken_at_generation(c.broken->generation);
      info->set_broken_reason(c.broken->reason);
    }
    if (!c.archived.empty()) {
      // The newest archived generation is the chain's newest restore point
      // (every one before it, back to the last backup, is one too).
      point(*c.archived.back());
      info->set_archived_segments(static_cast<uint32_t>(c.archived.size()));
      info->set_archived_low_generation(LastPiece(c).high_generation() + 1);
      info->set_archived_high_generation(c.archived.back()->high_generation());
      info->set_archived_through_us(c.archived.back()->frozen_us());
      info->set_archived_newest_manifest(c.archived.back()->id());
      info->set_archived_source_node(c.archived.back()->source_node());
    }
    if (c.archive_broken) {
      info->set_archive_broken(true);
      info->set_archive_broken_at_generation(c.archive_broken->generation);
      info->set_archive_broken_reason(c.archive_broken->reason);
    }
  }
  const PlannedBackup next = PlanFromChains(unit, v1::INCREMENTAL, chains);
  out.set_next_incremental(next.type == v1::FULL
                               ? absl::StrCat("Full: ", next.promoted_because)
                               : absl::StrCat("Incremental after generation ",
                                              Gen(next.base_high_generation), " (backup ",
                                              next.base_manifest, ")"));
  return out;
}

std::vector<std::vector<std::string>> ArchivedSegmentsByChain(
    const std::string& unit, const std::vector<BackupRecord>& backups,
    const std::vector<ChainBreakRecord>& breaks) {
  std::vector<std::vector<std::string>> out;
  for (const Chain& c : ChainsOf(unit, backups, breaks)) {
    std::vector<std::string>& ids = out.emplace_back();
    for (const v1::Manifest* m : c.archived) ids.push_back(m->id());
  }
  return out;
}

absl::StatusOr<std::vector<v1::Manifest>> RestorePlan(const std::string& unit,
                                                      const std::vector<BackupRecord>& backups,
                                                      const std::vector<ChainBreakRecord>& breaks,
                                                      uint32_t to_generation, absl::Time to_time,
                                                      uint32_t* target) {
  const std::vector<Chain> chains = ChainsOf(unit, backups, breaks);
  *target = to_generation;
  if (to_time != absl::InfinitePast()) {
    // The newest restore point frozen at or before the time, up to any break.
    const v1::Manifest* best = nullptr;
    auto consider = [&](const Chain& c, const v1::Manifest* m) {
      if (c.broken && m->high_generation() >= c.broken->generation) return;
      if (absl::FromUnixMicros(m->frozen_us()) > to_time) return;
      if (best == nullptr || m->frozen_us() > best->frozen_us()) best = m;
    };
    for (const Chain& c : chains) {
      consider(c, c.full);
      for (const v1::Manifest* m : c.incrementals) consider(c, m);
      for (const v1::Manifest* m : c.differentials) consider(c, m);
      // An archive segment's restore point is its newest generation, as of
      // when it was archived (after its logs closed).
      for (const v1::Manifest* m : c.archived) consider(c, m);
    }
    if (best == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("unit ", unit, " has no restore point at or before ", FormatUtc(to_time)));
    }
    *target = best->high_generation();
  }
  return repository::RestoreChain(chains, *target, unit);
}

PlannedBackup PlanBackup(const std::string& unit, v1::BackupType requested,
                         const std::vector<BackupRecord>& backups,
                         const std::vector<ChainBreakRecord>& breaks) {
  if (requested != v1::INCREMENTAL && requested != v1::DIFFERENTIAL) {
    PlannedBackup plan;
    plan.type = requested;
    return plan;
  }
  return PlanFromChains(unit, requested, ChainsOf(unit, backups, breaks));
}

void AttachVerifications(const std::vector<v1::RestoreVerification>& verifications,
                         const std::vector<std::vector<std::string>>& archived,
                         v1::ShowChainsResponse* shown) {
  constexpr int kPerChain = 10;
  for (int c = 0; c < shown->chains_size(); ++c) {
    v1::ChainInfo* chain = shown->mutable_chains(c);
    std::set<std::string> pieces;
    pieces.insert(chain->full().manifest());
    for (const auto& b : chain->incrementals()) pieces.insert(b.manifest());
    for (const auto& b : chain->differentials()) pieces.insert(b.manifest());
    if (static_cast<size_t>(c) < archived.size()) {
      pieces.insert(archived[c].begin(), archived[c].end());
    }
    for (const v1::RestoreVerification& v : verifications) {
      if (v.manifests().empty() || pieces.count(v.manifests(v.manifests_size() - 1)) == 0) continue;
      if (chain->verifications_size() < kPerChain) *chain->add_verifications() = v;
      for (v1::RestorePoint& p : *chain->mutable_restore_points()) {
        if (!v.inconclusive() && !p.has_verification() &&
            p.manifest() == v.manifests(v.manifests_size() - 1) &&
            p.generation() == v.generation()) {
          *p.mutable_verification() = v;
        }
      }
    }
  }
}

}  // namespace dagvault::coordinator
