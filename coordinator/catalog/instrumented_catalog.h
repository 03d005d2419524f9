// A Catalog that times every call of the one it wraps and counts its
// errors, by operation, for the coordinator's metrics
// (dagvault_catalog_operation_seconds, dagvault_catalog_errors_total;
// docs/monitoring.md), and counts each unit's changes for the readers that
// keep what they read (UnitHistoryCache). Behaviour is the wrapped
// catalog's, unchanged.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "common/metrics/registry.h"
#include "coordinator/catalog/catalog.h"

namespace dagvault::coordinator {

class InstrumentedCatalog : public Catalog {
 public:
  // `recent_unit_writes`: how many writes UnitsWrittenSince remembers.
  InstrumentedCatalog(std::unique_ptr<Catalog> inner, metrics::Histogram* seconds,
                      metrics::Counter* errors, size_t recent_unit_writes = kRecentUnitWrites)
      : inner_(std::move(inner)),
        seconds_(seconds),
        errors_(errors),
        recent_unit_writes_(recent_unit_writes) {}

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
  absl::StatusOr<absl::Time> LastFired(const std::string& policy, const std::string& kind) override;
  absl::Status SetLastFired(const std::string& policy, const std::string& kind,
                            absl::Time when) override;
  absl::Status FireSchedule(const std::string& policy, const std::string& kind, absl::Time when,
                            const std::vector<QueuedBackupRecord>& queue, bool supersede) override;
  absl::StatusOr<std::vector<QueuedBackupRecord>> QueuedBackups() override;
  absl::Status RemoveQueued(const std::string& unit, dagvault::v1::BackupType type) override;
  absl::Status ExpireBackups(const std::vector<BackupRecord>& backups, const std::string& why,
                             absl::Time when) override;
  absl::StatusOr<std::vector<std::string>> Expiring() override;
  absl::Status ClearExpiring(const std::vector<std::string>& manifests) override;
  absl::Status PutVerification(const dagvault::v1::RestoreVerification& v) override;
  absl::StatusOr<std::vector<dagvault::v1::RestoreVerification>> Verifications(
      const std::string& unit, size_t limit) override;
  absl::Status AppendAudit(const dagvault::v1::AuditEntry& entry) override;
  absl::Status FenceWrites(int64_t epoch) override;
  absl::StatusOr<std::vector<dagvault::v1::AuditEntry>> AuditEntries(
      size_t limit, const std::string& identity) override;

  // A number that moves after every write through this object that may
  // change what Backups, ChainBreaks or ListJobs answer for `unit` (after
  // the write returns, failed or not: a reader that sees the new number
  // sees the write). Writes by other processes are not seen: a reader
  // keeps answers only while this process is the catalog's one writer.
  uint64_t UnitVersion(const std::string& unit) const;
  // The newest of every unit's version: it moves with every write that
  // moves one.
  uint64_t UnitsVersion() const;
  // The units written after `since` (a UnitsVersion reading), added to
  // `units`, complete up to the version returned. nullopt: this object no
  // longer knows (more than recent_unit_writes writes since, or a write to
  // every unit), and the caller reads every unit again. `status` at
  // 100,000 units asks this instead of each unit's version.
  std::optional<uint64_t> UnitsWrittenSince(uint64_t since, std::vector<std::string>* units) const;
  static constexpr size_t kRecentUnitWrites = 4096;
  // The same for what Policies answers (PutPolicy, RemovePolicy).
  uint64_t PoliciesVersion() const { return policies_version_.load(); }
  // The policies, read from the wrapped catalog again only after a write
  // through this object (PutPolicy, RemovePolicy). Only for the catalog's
  // one writer, the leader: another process's writes are not seen (a
  // standby reads Policies(); a deposed leader exits).
  absl::StatusOr<std::shared_ptr<const std::vector<dagvault::v1::Policy>>> KeptPolicies();

 private:
  template <typename F>
  auto Timed(const char* op, F&& call);

  void Touched(const std::string& unit);
  void TouchedEveryUnit();

  std::unique_ptr<Catalog> inner_;
  metrics::Histogram* seconds_;
  metrics::Counter* errors_;
  const size_t recent_unit_writes_;
  std::atomic<uint64_t> policies_version_{0};
  std::mutex kept_policies_mu_;
  // The policies as read at kept_policies_version_; null: not read yet.
  std::shared_ptr<const std::vector<dagvault::v1::Policy>>
      kept_policies_;                   // guarded by kept_policies_mu_
  uint64_t kept_policies_version_ = 0;  // guarded by kept_policies_mu_
  mutable std::mutex versions_mu_;
  uint64_t last_version_ = 0;        // guarded by versions_mu_
  uint64_t every_unit_version_ = 0;  // guarded by versions_mu_
  // Hashed: `status` asks for every unit's version (100,000 lookups).
  absl::flat_hash_map<std::string, uint64_t> unit_versions_;  // guarded by versions_mu_
  // The newest recent_unit_writes_ writes to one unit, oldest first.
  std::deque<std::pair<uint64_t, std::string>> recent_writes_;  // guarded by versions_mu_
};

}  // namespace dagvault::coordinator
