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

// The policy with the next time each of its schedules fires after `now`.
dagvault::v1::PolicyInfo DescribePolicy(const dagvault::v1::Policy& policy, absl::Time now);

}  // namespace dagvault::coordinator
