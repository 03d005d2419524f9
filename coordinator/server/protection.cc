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
  // By position in `units`: the position of its policy in `policies`
  // (kNoPolicy: none names it).
  std::vector<size_t> policy_at;
  static constexpr size_t kNoPolicy = ~size_t{0};
  // A unit's position in `units`.
  absl::flat_hash_map<absl::string_view, size_t> position_of;
};

// Every unit's history, by its position in one UnitIndex's units. At
// 100,000 units, looking each one up by name at every `status` (its
// version in the catalog, then UnitHistoryCache) was most of the call's
// time; this is brought up to date from the units the catalog wrote since
// (InstrumentedCatalog::UnitsWrittenSince), usually none.
struct Coordinator::IndexedHistories {
  std::shared_ptr<const UnitIndex> index;
  // InstrumentedCatalog::UnitsVersion up to which `of` is current.
  uint64_t catalog_version = 0;
  // Null: the unit's history could not be read (why: `failed`).
  std::vector<std::shared_ptr<const UnitHistory>> of;
  // The positions whose read failed, each with why: read again at the
  // next refresh, written or not.
  absl::flat_hash_map<size_t, absl::Status> failed;
  // of[i]'s newest restore point (InfinitePast: none), side by side so
  // that the check of 100,000 units runs through one array.
  std::vector<absl::Time> newest;
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
  index->policy_at.reserve(index->units.size());
  index->position_of.reserve(index->units.size());
  for (size_t i = 0; i < index->units.size(); ++i) {
    const auto p = index->policy_of.find(index->units[i]);
    index->policy_at.push_back(p == index->policy_of.end() ? UnitIndex::kNoPolicy : p->second);
    index->position_of[index->units[i]] = i;
  }
  if (keep) {
    std::lock_guard<std::mutex> l(unit_index_mu_);
    unit_index_ = index;
  }
  return std::shared_ptr<const UnitIndex>(std::move(index));
}

