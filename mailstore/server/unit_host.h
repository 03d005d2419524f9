// This node's copy of one unit, and everything mailstored does with it.
//
// The copy is ACTIVE (an Engine, mounted or dismounted: it takes writes,
// serves its closed logs to the passive copies, and holds the unit's
// backup-in-progress state) or PASSIVE (a Replica and a replication thread
// that pulls closed logs from the active, inspects and replays them).
//
// Which copy is active is decided by an activation epoch kept in each
// copy's copy.state: every activation bumps it, and a copy that finds an
// active copy with a higher epoch than its own steps down. An old active
// copy that steps down after a lossy failover compares its logs with the
// new active's stream; where they differ, it refuses to continue and
// reports that it needs a reseed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "dagvault/v1/mailstored.pb.h"
#include "dagvault/v1/replication.pb.h"
#include "dagvault/v1/store.pb.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/replica.h"
#include "mailstore/server/backup_registry.h"
#include "mailstore/server/config.h"
#include "mailstore/server/peers.h"
#include "mailstore/server/truncation.h"

namespace spdlog {
class logger;
}

namespace dagvault::mailstore {

class UnitHost {
 public:
  UnitHost(const NodeConfig& config, const dagvault::v1::UnitDefinition& definition, Peers* peers,
           Clock* clock);
  ~UnitHost();

  // Creates or opens the copy as its state says (creating the unit on the
  // initial active node, seeding a new passive copy from the active), and
  // starts replication for a passive copy.
  absl::Status Start();
  // Stops replication and closes the copy cleanly.
  void Stop();

  const std::string& name() const { return definition_.name(); }
  const dagvault::v1::UnitDefinition& definition() const { return definition_; }
  const dagvault::v1::UnitConfig& engine_config() const { return engine_config_; }

  // --- the active copy ---
  // The mounted engine; fails, naming the active node, on any other copy.
  absl::StatusOr<std::shared_ptr<Engine>> MountedEngine();
  absl::Status Mount();
  absl::Status Dismount();
  absl::Status RollLog();
  // A restore to this copy's own location is under way (files replaced
  // while dismounted): Mount waits for RestoreComplete.
  absl::Status BeginRestore();
  void EndRestore();
  // Persists which restore (a coordinator job id) restored this copy's
  // files; reported as CopyStatus.restored_by.
  absl::Status RecordRestoredBy(const std::string& restore_id);
  BackupRegistry& backups() { return backups_; }
  // After a backup: the header fields, and for Full and Incremental the
  // truncation of logs on every copy under the four rules. Returns what was
  // truncated here.
  absl::StatusOr<std::vector<Generation>> RecordBackup(const std::string& type, Generation low,
                                                       Generation high, int64_t time_us,
                                                       bool snapshot);
  // Applies the truncation rules now (also run periodically).
  absl::StatusOr<std::vector<Generation>> TruncateByRules();

  // --- the passive copy ---
  absl::Status Suspend();
  absl::Status Resume();
  absl::Status Reseed();
  // A restore from the repository into this passive copy (through the
  // Replication writer, PrepareRestoreRequest.passive_copy). Begin: the
  // copy must be suspended (failed copies included); its files go, and
  // until End or Abandon nothing replicates, resumes, reseeds or activates
  // it. End: opens the restored files as the replica and replays every
  // restored generation (a lagged copy's lag starts after them); the copy
  // stays suspended, and records `restore_id` as restored_by. Returns the
  // generation replayed through. Abandon (the restore stopped part-way):
  // the copy is left failed and suspended, saying so; a reseed or another
  // restore mends it.
  absl::Status BeginPassiveRestore();
  // Before a reseed from the repository replaces this passive copy's files:
  // OK when the active copy still holds generation `g` (the chain's last)
  // with this SHA-256 (hex), so that replication continues from it; else
  // FailedPrecondition naming the generation (truncated, never closed
  // there, or another stream's).
  absl::Status CheckJoinsActiveStream(Generation g, const std::string& sha256);
  absl::StatusOr<Generation> EndPassiveRestore(const std::string& restore_id);
  void AbandonPassiveRestore(const std::string& why);
  // Holds replication still (for a snapshot or a digest) until resumed.
  absl::Status PauseReplication();
  void ResumeReplication();
  // The passive copy's replay position and logs (while paused).
  struct PassiveView {
    Lsn position;
    Generation last_inspected = 0;
    Generation last_replayed = 0;
  };
  absl::StatusOr<PassiveView> PassivePositions();

