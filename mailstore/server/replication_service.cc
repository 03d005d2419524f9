// The Replication service (mailstored <-> mailstored) and the Writer
// service (agent -> mailstored): thin adapters.
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "dagvault/v1/replication.grpc.pb.h"
#include "dagvault/v1/writer.grpc.pb.h"
#include "mailstore/server/item_restore.h"
#include "mailstore/server/server.h"

namespace dagvault::mailstore {
namespace {

using grpc::ServerContext;
namespace v1 = dagvault::v1;

class ReplicationService final : public v1::Replication::Service {
 public:
  explicit ReplicationService(Mailstored* server) : server_(server) {}

  grpc::Status GetCopyStatus(ServerContext*, const v1::CopyStatusRequest* r,
                             v1::CopyStatus* out) override {
    return With(r->unit(), [&](UnitHost* h) {
      *out = h->Status();
      return absl::OkStatus();
    });
  }

  grpc::Status FetchLog(ServerContext* context, const v1::FetchLogRequest* r,
                        grpc::ServerWriter<v1::FileChunk>* writer) override {
    return With(r->unit(), [&](UnitHost* h) {
      return h->ServeLog(
          *r, [&](const v1::FileChunk& c) { return !context->IsCancelled() && writer->Write(c); });
    });
  }

  grpc::Status StreamSummary(ServerContext*, const v1::StreamSummaryRequest* r,
                             v1::StreamSummaryResponse* out) override {
    return With(r->unit(), [&](UnitHost* h) -> absl::Status {
      ASSIGN_OR_RETURN(*out, h->Summary(r->from(), r->through()));
      return absl::OkStatus();
    });
  }

  grpc::Status Seed(ServerContext* context, const v1::SeedRequest* r,
                    grpc::ServerWriter<v1::FileChunk>* writer) override {
    return With(r->unit(), [&](UnitHost* h) {
      return h->ServeSeed(r->from_node(), [&](const v1::FileChunk& c) {
        return !context->IsCancelled() && writer->Write(c);
      });
    });
  }

  grpc::Status AcquireBackup(ServerContext*, const v1::AcquireBackupRequest* r,
                             v1::AcquireBackupResponse*) override {
    return With(r->unit(), [&](UnitHost* h) -> absl::Status {
      RETURN_IF_ERROR(h->MountedEngine().status());
      RETURN_IF_ERROR(server_->fencing_tokens().Admit(
          r->unit(), r->fencing_token(),
          absl::StrCat("the surrogate AcquireBackup from ", r->holder_node())));
      v1::BackupInProgress bip;
      bip.set_unit(r->unit());
      bip.set_session(r->session());
      bip.set_holder_node(r->holder_node());
      bip.set_holder_role(v1::PASSIVE);
      bip.set_type(r->type());
      bip.set_started_us(absl::ToUnixMicros(absl::Now()));
      bip.set_holder_incarnation(r->holder_incarnation());
      bip.set_fencing_token(r->fencing_token());
      return h->backups().Acquire(bip);
    });
  }

  grpc::Status RenewBackup(ServerContext*, const v1::BackupSessionRequest* r,
                           v1::BackupSessionResponse*) override {
    return With(r->unit(), [&](UnitHost* h) { return h->backups().Renew(r->session()); });
  }

  grpc::Status ReleaseBackup(ServerContext*, const v1::ReleaseBackupRequest* r,
                             v1::BackupSessionResponse*) override {
    return With(r->unit(), [&](UnitHost* h) -> absl::Status {
      RETURN_IF_ERROR(h->backups().Release(r->session()));
      if (!r->success()) return absl::OkStatus();
      return h
          ->RecordBackup(r->type(), r->low_generation(), r->high_generation(), r->time_us(),
                         r->snapshot())
          .status();
    });
  }

  grpc::Status ReleaseStaleBackups(ServerContext*, const v1::ReleaseStaleBackupsRequest* r,
                                   v1::BackupSessionResponse*) override {
    return With(r->unit(), [&](UnitHost* h) {
      h->backups().ReleaseStale(r->holder_node(), r->current_incarnation());
      return absl::OkStatus();
    });
  }

  grpc::Status Truncate(ServerContext*, const v1::TruncateRequest* r,
                        v1::TruncateResponse*) override {
    return With(r->unit(), [&](UnitHost* h) -> absl::Status {
      h->AllowTruncation(r->through_generation());
      return absl::OkStatus();
    });
  }

  grpc::Status BecomeActive(ServerContext*, const v1::BecomeActiveRequest* r,
                            v1::BecomeActiveResponse*) override {
    return With(r->unit(), [&](UnitHost* h) { return h->Activate(r->lossy()); });
  }

