#include "node-agent/shadow/writer_shadow_session.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/fault_injection.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

// Times each call on the writer channel, from sending it to its status.
class TimingInterceptor : public grpc::experimental::Interceptor {
 public:
  TimingInterceptor(grpc::experimental::ClientRpcInfo* info, const WriterCallObserver* observer)
      : observer_(observer) {
    // "/dagvault.v1.Writer/Freeze" -> "Freeze".
    const std::string full = info->method() != nullptr ? info->method() : "";
    method_ = full.substr(full.rfind('/') + 1);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      started_ = RealClock()->Monotonic();
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      const grpc::Status* status = methods->GetRecvStatus();
      (*observer_)(method_, RealClock()->Monotonic() - started_, status != nullptr && status->ok());
    }
    methods->Proceed();
  }

 private:
  const WriterCallObserver* observer_;
  std::string method_;
  absl::Duration started_;
};

class TimingInterceptorFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TimingInterceptorFactory(WriterCallObserver observer) : observer_(std::move(observer)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new TimingInterceptor(info, &observer_);
  }

 private:
  const WriterCallObserver observer_;
};

}  // namespace

std::shared_ptr<v1::Writer::StubInterface> ConnectWriter(const std::string& socket_path,
                                                         WriterCallObserver observer) {
  grpc::ChannelArguments args;
  // A page of restored items holds one whole item of up to 64 MiB.
  args.SetMaxReceiveMessageSize(128 << 20);
  const std::string target = absl::StrCat("unix:", socket_path);
  if (!observer) {
    return v1::Writer::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> timing;
  timing.push_back(std::make_unique<TimingInterceptorFactory>(std::move(observer)));
  return v1::Writer::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
      target, grpc::InsecureChannelCredentials(), args, std::move(timing)));
}

WriterShadowSession::WriterShadowSession(std::shared_ptr<v1::Writer::StubInterface> writer,
                                         std::shared_ptr<std::mutex> gate,
                                         WriterSessionOptions options)
    : writer_(std::move(writer)), gate_(std::move(gate)), options_(std::move(options)) {}

WriterShadowSession::~WriterShadowSession() {
  if (!ended_) {
    auto ended = EndBackup(/*success=*/false, {}, 0, 0);
    if (!ended.ok()) {
      logging::Get("agent.shadow")
          ->warn("job {}: could not tell the writer that backup session {} failed: {}", spec_.job,
                 session_, ended.status().ToString());
    }
  }
  if (restoring_) {
    // A cancelled or failed restore releases the unit now: a re-run need
    // not wait for the writer's session timeout.
    StopKeepAlive();
    v1::RestoreCompleteRequest request;
    request.set_session(session_);
    request.set_abandon(true);
    v1::RestoreCompleteResponse response;
    absl::Status ended = FromGrpcStatus(
        writer_->RestoreComplete(Context(options_.call_timeout).get(), request, &response),
        "RestoreComplete");
    if (!ended.ok()) {
      logging::Get("agent.shadow")
          ->warn(
              "job {}: restore session {} could not be given up ({}); the writer releases the "
              "unit when its session timeout passes",
              spec_.job, session_, ended.ToString());
    }
  }
  StopKeepAlive();
}

absl::StatusOr<v1::WriterMetadata> WriterShadowSession::Metadata() {
  v1::WriterMetadata metadata;
  RETURN_IF_ERROR(FromGrpcStatus(
      writer_->GetMetadata(Context(options_.call_timeout).get(), {}, &metadata), "GetMetadata"));
  return metadata;
}

absl::StatusOr<std::pair<v1::UnitMetadata, std::string>> WriterShadowSession::FindUnit(
    const std::string& unit, std::string* node) {
  ASSIGN_OR_RETURN(v1::WriterMetadata metadata, Metadata());
  *node = metadata.node();
  for (const auto& w : metadata.writers()) {
    for (const auto& u : w.units()) {
      if (u.unit() == unit) return std::make_pair(u, w.instance_name());
    }
  }
  return absl::NotFoundError(absl::StrCat("unit ", unit, " has no copy on node ", metadata.node(),
                                          " (no writer lists it)"));
}

absl::StatusOr<BeganBackup> WriterShadowSession::Choose(const BackupJobSpec& spec) {
  std::string node;
  ASSIGN_OR_RETURN(auto found, FindUnit(spec.unit, &node));
  const std::string& instance = found.second;
  const v1::CopyStatus& copy = found.first.copy();
  const std::string where = absl::StrCat("the passive copy of ", spec.unit, " on ", node);
  if (instance == kReplicationWriter) {
    if (copy.state() != v1::HEALTHY) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, " is ", v1::CopyState_Name(copy.state()),
                       copy.message().empty() ? "" : absl::StrCat(" (", copy.message(), ")"),
                       ", not HEALTHY: it is not backed up"));
    }
    if (copy.copy_queue() > spec.max_copy_queue) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, " has a copy queue of ", copy.copy_queue(),
                       " generations, over the job's limit of ", spec.max_copy_queue));
    }
    if (copy.replay_queue() > spec.max_replay_queue) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, " has a replay queue of ", copy.replay_queue(),
                       " generations, over the job's limit of ", spec.max_replay_queue));
    }
  }
  BeganBackup began;
  began.writer_instance = instance;
  began.unit = found.first;
  return began;
}

