// The agent's job phases on the wire. Jobs report progress in their own
// words (JobProgress.phase: "snapshot", "restoring", "reseeding",
// "replaying through 0x..."); the coordinator's state machine takes the
// JobState enum of agent.proto.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault::agent {

// A restore's "restoring" is its transfer and its "replaying" its
// completion; a copy operation's waiting ("reseeding", "replaying through
// ...") is its transfer or completion likewise. Words no state names are
// the transfer: the job is doing its work.
dagvault::v1::JobState JobPhaseOf(absl::string_view phase);

// The `kind` label of the agent's job metrics: backup, restore, copy-op.
std::string KindLabel(dagvault::v1::JobKind kind);

}  // namespace dagvault::agent
