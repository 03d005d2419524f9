#include "coordinator/retention/expiry.h"

#include <map>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/fault_injection.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "repository/cli_support.h"
#include "repository/prune.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

std::vector<std::string> PiecesOf(const v1::ChainInfo& chain) {
  std::vector<std::string> ids{chain.full().manifest()};
  for (const auto& b : chain.incrementals()) ids.push_back(b.manifest());
  for (const auto& b : chain.differentials()) ids.push_back(b.manifest());
  return ids;
}

}  // namespace

std::vector<ExpiredChain> ExpiredChains(const v1::Policy& policy, const std::string& unit,
                                        const std::vector<BackupRecord>& backups,
                                        const std::vector<ChainBreakRecord>& breaks,
                                        absl::Time now) {
  std::vector<ExpiredChain> out;
  if (policy.keep_chains() == 0 && policy.keep_days() == 0) return out;  // keep everything
  const v1::ShowChainsResponse shown = ShowChains(unit, backups, breaks);
  const int n = shown.chains_size();
  // The newest valid chain is never expired: the newest unbroken one, or
  // failing that the newest with a restore point.
  int newest_valid = -1;
  for (int i = n - 1; i >= 0 && newest_valid < 0; --i) {
    if (!shown.chains(i).broken()) newest_valid = i;
  }
  for (int i = n - 1; i >= 0 && newest_valid < 0; --i) {
    if (shown.chains(i).restore_points_size() > 0) newest_valid = i;
  }
  std::map<std::string, const BackupRecord*> by_id;
  for (const auto& b : backups) by_id[b.manifest] = &b;
  std::vector<int> expired_chain;  // out[k] is chain expired_chain[k]
  const absl::Time cutoff = now - absl::Hours(24) * static_cast<double>(policy.keep_days());
  for (int i = 0; i < n; ++i) {
    const v1::ChainInfo& chain = shown.chains(i);
    if (i == newest_valid) continue;
    const bool among_newest =
        policy.keep_chains() != 0 && i >= n - static_cast<int>(policy.keep_chains());
    if (among_newest) continue;
    // A chain's age is its newest piece's.
    absl::Time newest_piece = absl::InfinitePast();
    ExpiredChain expired;
    for (const auto& id : PiecesOf(chain)) {
      auto it = by_id.find(id);
      if (it == by_id.end()) continue;
      expired.pieces.push_back(*it->second);
      newest_piece = std::max(newest_piece, it->second->finished);
    }
    if (policy.keep_days() != 0 && newest_piece >= cutoff) continue;
    if (expired.pieces.empty()) continue;
    expired.unit = unit;
    expired.policy = policy.name();
    std::vector<std::string> reasons;
    if (policy.keep_chains() != 0) {
      reasons.push_back(absl::StrCat("not among the newest ", policy.keep_chains(), " chain(s)"));
    }
    if (policy.keep_days() != 0) {
      reasons.push_back(absl::StrCat("older than ", policy.keep_days(), " day(s)"));
    }
    expired.why = absl::StrCat("policy ", policy.name(), ": ", absl::StrJoin(reasons, " and "));
    out.push_back(std::move(expired));
    expired_chain.push_back(i);
  }
  if (out.empty()) return out;
  // Archived logs expire with the chain they extend, unless a kept chain
  // takes them in too (a later Full of the same stream). A segment that no
  // chain takes in (past a gap or a divergence) goes with the newest
  // expired chain before the next kept Full that reaches past it.
  const std::vector<std::vector<std::string>> archived =
      ArchivedSegmentsByChain(unit, backups, breaks);
  const std::set<int> expiring(expired_chain.begin(), expired_chain.end());
  std::set<std::string> needed, in_a_chain;
  for (int i = 0; i < n && i < static_cast<int>(archived.size()); ++i) {
    for (const auto& id : archived[static_cast<size_t>(i)]) {
      in_a_chain.insert(id);
      if (!expiring.count(i)) needed.insert(id);
    }
  }
  std::set<std::string> taken;
  for (size_t k = 0; k < out.size(); ++k) {
    const int i = expired_chain[k];
    std::optional<uint32_t> bound;  // the next kept chain's Full reaches this far
    for (int j = i + 1; j < n && !bound; ++j) {
      if (!expiring.count(j)) bound = shown.chains(j).full().high_generation();
    }
    auto take = [&](const BackupRecord& b) {
      if (needed.count(b.manifest) || !taken.insert(b.manifest).second) return;
      out[k].pieces.push_back(b);
    };
    if (static_cast<size_t>(i) < archived.size()) {
      for (const auto& id : archived[static_cast<size_t>(i)]) {
        if (auto it = by_id.find(id); it != by_id.end()) take(*it->second);
      }
    }
    if (!bound) continue;
    for (const auto& b : backups) {
      if (b.type == v1::LOG_ARCHIVE && !in_a_chain.count(b.manifest) &&
          b.high_generation <= *bound) {
        take(b);
      }
    }
  }
  return out;
}

