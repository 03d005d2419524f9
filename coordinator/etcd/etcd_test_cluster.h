// A private etcd cluster for tests (issue 18), from Debian's etcd-server:
// one to five members on free ports of 127.0.0.1, each with its data in a
// folder of the test's own, started as real processes and stopped by pid.
// Members can be killed, paused and restarted, and the cluster says which
// member leads, so tests can kill the etcd leader or take quorum away.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/testing/subprocess.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

class EtcdTestCluster {
 public:
  // Starts `members` members under `dir` and waits until they have elected
  // a leader. With `tls`, clients talk TLS and must show a client
  // certificate: the cluster makes a CA of its own in dir/tls (the
  // project's certs.h), the members' certificate (127.0.0.1) and a
  // client's, which Config() names.
  // `host`: the address members listen on (a network lab's bridge address
  // lets processes in its namespaces reach them).
  static absl::StatusOr<std::unique_ptr<EtcdTestCluster>> Start(
      const std::string& dir, int members, bool tls = false, const std::string& host = "127.0.0.1");
  ~EtcdTestCluster();
  EtcdTestCluster(const EtcdTestCluster&) = delete;
  EtcdTestCluster& operator=(const EtcdTestCluster&) = delete;

  // Every member's client address, for a coordinator's configuration.
  dagvault::v1::EtcdConfig Config(const std::string& prefix = "/dagvault-test/") const;
  const std::vector<std::string>& client_endpoints() const { return client_endpoints_; }
  int size() const { return static_cast<int>(client_endpoints_.size()); }

  // The index of the member that leads now, asking the running members;
  // Unavailable when none knows a leader within `timeout`.
  absl::StatusOr<int> Leader(absl::Duration timeout = absl::Seconds(20));
  // Kills member i (SIGKILL) and waits for it.
  void Kill(int i);
  // Sends `signal` (SIGSTOP, SIGCONT) to member i.
  void Signal(int i, int signal);
  // Starts a killed member again on its data folder and ports.
  absl::Status Restart(int i);
  bool running(int i) const;

 private:
  EtcdTestCluster() = default;
  std::vector<std::string> CommandOf(int i, bool existing) const;

  std::string dir_;
  std::string tls_dir_;  // empty: plain text
  std::vector<std::string> names_;
  std::vector<std::string> client_endpoints_;
  std::vector<std::string> peer_urls_;
  std::vector<std::unique_ptr<::dagvault::testing::Subprocess>> processes_;
};

// One single-member cluster per test process, started at the first call
// (in a temporary folder) and stopped at exit: tests that need an etcd but
// not to kill it share it, each under its own key prefix. Fails the
// calling test's ASSERT when etcd cannot start.
absl::StatusOr<EtcdTestCluster*> SharedEtcdTestCluster();

}  // namespace dagvault::coordinator
