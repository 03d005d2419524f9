// The Store and Admin services: thin adapters onto Mailstored and UnitHost.
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "dagvault/v1/replication.grpc.pb.h"
#include "dagvault/v1/store.grpc.pb.h"
#include "mailstore/server/server.h"

namespace dagvault::mailstore {
namespace {

using grpc::ServerContext;
namespace v1 = dagvault::v1;

absl::StatusOr<uint32_t> DatabaseIndex(const Engine& engine, const std::string& unit,
                                       const std::string& database) {
  if (database.empty()) {
    if (engine.unit().databases.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("unit ", unit, " has several databases: name one"));
    }
    return 0u;
  }
  const int i = engine.DatabaseIndex(database);
  if (i < 0) return absl::NotFoundError(absl::StrCat("unit ", unit, " has no database ", database));
  return static_cast<uint32_t>(i);
}

class StoreService final : public v1::Store::Service {
 public:
  explicit StoreService(Mailstored* server) : server_(server) {}

  grpc::Status Put(ServerContext*, const v1::PutRequest* request,
                   v1::PutResponse* response) override {
    return ToGrpcStatus([&]() -> absl::Status {
      const auto& a = request->address();
      ASSIGN_OR_RETURN(auto engine, server_->FindEngine(a.unit()));
      ASSIGN_OR_RETURN(uint32_t db, DatabaseIndex(*engine, a.unit(), a.database()));
      ASSIGN_OR_RETURN(auto txn, engine->Begin());
      RETURN_IF_ERROR(txn->Put(db, ItemKey{a.mailbox(), a.item()}, request->value()));
      ASSIGN_OR_RETURN(Lsn lsn, txn->Commit());
      response->set_generation(lsn.generation);
      return absl::OkStatus();
    }());
  }

  grpc::Status Get(ServerContext*, const v1::GetRequest* request,
                   v1::GetResponse* response) override {
    return ToGrpcStatus([&]() -> absl::Status {
      const auto& a = request->address();
      ASSIGN_OR_RETURN(auto engine, server_->FindEngine(a.unit()));
      ASSIGN_OR_RETURN(uint32_t db, DatabaseIndex(*engine, a.unit(), a.database()));
      ASSIGN_OR_RETURN(auto value, engine->Get(db, ItemKey{a.mailbox(), a.item()}));
      response->set_found(value.has_value());
      if (value) response->set_value(std::move(*value));
      return absl::OkStatus();
    }());
  }

  grpc::Status Delete(ServerContext*, const v1::DeleteRequest* request,
                      v1::DeleteResponse* response) override {
    return ToGrpcStatus([&]() -> absl::Status {
      const auto& a = request->address();
      ASSIGN_OR_RETURN(auto engine, server_->FindEngine(a.unit()));
      ASSIGN_OR_RETURN(uint32_t db, DatabaseIndex(*engine, a.unit(), a.database()));
      ASSIGN_OR_RETURN(bool existed, engine->Delete(db, ItemKey{a.mailbox(), a.item()}));
      response->set_existed(existed);
      return absl::OkStatus();
    }());
  }

  grpc::Status List(ServerContext*, const v1::ListRequest* request,
                    v1::ListResponse* response) override {
    return ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto engine, server_->FindEngine(request->unit()));
      ASSIGN_OR_RETURN(uint32_t db, DatabaseIndex(*engine, request->unit(), request->database()));
      ASSIGN_OR_RETURN(auto items, engine->List(db, request->mailbox(), request->start_item(),
                                                request->limit() == 0 ? 1000 : request->limit()));
      for (const auto& item : items) {
        auto* e = response->add_items();
        e->set_item(item.key.item);
        e->set_size(item.size);
      }
      return absl::OkStatus();
    }());
  }

  grpc::Status Batch(ServerContext*, const v1::BatchRequest* request,
                     v1::BatchResponse* response) override {
    return ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto engine, server_->FindEngine(request->unit()));
      ASSIGN_OR_RETURN(auto txn, engine->Begin());
      for (const auto& op : request->ops()) {
        const auto& a = op.address();
        ASSIGN_OR_RETURN(uint32_t db, DatabaseIndex(*engine, request->unit(), a.database()));
        if (op.remove()) {
          RETURN_IF_ERROR(txn->Delete(db, ItemKey{a.mailbox(), a.item()}).status());
        } else {
          RETURN_IF_ERROR(txn->Put(db, ItemKey{a.mailbox(), a.item()}, op.value()));
        }
      }
      ASSIGN_OR_RETURN(Lsn lsn, txn->Commit());
      response->set_generation(lsn.generation);
      return absl::OkStatus();
    }());
  }

 private:
  Mailstored* server_;
};

class AdminService final : public v1::Admin::Service {
 public:
  explicit AdminService(Mailstored* server) : server_(server) {}

