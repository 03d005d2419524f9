// dagvault-agent --config FILE: the daemon that takes jobs from the
// coordinator (DESIGN.md §2, §4; proto/dagvault/v1/agent.proto).
//
// It dials out to the coordinator over mutual TLS, registers as the node
// its certificate names, and then:
//   - reports every few seconds: the writers' metadata, this node's copies
//     (from mailstored's Admin on the writers' socket), its running jobs,
//     and the results the coordinator has not yet acknowledged;
//   - runs the backup jobs it is assigned (node-agent/jobs/backup_job.h),
//     sending each change of phase, progress twice a second, and the result.
// When the stream breaks it reconnects with exponential backoff, and the
// first report on the new stream carries everything again, so a job that
// ran on is reconciled rather than started twice. A job whose coordinator
// has been unreachable for a whole lease period is cancelled: its lease is
// gone, and another attempt may already be running elsewhere.
#pragma once

#include <atomic>
#include <memory>

#include "absl/status/statusor.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault::agent {

class AgentDaemon {
 public:
  static absl::StatusOr<std::unique_ptr<AgentDaemon>> Create(dagvault::v1::AgentConfig config);
  virtual ~AgentDaemon() = default;
  // Runs until `*stop` is set; then cancels running jobs and waits for them.
  virtual void Run(const std::atomic<bool>* stop) = 0;
};

}  // namespace dagvault::agent
