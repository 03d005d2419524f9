// Words for the job enums of agent.proto and admin.proto (job states,
// kinds, restore steps, copy operations): what tables, log lines and
// fault-point names print. Scripts read the enums themselves (--json).
#pragma once

#include <string>

#include "dagvault/v1/admin.pb.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault {

// "succeeded", "transferring", ...; "unknown" for unspecified.
std::string JobStateName(dagvault::v1::JobState state);
// Succeeded, failed or cancelled.
bool IsFinalJobState(dagvault::v1::JobState state);
// "backup", "restore", "copy operation".
std::string JobKindName(dagvault::v1::JobKind kind);
// "pending", "running", "done", "failed".
std::string RestoreStepStateName(dagvault::v1::RestoreStepState state);
// "suspend", "dismount", "reseed", "resume", "digest" (fault points are
// named agent.copy_op.<this>).
std::string CopyOperationName(dagvault::v1::CopyOperationKind op);

}  // namespace dagvault
