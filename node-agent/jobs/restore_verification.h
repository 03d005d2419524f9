// A restore verification on this node (issue 20 §2; docs/operator-guide.md
// "Prove your backups restore"):
//
//   1. the chain restored as the Recovery Database `recovery_database`
//      (every file proved by the SHA-256 its backup recorded, every chunk
//      authenticated), and replayed to the restore point;
//   2. in the writer's RestoreComplete: each database checked deeply,
//      then mounted, read whole for its content digest, its counters
//      compared with that walk, and a sample of items read by key
//      (mailstore/server/recovery_checks.h);
//   3. the Recovery Database removed, also after a failure.
//
// It holds no lease of the unit: it writes nothing but its own Recovery
// Database, so backups of the unit run beside it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "dagvault/v1/agent.pb.h"
#include "dagvault/v1/writer.grpc.pb.h"
#include "node-agent/jobs/restore_job.h"

namespace dagvault::agent {

struct VerificationTarget {
  std::string unit;
  std::string recovery_database;
  std::string node;
  // Recovery Databases of earlier verifications of the unit still mounted
  // here (their agent died mid-job): removed first. The coordinator runs
  // one verification of a unit at a time.
  std::vector<std::string> leftovers;
};

// Runs the three steps; `restore_chain` is step 1 with the checks asked of
// RestoreComplete. `outcome` says what each found, after a failure too.
// OK only when the verification passed; otherwise an error whose message
// names the first problem (and how many more there are).
absl::Status RunRestoreVerification(
    dagvault::v1::Writer::StubInterface& writer, const VerificationTarget& target,
    const std::function<absl::StatusOr<RestoreJobResult>()>& restore_chain,
    dagvault::v1::VerificationOutcome* outcome);

}  // namespace dagvault::agent
