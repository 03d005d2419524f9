// Coordinator::Protection: the facts rpo/rpo.h judges, gathered from the
// catalog (policies, chains, jobs), the scheduler's queue and the
// topology (where a backup would read from now).
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/chains/chain_view.h"
#include "coordinator/schedule/policy.h"
#include "coordinator/server/coordinator.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

absl::StatusOr<std::vector<v1::UnitProtection>> Coordinator::Protection(const std::string& unit) {
  ASSIGN_OR_RETURN(std::vector<v1::Policy> policies, catalog_->Policies());
  std::map<std::string, const v1::Policy*> policy_of;
  std::set<std::string> units;
  for (const auto& p : policies) {
    for (const auto& u : p.units()) {
      policy_of[u] = &p;
      units.insert(u);
    }
  }
  for (const auto& [u, copies] : topology_->AllCopies()) units.insert(u);
  if (!unit.empty()) {
    if (units.count(unit) == 0) {
      return absl::NotFoundError(absl::StrCat("no unit ", unit,
                                              " is known: no agent reports a copy of it and no "
                                              "policy names it"));
    }
    units = {unit};
  }
  std::map<std::string, std::string> waiting;
  for (const QueuedBackup& q : scheduler_->Queue()) waiting[q.unit] = q.waiting_for;

  std::vector<v1::UnitProtection> out;
  const absl::Time now = absl::Now();
  for (const std::string& u : units) {
    UnitFacts facts;
    facts.unit = u;
    if (auto it = policy_of.find(u); it != policy_of.end()) facts.policy = *it->second;
    auto backups = catalog_->Backups(u);
    auto breaks = catalog_->ChainBreaks(u);
    auto jobs = catalog_->ListJobs(u, 10);
    for (const absl::Status& s : {backups.status(), breaks.status(), jobs.status()}) {
      if (s.ok()) continue;
      // One unit that cannot be judged does not hide the others: it is
      // listed as unknown, with why (and status fails for it).
      v1::UnitProtection unknown;
      unknown.set_unit(u);
      if (facts.policy) unknown.set_policy(facts.policy->name());
      unknown.set_state(v1::RPO_STATE_UNSPECIFIED);
      unknown.set_reason(absl::StrCat("its protection cannot be judged: ", s.message()));
      unknown.set_evaluated_us(absl::ToUnixMicros(now));
      out.push_back(std::move(unknown));
      break;
    }
    if (!backups.ok() || !breaks.ok() || !jobs.ok()) continue;
    facts.chains = ShowChains(u, *backups, *breaks);
    for (JobRecord& j : *jobs) {  // newest first
      if (j.kind == "backup") {
        facts.last_job = std::move(j);
        break;
      }
    }
    if (auto it = waiting.find(u); it != waiting.end()) {
      facts.queued_waiting_for = it->second.empty() ? "its turn" : it->second;
    }
    v1::StartBackupRequest request =
        facts.policy ? BackupRequestOf(*facts.policy, u, v1::FULL) : v1::StartBackupRequest();
    request.set_unit(u);
    std::tie(facts.next_source, facts.next_source_why) = jobs_->NextSource(request);
    out.push_back(rpo_.Evaluate(facts, now));
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return RpoSeverity(a.state()) > RpoSeverity(b.state());
  });
  return out;
}

}  // namespace dagvault::coordinator
