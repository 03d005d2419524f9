// The VSS requestor's side of one backup of one unit (DESIGN.md §5):
//
//   BeginBackup (choose the writer instance, PrepareBackup)
//   → CreateSnapshot (Freeze, snapshot, Thaw; the freeze window measured)
//   → read the snapshot's files (the caller)
//   → EndBackup (BackupComplete with a result per component).
//
// WriterShadowSession drives a mailstored writer over writer.proto; a
// Windows VSS implementation would sit behind the same interface.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dagvault/v1/writer.pb.h"
#include "node-agent/snapshot/snapshot_provider.h"

namespace dagvault::agent {

struct BackupJobSpec {
  std::string job;  // names the snapshot folders
  std::string unit;
  dagvault::v1::BackupType type = dagvault::v1::FULL;
  // Incremental and Differential: the high generation of the backup they
  // follow.
  uint32_t base_high_generation = 0;
  // And the SHA-256 of that backup's log of that generation: the new
  // logs must link to it.
  std::string base_high_log_sha256;
  // The SHA-256 of each log of that backup, by generation (optional): a
  // failure to join then names the generation where the stream diverged.
  std::map<uint32_t, std::string> base_log_sha256;
  // A passive copy over either queue (in generations) is refused.
  uint32_t max_copy_queue = 10;
  uint32_t max_replay_queue = 50;
  // The coordinator's fencing token for the unit (DESIGN.md §8): the writer
  // refuses one lower than the highest it has seen. 0 in local mode: not
  // fenced.
  uint64_t fencing_token = 0;
};

// What BeginBackup learned: which writer, and the copy it backs up.
struct BeganBackup {
  std::string session;
  std::string writer_instance;  // kStoreWriter or kReplicationWriter
  dagvault::v1::UnitMetadata unit;
};

// The frozen state and its snapshot.
struct ShadowCopy {
  dagvault::v1::FreezeResponse frozen;
  std::unique_ptr<Snapshot> snapshot;
  // Freeze to Thaw: as the agent measured it (from before its Freeze call
  // to Thaw's answer, so never less than the writer's), and as the writer
  // measured it.
  absl::Duration freeze_window;
  absl::Duration writer_frozen_for;
};

// Where a restore goes: the unit's own location (dismounted, its passive
// copies suspended) or a Recovery Database at `path`.
struct RestoreTarget {
  std::string job;
  std::string unit;
  std::string recovery_database;  // empty: the unit's own location
  std::string path;
  // A restore to the unit's own location while it is mounted becomes a
  // Recovery Database restore beside it, unless this refuses it instead.
  bool refuse_if_mounted = false;
  // The backup's database signatures, and whether to restore over database
  // files that carry another database's.
  std::vector<std::string> database_signatures;
  bool force_overwrite_different_database = false;
  uint64_t fencing_token = 0;  // as in BackupJobSpec
  // Into this node's suspended passive copy, through the Replication
  // writer (an all-copies restore's passive copies): replayed, not mounted.
  bool passive_copy = false;
  // With passive_copy, a reseed from the repository while the active copy
  // runs on: the chain's last log generation and its SHA-256 (hex), which
  // the active copy must still hold (PrepareRestoreRequest.join_*).
  uint32_t join_generation = 0;
  std::string join_sha256;
  // A restore verification's Recovery Database: unfenced, under the
  // node's data root (PrepareRestoreRequest.verification).
  bool verification = false;
};

struct ComponentResult {
  std::string name;
  bool success = false;
  std::string message;
};

inline constexpr char kStoreWriter[] = "Exchange Information Store";
inline constexpr char kReplicationWriter[] = "Exchange Replication Service";

class ShadowSession {
 public:
  virtual ~ShadowSession() = default;

  // GetMetadata: the node, its writers and their units with their files.
  virtual absl::StatusOr<dagvault::v1::WriterMetadata> Metadata() = 0;

  // Chooses the writer instance from where the unit's local copy is: the
  // Store writer for an active copy, the Replication writer for a passive
  // one, which must be Healthy and within the job's queue thresholds.
  // Holds the node's writer gate (one PrepareBackup-to-Thaw at a time)
  // until CreateSnapshot returns or the session ends.
  virtual absl::StatusOr<BeganBackup> BeginBackup(const BackupJobSpec& spec) = 0;
  // Freeze, snapshot, Thaw. The writer is thawed whatever happens; on
  // failure the snapshot is gone too.
  virtual absl::StatusOr<ShadowCopy> CreateSnapshot(SnapshotProvider& provider) = 0;
  // BackupComplete. Success names the generation range backed up, which
  // must be the frozen one; anything else reports failure, and nothing is
  // truncated.
  virtual absl::StatusOr<dagvault::v1::BackupCompleteResponse> EndBackup(
      bool success, const std::vector<ComponentResult>& components, uint32_t low_generation,
      uint32_t high_generation) = 0;

  // PrepareRestore through the Store writer, never the Replication writer:
  // a passive copy is not overwritten in place. The session is kept alive
  // until EndRestore.
  virtual absl::StatusOr<dagvault::v1::PrepareRestoreResponse> BeginRestore(
      const RestoreTarget& target) = 0;
  // RestoreComplete: replay to the end of the restored logs or to
  // `to_generation`, then the server's newer logs if `roll_forward`, and
  // mount if asked; a Recovery Database is checked first when `checks`
  // asks (a restore verification's, RestoreCompleteRequest.checks).
  virtual absl::StatusOr<dagvault::v1::RestoreCompleteResponse> EndRestore(
      uint32_t to_generation, bool roll_forward, bool mount,
      const dagvault::v1::RecoveryDatabaseChecks& checks) = 0;
};

}  // namespace dagvault::agent