  // --- activation ---
  // Makes this node's copy active: a switchover (the active hands over
  // without loss) or, with lossy, with whatever logs this copy has.
  absl::Status Activate(bool lossy);
  // On the active: dismount, seal the log, and become a passive copy of
  // `target`.
  absl::StatusOr<dagvault::v1::HandOverResponse> HandOver(const std::string& target);

  // --- status and content ---
  dagvault::v1::CopyStatus Status();
  absl::StatusOr<dagvault::v1::DigestResponse> Digest(const std::string& database);
  std::optional<dagvault::v1::BackupInProgress> BackupInProgress();

  // --- serving the other copies ---
  using ChunkWriter = std::function<bool(const dagvault::v1::FileChunk&)>;
  absl::Status ServeLog(const dagvault::v1::FetchLogRequest& request, const ChunkWriter& write);
  // The SHA-256 of each closed generation from `from` through `through`
  // (0: the newest).
  absl::StatusOr<dagvault::v1::StreamSummaryResponse> Summary(Generation from,
                                                              Generation through = 0);
  // The whole copy, to `to_node` (counted in CopyStatus.seed_bytes_sent).
  absl::Status ServeSeed(const std::string& to_node, const ChunkWriter& write);
  // The active lets logs through `through` go; this passive copy deletes
  // them at its worker's next pass, as far as it has replayed them.
  void AllowTruncation(Generation through);

 private:
  struct Progress {
    Generation inspected = 0;
    Generation replayed = 0;
    absl::Time reported;
  };

  absl::Status SaveStateLocked();
  // An engine that went offline (a log or database write failed: a full or
  // failing volume) is dismounted, as Exchange dismounts a database whose
  // log drive is full: the copy reports Dismounted with the failure, and an
  // operator's Mount, once the cause is fixed, recovers it from its logs.
  // Whoever notices first (a client call, Status, the worker) moves it to
  // failed_engine_; the worker (or Mount) closes it, outside mu_.
  void TakeFailedEngineLocked();
  void CloseFailedEngine();
  // `allow_create`: an operator's mount may create a unit whose database
  // files are missing; the daemon's own mount does so only for a copy never
  // mounted before (a new unit).
  absl::Status OpenActiveLocked(bool allow_create);
  absl::Status OpenPassiveLocked();
  // An active copy that is not mounted yet (at start): mounts it, steps
  // down if another copy was activated meanwhile, or waits when no other
  // copy answers.
  absl::Status ConfirmActive();
  // Whether this copy's logs are all in the active copy's stream (a
  // DataLoss error names the generation where they diverged).
  absl::Status CheckDivergence(const std::string& active_node);
  // The passive worker's first step after stepping down.
  void RunDivergenceCheck();
  absl::Status SeedFromActive();
  void StartWorker();
  void WorkerLoop();
  // Waits until the worker is not touching the replica and keeps it away
  // until the returned pause ends.
  void PauseLocked(std::unique_lock<std::mutex>& lock);
  // FailedPrecondition naming the frozen backup, when one holds the copy.
  absl::Status RefuseIfFrozenLocked(const std::string& what) const;
  // FailedPrecondition while a restore from the repository replaces the
  // copy's files ("<what> when that ends").
  absl::Status RefuseIfRestoringLocked(const std::string& what) const;
  // TruncateByRules with truncation_mu_ held.
  absl::StatusOr<std::vector<Generation>> TruncateByRulesLocked();
  void UnpauseLocked();
  // One pass's copying: up to a batch of closed generations from the active.
  absl::Status CopyFromActive(bool* more);
  absl::Status ReplicateOnce(bool* more);
  absl::Status FetchGeneration(const std::string& from, Generation g, bool* found);
  absl::StatusOr<std::string> FindActiveNode();
  void ReleaseStaleBackups(const std::string& active);
  void SetFailure(const std::string& message, bool suspend);
  std::string ClosedLogPath(Generation g) const;
  // `write`, adding each chunk sent to (*sent)[node].
  ChunkWriter CountingSent(std::map<std::string, uint64_t>* sent, const std::string& node,
                           const ChunkWriter& write);

