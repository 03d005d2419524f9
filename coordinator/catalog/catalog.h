// The coordinator's catalog (DESIGN.md §2, §8): nodes, copies, jobs with
// their attempts and events, backups, and the backup-in-progress leases.
// An interface, so that a PostgreSQL implementation can sit beside the
// embedded SQLite one (sqlite_catalog.h). Everything the coordinator must
// remember across a restart lives here; the topology is also rebuilt from
// agents' reports, and the backups from the repository's manifests
// (`dagvault catalog rebuild`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "dagvault/v1/admin.pb.h"
#include "dagvault/v1/mailstored.pb.h"
#include "dagvault/v1/repository.pb.h"

namespace dagvault::coordinator {

struct NodeRecord {
  std::string name;  // the node's certificate name
  std::string agent_version;
  absl::Time registered = absl::InfinitePast();
  absl::Time last_report = absl::InfinitePast();
};

struct CopyRecord {
  dagvault::v1::CopyStatus status;  // unit and node are the key
  absl::Time reported = absl::InfinitePast();
};

// The job state machine (issue 6): queued → assigned → preparing → frozen
// → transferring → verifying → completing → succeeded, failed or
// cancelled.
enum class JobState {
  kQueued,
  kAssigned,
  kPreparing,
  kFrozen,
  kTransferring,
  kVerifying,
  kCompleting,
  kSucceeded,
  kFailed,
  kCancelled,
};
std::string JobStateName(JobState state);
// The same state on the wire (agent.proto), and back; unspecified reads
// as failed (a state the coordinator cannot place never counts as done).
dagvault::v1::JobState ToProto(JobState state);
JobState FromProto(dagvault::v1::JobState state);
// A job's kind as the catalog writes it ("backup", "restore") on the wire.
dagvault::v1::JobKind JobKindOf(const std::string& kind);
absl::StatusOr<JobState> ParseJobState(absl::string_view name);
bool IsFinal(JobState state);

struct JobAttempt {
  int number = 1;
  std::string node;
  std::string writer_instance;
  JobState state = JobState::kAssigned;
  absl::Time started = absl::InfinitePast();
  absl::Time ended = absl::InfinitePast();  // InfinitePast: still running
  std::string reason;                       // why it failed
};

struct JobEvent {
  absl::Time time;
  int attempt = 0;  // 0: the job itself, before any attempt
  JobState state = JobState::kQueued;
  std::string message;
};

struct JobRecord {
  std::string id;
  std::string kind = "backup";  // "backup" or "restore"
  std::string unit;
  dagvault::v1::BackupType type = dagvault::v1::FULL;
  std::string source_mode;             // as given, for the record
  std::vector<std::string> preferred;  // as given
  JobState state = JobState::kQueued;
  std::string reason;  // why it failed or was cancelled, or why its type changed
  absl::Time created = absl::InfinitePast();
  absl::Time updated = absl::InfinitePast();
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  std::string manifest;  // the backup it recorded
  std::vector<JobAttempt> attempts;
  // An all-copies restore: its plan and where it stands, a serialized
  // dagvault.v1.RestorePlan; empty for other jobs.
  std::string plan;
  // Not stored with the job: the write that records the job as assigned
  // (or ended) removes the scheduler's queued backup of (unit, this type),
  // if any, in the same transaction, so that a restart can neither lose a
  // due backup nor start it twice.
  std::optional<dagvault::v1::BackupType> dequeues;
};

// A backup the scheduler has queued and not yet started (scheduler.h).
// One per unit and type.
struct QueuedBackupRecord {
  std::string policy;
  std::string unit;
  dagvault::v1::BackupType type = dagvault::v1::FULL;
  int priority = 0;
  absl::Time due = absl::InfinitePast();
};

struct BackupRecord {
  std::string manifest;  // its id in the repository: the key
  std::string unit;
  dagvault::v1::BackupType type = dagvault::v1::FULL;
  std::string source_node;
  std::string writer_instance;
  uint32_t low_generation = 0;
  uint32_t high_generation = 0;
  std::string log_signature;
  std::vector<std::string> database_signatures;
  uint64_t logical_bytes = 0;
  uint64_t new_bytes = 0;
  uint64_t stored_bytes = 0;
  absl::Time started = absl::InfinitePast();
  absl::Time finished = absl::InfinitePast();
  bool verified = false;
  std::string job;  // empty for a backup found by `catalog rebuild`
  // What chain assembly needs of the manifest: its header, and its log
  // files with their hashes and link hashes (no chunk lists or block maps).
  dagvault::v1::Manifest chain_summary;
};

// A backup's record from its manifest.
BackupRecord BackupRecordOf(const dagvault::v1::Manifest& manifest);

struct LeaseRecord {
  std::string unit;
  std::string job;
  std::string holder_node;
  absl::Time acquired = absl::InfinitePast();
  absl::Time expires = absl::InfinitePast();  // for people and restarts; see lease_store.h
  // The fencing token (DESIGN.md §8): greater than that of every earlier
  // lease of the unit, whichever job took it.
  uint64_t token = 0;
};

// Where a backup found that a unit's log stream no longer continues its
// chain (a lossy activation diverged it, or generations are missing): the
// chain ending at `after_manifest` is broken at `generation`, and the next
// Incremental of the unit becomes a Full.
struct ChainBreakRecord {
  std::string unit;
  std::string after_manifest;  // the chain's last piece
  uint32_t generation = 0;     // the first generation the chain cannot reach
  std::string reason;
  absl::Time detected = absl::InfinitePast();
  std::string job;  // the job whose backup found it
};

class Catalog {
 public:
  virtual ~Catalog() = default;

