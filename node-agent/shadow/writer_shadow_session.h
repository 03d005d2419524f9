// ShadowSession over writer.proto: the agent drives a mailstored writer on
// the node's Unix socket.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dagvault/v1/writer.grpc.pb.h"
#include "node-agent/shadow/shadow_session.h"

namespace dagvault::agent {

// Told of every writer call as it ends: the method ("Freeze"), how long
// it took, and whether it succeeded (the agent's writer-call metrics).
using WriterCallObserver =
    std::function<void(const std::string& method, absl::Duration took, bool ok)>;

// A channel to the writer socket at `socket_path`; with `observer`, every
// call on it is timed (by a client interceptor, so no call site changes).
std::shared_ptr<dagvault::v1::Writer::StubInterface> ConnectWriter(
    const std::string& socket_path, WriterCallObserver observer = nullptr);

struct WriterSessionOptions {
  absl::Duration call_timeout = absl::Seconds(60);
  // The writer ends a session it has not heard from for 60 s: the
  // transfer after Thaw keeps it alive at this period.
  absl::Duration keepalive_every = absl::Seconds(15);
  // The writer's freeze timeout, for the copy snapshot's warning and limit.
  absl::Duration freeze_timeout = absl::Seconds(20);
  // RestoreComplete replays the restored logs: it may take a while.
  absl::Duration replay_timeout = absl::Hours(2);
  std::string requestor = "dagvault-agent";
};

class WriterShadowSession : public ShadowSession {
 public:
  // `gate` is shared by every session on this node: it serialises the
  // writer calls from PrepareBackup to Thaw, as VSS does.
  WriterShadowSession(std::shared_ptr<dagvault::v1::Writer::StubInterface> writer,
                      std::shared_ptr<std::mutex> gate, WriterSessionOptions options = {});
  // A session begun and not ended reports failure, so the writer releases
  // its backup-in-progress and truncates nothing.
  ~WriterShadowSession() override;

  absl::StatusOr<dagvault::v1::WriterMetadata> Metadata() override;
  absl::StatusOr<BeganBackup> BeginBackup(const BackupJobSpec& spec) override;
  absl::StatusOr<ShadowCopy> CreateSnapshot(SnapshotProvider& provider) override;
  absl::StatusOr<dagvault::v1::BackupCompleteResponse> EndBackup(
      bool success, const std::vector<ComponentResult>& components, uint32_t low_generation,
      uint32_t high_generation) override;
  absl::StatusOr<dagvault::v1::PrepareRestoreResponse> BeginRestore(
      const RestoreTarget& target) override;
  absl::StatusOr<dagvault::v1::RestoreCompleteResponse> EndRestore(
      uint32_t to_generation, bool roll_forward, bool mount,
      const dagvault::v1::RecoveryDatabaseChecks& checks) override;

 private:
  // The unit's metadata and the writer instance that lists it.
  absl::StatusOr<std::pair<dagvault::v1::UnitMetadata, std::string>> FindUnit(
      const std::string& unit, std::string* node);
  absl::StatusOr<BeganBackup> Choose(const BackupJobSpec& spec);
  void StartKeepAlive();
  void StopKeepAlive();

  std::shared_ptr<dagvault::v1::Writer::StubInterface> writer_;
  std::shared_ptr<std::mutex> gate_;
  std::unique_lock<std::mutex> gate_lock_;
  WriterSessionOptions options_;
  BackupJobSpec spec_;
  std::string session_;
  bool ended_ = true;
  bool restoring_ = false;

  std::mutex keepalive_mu_;
  std::condition_variable keepalive_cv_;
  bool keepalive_stop_ = false;
  std::thread keepalive_;
};

}  // namespace dagvault::agent