absl::StatusOr<BeganBackup> WriterShadowSession::BeginBackup(const BackupJobSpec& spec) {
  if (!ended_) return absl::FailedPreconditionError("this session has a backup in progress");
  spec_ = spec;
  // Held from PrepareBackup to Thaw: whatever the number of jobs, one unit
  // of this node is between those calls at a time.
  gate_lock_ = std::unique_lock<std::mutex>(*gate_);
  auto began = Choose(spec);
  if (!began.ok()) {
    gate_lock_.unlock();
    return began.status();
  }
  v1::PrepareBackupRequest request;
  request.set_unit(spec.unit);
  request.set_type(spec.type);
  request.set_base_high_generation(spec.base_high_generation);
  request.set_requestor(absl::StrCat(options_.requestor, " job ", spec.job));
  request.set_fencing_token(spec.fencing_token);
  v1::PrepareBackupResponse response;
  absl::Status prepared = FromGrpcStatus(
      writer_->PrepareBackup(Context(options_.call_timeout).get(), request, &response),
      "PrepareBackup");
  if (!prepared.ok()) {
    gate_lock_.unlock();
    return prepared;
  }
  session_ = response.session();
  ended_ = false;
  began->session = session_;
  if (response.writer_instance() != began->writer_instance) {
    // The copy changed role between the two calls (a switchover): the
    // thresholds were checked for the other one.
    gate_lock_.unlock();
    return absl::AbortedError(absl::StrCat(
        "unit ", spec.unit, ": PrepareBackup went to the ", response.writer_instance(),
        " writer, not the ", began->writer_instance, " one chosen: the copy changed role"));
  }
  // Kept alive from here on: what comes before the freeze (removing a
  // crashed job's snapshot folder) and the freeze itself may outlast the
  // writer's session timeout on a slow disk.
  StartKeepAlive();
  return began;
}

absl::StatusOr<ShadowCopy> WriterShadowSession::CreateSnapshot(SnapshotProvider& provider) {
  if (ended_ || !gate_lock_.owns_lock()) {
    return absl::FailedPreconditionError("CreateSnapshot needs a session begun by BeginBackup");
  }
  ShadowCopy copy;
  // Measured from before the Freeze call to after Thaw returns: an upper
  // bound on what the writer saw, and the conservative start for the copy
  // provider's timeout.
  const absl::Time frozen_at = absl::Now();
  v1::FreezeRequest freeze;
  freeze.set_session(session_);
  absl::Status frozen = FromGrpcStatus(
      writer_->Freeze(Context(options_.call_timeout).get(), freeze, &copy.frozen), "Freeze");
  if (!frozen.ok()) {
    gate_lock_.unlock();
    return frozen;
  }
  SnapshotOptions snap;
  snap.job = spec_.job;
  snap.frozen_at = frozen_at;
  snap.freeze_timeout = options_.freeze_timeout;
  std::vector<std::string> sources;
  for (const auto& f : copy.frozen.files()) sources.push_back(f.path());
  auto snapshot = provider.Take(sources, snap);
  DAGVAULT_CRASH_POINT("agent.backup.frozen");  // the fault matrix's "frozen" step
  // Thawed whatever the snapshot did.
  v1::SessionRequest thaw;
  thaw.set_session(session_);
  v1::ThawResponse thawed;
  absl::Status thaw_status =
      FromGrpcStatus(writer_->Thaw(Context(options_.call_timeout).get(), thaw, &thawed), "Thaw");
  copy.freeze_window = absl::Now() - frozen_at;
  copy.writer_frozen_for = absl::Microseconds(thawed.frozen_for_us());
  gate_lock_.unlock();
  RETURN_IF_ERROR(snapshot.status());
  copy.snapshot = std::move(*snapshot);
  if (!thaw_status.ok()) return thaw_status;  // the snapshot is removed with `copy`
  StartKeepAlive();
  return copy;
}

absl::StatusOr<v1::BackupCompleteResponse> WriterShadowSession::EndBackup(
    bool success, const std::vector<ComponentResult>& components, uint32_t low_generation,
    uint32_t high_generation) {
  if (ended_) return absl::FailedPreconditionError("no backup session to end");
  StopKeepAlive();
  if (gate_lock_.owns_lock()) gate_lock_.unlock();
  ended_ = true;
  v1::BackupCompleteRequest request;
  request.set_session(session_);
  request.set_success(success);
  request.set_low_generation(low_generation);
  request.set_high_generation(high_generation);
  for (const ComponentResult& c : components) {
    auto* r = request.add_components();
    r->set_name(c.name);
    r->set_success(c.success);
    r->set_message(c.message);
  }
  v1::BackupCompleteResponse response;
  RETURN_IF_ERROR(FromGrpcStatus(
      writer_->BackupComplete(Context(options_.call_timeout).get(), request, &response),
      "BackupComplete"));
  return response;
}

