// The catalog in PostgreSQL (issue 18, DESIGN.md §8), for coordinators that
// run highly available: the same tables and the same numbered migrations
// as the SQLite catalog (sqlite_catalog.h), over one libpq connection
// (pg_connection.h).
//
// Isolation: every transaction that reads before it writes (a lease's
// acquisition, a schedule's firing, job-history retention) runs
// SERIALIZABLE, so that two coordinators racing on the same rows can never
// both win; PostgreSQL aborts one (40001) and it runs again. Writes of
// whole rows run SERIALIZABLE too (they are few per second, and one rule is
// easier to trust than several). Multi-statement reads (a job with its
// attempts) run REPEATABLE READ: one snapshot, never blocked.
//
// A lost connection: a transaction that never reached COMMIT is run again
// on a new connection; one whose COMMIT was lost is run again only where
// running it twice leaves the same rows as once (every write here but a
// job's event and an audit entry, which would be doubled): otherwise the
// error says it may or may not have committed, which the coordinator
// treats as any failed catalog write (fail-stop, then recovery from the
// catalog).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "coordinator/catalog/catalog.h"
#include "coordinator/catalog/pg_connection.h"

namespace dagvault::coordinator {

class PostgresCatalog : public Catalog {
 public:
  // Connects, and brings the schema up to date (under an advisory lock, so
  // that coordinators starting together migrate once). A catalog newer
  // than this binary is refused, naming both versions.
  static absl::StatusOr<std::unique_ptr<PostgresCatalog>> Open(const std::string& conninfo,
                                                               pg::ConnectionOptions options = {});

  // The schema version this binary writes (the SQLite catalog's).
  static int SchemaVersion();

  absl::Status UpsertNode(const NodeRecord& node) override;
  absl::StatusOr<std::vector<NodeRecord>> Nodes() override;
  absl::Status ReplaceCopiesOfNode(const std::string& node,
                                   const std::vector<dagvault::v1::CopyStatus>& copies,
                                   absl::Time reported) override;
  absl::StatusOr<std::vector<CopyRecord>> Copies() override;
  absl::Status PutTopology(const std::vector<NodeSnapshot>& nodes) override;

  absl::StatusOr<LeaseRecord> AcquireLease(const std::string& unit, const std::string& job,
                                           const std::string& holder_node, absl::Time now,
                                           absl::Duration ttl) override;
  absl::Status RenewLease(const std::string& unit, const std::string& job,
                          absl::Time expires) override;
  absl::Status ReleaseLease(const std::string& unit, const std::string& job) override;
  absl::StatusOr<std::vector<LeaseRecord>> Leases() override;

  absl::Status CreateJob(const JobRecord& job) override;
  absl::Status UpdateJob(const JobRecord& job, const JobEvent& event) override;
  absl::StatusOr<JobRecord> GetJob(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(const std::string& unit, size_t limit) override;
  absl::StatusOr<std::vector<JobEvent>> JobEvents(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecord>> UnfinishedJobs() override;
  absl::StatusOr<uint64_t> PurgeFinishedJobs(absl::Time cutoff) override;

  absl::Status PutBackup(const BackupRecord& backup) override;
  absl::StatusOr<std::vector<BackupRecord>> Backups(const std::string& unit) override;
  absl::Status ReplaceBackups(const std::vector<BackupRecord>& backups) override;
  absl::Status PutChainBreak(const ChainBreakRecord& chain_break) override;
  absl::StatusOr<std::vector<ChainBreakRecord>> ChainBreaks(const std::string& unit) override;
  absl::Status PutPolicy(const dagvault::v1::Policy& policy) override;
  absl::StatusOr<std::vector<dagvault::v1::Policy>> Policies() override;
  absl::Status RemovePolicy(const std::string& name) override;
  absl::Status ExpireBackups(const std::vector<BackupRecord>& backups, const std::string& why,
                             absl::Time when) override;
  absl::StatusOr<std::vector<std::string>> Expiring() override;
  absl::Status ClearExpiring(const std::vector<std::string>& manifests) override;
  absl::Status PutVerification(const dagvault::v1::RestoreVerification& v) override;
  absl::StatusOr<std::vector<dagvault::v1::RestoreVerification>> Verifications(
      const std::string& unit, size_t limit) override;
  absl::Status AppendAudit(const dagvault::v1::AuditEntry& entry) override;
  absl::StatusOr<std::vector<dagvault::v1::AuditEntry>> AuditEntries(
      size_t limit, const std::string& identity) override;
  absl::StatusOr<absl::Time> LastFired(const std::string& policy, const std::string& kind) override;
  absl::Status SetLastFired(const std::string& policy, const std::string& kind,
                            absl::Time when) override;
  absl::Status FireSchedule(const std::string& policy, const std::string& kind, absl::Time when,
                            const std::vector<QueuedBackupRecord>& queue, bool supersede) override;
  absl::StatusOr<std::vector<QueuedBackupRecord>> QueuedBackups() override;
  absl::Status RemoveQueued(const std::string& unit, dagvault::v1::BackupType type) override;
  absl::Status FenceWrites(int64_t epoch) override;

 private:
  explicit PostgresCatalog(std::unique_ptr<pg::Connection> db) : db_(std::move(db)) {}
  absl::Status Migrate();
  // A write in one SERIALIZABLE transaction; `idempotent`: running it twice
  // leaves the same rows as once (see the header comment).
  absl::Status Write(bool idempotent, const std::function<absl::Status(pg::Connection&)>& body);
  // One statement on its own, read-only: sent again after a lost connection.
  absl::StatusOr<pg::Result> Read(const std::string& sql, const pg::Params& params = {});
  absl::Status WriteJobWithEvent(pg::Connection& tx, const JobRecord& job, const JobEvent& event);
  absl::StatusOr<std::vector<JobRecord>> ReadJobs(const std::string& where_sql,
                                                  const std::string& arg, size_t limit);
  std::string Name() const { return db_->name(); }

  std::unique_ptr<pg::Connection> db_;
  std::mutex mu_;  // one connection: one statement at a time
  // The leader epoch every write checks first (0: none; FenceWrites).
  std::atomic<int64_t> fence_epoch_{0};
};

}  // namespace dagvault::coordinator