  // Nodes and their copies, as the agents report them.
  virtual absl::Status UpsertNode(const NodeRecord& node) = 0;
  virtual absl::StatusOr<std::vector<NodeRecord>> Nodes() = 0;
  // The node's copies are exactly `copies` from now on.
  virtual absl::Status ReplaceCopiesOfNode(const std::string& node,
                                           const std::vector<dagvault::v1::CopyStatus>& copies,
                                           absl::Time reported) = 0;
  virtual absl::StatusOr<std::vector<CopyRecord>> Copies() = 0;
  // Many nodes at once, in one transaction (the topology's write-behind at
  // 10,000 nodes: one commit a round, not two per node): each node's
  // record upserted and, where `copies` is set, its copies replaced.
  struct NodeSnapshot {
    NodeRecord record;
    std::optional<std::vector<dagvault::v1::CopyStatus>> copies;
    absl::Time reported = absl::InfinitePast();
  };
  virtual absl::Status PutTopology(const std::vector<NodeSnapshot>& nodes) = 0;

  // Backup-in-progress leases, one per unit (the coordinator reaches them
  // through LeaseStore, coordinator/leases/lease_store.h). Acquire fails
  // with FailedPrecondition naming the holder when another job holds an
  // unexpired lease on the unit; an expired one is taken over. Every
  // acquisition, in the same transaction, takes the unit's next fencing
  // token.
  virtual absl::StatusOr<LeaseRecord> AcquireLease(const std::string& unit, const std::string& job,
                                                   const std::string& holder_node, absl::Time now,
                                                   absl::Duration ttl) = 0;
  // Extends the lease `job` holds; NotFound when it holds none (it expired
  // and was taken, or was released).
  virtual absl::Status RenewLease(const std::string& unit, const std::string& job,
                                  absl::Time expires) = 0;
  // Releases it if `job` holds it; otherwise does nothing.
  virtual absl::Status ReleaseLease(const std::string& unit, const std::string& job) = 0;
  virtual absl::StatusOr<std::vector<LeaseRecord>> Leases() = 0;

  // Jobs. Every state change is written with an event; attempts are
  // written whole.
  virtual absl::Status CreateJob(const JobRecord& job) = 0;
  virtual absl::Status UpdateJob(const JobRecord& job, const JobEvent& event) = 0;
  virtual absl::StatusOr<JobRecord> GetJob(const std::string& id) = 0;
  // Newest first; `unit` empty: every unit. `limit` 0: all.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobs(const std::string& unit,
                                                          size_t limit) = 0;
  virtual absl::StatusOr<std::vector<JobEvent>> JobEvents(const std::string& id) = 0;
  // The jobs not in a final state: what a restarted coordinator takes back
  // (never the whole history).
  virtual absl::StatusOr<std::vector<JobRecord>> UnfinishedJobs() = 0;
  // Job history retention: removes finished jobs last updated before
  // `cutoff`, with their attempts and events, and the restore
  // verifications that ended before it; returns how many jobs.
  virtual absl::StatusOr<uint64_t> PurgeFinishedJobs(absl::Time cutoff) = 0;

