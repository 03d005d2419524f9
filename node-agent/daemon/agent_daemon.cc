#include "node-agent/daemon/agent_daemon.h"

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/job_state.h"
#include "common/logging.h"
#include "common/metrics/metrics_server.h"
#include "common/rate_limited_warning.h"
#include "common/status_macros.h"
#include "common/systemd_notify.h"
#include "common/tls.h"
#include "dagvault/v1/agent.grpc.pb.h"
#include "dagvault/v1/store.grpc.pb.h"
#include "node-agent/daemon/agent_metrics.h"
#include "node-agent/daemon/coordinator_addresses.h"
#include "node-agent/daemon/coordinator_link.h"
#include "node-agent/daemon/copy_operations.h"
#include "node-agent/daemon/job_phase.h"
#include "node-agent/daemon/kept_results.h"
#include "node-agent/daemon/log_archiver.h"
#include "node-agent/jobs/backup_job.h"
#include "node-agent/jobs/item_restore.h"
#include "node-agent/jobs/restore_job.h"
#include "node-agent/jobs/restore_verification.h"
#include "node-agent/shadow/writer_shadow_session.h"
#include "node-agent/verify/unit_verifier.h"
#include "repository/chain.h"
#include "repository/cli_support.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

constexpr char kAgentVersion[] = "0.1.0";

std::string Key(const std::string& job, uint32_t attempt) {
  return absl::StrCat(job, "#", attempt);
}

// The unit is held by another writer session: a backup in progress, or a
// restore under way (a dead earlier attempt's, until the writer's session
// timeout ends it).
bool IsHeldByAnotherSession(const absl::Status& s) {
  return s.code() == absl::StatusCode::kFailedPrecondition &&
         (s.message().find("a backup is already in progress") != std::string::npos ||
          s.message().find("another restore is under way") != std::string::npos);
}

class Daemon final : public AgentDaemon {
 public:
  explicit Daemon(v1::AgentConfig config) : config_(std::move(config)) {
    std::mt19937_64 rng(std::random_device{}());
    incarnation_ = absl::StrFormat("%016x", rng());
    const std::string socket =
        config_.writer_socket().empty() ? "/run/mailstored/writer.sock" : config_.writer_socket();
    metrics_ =
        std::make_shared<AgentMetrics>([this] { return RunningJobs(); }, config_.tls().cert_file());
    writer_ = ConnectWriter(
        socket, [metrics = metrics_](const std::string& method, absl::Duration took, bool ok) {
          metrics->WriterCall(method, took, ok);
        });
    admin_ = v1::Admin::NewStub(
        grpc::CreateChannel(absl::StrCat("unix:", socket), grpc::InsecureChannelCredentials()));
    archiver_ = std::make_unique<LogArchiver>(
        config_.node(), [this] { return ArchiveRepository(); },
        [this]() -> absl::StatusOr<v1::WriterMetadata> {
          v1::WriterMetadata metadata;
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          grpc::Status s = writer_->GetMetadata(&context, {}, &metadata);
          if (!s.ok()) return FromGrpcStatus(s, "writers: GetMetadata");
          return metadata;
        },
        [this](const std::string& unit) -> absl::Status {
          v1::UnitRequest request;
          request.set_unit(unit);
          v1::AdminResponse response;
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
          return FromGrpcStatus(admin_->RollLog(&context, request, &response),
                                "mailstored RollLog");
        },
        clock_, LogArchiver::Options{.state_path = ArchivedSegmentsPath()});
  }

  absl::Status Init() {
    // The other end must be the deployment's coordinator, not any holder
    // of one of its certificates: checked in the TLS handshake, before the
    // agent registers (common/tls.h).
    ASSIGN_OR_RETURN(auto credentials,
                     MakeChannelCredentials(
                         config_.tls(), config_.insecure_dev(),
                         absl::StrCat("coordinator ", CoordinatorAddresses(config_).Describe()),
                         ExpectedPeer{.role = kRoleCoordinator}));
    dialer_ = MakeGrpcDialer(std::move(credentials));
    CoordinatorLink::Handlers handlers;
    handlers.fill_report = [this](v1::NodeReport* r) { FillReport(r); };
    handlers.on_message = [this](const v1::CoordinatorMessage& m) { OnMessage(m); };
    handlers.on_registered = [this](const v1::Registered& r) { OnRegistered(r); };
    link_ = std::make_unique<CoordinatorLink>(config_, kAgentVersion, incarnation_, dialer_.get(),
                                              clock_, std::move(handlers));
    if (!config_.metrics().listen().empty() || !config_.metrics().plaintext_listen().empty()) {
      ASSIGN_OR_RETURN(
          metrics_server_,
          metrics::MetricsServer::Start(config_.metrics(), config_.tls(), &metrics_->registry()));
    }
    return LoadUndelivered();
  }

