// Retention (DESIGN.md §5, issue 7): each policy keeps its units' newest
// `keep_chains` chains and any chain newer than `keep_days`; the rest
// expire. Only whole chains expire (never a Full whose Incrementals are
// kept), and never a unit's newest valid chain.
//
// An expiry run is crash-consistent with the repository:
//   1. the expired backups leave the catalog and are recorded as expiring,
//      in one transaction;
//   2. the repository is pruned, keeping every manifest but the expiring
//      ones (a backup not yet catalogued is kept);
//   3. the expiring records are cleared.
// A crash after 1 leaves the expiring records: the next run (and every
// coordinator start) prunes them first. Prune itself is crash-safe
// (repository/prune.h), and `catalog rebuild` leaves expiring manifests out.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/catalog/catalog.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

struct ExpiredChain {
  std::string unit;
  std::string policy;
  std::vector<BackupRecord> pieces;  // the Full first
  std::string why;
};

// The chains of `unit` that `policy` lets expire at `now`.
std::vector<ExpiredChain> ExpiredChains(const dagvault::v1::Policy& policy, const std::string& unit,
                                        const std::vector<BackupRecord>& backups,
                                        const std::vector<ChainBreakRecord>& breaks,
                                        absl::Time now);

struct ExpiryOptions {
  std::string repository;
  std::string passphrase_file;
  std::string key_file;
  bool dry_run = false;
  // Only the prune of backups an earlier run left expiring (at start-up).
  bool only_pending = false;
  // Asked before the prune begins (the repository's deletions are not
  // fenced like the catalog's writes): false stops the run there, its
  // expired backups left expiring for the next run.
  std::function<bool()> may_act;
};

// One expiry run over every policy, then the prune (also of backups left
// expiring by an earlier run that stopped).
absl::StatusOr<dagvault::v1::ExpireResponse> RunExpiry(Catalog& catalog,
                                                       const ExpiryOptions& options,
                                                       absl::Time now);

}  // namespace dagvault::coordinator
