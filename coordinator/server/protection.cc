// Coordinator::Protection: the facts rpo/rpo.h judges, gathered from the
// catalog (policies, and each unit's chains and jobs through
// UnitHistoryCache), the scheduler's queue and the topology (where a backup
// would read from now).
#include <algorithm>
#include <map>
#include <memory>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/schedule/policy.h"
#include "coordinator/server/coordinator.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

// What Protection derives from the policies and the reported units. Its
// keys point into `policies`: built in place, never copied.
struct Coordinator::UnitIndex {
  uint64_t policies_version = 0;
  std::shared_ptr<const std::vector<std::string>> reported;
  std::vector<v1::Policy> policies;
  // Each policy's levels (nullopt: it sets none, or they do not validate:
  // the full evaluation says which).
  std::vector<std::optional<RpoLevels>> levels;
  absl::flat_hash_map<absl::string_view, size_t> policy_of;
  // Every unit a policy names or a node reports, each once, unsorted (the
  // units listed are sorted at the end).
  std::vector<std::string> units;
};

absl::StatusOr<std::shared_ptr<const Coordinator::UnitIndex>> Coordinator::UnitIndexNow(bool keep) {
  // Read before the policies: a write that lands meanwhile moves the
  // version past this one, and the next call builds the index again.
  const uint64_t version = catalog_->PoliciesVersion();
  std::shared_ptr<const std::vector<std::string>> reported = topology_->Units();
  if (keep) {
    std::lock_guard<std::mutex> l(unit_index_mu_);
    if (unit_index_ && unit_index_->policies_version == version &&
        unit_index_->reported == reported) {
      return unit_index_;
    }
  }
  auto index = std::make_shared<UnitIndex>();
  index->policies_version = version;
  index->reported = reported;
  ASSIGN_OR_RETURN(index->policies, catalog_->Policies());
  const std::vector<v1::Policy>& policies = index->policies;
  index->levels.resize(policies.size());
  size_t named = 0;
  for (const auto& p : policies) named += static_cast<size_t>(p.units_size());
  index->policy_of.reserve(named);
  for (size_t i = 0; i < policies.size(); ++i) {
    if (auto l = RpoLevelsOf(policies[i]); l.ok() && l->rpo != absl::ZeroDuration()) {
      index->levels[i] = *l;
    }
    for (const auto& u : policies[i].units()) index->policy_of[u] = i;
  }
  index->units = *reported;
  {
    const absl::flat_hash_set<absl::string_view> known(reported->begin(), reported->end());
    for (const auto& [u, i] : index->policy_of) {
      if (!known.contains(u)) index->units.emplace_back(u);
    }
  }
  if (keep) {
    std::lock_guard<std::mutex> l(unit_index_mu_);
    unit_index_ = index;
  }
  return std::shared_ptr<const UnitIndex>(std::move(index));
}

absl::StatusOr<Coordinator::ProtectionSummary> Coordinator::Protection(const std::string& unit,
                                                                       bool every_unit,
                                                                       bool sources) {
  // Only the catalog's one writer may keep what it read (a standby's
  // catalog changes under it).
  const bool keep = leading_;
  // At 100,000 units, building this at every `status` (reading the
  // policies, hashing every name) was a good part of its time.
  ASSIGN_OR_RETURN(std::shared_ptr<const UnitIndex> index, UnitIndexNow(keep));
  const std::vector<v1::Policy>& policies = index->policies;
  const auto& levels = index->levels;
  const auto& policy_of = index->policy_of;
  const std::vector<std::string>* units = &index->units;
  std::vector<std::string> one_unit;
  if (!unit.empty()) {
    if (std::find(units->begin(), units->end(), unit) == units->end()) {
      return absl::NotFoundError(absl::StrCat("no unit ", unit,
                                              " is known: no agent reports a copy of it and no "
                                              "policy names it"));
    }
    one_unit = {unit};
    units = &one_unit;
    every_unit = true;
  }
  std::map<std::string, std::string> waiting;
  for (const QueuedBackup& q : scheduler_->Queue()) waiting[q.unit] = q.waiting_for;

  ProtectionSummary out;
  out.total = static_cast<uint32_t>(units->size());
  const absl::Time now = absl::Now();
  for (const std::string& u : *units) {
    UnitFacts facts;
    facts.unit = u;
    const auto policy = policy_of.find(u);
    if (policy != policy_of.end()) facts.policy = &policies[policy->second];
    auto history = unit_histories_->Of(u, keep);
    if (!history.ok()) {
      // One unit that cannot be judged does not hide the others: it is
      // listed as unknown, with why (and status fails for it).
      v1::UnitProtection unknown;
      unknown.set_unit(u);
      if (facts.policy) unknown.set_policy(facts.policy->name());
      unknown.set_state(v1::RPO_STATE_UNSPECIFIED);
      unknown.set_reason(
          absl::StrCat("its protection cannot be judged: ", history.status().message()));
      unknown.set_evaluated_us(absl::ToUnixMicros(now));
      out.units.push_back(std::move(unknown));
      continue;
    }
    const UnitHistory& h = **history;
    if (!every_unit && policy != policy_of.end() && levels[policy->second] &&
        h.newest_restore_point &&
        SurelyWithinRpo(now - *h.newest_restore_point, *levels[policy->second]) &&
        rpo_.WasWithinRpo(u)) {
      ++out.within_rpo;
      continue;
    }
    facts.chains = &h.chains;
    if (h.last_backup_job) facts.last_job = &*h.last_backup_job;
    if (auto it = waiting.find(u); it != waiting.end()) {
      facts.queued_waiting_for = it->second.empty() ? "its turn" : it->second;
    }
    auto next_source = [&]() {
      v1::StartBackupRequest request =
          facts.policy ? BackupRequestOf(*facts.policy, u, v1::FULL) : v1::StartBackupRequest();
      request.set_unit(u);
      return jobs_->NextSource(request, h.sources);
    };
    v1::UnitProtection p = rpo_.Evaluate(facts, now, next_source, every_unit && sources);
    if (p.state() == v1::RPO_OK) {
      ++out.within_rpo;
      if (!every_unit) continue;
    }
    out.units.push_back(std::move(p));
  }
  std::sort(out.units.begin(), out.units.end(), [](const auto& a, const auto& b) {
    const int sa = RpoSeverity(a.state()), sb = RpoSeverity(b.state());
    return sa != sb ? sa > sb : a.unit() < b.unit();
  });
  return out;
}

}  // namespace dagvault::coordinator