absl::StatusOr<v1::PrepareRestoreResponse> WriterShadowSession::BeginRestore(
    const RestoreTarget& target) {
  if (!ended_ || restoring_) return absl::FailedPreconditionError("this session is in use");
  spec_ = BackupJobSpec{};
  spec_.job = target.job;
  spec_.unit = target.unit;
  if (target.passive_copy) {
    std::string node;
    auto found = FindUnit(target.unit, &node);
    if (!found.ok()) return found.status();
    if (found->second != kReplicationWriter) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", target.unit, ": the copy on ", node,
          " is active; a restore into a passive copy goes through the Replication writer of a "
          "passive copy"));
    }
  } else if (target.recovery_database.empty()) {
    std::string node;
    auto found = FindUnit(target.unit, &node);
    if (!found.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(found.status().message(),
                       "; restore as a recovery database (a name and a path) to use this node"));
    }
    if (found->second == kReplicationWriter) {
      return absl::FailedPreconditionError(absl::StrCat(
          "unit ", target.unit, ": the copy on ", node, " is passive (active on ",
          found->first.copy().active_node(),
          "): a restore to the unit's own location goes through the Store writer of the active "
          "copy; a passive copy is replaced only by an all-copies restore (its step 5); restore "
          "on ",
          found->first.copy().active_node(), " or as a recovery database"));
    }
  }
  v1::PrepareRestoreRequest request;
  request.set_unit(target.unit);
  request.set_recovery_database(target.recovery_database);
  request.set_path(target.path);
  request.set_refuse_if_mounted(target.refuse_if_mounted);
  for (const auto& signature : target.database_signatures)
    request.add_database_signatures(signature);
  request.set_force_overwrite_different_database(target.force_overwrite_different_database);
  request.set_fencing_token(target.fencing_token);
  request.set_restore_id(target.job);
  request.set_passive_copy(target.passive_copy);
  request.set_join_generation(target.join_generation);
  request.set_join_sha256(target.join_sha256);
  request.set_verification(target.verification);
  v1::PrepareRestoreResponse response;
  RETURN_IF_ERROR(FromGrpcStatus(
      writer_->PrepareRestore(Context(options_.call_timeout).get(), request, &response),
      "PrepareRestore"));
  session_ = response.session();
  restoring_ = true;
  StartKeepAlive();  // the transfer may outlast the writer's session timeout
  return response;
}

absl::StatusOr<v1::RestoreCompleteResponse> WriterShadowSession::EndRestore(
    uint32_t to_generation, bool roll_forward, bool mount,
    const v1::RecoveryDatabaseChecks& checks) {
  if (!restoring_) return absl::FailedPreconditionError("no restore session to end");
  StopKeepAlive();
  restoring_ = false;
  v1::RestoreCompleteRequest request;
  request.set_session(session_);
  request.set_to_generation(to_generation);
  request.set_roll_forward(roll_forward);
  request.set_mount(mount);
  *request.mutable_checks() = checks;
  v1::RestoreCompleteResponse response;
  RETURN_IF_ERROR(FromGrpcStatus(
      writer_->RestoreComplete(Context(options_.replay_timeout).get(), request, &response),
      "RestoreComplete"));
  return response;
}

void WriterShadowSession::StartKeepAlive() {
  StopKeepAlive();
  keepalive_stop_ = false;
  keepalive_ = std::thread([this] {
    auto log = logging::Get("agent.shadow");
    std::unique_lock<std::mutex> l(keepalive_mu_);
    while (!keepalive_cv_.wait_for(l, absl::ToChronoMilliseconds(options_.keepalive_every),
                                   [&] { return keepalive_stop_; })) {
      v1::SessionRequest request;
      request.set_session(session_);
      v1::KeepAliveResponse response;
      l.unlock();
      absl::Status s = FromGrpcStatus(
          writer_->KeepAlive(Context(options_.call_timeout).get(), request, &response),
          "KeepAlive");
      l.lock();
      if (!s.ok()) log->warn("job {}: session {}: {}", spec_.job, session_, s.ToString());
    }
  });
}

void WriterShadowSession::StopKeepAlive() {
  {
    std::lock_guard<std::mutex> l(keepalive_mu_);
    keepalive_stop_ = true;
  }
  keepalive_cv_.notify_all();
  if (keepalive_.joinable()) keepalive_.join();
}

}  // namespace dagvault::agent
