// One restore job on this node (DESIGN.md §5): a chain from the repository
// back into a unit's own location or a Recovery Database, through the
// Store writer.
//
//   check the chain (before anything is written) → PrepareRestore → each
//   piece's files to where the writer said, each proved by its whole-file
//   SHA-256 before it is put in place → RestoreComplete (replay to the end
//   or to a generation, roll forward, mount).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "node-agent/jobs/job_progress.h"
#include "node-agent/shadow/shadow_session.h"
#include "repository/repository.h"
#include "repository/restore.h"

namespace dagvault::agent {

struct RestoreJobSpec {
  RestoreTarget target;
  // A Full, then Incrementals; or a Full and one Differential; or one
  // Copy. The pieces may come from different nodes.
  std::vector<dagvault::v1::Manifest> chain;
  uint32_t to_generation = 0;  // 0: to the end of the chain's logs
  bool roll_forward = false;   // then the newer logs still on the server
  bool mount = false;
  // Into a passive copy while the active copy runs on (a reseed from the
  // repository): the writer first checks that the chain's last log is in
  // the active copy's stream (RestoreTarget.join_*).
  bool join_active_stream = false;
  // A restore verification's checks of the Recovery Database, run by the
  // writer in RestoreComplete (RestoreJobResult.completed says what they
  // found).
  dagvault::v1::RecoveryDatabaseChecks checks;
};

struct RestoreJobResult {
  std::string job;
  std::string unit;
  std::vector<std::string> manifests;
  std::string recovery_database;  // set when restored as one
  std::string message;            // why it became one, or the writer's word
  std::string system_dir;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint32_t last_generation = 0;  // replayed through
  absl::Duration transfer;
  absl::Duration replay;
  absl::Duration elapsed;
  dagvault::v1::RestoreCompleteResponse completed;  // the writer's answer
};

struct RestoreJobOptions {
  int workers = 0;
  absl::Duration progress_every = absl::Milliseconds(500);
};

absl::StatusOr<RestoreJobResult> RunRestoreJob(ShadowSession& session,
                                               const repository::Repository& repo,
                                               const RestoreJobSpec& spec,
                                               repository::TransferControl* control,
                                               const ProgressFn& progress,
                                               const RestoreJobOptions& options = {});

// Local mode: the pieces of the chain that restores `unit` to
// `to_generation` (0: the newest restore point), from the repository's
// manifests.
absl::StatusOr<std::vector<dagvault::v1::Manifest>> ChainFromRepository(
    const repository::Repository& repo, const std::string& unit, uint32_t to_generation);

}  // namespace dagvault::agent
