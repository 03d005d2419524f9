#include "coordinator/etcd/etcd_test_cluster.h"

#include <signal.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/certs.h"
#include "common/free_ports.h"
#include "common/status_macros.h"
#include "common/testing/temp_dir.h"
#include "coordinator/etcd/etcd_client.h"

namespace dagvault::coordinator {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdTestCluster>> EtcdTestCluster::Start(const std::string& dir,
                                                                        int members, bool tls,
                                                                        const std::string& host) {
  if (members < 1 || members > 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("an etcd test cluster of ", members, " members"));
  }
  if (!std::filesystem::exists(kEtcd)) {
    return absl::FailedPreconditionError(
        absl::StrCat(kEtcd, " is missing: deploy/install-deps.sh installs etcd-server"));
  }
  auto ports = PickFreePorts(host, 2 * members);
  if (!ports.ok()) return ports.status();
  std::unique_ptr<EtcdTestCluster> cluster(new EtcdTestCluster());
  cluster->dir_ = dir;
  if (tls) {
    cluster->tls_dir_ = absl::StrCat(dir, "/tls");
    std::filesystem::create_directories(cluster->tls_dir_);
    RETURN_IF_ERROR(CreateCa({.dir = cluster->tls_dir_, .deployment = "etcd-test"}));
    RETURN_IF_ERROR(IssueCertificate(
        {.dir = cluster->tls_dir_, .name = "etcd", .role = "node", .sans = {host}}));
    RETURN_IF_ERROR(
        IssueCertificate({.dir = cluster->tls_dir_, .name = "client", .role = "coordinator"}));
  }
  for (int i = 0; i < members; ++i) {
    cluster->names_.push_back(absl::StrCat("etcd", i));
    cluster->client_endpoints_.push_back(absl::StrCat(host, ":", (*ports)[2 * i]));
    cluster->peer_urls_.push_back(absl::StrCat("http://", host, ":", (*ports)[2 * i + 1]));
    std::filesystem::create_directories(absl::StrCat(dir, "/", cluster->names_.back()));
  }
  for (int i = 0; i < members; ++i) {
    cluster->processes_.push_back(std::make_unique<::dagvault::testing::Subprocess>(
        cluster->CommandOf(i, false), std::map<std::string, std::string>{},
        absl::StrCat(dir, "/", cluster->names_[i], ".log")));
  }
  auto leader = cluster->Leader(absl::Seconds(30));
  if (!leader.ok()) {
    return absl::Status(
        leader.status().code(),
        absl::StrCat("the etcd test cluster in ", dir,
                     " did not elect a leader (see its *.log): ", leader.status().message()));
  }
  return cluster;
}

EtcdTestCluster::~EtcdTestCluster() {
  for (auto& p : processes_) {
    if (p && p->running()) {
      p->Kill(SIGCONT);
      p->Kill(SIGKILL);
      p->Wait();
    }
  }
}

std::vector<std::string> EtcdTestCluster::CommandOf(int i, bool existing) const {
  std::vector<std::string> initial;
  for (size_t m = 0; m < names_.size(); ++m) {
    initial.push_back(absl::StrCat(names_[m], "=", peer_urls_[m]));
  }
  const std::string client_url =
      absl::StrCat(tls_dir_.empty() ? "http://" : "https://", client_endpoints_[i]);
  std::vector<std::string> tls;
  if (!tls_dir_.empty()) {
    tls = {"--cert-file",       absl::StrCat(tls_dir_, "/etcd.crt"),
           "--key-file",        absl::StrCat(tls_dir_, "/etcd.key"),
           "--trusted-ca-file", absl::StrCat(tls_dir_, "/ca.crt"),
           "--client-cert-auth"};
  }
  // Short heartbeats and elections: a test that kills the leader waits
  // about a second for the next one, not five.
  std::vector<std::string> command = {kEtcd,
                                      "--name",
                                      names_[i],
                                      "--data-dir",
                                      absl::StrCat(dir_, "/", names_[i]),
                                      "--listen-client-urls",
                                      client_url,
                                      "--advertise-client-urls",
                                      client_url,
                                      "--listen-peer-urls",
                                      peer_urls_[i],
                                      "--initial-advertise-peer-urls",
                                      peer_urls_[i],
                                      "--initial-cluster",
                                      absl::StrJoin(initial, ","),
                                      "--initial-cluster-state",
                                      existing ? "existing" : "new",
                                      "--initial-cluster-token",
                                      "dagvault-test",
                                      "--heartbeat-interval",
                                      "50",
                                      "--election-timeout",
                                      "500",
                                      "--logger",
                                      "zap",
                                      "--log-outputs",
                                      "stderr"};
  command.insert(command.end(), tls.begin(), tls.end());
  return command;
}

absl::StatusOr<int> EtcdTestCluster::Leader(absl::Duration timeout) {
  dagvault::v1::EtcdConfig config = Config();
  config.set_request_timeout_ms(1000);
  auto client = EtcdClient::Connect(config);
  if (!client.ok()) return client.status();
  const absl::Time end = absl::Now() + timeout;
  std::string last = "no member answered";
  while (absl::Now() < end) {
    for (int i = 0; i < size(); ++i) {
      if (!running(i)) continue;
      auto status = (*client)->MemberStatus(static_cast<size_t>(i));
      if (!status.ok()) {
        last = std::string(status.status().message());
        continue;
      }
      if (status->leader() == 0) {
        last = absl::StrCat(client_endpoints_[i], " knows no leader");
        continue;
      }
      if (status->leader() == status->header().member_id()) return i;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::UnavailableError(last);
}

void EtcdTestCluster::Kill(int i) {
  auto& p = processes_[static_cast<size_t>(i)];
  if (!p || !p->running()) return;
  p->Kill(SIGCONT);
  p->Kill(SIGKILL);
  p->Wait();
}

void EtcdTestCluster::Signal(int i, int signal) {
  auto& p = processes_[static_cast<size_t>(i)];
  if (p && p->running()) p->Kill(signal);
}

absl::Status EtcdTestCluster::Restart(int i) {
  Kill(i);
  processes_[static_cast<size_t>(i)] = std::make_unique<::dagvault::testing::Subprocess>(
      CommandOf(i, true), std::map<std::string, std::string>{},
      absl::StrCat(dir_, "/", names_[static_cast<size_t>(i)], ".restarted.log"));
  return absl::OkStatus();
}

bool EtcdTestCluster::running(int i) const {
  const auto& p = processes_[static_cast<size_t>(i)];
  return p && p->running();
}

dagvault::v1::EtcdConfig EtcdTestCluster::Config(const std::string& prefix) const {
  dagvault::v1::EtcdConfig config;
  for (const auto& e : client_endpoints_) config.add_endpoints(e);
  config.set_prefix(prefix);
  if (!tls_dir_.empty()) {
    config.set_ca_file(absl::StrCat(tls_dir_, "/ca.crt"));
    config.set_cert_file(absl::StrCat(tls_dir_, "/client.crt"));
    config.set_key_file(absl::StrCat(tls_dir_, "/client.key"));
  }
  return config;
}

absl::StatusOr<EtcdTestCluster*> SharedEtcdTestCluster() {
  // Destroyed at exit in reverse order: the cluster (its processes) first,
  // then its folder.
  static ::dagvault::testing::TempDir dir("etcd");
  static absl::StatusOr<std::unique_ptr<EtcdTestCluster>> cluster =
      EtcdTestCluster::Start(dir.path(), 1);
  if (!cluster.ok()) return cluster.status();
  return cluster->get();
}

}  // namespace dagvault::coordinator
