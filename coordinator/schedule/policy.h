// Backup policies (issue 7): what is checked before a policy is stored,
// and when its schedules fire next. The scheduler that runs them follows.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

// A name, at least one unit and one schedule; every schedule parses; the
// source mode is known; the RPO levels agree (rpo/rpo.h); no unit is already in another policy
// (`others`, the stored policies). Errors name the field.
absl::Status ValidatePolicy(const dagvault::v1::Policy& policy,
                            const std::vector<dagvault::v1::Policy>& others);

// A backup of `unit` as the policy asks for it (its source selection).
dagvault::v1::StartBackupRequest BackupRequestOf(const dagvault::v1::Policy& policy,
                                                 const std::string& unit,
                                                 dagvault::v1::BackupType type);

// How long a backup taken now under `policy` must stay restorable: the
// policy's keep_days, plus the longest gap between two of its Fulls (a
// chain's age is its newest piece's, and its Full is needed until the
// chain expires), plus a day. Zero when no time follows from the policy
// (keep_days 0: kept by count or for good): the repository's own
// object_lock_days then apply alone. Without a Full schedule the gap is
// not known, and only keep_days and the day count.
absl::Duration BackupRetention(const dagvault::v1::Policy& policy, absl::Time now);
// The same for `unit` under whichever of `policies` covers it; zero when
// none does.
absl::Duration UnitBackupRetention(const std::vector<dagvault::v1::Policy>& policies,
                                   const std::string& unit, absl::Time now);

// The policy with the next time each of its schedules fires after `now`.
dagvault::v1::PolicyInfo DescribePolicy(const dagvault::v1::Policy& policy, absl::Time now);

}  // namespace dagvault::coordinator
