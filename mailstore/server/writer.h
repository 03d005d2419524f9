// The writers of a node: the Store writer for units whose active copy is
// here, the Replication writer for units with a passive copy here. They
// run backup sessions (PrepareBackup, Freeze, Thaw, BackupComplete) and
// restores (PrepareRestore, RestoreComplete, through the Store writer only).
//
// A session ends when BackupComplete arrives, or when the requestor is not
// heard from for the session timeout (its process died): the backup then
// fails, a frozen unit is thawed, and the backup-in-progress state is
// released. A freeze longer than the freeze timeout thaws on its own and
// fails the backup. A restart of mailstored forgets every session; the
// requestor's next call fails, naming that.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "dagvault/v1/writer.pb.h"
#include "mailstore/server/config.h"
#include "mailstore/server/fencing_tokens.h"
#include "mailstore/server/peers.h"
#include "mailstore/server/unit_host.h"

namespace dagvault::mailstore {

inline constexpr char kWriterId[] = "76fe1ac4-15f7-4bcd-987e-8e1acb462fb7";
inline constexpr char kStoreWriter[] = "Exchange Information Store";
inline constexpr char kReplicationWriter[] = "Exchange Replication Service";

// Where recovery databases are mounted for reading (name -> engine).
class RecoveryDatabases {
 public:
  virtual ~RecoveryDatabases() = default;
  virtual absl::Status Mount(const std::string& name, const dagvault::v1::UnitConfig& config) = 0;
  virtual bool Has(const std::string& name) = 0;
  // The mounted Recovery Database of that name.
  virtual absl::StatusOr<std::shared_ptr<Engine>> FindRecoveryDatabase(const std::string& name) = 0;
  // Closes it and deletes its folder: the folder deleted.
  virtual absl::StatusOr<std::string> RemoveRecoveryDatabase(const std::string& name) = 0;
};

class Writers {
 public:
  Writers(const NodeConfig& config, std::function<UnitHost*(const std::string&)> find_unit,
          Peers* peers, RecoveryDatabases* rdbs, FencingTokens* fencing_tokens, Clock* clock);
  ~Writers();
  void Start();
  void Stop();

  absl::StatusOr<dagvault::v1::WriterMetadata> GetMetadata();
  absl::StatusOr<dagvault::v1::PrepareBackupResponse> PrepareBackup(
      const dagvault::v1::PrepareBackupRequest& request);
  absl::StatusOr<dagvault::v1::FreezeResponse> Freeze(const std::string& session);
  absl::StatusOr<dagvault::v1::ThawResponse> Thaw(const std::string& session);
  absl::Status KeepAlive(const std::string& session);
  absl::StatusOr<dagvault::v1::BackupCompleteResponse> BackupComplete(
      const dagvault::v1::BackupCompleteRequest& request);
  absl::StatusOr<dagvault::v1::PrepareRestoreResponse> PrepareRestore(
      const dagvault::v1::PrepareRestoreRequest& request);
  absl::StatusOr<dagvault::v1::RestoreCompleteResponse> RestoreComplete(
      const dagvault::v1::RestoreCompleteRequest& request);
  // Item-level restore (item_restore.h): a page of a Recovery Database's
  // items into the unit's active copy (wherever it is), or read for an
  // export; the Recovery Database removed.
  absl::StatusOr<dagvault::v1::RestoreItemsResponse> RestoreItems(
      const dagvault::v1::RestoreItemsRequest& request);
  absl::StatusOr<dagvault::v1::ReadRecoveryItemsResponse> ReadRecoveryItems(
      const dagvault::v1::ReadRecoveryItemsRequest& request);
  absl::StatusOr<dagvault::v1::RemoveRecoveryDatabaseResponse> RemoveRecoveryDatabase(
      const dagvault::v1::RemoveRecoveryDatabaseRequest& request);

 private:
  struct Session {
    std::string id;
    std::string unit;
    bool restore = false;
    // Backups.
    dagvault::v1::BackupType type = dagvault::v1::BACKUP_TYPE_UNSPECIFIED;
    bool passive = false;  // through the Replication writer
    std::string active_node;
    Generation base_high = 0;
    absl::Duration last_heard;  // monotonic, as every time below
    bool frozen = false;
    absl::Duration frozen_at;
    // Set by Thaw after a Freeze: the generations the snapshot holds. A
    // successful BackupComplete must report exactly these.
    bool thawed = false;
    Generation frozen_low = 0, frozen_high = 0;
    absl::Duration last_renewed;
    // The active copy's backup-in-progress, for a backup of the active copy
    // (owned by its UnitHost, which lives as long as the daemon).
    BackupRegistry* registry = nullptr;
    std::string failure;  // set when the backup can no longer succeed
    // Restores.
    dagvault::v1::UnitConfig target;  // where the files go
    std::string restore_logs;         // where the restored logs were put
    std::string restore_id;           // PrepareRestoreRequest.restore_id
    std::string recovery_database;    // empty: the unit itself
    bool passive_copy = false;        // into this node's suspended passive copy
  };

  absl::StatusOr<Session*> FindLocked(const std::string& id);
  // A restore verification's checks on the Recovery Database `s` has just
  // recovered (mailstore/server/recovery_checks.h); mounts it when sound.
  absl::Status CheckRecoveryDatabase(const Session& s, const std::vector<std::string>& db_paths,
                                     const dagvault::v1::RecoveryDatabaseChecks& checks,
                                     dagvault::v1::RestoreCompleteResponse* response);
  // RestoreComplete of a restore into this node's passive copy.
  absl::StatusOr<dagvault::v1::RestoreCompleteResponse> CompletePassiveRestore(
      const Session& s, const dagvault::v1::RestoreCompleteRequest& request, UnitHost* host);
  void EndLocked(Session& session, const std::string& why);
  void TimerLoop();
  // `patient`: wait for a reconnecting active (Peers::PatientContext).
  absl::Status RenewSurrogate(const Session& s, bool patient);
  absl::Status ReleaseSurrogate(const Session& s, bool success, Generation low, Generation high,
                                bool patient);

  const NodeConfig& config_;
  std::function<UnitHost*(const std::string&)> find_unit_;
  Peers* peers_;
  RecoveryDatabases* rdbs_;
  // PrepareBackup and PrepareRestore admit the request's token first.
  FencingTokens* fencing_tokens_;
  Clock* clock_;
  std::mutex mu_;
  std::map<std::string, Session> sessions_;
  // Recovery Databases whose RestoreComplete (replay, and a verification's
  // checks) is under way, and those of them whose removal was asked for
  // meanwhile: removed as soon as it ends, so that a requestor that gave
  // up waiting never leaves one mounted behind (guarded by mu_).
  std::set<std::string> completing_rdbs_;
  std::set<std::string> remove_when_completed_;
  bool stop_ = false;
  std::condition_variable wake_;
  std::thread timer_;
};

}  // namespace dagvault::mailstore
