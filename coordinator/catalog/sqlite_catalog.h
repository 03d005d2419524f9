// The embedded catalog: one SQLite file in WAL mode, its schema brought up
// to date by numbered migrations when it opens (a catalog newer than this
// binary is refused, naming both versions). One connection, serialised by
// a mutex: the coordinator's writes are small and few per second, and
// SQLite's own locking would add nothing but busy errors.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "coordinator/catalog/catalog.h"

struct sqlite3;

namespace dagvault::coordinator {

class SqliteCatalog : public Catalog {
 public:
  // Creates the file if it does not exist.
  static absl::StatusOr<std::unique_ptr<SqliteCatalog>> Open(const std::string& path);
  ~SqliteCatalog() override;

  // The schema version this binary writes.
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
  SqliteCatalog(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  absl::Status Migrate();
  absl::Status Exec(const std::string& sql);
  // Runs `body` in one write transaction: all of it commits, or none.
  absl::Status Transaction(const std::function<absl::Status()>& body);
  // With mu_ held (and, for several statements, in a transaction).
  absl::Status UpsertNodeLocked(const NodeRecord& n);
  absl::Status ReplaceCopiesLocked(const std::string& node,
                                   const std::vector<dagvault::v1::CopyStatus>& copies,
                                   absl::Time reported);
  absl::Status WriteJob(const JobRecord& job);
  absl::Status WriteJobWithEvent(const JobRecord& job, const JobEvent& event);
  absl::Status WriteBackup(const BackupRecord& backup);
  absl::StatusOr<std::vector<JobRecord>> ReadJobs(const std::string& where_sql,
                                                  const std::string& arg, size_t limit);

  const std::string path_;
  sqlite3* db_;
  std::mutex mu_;
};

}  // namespace dagvault::coordinator
