// Deployment: a whole dagvault lab of real processes for multi-process
// tests, after Kudu's ExternalMiniCluster. A MailstoredCluster (3 mailstored
// nodes), a deployment CA with certificates made by the real `dagvault
// certs`, a repository, one dagvault-coordinator and one dagvault-agent per
// node, all over mutual TLS. The command line is the real `dagvault`.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/testing/network_lab.h"
#include "common/testing/small_tmpfs.h"
#include "common/testing/subprocess.h"
#include "dagvault/v1/admin.pb.h"
#include "mailstore/server/lab_config.h"
#include "tests/mailstored/cluster.h"

namespace dagvault::testing {

struct DeploymentOptions {
  mailstore::LabSpec lab;
  // Fast timings, so that failover tests take seconds.
  uint32_t report_every_ms = 500;
  uint32_t node_timeout_ms = 2000;
  uint32_t lease_ttl_ms = 4000;
  // Environment of every agent (e.g. DAGVAULT_DELAY_AT to slow a transfer).
  std::map<std::string, std::string> agent_env;
  // When not 0: the repository lives on a tmpfs of this size, which a test
  // can fill (repository_fs()).
  uint64_t repository_tmpfs_bytes = 0;
  // When set: the repository's location instead of a folder of the lab's,
  // e.g. an s3:// URL (every process reads the S3 credentials from the
  // environment the test runs in).
  std::string repository_url;
  // The coordinator's catalog setting; empty: an SQLite file of the lab's.
  std::string catalog;
  // With endpoints: the coordinator keeps its backup-in-progress leases in
  // this etcd.
  dagvault::v1::EtcdConfig etcd;
  // A second coordinator that stands by (needs `etcd` and a PostgreSQL
  // `catalog`): started after the first, which therefore leads; agents and
  // the command line are given both addresses.
  bool standby_coordinator = false;
  // The repository is initialised with Object Lock for this many days
  // (an S3 bucket with Object Lock enabled; 0: none).
  uint32_t object_lock_days = 0;
  // Every host in a network namespace of its own (NetworkLab): the
  // coordinator is host 0, node i is host i + 1, a standby coordinator the
  // host after the last node; the test and the command line reach them
  // through the bridge (NetworkLab::bridge_address(), where engines the
  // test runs, such as etcd, listen for them). For network faults; needs
  // root.
  bool network_namespaces = false;
  // The coordinator and every agent serve /metrics over HTTPS
  // (metrics_address(), agent_metrics_address(i)).
  bool metrics = false;
  // The coordinator serves the web console (console_address()).
  bool console = false;
  // When not 0: node `unit_volume_node`'s folder of `unit_volume_unit` is a
  // tmpfs of this size (the unit's database and log volume), which a test
  // can fill (unit_volume()).
  uint64_t unit_volume_bytes = 0;
  int unit_volume_node = 0;
  std::string unit_volume_unit = "DB02";
};

// Hosts of a deployment with network_namespaces: the coordinator, each
// node, and the standby coordinator (if any) after the last node.
constexpr int kCoordinatorHost = 0;
inline int HostOfNode(int i) { return i + 1; }
inline int StandbyHost(const DeploymentOptions& o) { return o.lab.nodes + 1; }

class Deployment {
 public:
  explicit Deployment(DeploymentOptions options, const std::string& tag = "deployment");
  ~Deployment();

  // Mailstored nodes, certificates, repository, coordinator, agents; waits
  // until every node reports its copies.
  absl::Status Start();
  // Before Start: the etcd to use (one the test starts once it knows the
  // network lab's bridge address, say).
  void set_etcd(dagvault::v1::EtcdConfig etcd) { options_.etcd = std::move(etcd); }

  // `env`: e.g. DAGVAULT_CRASH_AT, to stop it at a named step. Waits until
  // the admin API answers (through whichever coordinator leads) unless
  // `wait` is false.
  absl::Status StartCoordinator(const std::map<std::string, std::string>& env = {},
                                bool wait = true);
  void KillCoordinator();
  // The standby coordinator (DeploymentOptions::standby_coordinator).
  pid_t StandbyPid() const;
  std::string StandbyLog() const;
  // Waits for a coordinator that stops by itself (a crash point, a deposed
  // leader): how it ended, or nothing if it still runs after `timeout`.
  std::optional<ProcessResult> WaitCoordinatorExit(absl::Duration timeout);
  // `env` adds to DeploymentOptions::agent_env for this start.
  absl::Status StartAgent(int i, const std::map<std::string, std::string>& env = {});
  // Process ids (-1 when not running), for SIGSTOP.
  pid_t CoordinatorPid() const;
  pid_t AgentPid(int i) const;
  SmallTmpfs* repository_fs() { return repository_fs_.get(); }
  SmallTmpfs* unit_volume() { return unit_volume_.get(); }
  // Null without DeploymentOptions::network_namespaces.
  NetworkLab* network() { return network_.get(); }
  void KillAgent(int i);
  bool AgentRunning(int i);
  // A config for an agent of node i, as StartAgent writes it.
  dagvault::v1::AgentConfig AgentConfigOf(int i) const;
  std::string WriteAgentConfig(int i, const dagvault::v1::AgentConfig& config) const;

  // `dagvault ARGS` against this coordinator with the admin certificate.
  ProcessResult Cli(std::vector<std::string> args, absl::Duration timeout = absl::Minutes(3));
  // The same, --json, parsed into `out`; fails with the command's stderr.
  absl::Status CliJson(std::vector<std::string> args, google::protobuf::Message* out);

  absl::StatusOr<dagvault::v1::ClusterStatus> Status();
  absl::StatusOr<dagvault::v1::JobInfo> Job(const std::string& id);
  // Polls until the job ends.
  absl::StatusOr<dagvault::v1::JobInfo> WaitJob(const std::string& id,
                                                absl::Duration timeout = absl::Minutes(2));
  // Until every node reports and the coordinator sees `copies` copies.
  absl::Status WaitReporting(absl::Duration timeout = absl::Seconds(30), int copies = 6);

  MailstoredCluster& cluster() { return cluster_; }
  const std::string& certs() const { return certs_; }
  const std::string& repo() const { return repo_; }
  const std::string& coordinator_address() const { return address_; }
  // The second coordinator's, when the options asked for one (HA).
  const std::string& standby_address() const { return standby_address_; }
  // HOST:PORT of the web console (DeploymentOptions::console).
  const std::string& console_address() const { return console_address_; }
  // HOST:PORT of the coordinator's /metrics (DeploymentOptions::metrics).
  const std::string& metrics_address() const { return metrics_address_; }
  const std::string& agent_metrics_address(int i) const {
    return agent_metrics_[static_cast<size_t>(i)];
  }
  std::string CoordinatorLog() const;
  std::string AgentLog(int i) const;

 private:
  DeploymentOptions options_;
  TempDir certs_dir_{"certs"};           // before cluster_: its nodes replicate with these
  std::unique_ptr<NetworkLab> network_;  // before cluster_: its nodes listen on its hosts
  MailstoredCluster cluster_;
  std::unique_ptr<SmallTmpfs> unit_volume_;
  std::string certs_, repo_, passphrase_file_, address_, coordinator_config_, metrics_address_;
  std::vector<std::string> agent_metrics_;
  std::string console_address_;
  std::unique_ptr<SmallTmpfs> repository_fs_;
  std::unique_ptr<Subprocess> coordinator_;
  std::unique_ptr<Subprocess> standby_;
  std::string standby_address_;
  std::vector<std::unique_ptr<Subprocess>> agents_;
};

}  // namespace dagvault::testing
