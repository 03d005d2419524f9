#include "node-agent/daemon/job_phase.h"

#include "absl/strings/match.h"

namespace dagvault::agent {

namespace v1 = dagvault::v1;

v1::JobState JobPhaseOf(absl::string_view phase) {
  if (phase == "preparing") return v1::JOB_PREPARING;
  if (phase == "snapshot" || phase == "frozen") return v1::JOB_FROZEN;
  if (phase == "verifying") return v1::JOB_VERIFYING;
  if (phase == "completing" || absl::StartsWith(phase, "replaying")) return v1::JOB_COMPLETING;
  return v1::JOB_TRANSFERRING;  // transferring, restoring, reseeding, ...
}

std::string KindLabel(v1::JobKind kind) {
  switch (kind) {
    case v1::JOB_RESTORE:
      return "restore";
    case v1::JOB_COPY_OPERATION:
      return "copy-op";
    default:
      return "backup";
  }
}

}  // namespace dagvault::agent
