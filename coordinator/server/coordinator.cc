#include "coordinator/server/coordinator.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/catalog/instrumented_catalog.h"
#include "coordinator/catalog/open_catalog.h"
#include "coordinator/leases/etcd_lease_store.h"
#include "coordinator/retention/expiry.h"
#include "coordinator/server/access.h"
#include "spdlog/spdlog.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

absl::Duration Coordinator::report_every() const {
  return absl::Milliseconds(config_.report_every_ms() != 0 ? config_.report_every_ms() : 5000);
}

absl::Duration Coordinator::lease_ttl() const {
  return absl::Milliseconds(config_.lease_ttl_ms() != 0 ? config_.lease_ttl_ms() : 30000);
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(v1::CoordinatorConfig config) {
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(config)));
  const absl::Duration node_timeout = c->config_.node_timeout_ms() != 0
                                          ? absl::Milliseconds(c->config_.node_timeout_ms())
                                          : 3 * c->report_every();
  if (node_timeout < c->report_every()) {
    return absl::InvalidArgumentError(
        "node_timeout_ms must be at least report_every_ms: a node would go down between reports");
  }
  if (c->lease_ttl() < c->report_every() * 2) {
    return absl::InvalidArgumentError(
        "lease_ttl_ms must be at least twice report_every_ms: a lease would expire between "
        "reports");
  }
  c->metrics_ = std::make_unique<CoordinatorMetrics>(c.get());
  ASSIGN_OR_RETURN(auto catalog, OpenCatalog(c->config_.catalog()));
  // Every catalog call is timed and its errors counted (docs/monitoring.md).
  c->catalog_ = std::make_unique<InstrumentedCatalog>(
      std::move(catalog), &c->metrics_->catalog_seconds(), &c->metrics_->catalog_errors());
  c->unit_histories_ = std::make_unique<UnitHistoryCache>(c->catalog_.get());
  c->topology_ = std::make_unique<Topology>(c->catalog_.get(), node_timeout);
  if (c->config_.etcd().endpoints_size() > 0) {
    ASSIGN_OR_RETURN(c->etcd_, EtcdClient::Connect(c->config_.etcd()));
    auto leases = EtcdLeaseStore::Open(c->etcd_.get(), c->config_.etcd().prefix(), RealClock());
    if (!leases.ok()) {
      return Annotate(leases.status(), "opening the backup-in-progress leases in etcd");
    }
    logging::Get("coordinator")
        ->info("backup-in-progress leases in etcd ({}), fencing-token base {}",
               absl::StrJoin(c->etcd_->endpoints(), ","), (*leases)->token_base());
    c->leases_ = std::move(*leases);
    if (IsPostgresCatalog(c->config_.catalog())) {
      LeaderElectionOptions election;
      election.key = NormalizedEtcdPrefix(c->config_.etcd().prefix()) + "leader";
      election.value = c->advertised_address();
      election.ttl = absl::Milliseconds(
          c->config_.etcd().leader_ttl_ms() != 0 ? c->config_.etcd().leader_ttl_ms() : 5000);
      c->election_ = std::make_unique<LeaderElection>(c->etcd_.get(), election);
    } else {
      logging::Get("coordinator")
          ->warn(
              "no leader election: the catalog {} is an SQLite file, which only one "
              "coordinator can use; run one coordinator, or put the catalog in PostgreSQL "
              "(docs/ha.md)",
              CatalogForDisplay(c->config_.catalog()));
    }
  } else {
    c->leases_ = std::make_unique<CatalogLeaseStore>(c->catalog_.get(), RealClock());
  }
  JobManagerOptions options;
  options.leases = c->leases_.get();
  options.lease_ttl = c->lease_ttl();
  if (c->config_.writer_session_timeout_ms() != 0) {
    options.writer_session_timeout = absl::Milliseconds(c->config_.writer_session_timeout_ms());
  }
  options.report_grace = 2 * c->report_every() + absl::Seconds(2);
  options.observer = c->metrics_.get();
  // Both act only while this process leads, and it exits when deposed: the
  // leader, the catalog's one writer, may keep what it read.
  InstrumentedCatalog* kept = c->catalog_.get();
  options.policies = [kept] { return kept->KeptPolicies(); };
  c->jobs_ = std::make_unique<JobManager>(c->catalog_.get(), c->topology_.get(), options);
  c->scheduler_ =
      std::make_unique<Scheduler>(c->catalog_.get(), c->jobs_.get(), RealClock(), options.policies);
  c->archives_ =
      std::make_unique<LogArchiveAssigner>(c->catalog_.get(), c->topology_.get(), options.policies);
  c->admin_ = std::make_unique<AdminApi>(c.get());
  return c;
}

