// dagvault-coordinator (DESIGN.md §2): one per deployment. It listens on
// one mutual-TLS port for the agents (AgentService) and the operator's
// command line (CoordinatorAdmin), keeps the topology from the agents'
// reports, runs jobs through JobManager, and records everything in the
// catalog.
#pragma once

#include <grpcpp/impl/codegen/service_type.h>
#include <grpcpp/server.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "coordinator/catalog/catalog.h"
#include "coordinator/server/job_manager.h"
#include "coordinator/server/topology.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

class Coordinator {
 public:
  // Validates the configuration; opens the catalog.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(
      dagvault::v1::CoordinatorConfig config);
  ~Coordinator();

  // Recovers unfinished jobs, then listens. Returns the bound port.
  absl::StatusOr<int> Start();
  void Stop();

  const dagvault::v1::CoordinatorConfig& config() const { return config_; }
  Catalog& catalog() { return *catalog_; }
  Topology& topology() { return *topology_; }
  JobManager& jobs() { return *jobs_; }
  absl::Duration report_every() const;
  absl::Duration lease_ttl() const;

 private:
  explicit Coordinator(dagvault::v1::CoordinatorConfig config) : config_(std::move(config)) {}

  dagvault::v1::CoordinatorConfig config_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stop_{false};
  std::thread ticker_;
};

// The services, in their own files.
std::unique_ptr<grpc::Service> MakeAgentService(Coordinator* coordinator);
std::unique_ptr<grpc::Service> MakeAdminService(Coordinator* coordinator);

}  // namespace dagvault::coordinator