  grpc::Status HandOver(ServerContext*, const v1::HandOverRequest* r,
                        v1::HandOverResponse* out) override {
    return With(r->unit(), [&](UnitHost* h) -> absl::Status {
      ASSIGN_OR_RETURN(*out, h->HandOver(r->target_node()));
      return absl::OkStatus();
    });
  }

 private:
  // Only into the mounted active copy (MountedEngine refuses otherwise):
  // the items are logged and replicate like any write.
  grpc::Status ApplyRestoredItems(ServerContext*, const v1::ApplyRestoredItemsRequest* r,
                                  v1::ApplyRestoredItemsResponse* out) override {
    return With(r->unit(), [&](UnitHost* h) -> absl::Status {
      ASSIGN_OR_RETURN(std::shared_ptr<Engine> engine, h->MountedEngine());
      ASSIGN_OR_RETURN(*out, mailstore::ApplyRestoredItems(*engine, *r));
      return absl::OkStatus();
    });
  }

  template <typename Fn>
  grpc::Status With(const std::string& unit, Fn fn) {
    UnitHost* host = server_->FindUnit(unit);
    if (host == nullptr) {
      return ToGrpcStatus(absl::NotFoundError(
          absl::StrCat("no copy of unit ", unit, " on node ", server_->config().node())));
    }
    return ToGrpcStatus(fn(host));
  }
  Mailstored* server_;
};

class WriterService final : public v1::Writer::Service {
 public:
  explicit WriterService(Mailstored* server) : writers_(server->writers()) {}

  grpc::Status GetMetadata(ServerContext*, const v1::GetMetadataRequest*,
                           v1::WriterMetadata* out) override {
    return Assign(writers_.GetMetadata(), out);
  }
  grpc::Status PrepareBackup(ServerContext*, const v1::PrepareBackupRequest* r,
                             v1::PrepareBackupResponse* out) override {
    return Assign(writers_.PrepareBackup(*r), out);
  }
  grpc::Status Freeze(ServerContext*, const v1::FreezeRequest* r,
                      v1::FreezeResponse* out) override {
    return Assign(writers_.Freeze(r->session()), out);
  }
  grpc::Status Thaw(ServerContext*, const v1::SessionRequest* r, v1::ThawResponse* out) override {
    return Assign(writers_.Thaw(r->session()), out);
  }
  grpc::Status KeepAlive(ServerContext*, const v1::SessionRequest* r,
                         v1::KeepAliveResponse*) override {
    return ToGrpcStatus(writers_.KeepAlive(r->session()));
  }
  grpc::Status BackupComplete(ServerContext*, const v1::BackupCompleteRequest* r,
                              v1::BackupCompleteResponse* out) override {
    return Assign(writers_.BackupComplete(*r), out);
  }
  grpc::Status PrepareRestore(ServerContext*, const v1::PrepareRestoreRequest* r,
                              v1::PrepareRestoreResponse* out) override {
    return Assign(writers_.PrepareRestore(*r), out);
  }
  grpc::Status RestoreComplete(ServerContext*, const v1::RestoreCompleteRequest* r,
                               v1::RestoreCompleteResponse* out) override {
    return Assign(writers_.RestoreComplete(*r), out);
  }
  grpc::Status RestoreItems(ServerContext*, const v1::RestoreItemsRequest* r,
                            v1::RestoreItemsResponse* out) override {
    return Assign(writers_.RestoreItems(*r), out);
  }
  grpc::Status ReadRecoveryItems(ServerContext*, const v1::ReadRecoveryItemsRequest* r,
                                 v1::ReadRecoveryItemsResponse* out) override {
    return Assign(writers_.ReadRecoveryItems(*r), out);
  }
  grpc::Status RemoveRecoveryDatabase(ServerContext*, const v1::RemoveRecoveryDatabaseRequest* r,
                                      v1::RemoveRecoveryDatabaseResponse* out) override {
    return Assign(writers_.RemoveRecoveryDatabase(*r), out);
  }

 private:
  template <typename T>
  static grpc::Status Assign(absl::StatusOr<T> result, T* out) {
    if (!result.ok()) return ToGrpcStatus(result.status());
    *out = std::move(*result);
    return grpc::Status::OK;
  }
  Writers& writers_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeReplicationService(Mailstored* server) {
  return std::make_unique<ReplicationService>(server);
}
std::unique_ptr<grpc::Service> MakeWriterService(Mailstored* server) {
  return std::make_unique<WriterService>(server);
}

}  // namespace dagvault::mailstore
