#include "mailstore/server/server.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/item_restore_name.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace dagvault::mailstore {

Mailstored::Mailstored(NodeConfig config, Clock* clock, Peers::Credentials peer_credentials)
    : config_(std::move(config)), clock_(clock), peers_(config_, std::move(peer_credentials)) {}

absl::StatusOr<std::unique_ptr<Mailstored>> Mailstored::Create(NodeConfig config, Clock* clock) {
  config.incarnation = RandomHexId();
  ASSIGN_OR_RETURN(Peers::Credentials credentials, Peers::MakeCredentials(config));
  std::unique_ptr<Mailstored> server(new Mailstored(std::move(config), clock, credentials));
  // A damaged table stops the start here, naming the file (FencingTokens::Open).
  ASSIGN_OR_RETURN(
      server->fencing_tokens_,
      FencingTokens::Open(JoinPath(server->config_.proto.data_root(), kFencingTokensFile),
                          server->config_.node()));
  for (const auto* def : server->config_.LocalUnits()) {
    server->units_[def->name()] =
        std::make_unique<UnitHost>(server->config_, *def, &server->peers_, clock);
  }
  Mailstored* raw = server.get();
  server->writers_ = std::make_unique<Writers>(
      server->config_, [raw](const std::string& name) { return raw->FindUnit(name); },
      &server->peers_, raw, server->fencing_tokens_.get(), clock);
  return server;
}

Mailstored::~Mailstored() { Shutdown(); }

UnitHost* Mailstored::FindUnit(const std::string& name) {
  auto it = units_.find(name);
  return it == units_.end() ? nullptr : it->second.get();
}

std::vector<UnitHost*> Mailstored::Units() {
  std::vector<UnitHost*> out;
  for (auto& [name, host] : units_) out.push_back(host.get());
  return out;
}

absl::StatusOr<std::shared_ptr<Engine>> Mailstored::FindEngine(const std::string& unit) {
  if (UnitHost* host = FindUnit(unit)) return host->MountedEngine();
  std::lock_guard<std::mutex> lock(rdb_mu_);
  auto it = rdbs_.find(unit);
  if (it != rdbs_.end()) return it->second;
  return absl::NotFoundError(
      absl::StrCat("no unit or recovery database named ", unit, " on node ", config_.node()));
}

bool Mailstored::IsRecoveryDatabase(const std::string& name) {
  std::lock_guard<std::mutex> lock(rdb_mu_);
  return rdbs_.count(name) != 0;
}

std::vector<std::string> Mailstored::RecoveryDatabaseNames() {
  std::lock_guard<std::mutex> lock(rdb_mu_);
  std::vector<std::string> out;
  for (const auto& [name, engine] : rdbs_) out.push_back(name);
  return out;
}

absl::Status Mailstored::Mount(const std::string& name, const dagvault::v1::UnitConfig& config) {
  if (FindUnit(name) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("a unit named ", name, " exists; choose another recovery database name"));
  }
  EngineOptions options;
  options.clock = clock_;
  options.flush_interval = config_.flush_interval;
  ASSIGN_OR_RETURN(auto engine, Engine::Open(config, options));
  std::lock_guard<std::mutex> lock(rdb_mu_);
  rdbs_[name] = std::move(engine);
  rdb_dirs_[name] = config.system_dir();
  logging::Get("mailstored")
      ->info("recovery database {} mounted from {}", name, config.system_dir());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Engine>> Mailstored::FindRecoveryDatabase(const std::string& name) {
  std::lock_guard<std::mutex> lock(rdb_mu_);
  auto it = rdbs_.find(name);
  if (it == rdbs_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no recovery database named ", name, " is mounted on node ", config_.node()));
  }
  return it->second;
}

absl::StatusOr<std::string> Mailstored::RemoveRecoveryDatabase(const std::string& name) {
  // Only a folder under data_root/rdb (where a Recovery Database restored
  // without a path goes) is deleted: one an operator placed elsewhere with
  // --path is only dismounted.
  const std::string rdb_root = JoinPath(config_.proto.data_root(), "rdb");
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" is not a recovery database name"));
  }
  std::shared_ptr<Engine> engine;
  std::string dir;
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (true) {
    std::unique_lock<std::mutex> lock(rdb_mu_);
    auto it = rdbs_.find(name);
    if (it == rdbs_.end()) {
      // Not mounted: a restore that failed before its mount may have left
      // its folder.
      const std::string leftover = JoinPath(rdb_root, name);
      if (!PathExists(leftover)) {
        return absl::NotFoundError(absl::StrCat("no recovery database named ", name,
                                                " is mounted or left on node ", config_.node()));
      }
      dir = leftover;
      break;
    }
    if (it->second.use_count() > 1) {
      // A page of items or a store call still reads it: wait for it.
      if (absl::Now() >= give_up) {
        return absl::FailedPreconditionError(absl::StrCat(
            "recovery database ", name, " on ", config_.node(), " is still in use; not removed"));
      }
      lock.unlock();
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    engine = std::move(it->second);
    rdbs_.erase(it);
    dir = rdb_dirs_[name];
    rdb_dirs_.erase(name);
    break;
  }
  if (engine != nullptr) {
    if (absl::Status closed = engine->Close(); !closed.ok()) {
      logging::Get("mailstored")->warn("recovery database {}: closing it: {}", name, closed);
    }
  }
  if (std::filesystem::path(dir).lexically_normal().parent_path() !=
      std::filesystem::path(rdb_root).lexically_normal()) {
    return absl::StrCat(dir, " (dismounted; the folder is not under ", rdb_root,
                        ", so it was left in place)");
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("recovery database ", name, " is dismounted, but ", dir,
                                            " could not be deleted: ", ec.message()));
  }
  return dir;
}

