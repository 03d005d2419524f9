// MailstoredCluster: N real mailstored processes on this machine, in the
// lab layout of mailstore/server/lab_config.h, for multi-process tests (in
// the spirit of Kudu's ExternalMiniCluster). Nodes are started, stopped
// with SIGTERM, killed with SIGKILL and restarted; tests talk to them over
// their real sockets.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/testing/subprocess.h"
#include "common/testing/temp_dir.h"
#include "dagvault/v1/replication.grpc.pb.h"
#include "dagvault/v1/store.grpc.pb.h"
#include "dagvault/v1/writer.grpc.pb.h"
#include "mailstore/server/lab_config.h"

namespace dagvault::testing {

namespace v1 = dagvault::v1;

class MailstoredCluster {
 public:
  // spec.root is ignored: the cluster lives in its own temporary folder.
  explicit MailstoredCluster(mailstore::LabSpec spec, const std::string& tag = "cluster");
  ~MailstoredCluster();

  // Writes the configurations and starts every node.
  absl::Status Start();
  // Node i's mailstored runs as `prefix... mailstored ...` (e.g. `ip netns
  // exec NS`, to run it in a network namespace); set before Start.
  void SetCommandPrefix(int i, std::vector<std::string> prefix) {
    prefixes_[i] = std::move(prefix);
  }
  // Starts node i (0-based) and waits until it answers; extra arguments go
  // to mailstored (e.g. --crash-at).
  absl::Status StartNode(int i, const std::vector<std::string>& extra_args = {},
                         const std::map<std::string, std::string>& env = {});
  // Starts node i without waiting for it (it may be meant to crash).
  void LaunchNode(int i, const std::vector<std::string>& extra_args = {},
                  const std::map<std::string, std::string>& env = {});
  // Node i's process id, or -1 when it is not running (for SIGSTOP).
  pid_t Pid(int i) const;
  // SIGTERM and wait: a clean shutdown. Returns the exit status.
  ProcessResult StopNode(int i);
  // SIGKILL and wait.
  void KillNode(int i);
  // Waits for node i to exit on its own (e.g. a crash point fired).
  std::optional<ProcessResult> WaitForExit(int i, absl::Duration timeout);
  bool Running(int i);

  int size() const { return static_cast<int>(nodes_.size()); }
  const mailstore::LabNode& node(int i) const { return nodes_[i]; }
  // Replaces node i's configuration file; it takes effect at its next start.
  absl::Status SetConfig(int i, const v1::MailstoredConfig& config);
  const std::string& root() const { return dir_.path(); }
  std::string LogOf(int i) const;

  v1::Store::Stub& store(int i) { return *stores_[i]; }
  v1::Admin::Stub& admin(int i) { return *admins_[i]; }
  v1::Writer::Stub& writer(int i) { return *writers_[i]; }
  v1::Replication::Stub& replication(int i) { return *replications_[i]; }

  // Conveniences over the stubs; errors carry the node's message.
  absl::StatusOr<v1::CopyStatus> Copy(int i, const std::string& unit);
  absl::StatusOr<v1::StatusResponse> Status(int i, const std::string& unit = "");
  absl::StatusOr<v1::DigestResponse> Digest(int i, const std::string& unit,
                                            const std::string& database);
  absl::Status Put(int i, const std::string& unit, const std::string& database, uint64_t mailbox,
                   uint64_t item, const std::string& value);
  absl::StatusOr<std::optional<std::string>> Get(int i, const std::string& unit,
                                                 const std::string& database, uint64_t mailbox,
                                                 uint64_t item);
  absl::Status RollLog(int i, const std::string& unit);
  absl::Status Admin(int i, const std::string& what, const std::string& unit);
  absl::Status Activate(int via, const std::string& unit, const std::string& node, bool lossy);

  // Waits until the copy of `unit` on node i is the mounted active copy.
  absl::Status WaitMounted(int i, const std::string& unit);
  // Waits until every passive copy of `unit` that is not lagged has
  // replayed everything the active copy (on node `active`) has closed.
  absl::Status WaitConverged(int active, const std::string& unit,
                             absl::Duration timeout = absl::Seconds(60));

 private:
  void Connect(int i);

  TempDir dir_;
  mailstore::LabSpec spec_;
  std::vector<mailstore::LabNode> nodes_;
  std::map<int, std::vector<std::string>> prefixes_;
  std::vector<std::unique_ptr<Subprocess>> processes_;
  std::vector<std::unique_ptr<v1::Store::Stub>> stores_;
  std::vector<std::unique_ptr<v1::Admin::Stub>> admins_;
  std::vector<std::unique_ptr<v1::Writer::Stub>> writers_;
  std::vector<std::unique_ptr<v1::Replication::Stub>> replications_;
};

// Polls `done` every 50 ms until it returns true or `timeout` passes.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout);

// A client context with a deadline.
std::unique_ptr<grpc::ClientContext> Deadline(absl::Duration timeout = absl::Seconds(30));

}  // namespace dagvault::testing