  const NodeConfig& config_;
  const dagvault::v1::UnitDefinition definition_;
  const dagvault::v1::CopyDefinition copy_;
  const dagvault::v1::UnitConfig engine_config_;
  Peers* peers_;
  Clock* clock_;
  std::shared_ptr<spdlog::logger> log_;
  BackupRegistry backups_;

  // One truncation pass at a time. A backup's record and the truncation it
  // allows are one step, so BackupComplete reports what it truncated.
  std::mutex truncation_mu_;
  std::mutex mu_;
  dagvault::v1::CopyStateFile state_;
  std::shared_ptr<Engine> engine_;         // active and mounted
  std::shared_ptr<Engine> failed_engine_;  // offline, to be closed (TakeFailedEngineLocked)
  std::unique_ptr<Replica> replica_;       // passive and open
  // The passive copy: the generation through which the active let logs go
  // (this copy deletes them as it replays them). Not kept across restarts:
  // the next truncation on the active repeats it.
  Generation truncation_allowed_ = 0;
  Generation truncation_applied_ = 0;  // the worker's own, no lock
  dagvault::v1::CopyState copy_state_ = dagvault::v1::INITIALIZING;
  std::string message_;
  Generation active_newest_closed_ = 0;
  std::map<std::string, Progress> progress_;  // passive copies' reports, by node
  // Bytes served to each node since start (CopyStatus.*_bytes_sent).
  std::map<std::string, uint64_t> log_bytes_sent_;
  std::map<std::string, uint64_t> seed_bytes_sent_;
  Generation truncated_through_ = 0;
  TruncationDecision truncation_;  // the latest, for Status
  // A passive copy tells the active, once per run, that backups its
  // earlier run held are over.
  bool stale_backups_released_ = false;
  // An active copy that has not confirmed it is still the active one.
  bool awaiting_confirmation_ = false;
  // A copy that stepped down: its logs must be compared with the new
  // active's stream before it replicates.
  bool needs_divergence_check_ = false;
  // Between PrepareRestore and RestoreComplete: the files are being
  // replaced, so nothing may mount them.
  bool restoring_ = false;
  // What the worker last saw of the passive replica (Status must not wait
  // for it).
  PassiveView passive_view_;

  // The background worker: replication for a passive copy, the truncation
  // rules for the active one.
  std::thread worker_;
  bool stop_ = false;
  // How many holders (a frozen backup, a truncation, a reseed) keep the
  // worker from replicating; each PauseLocked is matched by an Unpause.
  int pauses_ = 0;
  // Of those, the frozen backups of this copy (PauseReplication): while
  // one is, the copy is neither activated nor reseeded.
  int frozen_backups_ = 0;
  bool busy_ = false;  // the thread is touching the replica
  // Asks a long pass (a seed) to give up: set by Suspend and Stop.
  std::atomic<bool> interrupt_{false};
  // Callers waiting in PauseLocked: the running pass yields to them.
  std::atomic<int> pause_waiting_{0};
  std::condition_variable wake_;
  std::condition_variable idle_;
};

}  // namespace dagvault::mailstore