Coordinator::~Coordinator() { Stop(); }

absl::StatusOr<int> Coordinator::Start() {
  auto log = logging::Get("coordinator");
  if (election_) {
    ASSIGN_OR_RETURN(int port, StartServing());
    log->info("coordinator listening on {} (port {}) as a standby until it leads; catalog {}",
              config_.listen(), port, CatalogForDisplay(config_.catalog()));
    leader_ = std::thread([this] { Lead(); });
    return port;
  }
  RETURN_IF_ERROR(topology_->Load());
  topology_->StartWriteBehind(absl::Seconds(1));
  RETURN_IF_ERROR(jobs_->Recover());
  ASSIGN_OR_RETURN(int port, StartServing());
  leading_ = true;
  StartWork();
  log->info("coordinator listening on {} (port {}), catalog {}", config_.listen(), port,
            CatalogForDisplay(config_.catalog()));
  return port;
}

absl::StatusOr<int> Coordinator::StartServing() {
  // The console before the gRPC port: CreateConsoleToken reads its port.
  // A standby serves none: the console calls AdminApi directly, and a
  // standby must not act (it starts once this coordinator leads).
  if (!election_) RETURN_IF_ERROR(StartConsole());
  services_.push_back(MakeAgentService(this));
  services_.push_back(MakeAdminService(this));
  // grpc.health.v1.Health: SERVING while the coordinator serves.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  if (config_.insecure_dev()) {
    // A half-open connection (a partition with no reset) is found within
    // ~15 s by pings, not after TCP's minutes. Behind the TLS front the
    // kernel finds it instead, at no cost per connection
    // (tls_front.cc, WatchForADeadPeer).
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  }
  // The agents' own pings are answered (coordinator_channel_args.h).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // No bandwidth-delay probes on what the coordinator receives: each, a
  // ping after data arrives, is a message each way, on every agent's
  // connection (coordinator_channel_args.h turns the agents' off as well;
  // docs/ha.md, "Where the leader's CPU goes"). Nothing sent here is bulk
  // data; a message over HTTP/2's 64 KB window (a policy naming 100,000
  // units, a result listing hundreds of logs) costs a round trip more.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  int port = 0;
  if (config_.insecure_dev()) {
    ASSIGN_OR_RETURN(
        auto plain, MakeServerCredentials(config_.tls(), /*insecure_dev=*/true,
                                          absl::StrCat("coordinator listener ", config_.listen())));
    builder.AddListeningPort(config_.listen(), plain, &port);
  }
  // Every service here checks its caller first, in each handler
  // (Coordinator::Refuse, access.h); the health service answers any
  // certificate of the deployment, which the TLS handshake already
  // required. gRPC answers a service it does not have UNIMPLEMENTED.
  for (auto& s : services_) builder.RegisterService(s.get());
  server_ = builder.BuildAndStart();
  if (!server_) return absl::UnavailableError(absl::StrCat("cannot serve on ", config_.listen()));
  if (!config_.insecure_dev()) {
    // TLS is the front's: gRPC's own keeps ~70 KB per idle agent
    // connection (common/tls_front.h).
    ASSIGN_OR_RETURN(front_, TlsFront::Start({.listen = config_.listen(), .tls = config_.tls()},
                                             server_->c_server()));
    front_for_calls_ = front_.get();
    port = front_->port();
  }
  if (port == 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", config_.listen()));
  if (!config_.metrics().listen().empty() || !config_.metrics().plaintext_listen().empty()) {
    ASSIGN_OR_RETURN(metrics_server_, metrics::MetricsServer::Start(
                                          config_.metrics(), config_.tls(), &metrics_->registry()));
  }
  return port;
}