std::shared_ptr<const Coordinator::IndexedHistories> Coordinator::HistoriesNow(
    const std::shared_ptr<const UnitIndex>& index, bool keep) {
  // One refresh at a time where it is kept; a standby's calls each read
  // for themselves and do not queue behind one another.
  std::unique_lock<std::mutex> refreshing(histories_refresh_mu_, std::defer_lock);
  std::shared_ptr<const IndexedHistories> last;
  if (keep) {
    refreshing.lock();
    std::lock_guard<std::mutex> l(histories_mu_);
    last = histories_;
  }
  auto next = std::make_shared<IndexedHistories>();
  std::vector<size_t> to_read;
  std::vector<std::string> written;
  std::optional<uint64_t> upto;
  if (last && last->index == index) {
    upto = catalog_->UnitsWrittenSince(last->catalog_version, &written);
  }
  if (upto) {
    if (*upto == last->catalog_version && last->failed.empty()) return last;
    *next = *last;  // the histories are shared, not copied
    next->catalog_version = *upto;
    next->failed.clear();
    absl::flat_hash_set<size_t> positions;
    for (const auto& [i, why] : last->failed) positions.insert(i);
    for (const std::string& u : written) {
      if (auto it = index->position_of.find(u); it != index->position_of.end()) {
        positions.insert(it->second);
      }
    }
    to_read.assign(positions.begin(), positions.end());
  } else {
    // Read before the histories: a write that lands meanwhile moves the
    // version past this one, and the next call reads its unit again.
    next->catalog_version = catalog_->UnitsVersion();
    next->index = index;
    next->of.resize(index->units.size());
    next->newest.assign(index->units.size(), absl::InfinitePast());
    to_read.resize(index->units.size());
    for (size_t i = 0; i < to_read.size(); ++i) to_read[i] = i;
  }
  for (size_t i : to_read) {
    auto history = unit_histories_->Of(index->units[i], keep);
    if (!history.ok()) next->failed[i] = history.status();
    next->of[i] = history.ok() ? *history : nullptr;
    next->newest[i] = history.ok()
                          ? (*history)->chains.NewestRestorePoint().value_or(absl::InfinitePast())
                          : absl::InfinitePast();
  }
  if (keep) {
    std::lock_guard<std::mutex> l(histories_mu_);
    histories_ = next;
  }
  return next;
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
  std::map<std::string, std::string> waiting;
  for (const QueuedBackup& q : scheduler_->Queue()) waiting[q.unit] = q.waiting_for;

  ProtectionSummary out;
  const absl::Time now = absl::Now();
  // Judges one unit in full, from its history as read.
  auto judge = [&](const std::string& u, size_t policy,
                   const absl::StatusOr<std::shared_ptr<const UnitHistory>>& history, bool every) {
    UnitFacts facts;
    facts.unit = u;
    if (policy != UnitIndex::kNoPolicy) facts.policy = &policies[policy];
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
      return;
    }
    const UnitHistory& h = **history;
    facts.chains = &h.chains;
    facts.last_job = h.last_backup_job.get();
    if (auto it = waiting.find(u); it != waiting.end()) {
      facts.queued_waiting_for = it->second.empty() ? "its turn" : it->second;
    }
    auto next_source = [&]() {
      v1::StartBackupRequest request =
          facts.policy ? BackupRequestOf(*facts.policy, u, v1::FULL) : v1::StartBackupRequest();
      request.set_unit(u);
      return jobs_->NextSource(request, h.sources);
    };
    v1::UnitProtection p = rpo_.Evaluate(facts, now, next_source, every && sources);
    if (p.state() == v1::RPO_OK) {
      ++out.within_rpo;
      if (!every) return;
    }
    out.units.push_back(std::move(p));
  };

  if (!unit.empty()) {
    auto it = index->position_of.find(unit);
    if (it == index->position_of.end()) {
      return absl::NotFoundError(absl::StrCat("no unit ", unit,
                                              " is known: no agent reports a copy of it and no "
                                              "policy names it"));
    }
    out.total = 1;
    judge(unit, index->policy_at[it->second], unit_histories_->Of(unit, keep), /*every=*/true);
    return out;
  }

  const std::shared_ptr<const IndexedHistories> histories = HistoriesNow(index, keep);
  const std::vector<std::string>& units = index->units;
  out.total = static_cast<uint32_t>(units.size());
  // A unit whose last state was not within its RPO is judged in full: its
  // return into it is an event.
  std::vector<bool> judge_in_full(units.size());
  for (const std::string& u : rpo_.UnitsLastOutsideRpo()) {
    if (auto it = index->position_of.find(u); it != index->position_of.end()) {
      judge_in_full[it->second] = true;
    }
  }
  for (size_t i = 0; i < units.size(); ++i) {
    const size_t policy = index->policy_at[i];
    if (!every_unit && !judge_in_full[i] && policy != UnitIndex::kNoPolicy && levels[policy] &&
        histories->of[i] && histories->newest[i] != absl::InfinitePast() &&
        SurelyWithinRpo(now - histories->newest[i], *levels[policy])) {
      ++out.within_rpo;
      continue;
    }
    if (auto failed = histories->failed.find(i); failed != histories->failed.end()) {
      judge(units[i], policy, failed->second, every_unit);
    } else if (histories->of[i]) {
      judge(units[i], policy, histories->of[i], every_unit);
    } else {  // not read (not expected: a failed read is in `failed`)
      judge(units[i], policy, unit_histories_->Of(units[i], keep), every_unit);
    }
  }
  std::sort(out.units.begin(), out.units.end(), [](const auto& a, const auto& b) {
    const int sa = RpoSeverity(a.state()), sb = RpoSeverity(b.state());
    return sa != sb ? sa > sb : a.unit() < b.unit();
  });
  return out;
}

}  // namespace dagvault::coordinator
