// The writer calls of an item-level restore (issue 20): a mounted Recovery
// Database's items into production through the active copy's store, or
// read for an export, then the Recovery Database removed.
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "dagvault/v1/replication.grpc.pb.h"
#include "mailstore/server/item_restore.h"
#include "mailstore/server/writer.h"

namespace dagvault::mailstore {

namespace v1 = dagvault::v1;

absl::StatusOr<v1::RestoreItemsResponse> Writers::RestoreItems(
    const v1::RestoreItemsRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<Engine> rdb,
                   rdbs_->FindRecoveryDatabase(request.recovery_database()));
  UnitHost* host = find_unit_(request.unit());
  if (host == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "unit ", request.unit(), " has no copy on node ", config_.node(),
        ": restore its items from a Recovery Database on a node that holds a copy of it"));
  }
  const std::string active = host->Status().active_node();
  if (active.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unit ", request.unit(),
                     " has no active copy: items are restored into a mounted "
                     "active copy only; activate and mount one first"));
  }
  ASSIGN_OR_RETURN(RecoveryItemPage page,
                   SelectRecoveryItems(*rdb, request.recovery_database(), request.selection(),
                                       request.cursor(), request.max_bytes()));
  v1::RestoreItemsResponse response;
  *response.mutable_next() = page.next;
  response.set_done(page.done);
  response.set_active_node(active);
  if (page.items.empty()) return response;
  v1::ApplyRestoredItemsRequest apply;
  apply.set_unit(request.unit());
  apply.set_other_mailbox(request.other_mailbox());
  apply.set_target_mailbox(request.target_mailbox());
  apply.set_conflict(request.conflict());
  for (auto& item : page.items) *apply.add_items() = std::move(item);
  if (request.conflict() == v1::ITEM_CONFLICT_KEEP_BOTH) {
    ASSIGN_OR_RETURN(uint64_t highest, HighestItem(*rdb, request.selection()));
    apply.set_keep_both_from(highest + 1);
  }
  ASSIGN_OR_RETURN(v1::Replication::Stub * stub, peers_->Replication(active));
  v1::ApplyRestoredItemsResponse applied;
  auto context = Peers::PatientContext(absl::Seconds(60));
  if (grpc::Status s = stub->ApplyRestoredItems(context.get(), apply, &applied); !s.ok()) {
    return FromGrpcStatus(s, absl::StrCat("writing ", apply.items_size(),
                                          " restored item(s) into the active copy of ",
                                          request.unit(), " on ", active));
  }
  *response.mutable_counts() = applied.counts();
  response.set_generation(applied.generation());
  *response.mutable_kept_both() = applied.kept_both();
  return response;
}

absl::StatusOr<v1::ReadRecoveryItemsResponse> Writers::ReadRecoveryItems(
    const v1::ReadRecoveryItemsRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<Engine> rdb,
                   rdbs_->FindRecoveryDatabase(request.recovery_database()));
  ASSIGN_OR_RETURN(RecoveryItemPage page,
                   SelectRecoveryItems(*rdb, request.recovery_database(), request.selection(),
                                       request.cursor(), request.max_bytes()));
  v1::ReadRecoveryItemsResponse response;
  for (auto& item : page.items) *response.add_items() = std::move(item);
  *response.mutable_next() = page.next;
  response.set_done(page.done);
  return response;
}

absl::StatusOr<v1::RemoveRecoveryDatabaseResponse> Writers::RemoveRecoveryDatabase(
    const v1::RemoveRecoveryDatabaseRequest& request) {
  {
    // Still being replayed or checked (its requestor stopped waiting):
    // removed the moment that ends, never left mounted behind.
    std::lock_guard<std::mutex> lock(mu_);
    if (completing_rdbs_.count(request.name()) != 0) {
      remove_when_completed_.insert(request.name());
      v1::RemoveRecoveryDatabaseResponse response;
      response.set_path(
          absl::StrCat(request.name(), " (removed as soon as its restore completes)"));
      logging::Get("mailstored.writer")
          ->info("recovery database {} is still completing its restore: removed when it ends",
                 request.name());
      return response;
    }
  }
  ASSIGN_OR_RETURN(std::string path, rdbs_->RemoveRecoveryDatabase(request.name()));
  logging::Get("mailstored.writer")
      ->info("recovery database {} removed (folder {} deleted)", request.name(), path);
  v1::RemoveRecoveryDatabaseResponse response;
  response.set_path(path);
  return response;
}

}  // namespace dagvault::mailstore