  void Run(const std::atomic<bool>* stop) override {
    auto log = logging::Get("agent");
    SweepAtStart();
    NotifyReady(absl::StrCat("node ", config_.node(), ", coordinator ", link_->Describe()));
    std::thread monitor([&] { Monitor(stop); });
    std::thread archiving([&] {
      while (!*stop) {
        archiver_->RunOnce();
        for (int i = 0; i < 10 && !*stop; ++i) absl::SleepFor(absl::Milliseconds(100));
      }
    });
    link_->Run(stop);
    NotifyStopping();
    log->info("stopping: cancelling running jobs");
    CancelAll("the agent is stopping");
    monitor.join();
    archiving.join();
    std::vector<std::unique_ptr<Job>> jobs;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (auto& [k, j] : jobs_) jobs.push_back(std::move(j));
      jobs_.clear();
    }
    for (auto& j : jobs) {
      if (j->thread.joinable()) j->thread.join();
    }
  }

 private:
  struct Job {
    v1::JobAssignment assignment;
    repository::TransferControl control;
    v1::RunningJob progress;
    absl::Duration last_sent = -absl::InfiniteDuration();  // monotonic
    // Monotonic: when its assignment arrived. The coordinator took the
    // lease just before it sent it, so the lease is at least this fresh.
    absl::Duration received = -absl::InfiniteDuration();
    std::atomic<bool> done{false};
    std::thread thread;
    // Why the agent itself stopped the job, if it did (under mu_).
    std::string fenced;
  };

  void SweepAtStart() {
    WriterShadowSession session(writer_, gate_);
    auto removed = SweepLeftoverSnapshots(session);
    if (!removed.ok()) {
      warnings_.Warn(absl::StrCat("could not look for snapshot folders left by crashed jobs: ",
                                  removed.status().message()));
      return;
    }
    for (const auto& f : *removed) {
      logging::Get("agent")->warn("removed snapshot folder {}, left by a job that did not finish",
                                  f);
    }
  }

  // Cancels the stream when asked to stop, fences jobs whose lease cannot
  // have been renewed, and has the link give up a stalled coordinator.
  void Monitor(const std::atomic<bool>* stop) {
    while (!*stop) {
      absl::SleepFor(absl::Milliseconds(200));
      const absl::Duration lease_ttl = link_->lease_ttl();
      std::lock_guard<std::mutex> l(mu_);
      // The coordinator renewed this node's leases no earlier than the
      // last report it acknowledged was sent; a report period before that
      // lease runs out, the jobs stop, connected or not (a half-open
      // connection looks connected).
      for (auto& [k, j] : jobs_) {
        if (j->done || j->control.cancel || !link_->LeaseMayHaveLapsed(j->received)) continue;
        logging::Get("agent")->warn(
            "job {}: the coordinator has not acknowledged a report for most of the lease "
            "period ({}): its lease is gone, so the job is cancelled",
            j->assignment.job(), absl::FormatDuration(lease_ttl));
        j->fenced = absl::StrCat(
            "stopped by the agent: the coordinator was unreachable for the lease period (",
            absl::FormatDuration(lease_ttl),
            "), so another attempt may run elsewhere; nothing was truncated");
        j->control.cancel = true;
      }
      link_->CheckStall();
    }
    link_->Cancel();
  }

  bool Write(const v1::AgentMessage& m) { return link_->Write(m); }

  void OnRegistered(const v1::Registered& r) {
    warnings_.Reset();
    if (r.writer_session_timeout_ms() == 0) return;
    std::lock_guard<std::mutex> l(mu_);
    // A quarter of the writers' session timeout, and never rarer than the
    // default.
    keepalive_every_ = std::min(WriterSessionOptions().keepalive_every,
                                absl::Milliseconds(r.writer_session_timeout_ms()) / 4);
  }

  void OnMessage(const v1::CoordinatorMessage& m) {
    if (m.has_assignment()) {
      StartJob(m.assignment());
    } else if (m.has_cancel()) {
      CancelJob(m.cancel());
    } else if (m.has_archive()) {
      archiver_->SetUnits({m.archive().units().begin(), m.archive().units().end()});
      std::map<std::string, uint32_t> rolls;
      for (const auto& r : m.archive().rolls()) rolls[r.unit()] = r.seconds();
      archiver_->SetRolls(rolls);
    } else if (m.has_archive_ack()) {
      archiver_->Acknowledged(
          {m.archive_ack().manifests().begin(), m.archive_ack().manifests().end()});
    } else if (m.has_ack()) {
      std::lock_guard<std::mutex> l(mu_);
      if (undelivered_.erase(Key(m.ack().job(), m.ack().attempt())) != 0) {
        (void)PersistUndeliveredLocked();
      }
    }
  }

  // A report's body (CoordinatorLink sends it).
  void FillReport(v1::NodeReport* r) {
    // The report renews the leases of this node's jobs: a mail server that
    // is slow to answer delays it by at most a quarter of the lease.
    const absl::Duration ask_for = std::min(absl::Seconds(5), link_->lease_ttl() / 4);
    {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(ask_for));
      grpc::Status s = writer_->GetMetadata(&context, {}, r->mutable_writers());
      if (!s.ok()) r->set_writer_error(absl::StrCat("writers: ", s.error_message()));
    }
    {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(ask_for));
      v1::StatusResponse status;
      v1::StatusRequest request;
      request.set_local_only(true);  // only its own copies go into the report
      grpc::Status s = admin_->Status(&context, request, &status);
      if (s.ok()) {
        for (const auto& unit : status.units()) {
          for (const auto& copy : unit.copies()) {
            if (copy.node() == config_.node()) *r->add_copies() = copy;
          }
        }
      } else {
        absl::StrAppend(r->mutable_writer_error(), r->writer_error().empty() ? "" : "; ",
                        "copy status: ", s.error_message());
        warnings_.Warn(
            absl::StrCat("mailstored does not answer on its socket: ", s.error_message()));
      }
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [k, j] : jobs_) {
        if (!j->done) *r->add_running() = j->progress;
      }
      for (const auto& [k, u] : undelivered_) *r->add_undelivered() = u;
    }
    archiver_->FillReport(r);
  }

  void StartJob(const v1::JobAssignment& a) {
    std::vector<std::unique_ptr<Job>> finished;
    {
      std::lock_guard<std::mutex> l(mu_);
      const std::string key = Key(a.job(), a.attempt());
      if (jobs_.count(key) != 0 || undelivered_.count(key) != 0) return;  // already ours
      // Finished jobs' threads are joined below, outside the lock: one may
      // still be sending its result.
      for (auto it = jobs_.begin(); it != jobs_.end();) {
        if (it->second->done) {
          finished.push_back(std::move(it->second));
          it = jobs_.erase(it);
        } else {
          ++it;
        }
      }
      auto job = std::make_unique<Job>();
      job->assignment = a;
      job->received = clock_->Monotonic();
      job->progress.set_job(a.job());
      job->progress.set_attempt(a.attempt());
      job->progress.set_unit(a.unit());
      job->progress.set_phase(v1::JOB_PREPARING);
      // A cancel that overtook its assignment stops it before it starts.
      if (auto c = early_cancels_.find(key); c != early_cancels_.end()) {
        job->control.cancel = true;
        early_cancels_.erase(c);
      }
      Job* raw = job.get();
      jobs_[key] = std::move(job);
      raw->thread = std::thread([this, raw] { RunJob(raw); });
    }
    for (auto& j : finished) {
      if (j->thread.joinable()) j->thread.join();
    }
  }

  void CancelJob(const v1::CancelJob& c) {
    std::lock_guard<std::mutex> l(mu_);
    const std::string key = Key(c.job(), c.attempt());
    auto it = jobs_.find(key);
    if (it == jobs_.end()) {
      // Its assignment may still be on the way: remembered for a while.
      const absl::Duration now = clock_->Monotonic();
      for (auto e = early_cancels_.begin(); e != early_cancels_.end();) {
        e = now - e->second > absl::Minutes(10) ? early_cancels_.erase(e) : std::next(e);
      }
      early_cancels_[key] = now;
      return;
    }
    logging::Get("agent")->warn("job {}: cancelled by the coordinator: {}", c.job(), c.reason());
    it->second->control.cancel = true;
  }

  void CancelAll(const std::string& why) {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [k, j] : jobs_) {
      if (!j->done) {
        logging::Get("agent")->warn("job {}: cancelled: {}", j->assignment.job(), why);
        j->control.cancel = true;
      }
    }
  }

  // Progress from the job: each change of phase at once, bytes at most
  // twice a second.
  void OnProgress(Job* job, const JobProgress& p, const std::string& writer_instance) {
    v1::AgentMessage m;
    {
      std::lock_guard<std::mutex> l(mu_);
      v1::JobState phase = JobPhaseOf(p.phase);
      // The transfer's bytes are all read: what remains is the final
      // checks (chain join, signatures) and the manifest.
      if (phase == v1::JOB_TRANSFERRING && p.bytes_total > 0 && p.bytes_done >= p.bytes_total) {
        phase = v1::JOB_VERIFYING;
      }
      const bool new_phase = phase != job->progress.phase();
      job->progress.set_phase(phase);
      if (p.bytes_total > 0) {
        job->progress.set_bytes_done(p.bytes_done);
        job->progress.set_bytes_total(p.bytes_total);
        job->progress.set_bytes_per_second(p.bytes_per_second);
      }
      const absl::Duration now = clock_->Monotonic();
      if (!new_phase && now - job->last_sent < absl::Milliseconds(500)) return;
      job->last_sent = now;
      v1::JobUpdate* u = m.mutable_job_update();
      u->set_job(job->assignment.job());
      u->set_attempt(job->assignment.attempt());
      u->set_phase(phase);
      u->set_bytes_done(job->progress.bytes_done());
      u->set_bytes_total(job->progress.bytes_total());
      u->set_bytes_per_second(job->progress.bytes_per_second());
      u->set_writer_instance(writer_instance);
    }
    Write(m);
  }

  // For the metrics' scrape.
  std::vector<RunningJobView> RunningJobs() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<RunningJobView> out;
    for (const auto& [k, j] : jobs_) {
      if (j->done) continue;
      const v1::RunningJob& p = j->progress;
      out.push_back({KindLabel(j->assignment.kind()), j->assignment.unit(), JobStateName(p.phase()),
                     p.bytes_done(), p.bytes_total(), p.bytes_per_second()});
    }
    return out;
  }

  // The copy's role now, from mailstored.
  absl::StatusOr<v1::CopyStatus> LocalCopy(const std::string& unit) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::StatusRequest request;
    request.set_unit(unit);
    request.set_local_only(true);
    v1::StatusResponse status;
    RETURN_IF_ERROR(
        FromGrpcStatus(admin_->Status(&context, request, &status), "mailstored Status"));
    for (const auto& u : status.units()) {
      for (const auto& c : u.copies()) {
        if (c.unit() == unit && c.node() == config_.node()) return c;
      }
    }
    return absl::NotFoundError(absl::StrCat("unit ", unit, " has no copy on ", config_.node()));
  }

  absl::StatusOr<BackupJobResult> Backup(Job* job, v1::Manifest* summary) {
    const v1::JobAssignment& a = job->assignment;
    ASSIGN_OR_RETURN(v1::CopyStatus copy, LocalCopy(a.unit()));
    if ((copy.role() == v1::ACTIVE) != a.expect_active()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the copy of ", a.unit(), " on ", config_.node(), " was chosen as the ",
                       a.expect_active() ? "active" : "passive", " copy but is now the ",
                       copy.role() == v1::ACTIVE ? "active" : "passive", " one"));
    }
    ASSIGN_OR_RETURN(repository::Repository repo,
                     repository::OpenRepositoryWithSecretFiles(
                         config_.repository(), config_.passphrase_file(), config_.key_file()));
    ASSIGN_OR_RETURN(auto provider, MakeSnapshotProvider(
                                        config_.snapshot().empty() ? "auto" : config_.snapshot()));
    BackupJobSpec spec;
    spec.job = a.job();
    spec.unit = a.unit();
    spec.type = a.type();
    spec.base_high_generation = a.base_high_generation();
    spec.base_high_log_sha256 = a.base_high_log_sha256();
    for (const auto& log : a.base_logs()) spec.base_log_sha256[log.generation()] = log.sha256();
    spec.max_copy_queue = a.max_copy_queue();
    spec.max_replay_queue = a.max_replay_queue();
    spec.fencing_token = a.fencing_token();
    WriterSessionOptions session_options;
    {
      std::lock_guard<std::mutex> l(mu_);
      session_options.keepalive_every = keepalive_every_;
    }
    if (config_.freeze_timeout_seconds() != 0) {
      session_options.freeze_timeout = absl::Seconds(config_.freeze_timeout_seconds());
    }
    BackupJobOptions options;
    options.repository.workers = static_cast<int>(config_.workers());
    options.repository.retain_at_least = absl::Seconds(static_cast<int64_t>(a.retain_seconds()));
    // Kept on disk before the manifest is written: if this agent dies
    // before the result is delivered, its restart reports the backup.
    options.before_commit = [this, job](const v1::Manifest& committing) {
      v1::JobUpdate kept;
      kept.set_job(job->assignment.job());
      kept.set_attempt(job->assignment.attempt());
      kept.set_phase(v1::JOB_FAILED);
      kept.set_error(absl::StrCat("the agent on ", config_.node(), " stopped after backup ",
                                  committing.id(),
                                  " was written and before its result was delivered (the writer "
                                  "may or may not have recorded it); the verified backup is kept"));
      kept.mutable_result()->set_manifest(committing.id());
      *kept.mutable_result()->mutable_summary() = committing;
      std::lock_guard<std::mutex> l(mu_);
      pending_[Key(kept.job(), kept.attempt())] = std::move(kept);
      return PersistUndeliveredLocked();
    };
    auto r = WaitingForWriter(job, [&] {
      WriterShadowSession session(writer_, gate_, session_options);
      std::string writer_instance;
      return RunBackupJob(
          session, *provider, repo, spec, &job->control,
          [&](const JobProgress& p) { OnProgress(job, p, writer_instance); }, options);
    });
    if (r.ok()) *summary = r->summary;
    return r;
  }

  // Runs `attempt` again while a dead earlier attempt's writer session
  // holds the unit (the writer's session timeout ends it), for as long as
  // the coordinator said to wait; any other outcome is returned.
  template <typename Attempt>
  auto WaitingForWriter(Job* job, Attempt attempt) -> decltype(attempt()) {
    const absl::Duration wait_until =
        clock_->Monotonic() + absl::Seconds(job->assignment.wait_for_writer_seconds());
    while (true) {
      auto r = attempt();
      if (r.ok() || !IsHeldByAnotherSession(r.status()) || clock_->Monotonic() >= wait_until ||
          job->control.cancel) {
        return r;
      }
      warnings_.Warn(absl::StrCat("job ", job->assignment.job(), ": ", r.status().message(),
                                  "; waiting for it to be released"));
      absl::SleepFor(absl::Seconds(1));
    }
  }

  // The job's restore, or `other` in its place (an item restore's look at
  // another restore point).
  absl::StatusOr<RestoreJobResult> Restore(Job* job, const v1::RestoreAssignment* other = nullptr) {
    const v1::JobAssignment& a = job->assignment;
    const v1::RestoreAssignment& r = other != nullptr ? *other : a.restore();
    ASSIGN_OR_RETURN(repository::Repository repo,
                     repository::OpenRepositoryWithSecretFiles(
                         config_.repository(), config_.passphrase_file(), config_.key_file()));
    if (r.refuse_if_mounted() && r.recovery_database().empty()) {
      // A restore step repeated after its answer was lost (the coordinator
      // restarted while this node restored and mounted the unit): the
      // copy says this very restore mounted it, so the step is done.
      auto copy = LocalCopy(a.unit());
      if (copy.ok() && copy->state() == v1::MOUNTED && copy->restored_by() == a.job()) {
        RestoreJobResult done;
        done.job = a.job();
        done.unit = a.unit();
        done.last_generation = copy->last_log_generation();
        done.message = absl::StrCat("already restored and mounted by this restore (", a.job(),
                                    "); nothing done again");
        logging::Get("agent")->info("job {}: unit {} {}", a.job(), a.unit(), done.message);
        return done;
      }
    }
    RestoreJobSpec spec;
    spec.target.job = a.job();
    spec.target.unit = a.unit();
    spec.target.recovery_database = r.recovery_database();
    spec.target.path = r.path();
    spec.target.refuse_if_mounted = r.refuse_if_mounted();
    spec.target.force_overwrite_different_database = r.force_overwrite_different_database();
    spec.target.fencing_token = a.fencing_token();
    spec.target.passive_copy = r.passive_copy();
    spec.join_active_stream = r.join_active_stream();
    for (const auto& id : r.manifests()) {
      ASSIGN_OR_RETURN(v1::Manifest m, repo.ReadManifest(id));
      spec.chain.push_back(std::move(m));
    }
    spec.to_generation = r.to_generation();
    spec.roll_forward = r.roll_forward();
    spec.mount = r.mount();
    if (r.verification().requested()) {
      spec.target.verification = true;
      spec.checks.set_requested(true);
      spec.checks.set_sample_items(r.verification().sample_items());
      spec.checks.set_seed(r.verification().seed());
    }
    WriterSessionOptions session_options;
    {
      std::lock_guard<std::mutex> l(mu_);
      session_options.keepalive_every = keepalive_every_;
    }
    RestoreJobOptions options;
    options.workers = static_cast<int>(config_.workers());
    return WaitingForWriter(job, [&] {
      WriterShadowSession session(writer_, gate_, session_options);
      return RunRestoreJob(
          session, repo, spec, &job->control, [&](const JobProgress& p) { OnProgress(job, p, ""); },
          options);
    });
  }

  // An item-level restore: the chain as a Recovery Database, the items,
  // the Recovery Database removed (node-agent/jobs/item_restore.h).
  absl::StatusOr<RestoreJobResult> RestoreItems(Job* job, v1::ItemRestoreResult* items) {
    const v1::JobAssignment& a = job->assignment;
    ItemRestoreTarget target;
    target.unit = a.unit();
    target.recovery_database = a.restore().recovery_database();
    target.node = config_.node();
    target.leftovers =
        JobDatabaseLeftovers(*admin_, a.unit(), target.recovery_database, kItemRestoreMarker);
    RestoreJobResult restored;
    auto restore_probe = [&](const v1::ItemProbe& probe) {
      v1::RestoreAssignment other = a.restore();
      other.clear_manifests();
      for (const auto& id : probe.manifests()) other.add_manifests(id);
      other.set_to_generation(probe.generation());
      other.set_recovery_database(probe.recovery_database());
      other.set_mount(true);
      return Restore(job, &other);
    };
    RETURN_IF_ERROR(RunItemRestore(
        *writer_, target, a.restore().items(), [&] { return Restore(job); }, restore_probe,
        job->control.cancel,
        [&](const v1::ItemCounts& c) {
          OnProgress(job, JobProgress{"completing", c.bytes(), 0, "", 0}, "");
        },
        items, &restored));
    restored.message = items->step_detail_size() > 1 ? items->step_detail(1) : restored.message;
    return restored;
  }

  // A restore verification (node-agent/jobs/restore_verification.h).
  absl::StatusOr<RestoreJobResult> VerifyRestore(Job* job, v1::VerificationOutcome* outcome) {
    const v1::JobAssignment& a = job->assignment;
    VerificationTarget target{
        a.unit(), a.restore().recovery_database(), config_.node(),
        JobDatabaseLeftovers(*admin_, a.unit(), a.restore().recovery_database(),
                             kVerificationMarker)};
    RestoreJobResult restored;
    RETURN_IF_ERROR(RunRestoreVerification(
        *writer_, target,
        [&]() -> absl::StatusOr<RestoreJobResult> {
          ASSIGN_OR_RETURN(restored, Restore(job));
          return restored;
        },
        outcome));
    return restored;
  }

  void RunJob(Job* job) {
    auto log = logging::Get("agent");
    const v1::JobAssignment& a = job->assignment;
    log->info("job {} attempt {}: {} of {}", a.job(), a.attempt(),
              a.kind() == v1::JOB_RESTORE ? std::string("restore")
              : a.kind() == v1::JOB_COPY_OPERATION
                  ? absl::StrCat("restore step: ", CopyOperationName(a.copy_op().op()))
                  : absl::StrCat(v1::BackupType_Name(a.type()), " backup"),
              a.unit());
    v1::AgentMessage m;
    v1::JobUpdate* u = m.mutable_job_update();
    u->set_job(a.job());
    u->set_attempt(a.attempt());
    v1::Manifest summary;
    absl::StatusOr<BackupJobResult> r = absl::UnknownError("not run");
    absl::StatusOr<RestoreJobResult> restored = absl::UnknownError("not run");
    absl::StatusOr<v1::CopyOperationResult> operated = absl::UnknownError("not run");
    v1::ItemRestoreResult items;
    v1::VerificationOutcome verification;
    const bool restore = a.kind() == v1::JOB_RESTORE;
    const bool verify = restore && a.restore().verification().requested();
    const bool copy_op = a.kind() == v1::JOB_COPY_OPERATION;
    if (copy_op) {
      CopyOperationContext context;
      context.admin = admin_.get();
      context.node = config_.node();
      context.cancel = &job->control.cancel;
      if (a.wait_for_writer_seconds() > 0) {
        context.restoring_grace = absl::Seconds(a.wait_for_writer_seconds());
      }
      context.progress = [&](const std::string& phase) {
        OnProgress(job, JobProgress{phase, 0, 0, "", 0}, "");
      };
      context.closed_generation = [&](uint32_t generation) {
        // Not throttled like progress: the passive copies' digests wait
        // for it (and if it is lost, for the result, which carries it too).
        v1::AgentMessage update;
        v1::JobUpdate* closed = update.mutable_job_update();
        closed->set_job(a.job());
        closed->set_attempt(a.attempt());
        closed->set_phase(v1::JOB_TRANSFERRING);
        closed->mutable_copy_result()->set_generation(generation);
        Write(update);
      };
      operated = RunCopyOperation(context, a.unit(), a.copy_op());
      if (!operated.ok()) r = operated.status();
    } else if (restore && a.restore().has_items()) {
      restored = RestoreItems(job, &items);
      if (!restored.ok()) r = restored.status();
    } else if (verify) {
      restored = VerifyRestore(job, &verification);
      if (!restored.ok()) r = restored.status();
    } else if (restore) {
      restored = Restore(job);
      if (!restored.ok()) r = restored.status();
    } else {
      r = Backup(job, &summary);
    }
    if (copy_op && operated.ok()) {
      u->set_phase(v1::JOB_SUCCEEDED);
      *u->mutable_copy_result() = *operated;
      log->info("job {} attempt {}: {}", a.job(), a.attempt(), operated->message());
    } else if (restore && restored.ok()) {
      u->set_phase(v1::JOB_SUCCEEDED);
      u->set_bytes_done(restored->bytes);
      u->set_bytes_total(restored->bytes);
      v1::RestoreJobResult* out = u->mutable_restore_result();
      out->set_recovery_database(restored->recovery_database);
      out->set_message(restored->message);
      out->set_last_generation(restored->last_generation);
      out->set_files(restored->files);
      out->set_bytes(restored->bytes);
      out->set_elapsed_us(absl::ToInt64Microseconds(restored->elapsed));
      if (a.restore().has_items()) *out->mutable_items() = items;
      if (verify) *out->mutable_verification() = verification;
      log->info("job {} attempt {}: restore of {} succeeded", a.job(), a.attempt(), a.unit());
      metrics_->RestoreSucceeded(restored->bytes);
    } else if (!restore && !copy_op && r.ok()) {
      u->set_phase(v1::JOB_SUCCEEDED);
      u->set_writer_instance(r->writer_instance);
      u->set_bytes_done(r->logical_bytes);
      u->set_bytes_total(r->logical_bytes);
      *u->mutable_result() = ResultMessageOf(*r);
      *u->mutable_result()->mutable_summary() = std::move(summary);
      metrics_->BackupSucceeded(*r);
      log->info("job {} attempt {}: backup {} of {} succeeded", a.job(), a.attempt(), r->manifest,
                a.unit());
    } else {
      std::string fenced;
      {
        std::lock_guard<std::mutex> l(mu_);
        fenced = job->fenced;
      }
      // A job the agent stopped for want of its lease failed; one the
      // coordinator or the operator stopped was cancelled.
      const bool cancelled = r.status().code() == absl::StatusCode::kCancelled && fenced.empty();
      u->set_phase(cancelled ? v1::JOB_CANCELLED : v1::JOB_FAILED);
      u->set_error(fenced.empty() ? std::string(r.status().message())
                                  : absl::StrCat(fenced, " (", r.status().message(), ")"));
      u->set_chain_break_generation(ChainBreakGenerationOf(r.status()));
      if (restore && a.restore().has_items()) {
        // What an item restore did before it failed (pages already written).
        *u->mutable_restore_result()->mutable_items() = items;
      }
      if (verify) *u->mutable_restore_result()->mutable_verification() = verification;
      if (auto kept = UnacknowledgedBackupOf(r.status())) {
        // Verified and durable: the coordinator catalogues it although the
        // job failed (the writer may have truncated after it).
        u->mutable_result()->set_manifest(kept->id());
        *u->mutable_result()->mutable_summary() = std::move(*kept);
      }
      log->warn("job {} attempt {}: {}", a.job(), a.attempt(), r.status().message());
    }
    metrics_->JobEnded(KindLabel(a.kind()), JobStateName(u->phase()));
    {
      // Kept until the coordinator acknowledges it, on disk too, and sent
      // again with every report meanwhile: an agent killed before the ack
      // reports it after its restart, so the job is neither run again nor
      // its manifest orphaned.
      std::lock_guard<std::mutex> l(mu_);
      undelivered_[Key(a.job(), a.attempt())] = *u;
      pending_.erase(Key(a.job(), a.attempt()));
      (void)PersistUndeliveredLocked();
      job->done = true;
    }
    DAGVAULT_CRASH_POINT("agent.result.kept");
    Write(m);
  }

  // A file of this node's in the agent's state folder.
  std::string StatePath(const std::string& what) const {
    const std::string dir =
        config_.state_dir().empty() ? "/var/lib/dagvault-agent" : config_.state_dir();
    return JoinPath(dir, absl::StrCat(what, "-", config_.node(), ".pb"));
  }
  std::string ArchivedSegmentsPath() const { return StatePath("archived"); }
  std::string UndeliveredPath() const { return StatePath("undelivered"); }

  // The results a run before this one kept for the coordinator.
  absl::Status LoadUndelivered() {
    ASSIGN_OR_RETURN(KeptResults kept,
                     LoadKeptResults(UndeliveredPath(), config_.repository(),
                                     config_.passphrase_file(), config_.key_file()));
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& u : kept.updates) {
      undelivered_[Key(u.job(), u.attempt())] = u;
      logging::Get("agent")->info("job {} attempt {}: {} result kept from before the restart",
                                  u.job(), u.attempt(), JobStateName(u.phase()));
    }
    for (const auto& u : kept.committed) {
      undelivered_.emplace(Key(u.job(), u.attempt()), u);
      logging::Get("agent")->warn(
          "job {} attempt {}: backup {} was written before the agent stopped; reported to the "
          "coordinator so that it is catalogued",
          u.job(), u.attempt(), u.result().manifest());
    }
    for (const auto& u : kept.unsure) pending_[Key(u.job(), u.attempt())] = u;
    return PersistUndeliveredLocked();
  }

  // Writes undelivered_ and pending_ to disk; a failure is logged (the
  // results are still sent from memory) and returned.
  absl::Status PersistUndeliveredLocked() {
    v1::UndeliveredResults kept;
    for (const auto& [k, u] : undelivered_) *kept.add_updates() = u;
    for (const auto& [k, u] : pending_) *kept.add_pending() = u;
    const std::string path = UndeliveredPath();
    absl::Status s = WriteFileAtomically(path, kept.SerializeAsString(), 0600);
    if (!s.ok()) {
      logging::Get("agent")->error(
          "could not keep {} unacknowledged result(s) on disk: {}; a restart of the agent "
          "before the coordinator acknowledges them loses them",
          undelivered_.size(), s);
    }
    return s;
  }

  v1::AgentConfig config_;

  Clock* clock_ = RealClock();
  std::string incarnation_;
  std::shared_ptr<v1::Writer::StubInterface> writer_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::shared_ptr<std::mutex> gate_ = std::make_shared<std::mutex>();
  RateLimitedWarning warnings_{"agent"};

  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  std::map<std::string, v1::JobUpdate> undelivered_;
  // Backups about to commit, by job#attempt (UndeliveredResults.pending).
  std::map<std::string, v1::JobUpdate> pending_;
  absl::Duration keepalive_every_ = WriterSessionOptions().keepalive_every;

  // Cancels that arrived before their assignment, by job#attempt
  // (monotonic arrival time).
  std::map<std::string, absl::Duration> early_cancels_;
  std::unique_ptr<CoordinatorDialer> dialer_;
  std::unique_ptr<CoordinatorLink> link_;
  // The log archiver, with its own repository handle, opened once.
  std::unique_ptr<LogArchiver> archiver_;
  std::mutex archive_repository_mu_;
  std::unique_ptr<repository::Repository> archive_repository_;

  absl::StatusOr<const repository::Repository*> ArchiveRepository() {
    std::lock_guard<std::mutex> l(archive_repository_mu_);
    if (archive_repository_ == nullptr) {
      ASSIGN_OR_RETURN(repository::Repository repo,
                       repository::OpenRepositoryWithSecretFiles(
                           config_.repository(), config_.passphrase_file(), config_.key_file()));
      archive_repository_ = std::make_unique<repository::Repository>(std::move(repo));
    }
    return archive_repository_.get();
  }

  // Last: the server (its scrapes read jobs_) stops first.
  std::shared_ptr<AgentMetrics> metrics_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AgentDaemon>> AgentDaemon::Create(v1::AgentConfig config) {
  auto daemon = std::make_unique<Daemon>(std::move(config));
  RETURN_IF_ERROR(daemon->Init());
  return daemon;
}

}  // namespace dagvault::agent