absl::StatusOr<v1::ExpireResponse> RunExpiry(Catalog& catalog, const ExpiryOptions& options,
                                             absl::Time now) {
  auto log = logging::Get("coordinator.expiry");
  v1::ExpireResponse response;
  response.set_dry_run(options.dry_run);
  ASSIGN_OR_RETURN(std::vector<v1::Policy> policies, catalog.Policies());
  std::vector<BackupRecord> expiring;
  for (const v1::Policy& policy : policies) {
    if (options.only_pending) break;
    for (const std::string& unit : policy.units()) {
      ASSIGN_OR_RETURN(std::vector<BackupRecord> backups, catalog.Backups(unit));
      ASSIGN_OR_RETURN(std::vector<ChainBreakRecord> breaks, catalog.ChainBreaks(unit));
      for (ExpiredChain& chain : ExpiredChains(policy, unit, backups, breaks, now)) {
        v1::ExpiredChainInfo* info = response.add_expired();
        info->set_unit(chain.unit);
        info->set_policy(chain.policy);
        info->set_why(chain.why);
        for (const auto& piece : chain.pieces) {
          info->add_manifests(piece.manifest);
          expiring.push_back(piece);
        }
      }
    }
  }
  if (options.dry_run) return response;
  if (!expiring.empty()) {
    RETURN_IF_ERROR(catalog.ExpireBackups(expiring, "retention", now));
    for (const auto& e : response.expired()) {
      log->info("unit {}: chain {} expired ({})", e.unit(), absl::StrJoin(e.manifests(), ", "),
                e.why());
    }
    DAGVAULT_CRASH_POINT("coordinator.expire.catalog_written");
  }
  // The prune: of these, and of any an earlier run left expiring.
  ASSIGN_OR_RETURN(std::vector<std::string> pending, catalog.Expiring());
  if (pending.empty()) return response;
  if (options.repository.empty()) {
    return absl::FailedPreconditionError(
        "expiry: the coordinator has no repository configured (CoordinatorConfig.repository); "
        "the expired backups stay recorded as expiring until it has");
  }
  if (options.may_act && !options.may_act()) {
    return absl::AbortedError(
        absl::StrCat("expiry: this coordinator no longer leads; the prune of ", pending.size(),
                     " expired backup(s) is left to the leader"));
  }
  ASSIGN_OR_RETURN(repository::Repository repo,
                   repository::OpenRepositoryWithSecretFiles(
                       options.repository, options.passphrase_file, options.key_file));
  // Which manifests stay is decided under the prune's lock: a backup that
  // finished a moment ago (not yet catalogued) is kept.
  repository::PruneOptions prune;
  prune.remove_manifests = pending;
  auto pruned = repository::Prune(repo, prune);
  if (!pruned.ok()) {
    return absl::Status(pruned.status().code(),
                        absl::StrCat("expiry: the prune of ", pending.size(),
                                     " expired backup(s) did not finish (they stay recorded as "
                                     "expiring, and the next run prunes them): ",
                                     pruned.status().message()));
  }
  DAGVAULT_CRASH_POINT("coordinator.expire.pruned");
  // Manifests still under retention (Object Lock) stay recorded as
  // expiring: a run after their date removes them.
  const std::set<std::string> retained(pruned->manifests_retained.begin(),
                                       pruned->manifests_retained.end());
  std::vector<std::string> gone;
  for (const auto& id : pending) {
    if (!retained.count(id)) gone.push_back(id);
  }
  if (!retained.empty()) {
    log->info(
        "{} expired backup(s) are under retention (Object Lock) until {} at the latest: "
        "they stay expiring and are removed by a run after that",
        retained.size(), FormatUtc(pruned->retained_until));
  }
  RETURN_IF_ERROR(catalog.ClearExpiring(gone));
  response.set_manifests_removed(pruned->manifests_removed);
  response.set_packs_removed(pruned->packs_removed);
  response.set_bytes_before(pruned->bytes_before);
  response.set_bytes_after(pruned->bytes_after);
  log->info("pruned the repository: {} manifest(s) and {} pack(s) removed, {} → {} bytes",
            pruned->manifests_removed, pruned->packs_removed, pruned->bytes_before,
            pruned->bytes_after);
  return response;
}

}  // namespace dagvault::coordinator
