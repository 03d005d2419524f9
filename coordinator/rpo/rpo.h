// RPO as a policy (issue 16, docs/monitoring.md): how old each unit's newest
// verified restore point is against its policy's recovery point objective,
// and why a unit is outside it. Pure functions of what the coordinator
// already knows (the catalog's chains, the unit's newest job, the copies'
// last reports), so they are tested without processes; RpoTracker keeps
// each unit's last state so that it does not flap around a level.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/catalog/catalog.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

struct RpoLevels {
  absl::Duration rpo;  // zero: the policy sets no RPO
  absl::Duration warning;
  absl::Duration critical;
  absl::Duration grace;
};

// The policy's levels with the defaults filled in: the warning level is the
// RPO, the critical level one and a half times it, the grace a tenth of the
// warning level. A state is entered past its level plus the grace: with an
// RPO of 26h alone, warning past 28h 36m and critical past 41h 36m. An error names the field when
// the levels contradict each other (warning above critical, a level without an RPO, a grace as
// large as the warning level).
absl::StatusOr<RpoLevels> RpoLevelsOf(const dagvault::v1::Policy& policy);

// The state a unit moves to from `previous` when its newest restore point
// is `age` old (nullopt: it has none). A worse state is entered past its
// level plus the grace; a state is left only once the age is the grace
// below its level, so an age that wavers around a level (a restore point
// expired, a level changed) moves the state once, not back and forth.
dagvault::v1::RpoState NextRpoState(dagvault::v1::RpoState previous,
                                    std::optional<absl::Duration> age, const RpoLevels& levels);

// Whether a unit whose newest restore point is `age` old is within its RPO
// whatever state it was in before: below every level's exit threshold. A
// unit that was within its RPO stays so while this holds, so it need not
// be judged in full (status and the RPO round at 100,000 units).
bool SurelyWithinRpo(absl::Duration age, const RpoLevels& levels);

// Worst first: unknown (RPO_STATE_UNSPECIFIED: it could not be judged),
// critical, never backed up, warning, not set, ok.
int RpoSeverity(dagvault::v1::RpoState state);

// What a unit's protection is judged by from its chains
// (chains/chain_view.h ShowChains). The unit history cache keeps this, not
// the chains: a unit with months of restore points keeps a few hundred
// bytes, not every point, for each of 100,000 units.
struct ChainFacts {
  // The newest restore point of any chain (0: none), its backup and the
  // copy it was taken from.
  int64_t newest_restore_point_us = 0;
  std::string newest_restore_point_manifest;
  std::string newest_restore_point_node;
  int64_t newest_full_us = 0;  // the newest restore point that is a Full
  // The newest chain archives logs: how far.
  bool newest_chain_archives = false;
  uint32_t archived_high_generation = 0;
  int64_t archived_through_us = 0;

  // The time of the newest restore point (nullopt: none).
  std::optional<absl::Time> NewestRestorePoint() const {
    if (newest_restore_point_us <= 0) return std::nullopt;
    return absl::FromUnixMicros(newest_restore_point_us);
  }
};
ChainFacts ChainFactsOf(const dagvault::v1::ShowChainsResponse& chains);

// What the coordinator knows of one unit. The pointers are to what the
// caller holds for the evaluation (a policy can name 100,000 units, and
// what a unit's chains say is kept by UnitHistoryCache): nothing is copied
// per unit.
struct UnitFacts {
  std::string unit;
  // Its policy (null: none covers it).
  const dagvault::v1::Policy* policy = nullptr;
  // What its chains say (null: it has none).
  const ChainFacts* chains = nullptr;
  // Its newest backup job, if any.
  const JobRecord* last_job = nullptr;
  // The scheduler's queued backup of it, and what it waits for ("" when
  // none is queued).
  std::string queued_waiting_for;
  // Where a backup would read from now ("" when no copy qualifies) and
  // why, or why none qualifies.
  std::string next_source;
  std::string next_source_why;
};

// The unit's protection at `now`, its state moved on from `previous`.
dagvault::v1::UnitProtection EvaluateProtection(const UnitFacts& facts, absl::Time now,
                                                dagvault::v1::RpoState previous);

// Each unit's last state, for the hysteresis; thread-safe.
class RpoTracker {
 public:
  dagvault::v1::UnitProtection Evaluate(const UnitFacts& facts, absl::Time now);
  // The same, with where a backup would read from (next_source and its
  // why) asked of `next_source` only where it is shown: for a unit not
  // within its RPO (its reason then says why no copy qualifies), or for
  // every unit when `always`. Selection for each of 100,000 units costs
  // more than the rest of judging them.
  using NextSourceFn = std::function<std::pair<std::string, std::string>()>;
  dagvault::v1::UnitProtection Evaluate(UnitFacts facts, absl::Time now,
                                        const NextSourceFn& next_source, bool always);
  // Whether the unit's last state was within its RPO, or it has none yet:
  // with SurelyWithinRpo, it is within it now and no event is due.
  bool WasWithinRpo(const std::string& unit);
  // The units whose last state was not within their RPO: WasWithinRpo for
  // every unit at once (few, where `status` judges 100,000).
  std::vector<std::string> UnitsLastOutsideRpo();

 private:
  std::mutex mu_;
  absl::flat_hash_map<std::string, dagvault::v1::RpoState> last_;
  absl::flat_hash_set<std::string> last_outside_;  // where last_ is not RPO_OK
};

}  // namespace dagvault::coordinator
