#include "tests/coordinator/deployment.h"

#include <google/protobuf/util/json_util.h>
#include <signal.h>

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/certs.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/text_config.h"
#include "repository/repository.h"
#include "repository/repository_test_util.h"

namespace dagvault::testing {

namespace v1 = dagvault::v1;

namespace {

// Like WaitFor, at a pace fit for running a command line each time.
bool Poll(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (true) {
    if (done()) return true;
    if (absl::Now() >= until) return false;
    absl::SleepFor(absl::Milliseconds(250));
  }
}

}  // namespace

namespace {

// The lab's nodes replicate with the deployment's certificates; with a
// network lab, each listens on its own host.
mailstore::LabSpec LabOf(mailstore::LabSpec spec, const std::string& certs,
                         const NetworkLab* network) {
  spec.certs_dir = certs;
  if (network != nullptr && network->ok()) {
    spec.node_hosts.clear();
    for (int i = 0; i < spec.nodes; ++i) spec.node_hosts.push_back(network->address(HostOfNode(i)));
  }
  return spec;
}

}  // namespace

Deployment::Deployment(DeploymentOptions options, const std::string& tag)
    : options_(std::move(options)),
      network_(options_.network_namespaces
                   ? std::make_unique<NetworkLab>(options_.standby_coordinator
                                                      ? StandbyHost(options_) + 1
                                                      : HostOfNode(options_.lab.nodes))
                   : nullptr),
      cluster_(LabOf(options_.lab, certs_dir_.path(), network_.get()), tag) {}

Deployment::~Deployment() {
  for (auto& a : agents_) {
    if (a) a->Kill(SIGCONT), a->Kill(15), a->Wait();  // a stopped one first resumes
  }
  if (coordinator_) coordinator_->Kill(SIGCONT), coordinator_->Kill(15), coordinator_->Wait();
  if (standby_) standby_->Kill(SIGCONT), standby_->Kill(15), standby_->Wait();
}

absl::Status Deployment::Start() {
  certs_ = certs_dir_.path();
  repo_ = options_.repository_url.empty() ? cluster_.root() + "/repo" : options_.repository_url;
  passphrase_file_ = cluster_.root() + "/passphrase";
  // The certificates, by the real command line.
  auto run = [&](std::vector<std::string> args) -> absl::Status {
    args.insert(args.begin(), BinaryPath("dagvault"));
    ProcessResult r = RunProcess(args);
    if (!r.ok()) return absl::InternalError(absl::StrCat(args[1], " ", args[2], ": ", r.err));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(run({"certs", "init", "--dir", certs_}));
  if (network_ && !network_->ok()) {
    return absl::InternalError(absl::StrCat("the network lab: ", network_->error()));
  }
  const std::string coordinator_host =
      network_ ? network_->address(kCoordinatorHost) : std::string("127.0.0.1");
  // The servers' certificates name the addresses dialled (a certificate
  // names only what it is given): the coordinator's (Start below) and each
  // node's lab host.
  // Both coordinators share the certificate, which names both hosts.
  std::string coordinator_sans = coordinator_host;
  if (network_ && options_.standby_coordinator) {
    absl::StrAppend(&coordinator_sans, ",", network_->address(StandbyHost(options_)));
  }
  RETURN_IF_ERROR(run({"certs", "issue", "--dir", certs_, "--name", "coordinator", "--role",
                       "coordinator", "--san", coordinator_sans}));
  RETURN_IF_ERROR(run({"certs", "issue", "--dir", certs_, "--name", "admin", "--role", "admin"}));
  // The lab names its nodes node1 ... nodeN (mailstore/server/lab_config.h).
  for (int i = 0; i < options_.lab.nodes; ++i) {
    RETURN_IF_ERROR(
        run({"certs", "issue", "--dir", certs_, "--name", absl::StrCat("node", i + 1), "--role",
             "node", "--san", network_ ? network_->address(HostOfNode(i)) : options_.lab.host}));
    if (network_) cluster_.SetCommandPrefix(i, network_->Prefix(HostOfNode(i)));
  }
  if (options_.unit_volume_bytes != 0) {
    // Where the lab puts the unit's files (mailstore/server/lab_config.cc).
    unit_volume_ = std::make_unique<SmallTmpfs>(
        absl::StrCat(cluster_.root(), "/node", options_.unit_volume_node + 1, "/data/",
                     options_.unit_volume_unit),
        options_.unit_volume_bytes);
    if (!unit_volume_->ok()) return absl::InternalError(unit_volume_->error());
  }
  // The mailstored nodes replicate over mutual TLS with the same CA.
  RETURN_IF_ERROR(cluster_.Start());
  const auto secret = repository::testing::TestPassphrase();
  RETURN_IF_ERROR(WriteFileAtomically(passphrase_file_, secret.bytes, 0600));
  if (options_.repository_tmpfs_bytes != 0) {
    repository_fs_ = std::make_unique<SmallTmpfs>(repo_, options_.repository_tmpfs_bytes);
    if (!repository_fs_->ok()) return absl::InternalError(repository_fs_->error());
  }
  repository::InitOptions init = repository::testing::FastInit();
  init.object_lock_days = options_.object_lock_days;
  RETURN_IF_ERROR(repository::Repository::Init(repo_, secret, init).status());

  auto ports = mailstore::PickFreePorts("127.0.0.1", 4 + cluster_.size());
  if (!ports.ok()) return ports.status();
  address_ = absl::StrCat(coordinator_host, ":", (*ports)[0]);
  if (options_.standby_coordinator) {
    standby_address_ =
        absl::StrCat(network_ ? network_->address(StandbyHost(options_)) : coordinator_host, ":",
                     (*ports)[3 + cluster_.size()]);
  }
  if (options_.metrics) {
    metrics_address_ = absl::StrCat(coordinator_host, ":", (*ports)[1]);
    for (int i = 0; i < cluster_.size(); ++i) {
      agent_metrics_.push_back(absl::StrCat(
          network_ ? network_->address(HostOfNode(i)) : options_.lab.host, ":", (*ports)[2 + i]));
    }
  }
  if (options_.console) {
    console_address_ = absl::StrCat(coordinator_host, ":", (*ports)[2 + cluster_.size()]);
  }
  v1::CoordinatorConfig c;
  c.set_listen(address_);
  *c.mutable_tls() = CertificateFiles(certs_, "coordinator");
  c.set_catalog(options_.catalog.empty() ? cluster_.root() + "/catalog.db" : options_.catalog);
  c.set_repository(repo_);
  c.set_passphrase_file(passphrase_file_);
  c.set_report_every_ms(options_.report_every_ms);
  c.set_node_timeout_ms(options_.node_timeout_ms);
  c.set_lease_ttl_ms(options_.lease_ttl_ms);
  c.set_writer_session_timeout_ms(
      options_.lab.backup_session_timeout_ms != 0 ? options_.lab.backup_session_timeout_ms : 60000);
  c.set_log_level("debug");
  if (options_.metrics) c.mutable_metrics()->set_listen(metrics_address_);
  if (options_.console) c.mutable_console()->set_listen(console_address_);
  if (options_.etcd.endpoints_size() > 0) *c.mutable_etcd() = options_.etcd;
  coordinator_config_ = cluster_.root() + "/coordinator.conf";
  RETURN_IF_ERROR(WriteFileAtomically(coordinator_config_, ToTextConfig(c)));
  RETURN_IF_ERROR(StartCoordinator());
  if (options_.standby_coordinator) {
    c.set_listen(standby_address_);
    c.clear_metrics();
    c.clear_console();
    const std::string standby_config = cluster_.root() + "/coordinator-standby.conf";
    RETURN_IF_ERROR(WriteFileAtomically(standby_config, ToTextConfig(c)));
    std::vector<std::string> argv;
    if (network_) argv = network_->Prefix(StandbyHost(options_));
    argv.insert(argv.end(), {BinaryPath("dagvault-coordinator"), "--config", standby_config});
    standby_ = std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{},
                                            cluster_.root() + "/coordinator-standby.log");
  }
  agents_.resize(static_cast<size_t>(cluster_.size()));
  for (int i = 0; i < cluster_.size(); ++i) RETURN_IF_ERROR(StartAgent(i));
  return WaitReporting(absl::Seconds(30), cluster_.size() * 2);
}

std::string Deployment::CoordinatorLog() const {
  auto s = ReadFileToString(cluster_.root() + "/coordinator.log");
  auto e = ReadFileToString(cluster_.root() + "/coordinator.log.err");
  return absl::StrCat(s.ok() ? *s : "", e.ok() ? *e : "");
}

std::string Deployment::AgentLog(int i) const {
  const std::string base = absl::StrCat(cluster_.root(), "/agent-", cluster_.node(i).name, ".log");
  auto s = ReadFileToString(base);
  auto e = ReadFileToString(base + ".err");
  return absl::StrCat(s.ok() ? *s : "", e.ok() ? *e : "");
}

absl::Status Deployment::StartCoordinator(const std::map<std::string, std::string>& env,
                                          bool wait) {
  std::vector<std::string> argv;
  if (network_) argv = network_->Prefix(kCoordinatorHost);
  argv.insert(argv.end(), {BinaryPath("dagvault-coordinator"), "--config", coordinator_config_});
  coordinator_ = std::make_unique<Subprocess>(argv, env, cluster_.root() + "/coordinator.log");
  if (!wait) return absl::OkStatus();
  // Up when the admin API answers.
  if (!Poll([&] { return Status().ok(); }, absl::Seconds(20))) {
    return absl::DeadlineExceededError(
        absl::StrCat("the coordinator did not start:\n", CoordinatorLog()));
  }
  return absl::OkStatus();
}

std::optional<ProcessResult> Deployment::WaitCoordinatorExit(absl::Duration timeout) {
  std::optional<ProcessResult> ended;
  Poll(
      [&] {
        ended = coordinator_->Poll();  // a process already reaped: an empty result
        return ended.has_value();
      },
      timeout);
  return ended;
}

pid_t Deployment::CoordinatorPid() const {
  return coordinator_ && coordinator_->running() ? coordinator_->pid() : -1;
}

pid_t Deployment::AgentPid(int i) const {
  const auto& a = agents_[static_cast<size_t>(i)];
  return a && a->running() ? a->pid() : -1;
}

pid_t Deployment::StandbyPid() const {
  return standby_ && standby_->running() ? standby_->pid() : -1;
}

std::string Deployment::StandbyLog() const {
  auto s = ReadFileToString(cluster_.root() + "/coordinator-standby.log");
  auto e = ReadFileToString(cluster_.root() + "/coordinator-standby.log.err");
  return absl::StrCat(s.ok() ? *s : "", e.ok() ? *e : "");
}

void Deployment::KillCoordinator() {
  coordinator_->Kill(9);
  coordinator_->Wait();
}

v1::AgentConfig Deployment::AgentConfigOf(int i) const {
  const auto& node = cluster_.node(i);
  v1::AgentConfig a;
  a.set_node(node.name);
  a.set_coordinator(address_);
  if (!standby_address_.empty()) a.add_more_coordinators(standby_address_);
  *a.mutable_tls() = CertificateFiles(certs_, node.name);
  a.set_writer_socket(node.config.writer_socket());
  a.set_repository(repo_);
  a.set_passphrase_file(passphrase_file_);
  a.set_workers(2);
  a.set_reconnect_min_ms(200);
  a.set_reconnect_max_ms(1000);
  a.set_log_level("debug");
  a.set_state_dir(absl::StrCat(cluster_.root(), "/agent-state-", node.name));
  if (options_.metrics) a.mutable_metrics()->set_listen(agent_metrics_[static_cast<size_t>(i)]);
  return a;
}

std::string Deployment::WriteAgentConfig(int i, const v1::AgentConfig& config) const {
  const std::string path = absl::StrCat(cluster_.root(), "/agent-", cluster_.node(i).name, ".conf");
  (void)WriteFileAtomically(path, ToTextConfig(config));
  return path;
}

absl::Status Deployment::StartAgent(int i, const std::map<std::string, std::string>& env) {
  const std::string config = WriteAgentConfig(i, AgentConfigOf(i));
  std::map<std::string, std::string> all = options_.agent_env;
  for (const auto& [k, v] : env) all[k] = v;
  std::vector<std::string> argv;
  if (network_) argv = network_->Prefix(HostOfNode(i));
  argv.insert(argv.end(), {BinaryPath("dagvault-agent"), "--config", config});
  agents_[static_cast<size_t>(i)] = std::make_unique<Subprocess>(
      argv, all, absl::StrCat(cluster_.root(), "/agent-", cluster_.node(i).name, ".log"));
  return absl::OkStatus();
}

void Deployment::KillAgent(int i) {
  auto& a = agents_[static_cast<size_t>(i)];
  if (!a) return;
  a->Kill(9);
  a->Wait();
  a.reset();
}

bool Deployment::AgentRunning(int i) {
  auto& a = agents_[static_cast<size_t>(i)];
  return a && !a->Poll().has_value();
}

ProcessResult Deployment::Cli(std::vector<std::string> args, absl::Duration timeout) {
  args.insert(args.begin(), BinaryPath("dagvault"));
  args.push_back("--coordinator");
  args.push_back(standby_address_.empty() ? address_ : address_ + "," + standby_address_);
  args.push_back("--certs");
  args.push_back(certs_);
  return RunProcess(args, {}, timeout);
}

absl::Status Deployment::CliJson(std::vector<std::string> args, google::protobuf::Message* out) {
  args.push_back("--json");
  ProcessResult r = Cli(args);
  // A failure prints {"error": {...}} under --json, which would parse as an
  // empty message with unknown fields ignored; a command that exits
  // non-zero with its answer (status of a critical unit) prints that.
  if (r.exit_code != 0 &&
      (r.out.empty() || absl::StartsWith(absl::StripLeadingAsciiWhitespace(r.out), "{\"error\""))) {
    return absl::InternalError(absl::StrCat("dagvault exit ", r.exit_code, ": ", r.err));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto parsed = google::protobuf::util::JsonStringToMessage(r.out, out, options);
  if (!parsed.ok()) return absl::InternalError(absl::StrCat("not JSON: ", r.out, r.err));
  return absl::OkStatus();
}

absl::StatusOr<v1::ClusterStatus> Deployment::Status() {
  v1::ClusterStatus s;
  RETURN_IF_ERROR(CliJson({"status", "--copies"}, &s));
  return s;
}

absl::StatusOr<v1::JobInfo> Deployment::Job(const std::string& id) {
  v1::JobInfo j;
  RETURN_IF_ERROR(CliJson({"job", "show", id}, &j));
  return j;
}

absl::StatusOr<v1::JobInfo> Deployment::WaitJob(const std::string& id, absl::Duration timeout) {
  absl::StatusOr<v1::JobInfo> last = absl::DeadlineExceededError("not yet asked");
  Poll(
      [&] {
        last = Job(id);
        return last.ok() && (last->state() == v1::JOB_SUCCEEDED ||
                             last->state() == v1::JOB_FAILED || last->state() == v1::JOB_CANCELLED);
      },
      timeout);
  return last;
}

absl::Status Deployment::WaitReporting(absl::Duration timeout, int copies) {
  absl::StatusOr<v1::ClusterStatus> last;
  bool ok = Poll(
      [&] {
        last = Status();
        if (!last.ok() || last->nodes_size() < cluster_.size()) return false;
        for (const auto& n : last->nodes()) {
          if (!n.reporting()) return false;
        }
        return last->copies_size() >= copies;
      },
      timeout);
  if (ok) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat(
      "not every node reports: ", last.ok() ? last->ShortDebugString() : last.status().ToString(),
      "\ncoordinator:\n", CoordinatorLog()));
}

}  // namespace dagvault::testing
