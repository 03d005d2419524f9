// dagvault-coordinator (DESIGN.md §2): one per deployment. It listens on
// one mutual-TLS port for the agents (AgentService) and the operator's
// command line (CoordinatorAdmin), keeps the topology from the agents'
// reports, runs jobs through JobManager, and records everything in the
// catalog.
#pragma once

#include <grpcpp/impl/codegen/service_type.h>
#include <grpcpp/server.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/metrics/metrics_server.h"
#include "common/tls_front.h"
#include "coordinator/catalog/catalog.h"
#include "coordinator/catalog/instrumented_catalog.h"
#include "coordinator/console/console_server.h"
#include "coordinator/console/console_tokens.h"
#include "coordinator/etcd/etcd_client.h"
#include "coordinator/etcd/leader_election.h"
#include "coordinator/leases/lease_store.h"
#include "coordinator/rpo/rpo.h"
#include "coordinator/server/admin_api.h"
#include "coordinator/server/coordinator_metrics.h"
#include "coordinator/server/job_manager.h"
#include "coordinator/server/log_archive_assigner.h"
#include "coordinator/server/topology.h"
#include "coordinator/server/unit_history_cache.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

class Coordinator {
 public:
  // Validates the configuration; opens the catalog.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(
      dagvault::v1::CoordinatorConfig config);
  ~Coordinator();

  // Recovers unfinished jobs, then listens. Returns the bound port.
  // With leader election (etcd and a PostgreSQL catalog, docs/ha.md) it
  // listens at once as a standby, and campaigns on a thread of its own:
  // only once it leads does it fence the catalog, recover the jobs and
  // start the scheduler, retention and job ticks.
  absl::StatusOr<int> Start();
  // Stops; a leader resigns, so a standby takes over at once.
  void Stop();

  // Whether this coordinator may act (assign, schedule, write): always
  // without leader election; with it, only while it leads and before its
  // lease's deadline.
  bool MayAct() const;
  // For a standby: UNAVAILABLE, naming the leader (also in the trailing
  // metadata key dagvault-leader) so the caller can follow it. Nothing
  // when this coordinator may act.
  std::optional<grpc::Status> RedirectIfStandby(grpc::ServerContextBase* context) const;
  // PERMISSION_DENIED (and an audit entry) when the caller may not make
  // the call at `path` ("/pkg.Service/Method", access.h); nothing when it
  // may. Every handler of this port's services runs it first, and acts as
  // `caller`: the certificate the TLS front verified for the connection.
  std::optional<grpc::Status> Refuse(const grpc::ServerContextBase& context, absl::string_view path,
                                     PeerIdentity* caller) const;
  // For a call that only reads the catalog: the same while a leader is
  // known (its answer has the live jobs), nothing while none leads, so
  // that a standby answers from the shared catalog (admin_service.cc).
  std::optional<grpc::Status> RedirectCatalogReadIfLeaderKnown(
      grpc::ServerContextBase* context) const;
  dagvault::v1::LeaderInfo WhoLeads() const;
  // The address this coordinator advertises (`advertise`, or `listen`).
  std::string advertised_address() const;

  const dagvault::v1::CoordinatorConfig& config() const { return config_; }
  Catalog& catalog() { return *catalog_; }
  // Backup-in-progress leases: in etcd when `etcd` is configured, else in
  // the catalog.
  LeaseStore& leases() { return *leases_; }
  Topology& topology() { return *topology_; }
  JobManager& jobs() { return *jobs_; }
  Scheduler& scheduler() { return *scheduler_; }
  LogArchiveAssigner& archives() { return *archives_; }
  // The admin API's operations, for the gRPC service and the console.
  AdminApi& admin() { return *admin_; }
  ConsoleTokens& console_tokens() { return console_tokens_; }
  // The web console's port once started (0: not configured).
  int console_port() const { return console_port_.load(); }
  // Held by an expiry run; `catalog rebuild` takes it too, so that a
  // rebuild never brings back backups a running expiry is pruning.
  std::mutex& expiry_mutex() { return expiry_mu_; }
  // One retention run (coordinator/retention/expiry.h); `only_pending`: just
  // the prune an interrupted run left.
  absl::StatusOr<dagvault::v1::ExpireResponse> Expire(bool dry_run, bool only_pending = false);
  // Every unit's protection against its RPO (coordinator/rpo/rpo.h). Units
  // are those the agents report and those named by a policy; `unit` not
  // empty: that unit only.
  struct ProtectionSummary {
    // Worst first: the units not within their RPO, each with where a
    // backup would read from now; with `every_unit` (or `unit`), every
    // unit. A unit that was and surely still is within its RPO is only
    // counted otherwise (100,000 units judged in full on every call cost
    // too much).
    std::vector<dagvault::v1::UnitProtection> units;
    uint32_t total = 0;
    uint32_t within_rpo = 0;
  };
  // `sources`: each listed unit within its RPO gets where a backup would
  // read from too (the metrics do not need it; the console shows it).
  absl::StatusOr<ProtectionSummary> Protection(const std::string& unit, bool every_unit,
                                               bool sources = true);
  // The ports /metrics is served on (0: not configured), once started.
  int metrics_https_port() const { return metrics_server_ ? metrics_server_->https_port() : 0; }
  int metrics_plaintext_port() const {
    return metrics_server_ ? metrics_server_->plaintext_port() : 0;
  }
  absl::Duration report_every() const;
  absl::Duration lease_ttl() const;

 private:
  explicit Coordinator(dagvault::v1::CoordinatorConfig config) : config_(std::move(config)) {}
  // The gRPC port, the console and /metrics.
  absl::StatusOr<int> StartServing();
  // The web console, when configured.
  absl::Status StartConsole();
  // The leader's threads: job ticks and the scheduler, retention.
  void StartWork();
  // Campaigns, then leads until leadership is lost (then exits the process).
  void Lead();
  // A deposed leader stops at once: nothing it still holds in memory may be
  // acted on. The service manager starts it again, as a standby.
  [[noreturn]] void Deposed(const absl::Status& why) const;

  dagvault::v1::CoordinatorConfig config_;
  // Before jobs_: the job manager reports to it.
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  std::unique_ptr<InstrumentedCatalog> catalog_;
  // Each unit's chains and jobs as Protection last read them.
  std::unique_ptr<UnitHistoryCache> unit_histories_;
  // Protection's index of units and policies (protection.cc), kept by the
  // leader while the policies and the set of reported units stay the same.
  struct UnitIndex;
  absl::StatusOr<std::shared_ptr<const UnitIndex>> UnitIndexNow(bool keep);
  std::mutex unit_index_mu_;
  std::shared_ptr<const UnitIndex> unit_index_;  // guarded by unit_index_mu_
  // Every unit's history by its position in a UnitIndex (protection.cc).
  struct IndexedHistories;
  std::shared_ptr<const IndexedHistories> HistoriesNow(
      const std::shared_ptr<const UnitIndex>& index, bool keep);
  std::mutex histories_refresh_mu_;  // one refresh at a time
  std::mutex histories_mu_;
  std::shared_ptr<const IndexedHistories> histories_;  // guarded by histories_mu_
  std::unique_ptr<EtcdClient> etcd_;                   // null without `etcd`
  std::unique_ptr<LeaseStore> leases_;
  std::unique_ptr<LeaderElection> election_;  // null without leader election
  std::atomic<bool> leading_{false};          // recovered and at work
  std::thread leader_;                        // Lead()
  std::unique_ptr<Topology> topology_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<LogArchiveAssigner> archives_;
  std::unique_ptr<AdminApi> admin_;
  ConsoleTokens console_tokens_;
  std::unique_ptr<ConsoleServer> console_;
  std::atomic<int> console_port_{0};
  RpoTracker rpo_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TlsFront> front_;
  // front_ for the handlers, which may run while StartServing sets it.
  std::atomic<const TlsFront*> front_for_calls_{nullptr};
  std::atomic<bool> stop_{false};
  std::thread ticker_;
  // Expiry and prune: at start-up (what an interrupted run left), then
  // every expire_every_minutes; one run at a time, with `dagvault expire`.
  std::thread expirer_;
  std::mutex expiry_mu_;       // one run at a time
  std::mutex expiry_wait_mu_;  // the expirer's sleep
  std::condition_variable expiry_wake_;
};

// The services, in their own files.
std::unique_ptr<grpc::Service> MakeAgentService(Coordinator* coordinator);
std::unique_ptr<grpc::Service> MakeAdminService(Coordinator* coordinator);

}  // namespace dagvault::coordinator