  grpc::Status Status(ServerContext*, const v1::StatusRequest* request,
                      v1::StatusResponse* response) override {
    response->set_node(server_->config().node());
    for (UnitHost* host : server_->Units()) {
      if (!request->unit().empty() && request->unit() != host->name()) continue;
      auto* unit = response->add_units();
      unit->set_unit(host->name());
      unit->set_circular_logging(host->definition().circular_logging());
      for (const auto& db : host->definition().databases()) unit->add_databases(db);
      const v1::CopyStatus local = host->Status();
      unit->set_active_node(local.active_node());
      for (const auto& c : host->definition().copies()) {
        if (c.node() == server_->config().node()) {
          *unit->add_copies() = local;
          continue;
        }
        if (request->local_only()) continue;
        auto remote = server_->peers().CopyStatus(c.node(), host->name());
        if (remote.ok()) {
          *unit->add_copies() = *remote;
        } else {
          auto* down = unit->add_copies();
          down->set_unit(host->name());
          down->set_node(c.node());
          down->set_state(v1::SERVICE_DOWN);
          down->set_replay_lag_seconds(c.replay_lag_seconds());
          down->set_activation_preference(c.activation_preference());
          down->set_message(std::string(remote.status().message()));
        }
      }
      if (auto bip = host->BackupInProgress()) *unit->mutable_backup_in_progress() = *bip;
    }
    for (const auto& name : server_->RecoveryDatabaseNames()) {
      if (!request->unit().empty() && request->unit() != name) continue;
      auto* unit = response->add_units();
      unit->set_unit(name);
      unit->set_recovery_database(true);
      if (auto engine = server_->FindEngine(name); engine.ok()) {
        for (const auto& db : (*engine)->unit().databases) unit->add_databases(db.name);
      }
      unit->set_active_node(server_->config().node());
      auto* copy = unit->add_copies();
      copy->set_unit(name);
      copy->set_node(server_->config().node());
      copy->set_role(v1::ACTIVE);
      copy->set_state(v1::MOUNTED);
      copy->set_message("recovery database (not replicated)");
    }
    return grpc::Status::OK;
  }

  grpc::Status Mount(ServerContext*, const v1::UnitRequest* r, v1::AdminResponse* out) override {
    return Run(
        r->unit(), out, [](UnitHost* h) { return h->Mount(); }, "mounted");
  }
  grpc::Status Dismount(ServerContext*, const v1::UnitRequest* r, v1::AdminResponse* out) override {
    return Run(
        r->unit(), out, [](UnitHost* h) { return h->Dismount(); }, "dismounted");
  }
  grpc::Status Suspend(ServerContext*, const v1::UnitRequest* r, v1::AdminResponse* out) override {
    return Run(
        r->unit(), out, [](UnitHost* h) { return h->Suspend(); }, "replication suspended");
  }
  grpc::Status Resume(ServerContext*, const v1::UnitRequest* r, v1::AdminResponse* out) override {
    return Run(
        r->unit(), out, [](UnitHost* h) { return h->Resume(); }, "replication resumed");
  }
  grpc::Status Reseed(ServerContext*, const v1::UnitRequest* r, v1::AdminResponse* out) override {
    return Run(
        r->unit(), out, [](UnitHost* h) { return h->Reseed(); }, "reseed started");
  }
  grpc::Status RollLog(ServerContext*, const v1::UnitRequest* r, v1::AdminResponse* out) override {
    return Run(
        r->unit(), out, [](UnitHost* h) { return h->RollLog(); }, "log generation closed");
  }

  grpc::Status Activate(ServerContext*, const v1::ActivateRequest* request,
                        v1::AdminResponse* out) override {
    const std::string target = request->node().empty() ? server_->config().node() : request->node();
    if (target == server_->config().node()) {
      return Run(
          request->unit(), out, [&](UnitHost* h) { return h->Activate(request->lossy()); },
          absl::StrCat("activated on ", target));
    }
    // Another node's copy: ask that node to activate itself.
    return ToGrpcStatus([&]() -> absl::Status {
      ASSIGN_OR_RETURN(auto* stub, server_->peers().Replication(target));
      v1::BecomeActiveRequest become;
      become.set_unit(request->unit());
      become.set_lossy(request->lossy());
      v1::BecomeActiveResponse response;
      auto context = Peers::Context(absl::Seconds(180));
      RETURN_IF_ERROR(FromGrpcStatus(stub->BecomeActive(context.get(), become, &response),
                                     absl::StrCat(target, " BecomeActive")));
      out->set_message(absl::StrCat("unit ", request->unit(), " activated on ", target));
      return absl::OkStatus();
    }());
  }

  grpc::Status Digest(ServerContext*, const v1::DigestRequest* request,
                      v1::DigestResponse* response) override {
    return ToGrpcStatus([&]() -> absl::Status {
      if (UnitHost* host = server_->FindUnit(request->unit())) {
        ASSIGN_OR_RETURN(*response, host->Digest(request->database()));
        return absl::OkStatus();
      }
      // A recovery database.
      ASSIGN_OR_RETURN(auto engine, server_->FindEngine(request->unit()));
      ASSIGN_OR_RETURN(uint32_t db, DatabaseIndex(*engine, request->unit(), request->database()));
      ASSIGN_OR_RETURN(Sha256Digest digest, engine->Digest(db));
      ASSIGN_OR_RETURN(MetaInfo meta, engine->Meta(db));
      response->set_sha256(DigestToHex(digest));
      response->set_items(meta.item_count);
      response->set_value_bytes(meta.value_bytes);
      response->set_generation(engine->current_generation());
      return absl::OkStatus();
    }());
  }

 private:
  template <typename Fn>
  grpc::Status Run(const std::string& unit, v1::AdminResponse* out, Fn fn,
                   const std::string& done) {
    UnitHost* host = server_->FindUnit(unit);
    if (host == nullptr) {
      return ToGrpcStatus(absl::NotFoundError(
          absl::StrCat("no copy of unit ", unit, " on node ", server_->config().node())));
    }
    absl::Status s = fn(host);
    if (s.ok()) out->set_message(absl::StrCat("unit ", unit, ": ", done));
    return ToGrpcStatus(s);
  }

  Mailstored* server_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeStoreService(Mailstored* server) {
  return std::make_unique<StoreService>(server);
}
std::unique_ptr<grpc::Service> MakeAdminService(Mailstored* server) {
  return std::make_unique<AdminService>(server);
}

}  // namespace dagvault::mailstore
