#include "tests/mailstored/cluster.h"

#include <grpcpp/create_channel.h>
#include <signal.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace dagvault::testing {

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return true;
}

std::unique_ptr<grpc::ClientContext> Deadline(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

MailstoredCluster::MailstoredCluster(mailstore::LabSpec spec, const std::string& tag)
    : dir_(tag), spec_(std::move(spec)) {
  spec_.root = dir_.path();
}

MailstoredCluster::~MailstoredCluster() {
  for (int i = 0; i < size(); ++i) {
    if (processes_[i] && processes_[i]->running()) KillNode(i);
  }
}

absl::Status MailstoredCluster::Start() {
  ASSIGN_OR_RETURN(nodes_, mailstore::MakeLab(spec_));
  RETURN_IF_ERROR(mailstore::WriteLab(nodes_));
  processes_.resize(nodes_.size());
  stores_.resize(nodes_.size());
  admins_.resize(nodes_.size());
  writers_.resize(nodes_.size());
  replications_.resize(nodes_.size());
  for (int i = 0; i < size(); ++i) Connect(i);
  // Start them all, then wait: the passive copies seed from node1 as soon
  // as it answers.
  for (int i = 0; i < size(); ++i) RETURN_IF_ERROR(StartNode(i));
  // Ready means every unit has a mounted active copy (node1's, in a lab):
  // an active copy mounts only once another copy confirms it was not
  // superseded.
  for (const auto& unit : nodes_[0].config.units()) RETURN_IF_ERROR(WaitMounted(0, unit.name()));
  return absl::OkStatus();
}

absl::Status MailstoredCluster::SetConfig(int i, const v1::MailstoredConfig& config) {
  nodes_[i].config = config;
  return mailstore::WriteLab({nodes_[i]});
}

void MailstoredCluster::Connect(int i) {
  const auto& c = nodes_[i].config;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // Not shared with earlier channels to the same address, whose backoff
  // may have grown while the node was down.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto store =
      grpc::CreateCustomChannel(c.store_listen(), grpc::InsecureChannelCredentials(), args);
  stores_[i] = v1::Store::NewStub(store);
  admins_[i] = v1::Admin::NewStub(store);
  writers_[i] = v1::Writer::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("unix:", c.writer_socket()), grpc::InsecureChannelCredentials(), args));
  // The replication port takes only peers: the test talks to it as the
  // node itself (with its certificate when the lab uses TLS), and accepts
  // only that node's certificate, as mailstored's own client does.
  auto replication_credentials =
      MakeChannelCredentials(c.replication_tls(), c.insecure_dev(), "test client",
                             ExpectedPeer{.role = kRoleNode, .common_name = c.node()});
  replications_[i] = v1::Replication::NewStub(grpc::CreateCustomChannel(
      c.replication_listen(),
      replication_credentials.ok() ? *replication_credentials : grpc::InsecureChannelCredentials(),
      args));
}

pid_t MailstoredCluster::Pid(int i) const {
  return processes_[i] && processes_[i]->running() ? processes_[i]->pid() : -1;
}

void MailstoredCluster::LaunchNode(int i, const std::vector<std::string>& extra_args,
                                   const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = prefixes_[i];
  argv.insert(argv.end(), {BinaryPath("mailstored"), "--config", nodes_[i].config_path,
                           "--log-file", absl::StrCat(nodes_[i].dir, "/mailstored.log")});
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  processes_[i] =
      std::make_unique<Subprocess>(argv, env, absl::StrCat(nodes_[i].dir, "/stdout.log"));
  // Fresh channels, so the stubs do not wait out an old connection's
  // backoff.
  Connect(i);
}