  // Backups. Adding one that exists replaces it (a rebuild meets the
  // same manifests).
  virtual absl::Status PutBackup(const BackupRecord& backup) = 0;
  // Oldest first; `unit` empty: every unit.
  virtual absl::StatusOr<std::vector<BackupRecord>> Backups(const std::string& unit) = 0;
  // `catalog rebuild`: the backup records become exactly `backups`.
  virtual absl::Status ReplaceBackups(const std::vector<BackupRecord>& backups) = 0;

  // Chain breaks found by backups; one per chain end.
  virtual absl::Status PutChainBreak(const ChainBreakRecord& chain_break) = 0;
  virtual absl::StatusOr<std::vector<ChainBreakRecord>> ChainBreaks(const std::string& unit) = 0;

  // Backup policies, by name; Put replaces one whole.
  virtual absl::Status PutPolicy(const dagvault::v1::Policy& policy) = 0;
  virtual absl::StatusOr<std::vector<dagvault::v1::Policy>> Policies() = 0;
  virtual absl::Status RemovePolicy(const std::string& name) = 0;
  // When a policy's schedule (`kind`: full, incremental, differential)
  // last fired; InfinitePast if never.
  virtual absl::StatusOr<absl::Time> LastFired(const std::string& policy,
                                               const std::string& kind) = 0;
  virtual absl::Status SetLastFired(const std::string& policy, const std::string& kind,
                                    absl::Time when) = 0;

  // The scheduler's queue. A schedule's firing is one transaction: its
  // time, and the backups it queues (a Full first removes every queued
  // backup of its units; a backup already queued for a unit and type stays
  // as it is).
  virtual absl::Status FireSchedule(const std::string& policy, const std::string& kind,
                                    absl::Time when, const std::vector<QueuedBackupRecord>& queue,
                                    bool supersede) = 0;
  virtual absl::StatusOr<std::vector<QueuedBackupRecord>> QueuedBackups() = 0;
  virtual absl::Status RemoveQueued(const std::string& unit, dagvault::v1::BackupType type) = 0;

  // Expiry, crash-consistent with the repository: the backups leave the
  // catalog and are recorded as expiring in one transaction; the prune that
  // removes their manifests follows, and ClearExpiring ends it. After a
  // crash in between, Expiring() still names them for the next prune, and
  // `catalog rebuild` leaves them out.
  virtual absl::Status ExpireBackups(const std::vector<BackupRecord>& backups,
                                     const std::string& why, absl::Time when) = 0;
  virtual absl::StatusOr<std::vector<std::string>> Expiring() = 0;
  virtual absl::Status ClearExpiring(const std::vector<std::string>& manifests) = 0;

  // Restore verifications (issue 20 §2), one per verification job; Put
  // replaces the job's. Newest first (by when each ended), at most
  // `limit` (0: all).
  virtual absl::Status PutVerification(const dagvault::v1::RestoreVerification& v) = 0;
  virtual absl::StatusOr<std::vector<dagvault::v1::RestoreVerification>> Verifications(
      const std::string& unit, size_t limit) = 0;

  // The audit log (coordinator/server/admin_api.h): every action through
  // the admin API and every refused call. Kept for good; entries are
  // small and people's actions are few.
  virtual absl::Status AppendAudit(const dagvault::v1::AuditEntry& entry) = 0;
  // Newest first, at most `limit`; `identity` not empty: that person's only.
  virtual absl::StatusOr<std::vector<dagvault::v1::AuditEntry>> AuditEntries(
      size_t limit, const std::string& identity) = 0;

  // Highly available coordinators share one catalog (docs/ha.md). The one
  // that wins the election calls this with its epoch (the leader key's
  // create_revision in etcd): the catalog records it as the newest, and
  // from then on refuses every write through this object, with
  // FailedPrecondition, once a newer epoch has been recorded, checked in
  // the same transaction as the write. So a deposed leader that wakes up
  // writes nothing. FailedPrecondition at once when a newer epoch is there
  // already; Unimplemented for a catalog coordinators cannot share.
  virtual absl::Status FenceWrites(int64_t epoch) = 0;
};

// How the scheduler and the job manager read the policies. The leader
// passes one that keeps them between changes
// (InstrumentedCatalog::KeptPolicies): at 100,000 units one policy's list
// is a megabyte to parse, and the scheduler reads every second.
using PolicyReader =
    std::function<absl::StatusOr<std::shared_ptr<const std::vector<dagvault::v1::Policy>>>()>;
// Reads them from `catalog` at every call.
PolicyReader ReadPoliciesEachTime(Catalog* catalog);

}  // namespace dagvault::coordinator
