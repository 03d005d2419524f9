#include "tests/mailstored/backup_set.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"

namespace dagvault::testing {
namespace {

namespace fs = std::filesystem;

// Calls one writer method of node i with a deadline.
template <typename Request, typename Response, typename Method>
absl::StatusOr<Response> Call(MailstoredCluster& cluster, int i, Method method,
                              const Request& request, const char* what) {
  Response response;
  auto context = Deadline(absl::Seconds(60));
  RETURN_IF_ERROR(FromGrpcStatus((cluster.writer(i).*method)(context.get(), request, &response),
                                 absl::StrCat(cluster.node(i).name, " ", what)));
  return response;
}

absl::Status CopyInto(const std::string& from, const std::string& dir) {
  RETURN_IF_ERROR(CreateDirectories(dir));
  std::error_code ec;
  fs::copy_file(from, JoinPath(dir, BaseName(from)), fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("copy ", from, " to ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::WriterMetadata> GetMetadata(MailstoredCluster& cluster, int i) {
  return Call<v1::GetMetadataRequest, v1::WriterMetadata>(
      cluster, i, &v1::Writer::Stub::GetMetadata, v1::GetMetadataRequest{}, "GetMetadata");
}

absl::StatusOr<v1::PrepareBackupResponse> PrepareBackup(MailstoredCluster& cluster, int i,
                                                        const std::string& unit,
                                                        v1::BackupType type,
                                                        uint32_t base_high_generation,
                                                        uint64_t fencing_token) {
  v1::PrepareBackupRequest request;
  request.set_unit(unit);
  request.set_type(type);
  request.set_base_high_generation(base_high_generation);
  request.set_requestor("mailstored_test");
  request.set_fencing_token(fencing_token);
  return Call<v1::PrepareBackupRequest, v1::PrepareBackupResponse>(
      cluster, i, &v1::Writer::Stub::PrepareBackup, request, "PrepareBackup");
}

absl::StatusOr<v1::FreezeResponse> Freeze(MailstoredCluster& cluster, int i,
                                          const std::string& session) {
  v1::FreezeRequest request;
  request.set_session(session);
  return Call<v1::FreezeRequest, v1::FreezeResponse>(cluster, i, &v1::Writer::Stub::Freeze, request,
                                                     "Freeze");
}

absl::StatusOr<v1::ThawResponse> Thaw(MailstoredCluster& cluster, int i,
                                      const std::string& session) {
  v1::SessionRequest request;
  request.set_session(session);
  return Call<v1::SessionRequest, v1::ThawResponse>(cluster, i, &v1::Writer::Stub::Thaw, request,
                                                    "Thaw");
}

absl::StatusOr<v1::BackupCompleteResponse> BackupComplete(MailstoredCluster& cluster, int i,
                                                          const std::string& session, bool success,
                                                          uint32_t low, uint32_t high) {
  v1::BackupCompleteRequest request;
  request.set_session(session);
  request.set_success(success);
  request.set_low_generation(low);
  request.set_high_generation(high);
  return Call<v1::BackupCompleteRequest, v1::BackupCompleteResponse>(
      cluster, i, &v1::Writer::Stub::BackupComplete, request, "BackupComplete");
}

absl::StatusOr<v1::PrepareRestoreResponse> PrepareRestore(
    MailstoredCluster& cluster, int i, const v1::PrepareRestoreRequest& request) {
  return Call<v1::PrepareRestoreRequest, v1::PrepareRestoreResponse>(
      cluster, i, &v1::Writer::Stub::PrepareRestore, request, "PrepareRestore");
}

absl::StatusOr<v1::RestoreCompleteResponse> RestoreComplete(
    MailstoredCluster& cluster, int i, const v1::RestoreCompleteRequest& request) {
  return Call<v1::RestoreCompleteRequest, v1::RestoreCompleteResponse>(
      cluster, i, &v1::Writer::Stub::RestoreComplete, request, "RestoreComplete");
}

absl::StatusOr<v1::RemoveRecoveryDatabaseResponse> RemoveRecoveryDatabase(
    MailstoredCluster& cluster, int i, const std::string& name) {
  v1::RemoveRecoveryDatabaseRequest request;
  request.set_name(name);
  return Call<v1::RemoveRecoveryDatabaseRequest, v1::RemoveRecoveryDatabaseResponse>(
      cluster, i, &v1::Writer::Stub::RemoveRecoveryDatabase, request, "RemoveRecoveryDatabase");
}

absl::StatusOr<BackupSet> TakeBackup(MailstoredCluster& cluster, int i, const std::string& unit,
                                     v1::BackupType type, const std::string& dir,
                                     uint32_t base_high_generation, uint64_t fencing_token) {
  BackupSet set;
  set.dir = dir;
  set.type = type;
  ASSIGN_OR_RETURN(auto prepared,
                   PrepareBackup(cluster, i, unit, type, base_high_generation, fencing_token));
  ASSIGN_OR_RETURN(set.frozen, Freeze(cluster, i, prepared.session()));
  for (const auto& f : set.frozen.files()) {
    if (f.role() == "database") {
      RETURN_IF_ERROR(CopyInto(f.path(), dir));
    } else if (f.role() == "log") {
      RETURN_IF_ERROR(CopyInto(f.path(), JoinPath(dir, "logs")));
    }
  }
  ASSIGN_OR_RETURN(set.thawed, Thaw(cluster, i, prepared.session()));
  ASSIGN_OR_RETURN(set.completed,
                   BackupComplete(cluster, i, prepared.session(), /*success=*/true,
                                  set.frozen.low_generation(), set.frozen.high_generation()));
  return set;
}

absl::Status PlaceForRestore(const std::vector<const BackupSet*>& chain,
                             const v1::PrepareRestoreResponse& prepared) {
  if (chain.empty()) return absl::InvalidArgumentError("an empty chain");
  for (const std::string& path : prepared.database_paths()) {
    const std::string from = JoinPath(chain.front()->dir, BaseName(path));
    std::error_code ec;
    fs::copy_file(from, path, fs::copy_options::overwrite_existing, ec);
    if (ec)
      return absl::InternalError(absl::StrCat("copy ", from, " to ", path, ": ", ec.message()));
  }
  for (const BackupSet* set : chain) {
    const std::string logs = JoinPath(set->dir, "logs");
    if (!PathExists(logs)) continue;
    for (const auto& entry : fs::directory_iterator(logs)) {
      RETURN_IF_ERROR(CopyInto(entry.path().string(), prepared.log_dir()));
    }
  }
  return absl::OkStatus();
}

}  // namespace dagvault::testing