absl::Status Coordinator::StartConsole() {
  if (config_.console().listen().empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(console_, ConsoleServer::Start(config_.console(), config_.tls(), admin_.get(),
                                                  &console_tokens_));
  console_port_ = console_->port();
  return absl::OkStatus();
}

void Coordinator::StartWork() {
  scheduler_->HoldUntil(absl::Now() + (config_.node_timeout_ms() != 0
                                           ? absl::Milliseconds(config_.node_timeout_ms())
                                           : 3 * report_every()));
  ticker_ = std::thread([this] {
    for (int64_t tick = 0; !stop_; ++tick) {
      if (!MayAct() && !stop_) Deposed(absl::AbortedError("the leader lease's deadline passed"));
      jobs_->Tick();
      scheduler_->Tick();
      archives_->Tick();
      // Every unit's RPO state every 30 s, whether or not anyone asks, so
      // that a breach is logged as its event (common/events.h) when it
      // happens.
      if (tick % 30 == 29) {
        if (auto p = Protection("", /*every_unit=*/false); !p.ok()) {
          logging::Get("coordinator.rpo")->error("RPO evaluation: {}", p.status());
        }
      }
      for (int i = 0; i < 10 && !stop_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  expirer_ = std::thread([this] {
    auto expiry_log = logging::Get("coordinator.expiry");
    bool first = true;
    const absl::Duration every =
        absl::Minutes(config_.expire_every_minutes() != 0 ? config_.expire_every_minutes() : 60);
    while (!stop_) {
      // Expiry deletes from the repository, which no fence guards: a
      // leader past its deadline must not begin it.
      if (!MayAct() && !stop_) Deposed(absl::AbortedError("the leader lease's deadline passed"));
      auto r = Expire(/*dry_run=*/false, /*only_pending=*/first);
      if (!r.ok()) expiry_log->error("{}", r.status().message());
      // Job history retention, in the same hourly round.
      const absl::Duration keep =
          absl::Hours(24) * (config_.job_history_days() != 0 ? config_.job_history_days() : 90);
      auto purged = catalog_->PurgeFinishedJobs(absl::Now() - keep);
      if (!purged.ok()) {
        expiry_log->error("job history retention: {}", purged.status());
      } else if (*purged > 0) {
        expiry_log->info("job history retention: {} finished job(s) older than {} removed", *purged,
                         absl::FormatDuration(keep));
      }
      first = false;
      std::unique_lock<std::mutex> l(expiry_wait_mu_);
      expiry_wake_.wait_for(l, absl::ToChronoMilliseconds(every), [&] { return stop_.load(); });
    }
  });
}

void Coordinator::Lead() {
  auto log = logging::Get("coordinator.election");
  auto epoch = election_->Campaign(&stop_);
  if (!epoch.ok()) return;  // stopping
  log->info("{} won the election as epoch {}: fencing the catalog, recovering jobs",
            advertised_address(), *epoch);
  if (absl::Status s = catalog_->FenceWrites(*epoch); !s.ok()) Deposed(s);
  if (absl::Status s = topology_->Load(); !s.ok()) Deposed(s);
  topology_->StartWriteBehind(absl::Seconds(1));
  if (absl::Status s = jobs_->Recover(); !s.ok()) Deposed(s);
  if (!MayAct()) Deposed(absl::AbortedError("the leader lease ran out while taking over"));
  if (absl::Status s = StartConsole(); !s.ok()) Deposed(s);
  leading_ = true;
  StartWork();
  log->info("leading (epoch {})", *epoch);
  absl::Status lost = election_->KeepLeading(&stop_);
  if (!stop_) Deposed(lost);
}

void Coordinator::Deposed(const absl::Status& why) const {
  logging::Get("coordinator.election")
      ->critical(
          "no longer the leader ({}): stopping at once, so that nothing this coordinator "
          "still holds in memory is acted on; started again, it stands by",
          why);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
  std::_Exit(4);
}

bool Coordinator::MayAct() const {
  if (!election_) return true;
  return election_->Leading();
}

std::string Coordinator::advertised_address() const {
  return config_.advertise().empty() ? config_.listen() : config_.advertise();
}

std::optional<grpc::Status> Coordinator::Refuse(const grpc::ServerContextBase& context,
                                                absl::string_view path,
                                                PeerIdentity* caller) const {
  // --insecure-dev: no certificates, nobody to tell apart (a warning at
  // start says so).
  if (config_.insecure_dev()) return std::nullopt;
  // Read once: the call acts as whom it was checked as. Null until the
  // front has started (a call before that has no certificate known).
  const TlsFront* front = front_for_calls_.load();
  *caller = front == nullptr ? PeerIdentity{}
                             : front->IdentityOf(context.peer()).value_or(PeerIdentity{});
  const absl::Status allowed = AuthorizeCoordinatorCall(path, *caller);
  if (allowed.ok()) return std::nullopt;
  logging::Get("access")->warn("refused {} from {}: {}", path, caller->Describe(),
                               allowed.message());
  const absl::string_view method = MethodOfPath(path);
  admin_->RecordRefusal(*caller, "grpc", std::string(method.empty() ? path : method), allowed);
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, std::string(allowed.message()));
}

std::optional<grpc::Status> Coordinator::RedirectIfStandby(grpc::ServerContextBase* context) const {
  if (!election_ || (leading_ && election_->Leading())) return std::nullopt;
  if (election_->epoch() != 0) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this coordinator is taking over as leader; try again in a moment");
  }
  const std::string leader = election_->leader();
  if (leader.empty() || leader == advertised_address()) {
    const std::string why = election_->NoLeaderReason();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        why.empty() ? std::string("this coordinator is a standby and no "
                                                  "coordinator leads yet; try again in a moment")
                                    : absl::StrCat("this coordinator is a standby and cannot "
                                                   "tell who leads: ",
                                                   why, " (docs/ha.md)"));
  }
  context->AddTrailingMetadata("dagvault-leader", leader);
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("this coordinator is a standby; the leader is at ", leader));
}

std::optional<grpc::Status> Coordinator::RedirectCatalogReadIfLeaderKnown(
    grpc::ServerContextBase* context) const {
  if (!election_ || (leading_ && election_->Leading())) return std::nullopt;
  // Taking over (fencing and recovering the catalog): refused as before.
  if (election_->epoch() != 0) return RedirectIfStandby(context);
  const std::string leader = election_->leader();
  if (leader.empty() || leader == advertised_address()) return std::nullopt;
  return RedirectIfStandby(context);
}

v1::LeaderInfo Coordinator::WhoLeads() const {
  v1::LeaderInfo info;
  info.set_this_address(advertised_address());
  if (!election_) {
    info.set_leader(advertised_address());
    info.set_this_one(true);
    return info;
  }
  const bool leads = leading_ && election_->Leading();
  info.set_this_one(leads);
  info.set_leader(leads ? advertised_address() : election_->leader());
  if (leads) info.set_epoch(election_->epoch());
  if (info.leader().empty()) info.set_no_leader_reason(election_->NoLeaderReason());
  return info;
}

absl::StatusOr<v1::ExpireResponse> Coordinator::Expire(bool dry_run, bool only_pending) {
  std::lock_guard<std::mutex> l(expiry_mu_);
  ExpiryOptions options;
  options.repository = config_.repository();
  options.passphrase_file = config_.passphrase_file();
  options.key_file = config_.key_file();
  options.dry_run = dry_run;
  options.only_pending = only_pending;
  options.may_act = [this] { return MayAct(); };
  return RunExpiry(*catalog_, options, absl::Now());
}

void Coordinator::Stop() {
  if (stop_.exchange(true)) return;
  if (leader_.joinable()) leader_.join();
  metrics_server_.reset();
  if (front_) front_->StopAccepting();
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  front_for_calls_ = nullptr;
  front_.reset();
  // After the gRPC calls that read its port are done.
  console_.reset();
  if (ticker_.joinable()) ticker_.join();
  {
    std::lock_guard<std::mutex> l(expiry_wait_mu_);
    expiry_wake_.notify_all();
  }
  if (expirer_.joinable()) expirer_.join();
  // Last, once nothing acts any more: a standby takes over at once instead
  // of after the lease's TTL.
  if (election_ && election_->epoch() != 0) {
    if (absl::Status s = election_->Resign(); !s.ok()) {
      logging::Get("coordinator.election")->warn("resigning: {}", s);
    }
  }
}

}  // namespace dagvault::coordinator