absl::Status MailstoredCluster::StartNode(int i, const std::vector<std::string>& extra_args,
                                          const std::map<std::string, std::string>& env) {
  LaunchNode(i, extra_args, env);
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (true) {
    if (auto exited = processes_[i]->Poll()) {
      return absl::InternalError(absl::StrCat(nodes_[i].name, " exited during start-up (code ",
                                              exited->exit_code, ", signal ", exited->signal,
                                              "):\n", LogOf(i)));
    }
    v1::StatusResponse status;
    auto context = Deadline(absl::Seconds(1));
    // Waiting for ready keeps this thread polling the channel, so the
    // connection completes as soon as the node listens. A fail-fast call
    // returns at once and leaves the reconnection to gRPC's backup poller,
    // which runs only every 5 s in a client process with no calls in flight.
    context->set_wait_for_ready(true);
    if (admins_[i]->Status(context.get(), v1::StatusRequest{}, &status).ok()) {
      return absl::OkStatus();
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(nodes_[i].name, " did not answer within 60 s:\n", LogOf(i)));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

ProcessResult MailstoredCluster::StopNode(int i) {
  if (!processes_[i] || !processes_[i]->running()) return ProcessResult{};
  // Close this process's connections first: the node's shutdown waits for
  // its clients to go, and an idle client here would notice the GOAWAY only
  // at gRPC's next backup poll.
  Connect(i);
  processes_[i]->Kill(SIGTERM);
  return processes_[i]->Wait();
}

void MailstoredCluster::KillNode(int i) {
  if (!processes_[i] || !processes_[i]->running()) return;
  processes_[i]->Kill(SIGKILL);
  processes_[i]->Wait();
}

std::optional<ProcessResult> MailstoredCluster::WaitForExit(int i, absl::Duration timeout) {
  std::optional<ProcessResult> result;
  WaitFor([&] { return (result = processes_[i]->Poll()).has_value(); }, timeout);
  return result;
}

bool MailstoredCluster::Running(int i) {
  if (!processes_[i] || !processes_[i]->running()) return false;
  return !processes_[i]->Poll().has_value();
}

std::string MailstoredCluster::LogOf(int i) const {
  std::ostringstream out;
  for (const char* name : {"/mailstored.log", "/stdout.log.err"}) {
    std::ifstream in(nodes_[i].dir + name);
    out << in.rdbuf();
  }
  std::string text = out.str();
  // The tail is what matters in a failure message.
  return text.size() > 6000 ? text.substr(text.size() - 6000) : text;
}

absl::StatusOr<v1::CopyStatus> MailstoredCluster::Copy(int i, const std::string& unit) {
  v1::CopyStatusRequest request;
  request.set_unit(unit);
  v1::CopyStatus status;
  auto context = Deadline(absl::Seconds(5));
  RETURN_IF_ERROR(FromGrpcStatus(replications_[i]->GetCopyStatus(context.get(), request, &status),
                                 nodes_[i].name));
  return status;
}

absl::StatusOr<v1::StatusResponse> MailstoredCluster::Status(int i, const std::string& unit) {
  v1::StatusRequest request;
  request.set_unit(unit);
  v1::StatusResponse status;
  auto context = Deadline(absl::Seconds(15));
  RETURN_IF_ERROR(
      FromGrpcStatus(admins_[i]->Status(context.get(), request, &status), nodes_[i].name));
  return status;
}

absl::StatusOr<v1::DigestResponse> MailstoredCluster::Digest(int i, const std::string& unit,
                                                             const std::string& database) {
  v1::DigestRequest request;
  request.set_unit(unit);
  request.set_database(database);
  v1::DigestResponse response;
  auto context = Deadline(absl::Seconds(60));
  RETURN_IF_ERROR(
      FromGrpcStatus(admins_[i]->Digest(context.get(), request, &response), nodes_[i].name));
  return response;
}

absl::Status MailstoredCluster::Put(int i, const std::string& unit, const std::string& database,
                                    uint64_t mailbox, uint64_t item, const std::string& value) {
  v1::PutRequest request;
  request.mutable_address()->set_unit(unit);
  request.mutable_address()->set_database(database);
  request.mutable_address()->set_mailbox(mailbox);
  request.mutable_address()->set_item(item);
  request.set_value(value);
  v1::PutResponse response;
  auto context = Deadline(absl::Seconds(60));
  return FromGrpcStatus(stores_[i]->Put(context.get(), request, &response), nodes_[i].name);
}

absl::StatusOr<std::optional<std::string>> MailstoredCluster::Get(int i, const std::string& unit,
                                                                  const std::string& database,
                                                                  uint64_t mailbox, uint64_t item) {
  v1::GetRequest request;
  request.mutable_address()->set_unit(unit);
  request.mutable_address()->set_database(database);
  request.mutable_address()->set_mailbox(mailbox);
  request.mutable_address()->set_item(item);
  v1::GetResponse response;
  auto context = Deadline(absl::Seconds(30));
  RETURN_IF_ERROR(
      FromGrpcStatus(stores_[i]->Get(context.get(), request, &response), nodes_[i].name));
  if (!response.found()) return std::optional<std::string>();
  return std::optional<std::string>(response.value());
}

absl::Status MailstoredCluster::Admin(int i, const std::string& what, const std::string& unit) {
  v1::UnitRequest request;
  request.set_unit(unit);
  v1::AdminResponse response;
  auto context = Deadline(absl::Minutes(2));
  auto& a = *admins_[i];
  grpc::Status s;
  if (what == "mount") {
    s = a.Mount(context.get(), request, &response);
  } else if (what == "dismount") {
    s = a.Dismount(context.get(), request, &response);
  } else if (what == "suspend") {
    s = a.Suspend(context.get(), request, &response);
  } else if (what == "resume") {
    s = a.Resume(context.get(), request, &response);
  } else if (what == "reseed") {
    s = a.Reseed(context.get(), request, &response);
  } else if (what == "roll") {
    s = a.RollLog(context.get(), request, &response);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("no admin call ", what));
  }
  return FromGrpcStatus(s, absl::StrCat(nodes_[i].name, " ", what));
}

absl::Status MailstoredCluster::RollLog(int i, const std::string& unit) {
  return Admin(i, "roll", unit);
}

absl::Status MailstoredCluster::Activate(int via, const std::string& unit, const std::string& node,
                                         bool lossy) {
  v1::ActivateRequest request;
  request.set_unit(unit);
  request.set_node(node);
  request.set_lossy(lossy);
  v1::AdminResponse response;
  auto context = Deadline(absl::Minutes(3));
  return FromGrpcStatus(admins_[via]->Activate(context.get(), request, &response),
                        absl::StrCat(nodes_[via].name, " activate"));
}

absl::Status MailstoredCluster::WaitMounted(int i, const std::string& unit) {
  std::string last;
  const bool mounted = WaitFor(
      [&] {
        auto copy = Copy(i, unit);
        last = copy.ok()
                   ? absl::StrCat(v1::CopyState_Name(copy->state()), " (", copy->message(), ")")
                   : std::string(copy.status().message());
        return copy.ok() && copy->role() == v1::ACTIVE && copy->state() == v1::MOUNTED;
      },
      absl::Seconds(60));
  if (mounted) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat(unit, " did not mount on ", nodes_[i].name,
                                                  " within 60 s: ", last, "\n", LogOf(i)));
}

absl::Status MailstoredCluster::WaitConverged(int active, const std::string& unit,
                                              absl::Duration timeout) {
  std::string last;
  const bool done = WaitFor(
      [&] {
        auto a = Copy(active, unit);
        if (!a.ok()) {
          last = std::string(a.status().message());
          return false;
        }
        for (int i = 0; i < size(); ++i) {
          if (i == active || !Running(i)) continue;
          auto c = Copy(i, unit);
          if (!c.ok()) {
            last = std::string(c.status().message());
            return false;
          }
          if (c->replay_lag_seconds() > 0) continue;
          if (c->state() != v1::HEALTHY) {
            last = absl::StrCat(nodes_[i].name, " is ", v1::CopyState_Name(c->state()), " (",
                                c->message(), ")");
            return false;
          }
          if (c->last_replayed_generation() < a->last_log_generation()) {
            last = absl::StrCat(nodes_[i].name, " replayed ", c->last_replayed_generation(), " of ",
                                a->last_log_generation(), " (", c->message(), ")");
            return false;
          }
        }
        return true;
      },
      timeout);
  if (done) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat(unit, " did not converge: ", last));
}

}  // namespace dagvault::testing
