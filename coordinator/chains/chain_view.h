// Chains as the coordinator shows and follows them (DESIGN.md §5), from the
// catalog alone: the backups' chain summaries joined by
// repository::AssembleChains, plus the breaks that later backups found
// (a lossy activation that diverged the stream shows only when the next
// backup's logs fail to join).
#pragma once

#include <string>
#include <vector>

#include "coordinator/catalog/catalog.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

// `chain show`: the unit's chains, oldest first, with their restore points
// (the high generation and freeze time of each piece of a valid chain, up
// to a break) and what the next Incremental would be.
dagvault::v1::ShowChainsResponse ShowChains(const std::string& unit,
                                            const std::vector<BackupRecord>& backups,
                                            const std::vector<ChainBreakRecord>& breaks);

// The log archive segments (manifest ids) each chain of ShowChains's
// answer takes in, chain by chain in the same order.
std::vector<std::vector<std::string>> ArchivedSegmentsByChain(
    const std::string& unit, const std::vector<BackupRecord>& backups,
    const std::vector<ChainBreakRecord>& breaks);

// Places `verifications` (newest first, Catalog::Verifications) in the
// chains of `shown`: each chain lists (up to 10 of) those whose restore
// point's last piece is one of its backups or archive segments
// (`archived`, ArchivedSegmentsByChain), and each restore point carries
// the newest conclusive verification of exactly its piece and generation.
void AttachVerifications(const std::vector<dagvault::v1::RestoreVerification>& verifications,
                         const std::vector<std::vector<std::string>>& archived,
                         dagvault::v1::ShowChainsResponse* shown);

// What a requested backup becomes. An Incremental or a Differential with no
// chain to follow, or whose newest chain is broken, becomes a Full, and
// `promoted_because` says why.
struct PlannedBackup {
  dagvault::v1::BackupType type = dagvault::v1::FULL;
  std::string base_manifest;  // the piece it follows
  uint32_t base_high_generation = 0;
  std::string base_high_log_sha256;
  std::vector<std::pair<uint32_t, std::string>> base_logs;  // generation, SHA-256
  std::string promoted_because;
};
PlannedBackup PlanBackup(const std::string& unit, dagvault::v1::BackupType requested,
                         const std::vector<BackupRecord>& backups,
                         const std::vector<ChainBreakRecord>& breaks);

// The pieces a restore of `unit` needs, from the catalog: to the newest
// restore point (both targets unset), to `to_generation`, or to the newest
// restore point frozen at or before `to_time`. A chain with a gap or a
// break before the target is refused, naming the generation.
// `*target` is the generation replay stops at (0: the chain's end).
absl::StatusOr<std::vector<dagvault::v1::Manifest>> RestorePlan(
    const std::string& unit, const std::vector<BackupRecord>& backups,
    const std::vector<ChainBreakRecord>& breaks, uint32_t to_generation, absl::Time to_time,
    uint32_t* target);

// The catalog's view of one backup, for the admin API.
dagvault::v1::CatalogBackup CatalogBackupOf(const BackupRecord& backup);

}  // namespace dagvault::coordinator
