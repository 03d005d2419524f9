// The requestor's side of the writer protocol, for the multi-process
// tests: the writer calls over a node's Unix socket, and a backup taken the
// way the dagvault agent's copy snapshot provider takes one (the frozen
// files copied aside while the writer holds them still).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/writer.pb.h"
#include "tests/mailstored/cluster.h"

namespace dagvault::testing {

// Writer calls to node i; errors carry the node's message.
absl::StatusOr<v1::WriterMetadata> GetMetadata(MailstoredCluster& cluster, int i);
absl::StatusOr<v1::PrepareBackupResponse> PrepareBackup(MailstoredCluster& cluster, int i,
                                                        const std::string& unit,
                                                        v1::BackupType type,
                                                        uint32_t base_high_generation = 0,
                                                        uint64_t fencing_token = 0);
absl::StatusOr<v1::FreezeResponse> Freeze(MailstoredCluster& cluster, int i,
                                          const std::string& session);
absl::StatusOr<v1::ThawResponse> Thaw(MailstoredCluster& cluster, int i,
                                      const std::string& session);
absl::StatusOr<v1::BackupCompleteResponse> BackupComplete(MailstoredCluster& cluster, int i,
                                                          const std::string& session, bool success,
                                                          uint32_t low, uint32_t high);
absl::StatusOr<v1::PrepareRestoreResponse> PrepareRestore(MailstoredCluster& cluster, int i,
                                                          const v1::PrepareRestoreRequest& request);
absl::StatusOr<v1::RestoreCompleteResponse> RestoreComplete(
    MailstoredCluster& cluster, int i, const v1::RestoreCompleteRequest& request);
absl::StatusOr<v1::RemoveRecoveryDatabaseResponse> RemoveRecoveryDatabase(
    MailstoredCluster& cluster, int i, const std::string& name);

// One backup's files: dir/<database>.edb and dir/logs/<log files>.
struct BackupSet {
  std::string dir;
  v1::BackupType type = v1::BACKUP_TYPE_UNSPECIFIED;
  v1::FreezeResponse frozen;
  v1::ThawResponse thawed;
  v1::BackupCompleteResponse completed;
};

// Prepare, Freeze, copy the frozen files into `dir`, Thaw, and a
// successful BackupComplete for the frozen generation range.
absl::StatusOr<BackupSet> TakeBackup(MailstoredCluster& cluster, int i, const std::string& unit,
                                     v1::BackupType type, const std::string& dir,
                                     uint32_t base_high_generation = 0, uint64_t fencing_token = 0);

// Puts a chain (a Full, then any Incrementals) where PrepareRestore said:
// the databases of the first set, the logs of all of them.
absl::Status PlaceForRestore(const std::vector<const BackupSet*>& chain,
                             const v1::PrepareRestoreResponse& prepared);

}  // namespace dagvault::testing
