// mailstored: one per mailbox node. It hosts this node's copies of units
// (UnitHost), mounted recovery databases, the writers, and three gRPC
// endpoints: store and admin (TCP), replication (TCP, for the other
// nodes), and the writers (a Unix socket, mode 0600, for the agent).
#pragma once

#include <grpcpp/server.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "mailstore/engine/engine.h"
#include "mailstore/server/config.h"
#include "mailstore/server/fencing_tokens.h"
#include "mailstore/server/peers.h"
#include "mailstore/server/unit_host.h"
#include "mailstore/server/writer.h"

namespace dagvault::mailstore {

class Mailstored : public RecoveryDatabases {
 public:
  static absl::StatusOr<std::unique_ptr<Mailstored>> Create(NodeConfig config,
                                                            Clock* clock = RealClock());
  ~Mailstored() override;

  // Opens every local copy, then listens.
  absl::Status Start();
  // Stops listening, ends writer sessions, closes every copy cleanly (the
  // databases are left CleanShutdown).
  void Shutdown();

  const NodeConfig& config() const { return config_; }
  Peers& peers() { return peers_; }
  Writers& writers() { return *writers_; }
  FencingTokens& fencing_tokens() { return *fencing_tokens_; }
  UnitHost* FindUnit(const std::string& name);
  std::vector<UnitHost*> Units();
  // The engine that serves items of `unit`: its mounted active copy here,
  // or a mounted recovery database of that name.
  absl::StatusOr<std::shared_ptr<Engine>> FindEngine(const std::string& unit);
  bool IsRecoveryDatabase(const std::string& name);
  std::vector<std::string> RecoveryDatabaseNames();

  absl::Status Mount(const std::string& name, const dagvault::v1::UnitConfig& config) override;
  bool Has(const std::string& name) override { return IsRecoveryDatabase(name); }
  absl::StatusOr<std::shared_ptr<Engine>> FindRecoveryDatabase(const std::string& name) override;
  absl::StatusOr<std::string> RemoveRecoveryDatabase(const std::string& name) override;

 private:
  Mailstored(NodeConfig config, Clock* clock, Peers::Credentials peer_credentials);

  NodeConfig config_;
  Clock* clock_;
  Peers peers_;
  std::map<std::string, std::unique_ptr<UnitHost>> units_;
  std::unique_ptr<FencingTokens> fencing_tokens_;
  std::unique_ptr<Writers> writers_;
  std::mutex rdb_mu_;
  std::map<std::string, std::shared_ptr<Engine>> rdbs_;
  std::map<std::string, std::string> rdb_dirs_;  // name → its folder (system_dir)
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::vector<std::unique_ptr<grpc::Server>> servers_;
  bool shut_down_ = false;
};

// The service implementations (services.cc, replication_service.cc,
// writer_service.cc).
std::unique_ptr<grpc::Service> MakeStoreService(Mailstored* server);
std::unique_ptr<grpc::Service> MakeAdminService(Mailstored* server);
std::unique_ptr<grpc::Service> MakeReplicationService(Mailstored* server);
std::unique_ptr<grpc::Service> MakeWriterService(Mailstored* server);

}  // namespace dagvault::mailstore