absl::Status Mailstored::Start() {
  auto log = logging::Get("mailstored");
  RETURN_IF_ERROR(CreateDirectories(config_.proto.data_root()));
  // An item restore's or a restore verification's Recovery Database lives
  // only as long as its job, and no Recovery Database is mounted again
  // after a restart: one left by a job cut short (its agent or this daemon
  // died) goes now.
  std::error_code ec;
  const std::string rdb_root = JoinPath(config_.proto.data_root(), "rdb");
  for (const auto& entry : std::filesystem::directory_iterator(rdb_root, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() ||
        !(IsItemRestoreDatabaseName(name) || IsVerificationDatabaseName(name))) {
      continue;
    }
    std::error_code removed;
    std::filesystem::remove_all(entry.path(), removed);
    if (removed) {
      log->warn("a job's recovery database folder {} could not be removed: {}",
                entry.path().string(), removed.message());
    } else {
      log->info("removed {}, a job's recovery database left by a job cut short",
                entry.path().string());
    }
  }
  for (auto& [name, host] : units_) {
    absl::Status s = host->Start();
    // One unit that cannot start does not stop the others; its status says why.
    if (!s.ok()) log->error("[unit {}] {}", name, s);
  }
  writers_->Start();

  // grpc.health.v1.Health on every port: SERVING while the daemon serves.
  grpc::EnableDefaultHealthCheckService(true);
  auto listen = [&](const std::string& address, std::vector<grpc::Service*> services, int* port,
                    std::shared_ptr<grpc::ServerCredentials> credentials =
                        grpc::InsecureServerCredentials()) -> absl::Status {
    grpc::ServerBuilder builder;
    builder.SetMaxReceiveMessageSize(128 << 20);
    builder.AddListeningPort(address, credentials, port);
    for (auto* s : services) builder.RegisterService(s);
    auto server = builder.BuildAndStart();
    if (!server) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
    servers_.push_back(std::move(server));
    return absl::OkStatus();
  };
  services_.push_back(MakeStoreService(this));
  services_.push_back(MakeAdminService(this));
  services_.push_back(MakeReplicationService(this));
  services_.push_back(MakeWriterService(this));
  // The node's agent asks for copy states on the writers' socket: a local,
  // root-only channel, as Exchange's agents use the local cmdlets. (A gRPC
  // service object serves one server, hence a second Admin.)
  services_.push_back(MakeAdminService(this));
  int store_port = 0, replication_port = 0, writer_port = 0;
  RETURN_IF_ERROR(
      listen(config_.proto.store_listen(), {services_[0].get(), services_[1].get()}, &store_port));
  // Replication: mutual TLS, and only this deployment's peer nodes.
  ASSIGN_OR_RETURN(auto replication_credentials,
                   MakeServerCredentials(
                       config_.proto.replication_tls(), config_.proto.insecure_dev(),
                       absl::StrCat("replication listener ", config_.proto.replication_listen())));
  if (!config_.proto.insecure_dev()) {
    std::set<std::string> peers = {config_.node()};
    for (const auto& p : config_.proto.peers()) peers.insert(p.node());
    replication_credentials->SetAuthMetadataProcessor(AllowOnly(kRoleNode, peers));
  }
  RETURN_IF_ERROR(listen(config_.proto.replication_listen(), {services_[2].get()},
                         &replication_port, replication_credentials));
  // The writers' socket: only this user may connect (mode 0600).
  const std::string socket = config_.proto.writer_socket();
  (void)RemoveDurably(socket);
  RETURN_IF_ERROR(CreateDirectories(DirName(socket)));
  const mode_t old_mask = ::umask(0177);
  absl::Status listened =
      listen(absl::StrCat("unix:", socket), {services_[3].get(), services_[4].get()}, &writer_port);
  ::umask(old_mask);
  RETURN_IF_ERROR(listened);
  if (::chmod(socket.c_str(), 0600) != 0) return ErrnoToStatus(errno, "chmod", socket);
  log->info("node {} ready: store {} (port {}), replication {} (port {}), writers {}",
            config_.node(), config_.proto.store_listen(), store_port,
            config_.proto.replication_listen(), replication_port, socket);
  return absl::OkStatus();
}

void Mailstored::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // One deadline for all listeners: a server waits for its clients to
  // close their connections after GOAWAY, and an idle client may not
  // notice for seconds. After the deadline the remaining calls are
  // cancelled.
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
  for (auto& server : servers_) server->Shutdown(deadline);
  if (writers_) writers_->Stop();
  for (auto& [name, host] : units_) host->Stop();
  std::lock_guard<std::mutex> lock(rdb_mu_);
  for (auto& [name, engine] : rdbs_) (void)engine->Close();
  rdbs_.clear();
  logging::Get("mailstored")->info("node {} shut down cleanly", config_.node());
}

}  // namespace dagvault::mailstore
