#include "coordinator/catalog/instrumented_catalog.h"

#include <algorithm>

#include "common/clock.h"

namespace dagvault::coordinator {

namespace {

const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

}  // namespace

template <typename F>
auto InstrumentedCatalog::Timed(const char* op, F&& call) {
  // A duration: the monotonic clock (DESIGN.md §10).
  const absl::Duration start = RealClock()->Monotonic();
  auto result = call();
  seconds_->Observe({{"op", op}}, absl::ToDoubleSeconds(RealClock()->Monotonic() - start));
  if (!StatusOf(result).ok()) errors_->Add({{"op", op}});
  return result;
}

absl::Status InstrumentedCatalog::UpsertNode(const NodeRecord& node) {
  return Timed("UpsertNode", [&] { return inner_->UpsertNode(node); });
}
absl::StatusOr<std::vector<NodeRecord>> InstrumentedCatalog::Nodes() {
  return Timed("Nodes", [&] { return inner_->Nodes(); });
}
absl::Status InstrumentedCatalog::ReplaceCopiesOfNode(
    const std::string& node, const std::vector<dagvault::v1::CopyStatus>& copies,
    absl::Time reported) {
  return Timed("ReplaceCopiesOfNode",
               [&] { return inner_->ReplaceCopiesOfNode(node, copies, reported); });
}
absl::StatusOr<std::vector<CopyRecord>> InstrumentedCatalog::Copies() {
  return Timed("Copies", [&] { return inner_->Copies(); });
}
absl::Status InstrumentedCatalog::PutTopology(const std::vector<NodeSnapshot>& nodes) {
  return Timed("PutTopology", [&] { return inner_->PutTopology(nodes); });
}
absl::StatusOr<LeaseRecord> InstrumentedCatalog::AcquireLease(const std::string& unit,
                                                              const std::string& job,
                                                              const std::string& holder_node,
                                                              absl::Time now, absl::Duration ttl) {
  return Timed("AcquireLease",
               [&] { return inner_->AcquireLease(unit, job, holder_node, now, ttl); });
}
absl::Status InstrumentedCatalog::RenewLease(const std::string& unit, const std::string& job,
                                             absl::Time expires) {
  return Timed("RenewLease", [&] { return inner_->RenewLease(unit, job, expires); });
}
absl::Status InstrumentedCatalog::ReleaseLease(const std::string& unit, const std::string& job) {
  return Timed("ReleaseLease", [&] { return inner_->ReleaseLease(unit, job); });
}
absl::StatusOr<std::vector<LeaseRecord>> InstrumentedCatalog::Leases() {
  return Timed("Leases", [&] { return inner_->Leases(); });
}
absl::Status InstrumentedCatalog::CreateJob(const JobRecord& job) {
  auto result = Timed("CreateJob", [&] { return inner_->CreateJob(job); });
  Touched(job.unit);
  return result;
}
absl::Status InstrumentedCatalog::UpdateJob(const JobRecord& job, const JobEvent& event) {
  auto result = Timed("UpdateJob", [&] { return inner_->UpdateJob(job, event); });
  Touched(job.unit);
  return result;
}
absl::StatusOr<JobRecord> InstrumentedCatalog::GetJob(const std::string& id) {
  return Timed("GetJob", [&] { return inner_->GetJob(id); });
}
absl::StatusOr<std::vector<JobRecord>> InstrumentedCatalog::ListJobs(const std::string& unit,
                                                                     size_t limit) {
  return Timed("ListJobs", [&] { return inner_->ListJobs(unit, limit); });
}
absl::StatusOr<std::vector<JobEvent>> InstrumentedCatalog::JobEvents(const std::string& id) {
  return Timed("JobEvents", [&] { return inner_->JobEvents(id); });
}
absl::StatusOr<std::vector<JobRecord>> InstrumentedCatalog::UnfinishedJobs() {
  return Timed("UnfinishedJobs", [&] { return inner_->UnfinishedJobs(); });
}
absl::StatusOr<uint64_t> InstrumentedCatalog::PurgeFinishedJobs(absl::Time cutoff) {
  auto result = Timed("PurgeFinishedJobs", [&] { return inner_->PurgeFinishedJobs(cutoff); });
  TouchedEveryUnit();
  return result;
}
absl::Status InstrumentedCatalog::PutBackup(const BackupRecord& backup) {
  auto result = Timed("PutBackup", [&] { return inner_->PutBackup(backup); });
  Touched(backup.unit);
  return result;
}
absl::StatusOr<std::vector<BackupRecord>> InstrumentedCatalog::Backups(const std::string& unit) {
  return Timed("Backups", [&] { return inner_->Backups(unit); });
}
absl::Status InstrumentedCatalog::ReplaceBackups(const std::vector<BackupRecord>& backups) {
  auto result = Timed("ReplaceBackups", [&] { return inner_->ReplaceBackups(backups); });
  TouchedEveryUnit();
  return result;
}
absl::Status InstrumentedCatalog::PutChainBreak(const ChainBreakRecord& chain_break) {
  auto result = Timed("PutChainBreak", [&] { return inner_->PutChainBreak(chain_break); });
  Touched(chain_break.unit);
  return result;
}
absl::StatusOr<std::vector<ChainBreakRecord>> InstrumentedCatalog::ChainBreaks(
    const std::string& unit) {
  return Timed("ChainBreaks", [&] { return inner_->ChainBreaks(unit); });
}
absl::Status InstrumentedCatalog::PutPolicy(const dagvault::v1::Policy& policy) {
  absl::Status s = Timed("PutPolicy", [&] { return inner_->PutPolicy(policy); });
  ++policies_version_;
  return s;
}
absl::StatusOr<std::vector<dagvault::v1::Policy>> InstrumentedCatalog::Policies() {
  return Timed("Policies", [&] { return inner_->Policies(); });
}
absl::StatusOr<std::shared_ptr<const std::vector<dagvault::v1::Policy>>>
InstrumentedCatalog::KeptPolicies() {
  // Read before the policies: a write that lands meanwhile moves the
  // version past this one, and the next call reads again.
  const uint64_t version = policies_version_.load();
  {
    std::lock_guard<std::mutex> l(kept_policies_mu_);
    if (kept_policies_ && kept_policies_version_ == version) return kept_policies_;
  }
  auto read = Policies();
  if (!read.ok()) return read.status();
  auto policies = std::make_shared<const std::vector<dagvault::v1::Policy>>(std::move(*read));
  std::lock_guard<std::mutex> l(kept_policies_mu_);
  kept_policies_ = policies;
  kept_policies_version_ = version;
  return policies;
}
absl::Status InstrumentedCatalog::RemovePolicy(const std::string& name) {
  absl::Status s = Timed("RemovePolicy", [&] { return inner_->RemovePolicy(name); });
  ++policies_version_;
  return s;
}
absl::StatusOr<absl::Time> InstrumentedCatalog::LastFired(const std::string& policy,
                                                          const std::string& kind) {
  return Timed("LastFired", [&] { return inner_->LastFired(policy, kind); });
}
absl::Status InstrumentedCatalog::SetLastFired(const std::string& policy, const std::string& kind,
                                               absl::Time when) {
  return Timed("SetLastFired", [&] { return inner_->SetLastFired(policy, kind, when); });
}
absl::Status InstrumentedCatalog::FireSchedule(const std::string& policy, const std::string& kind,
                                               absl::Time when,
                                               const std::vector<QueuedBackupRecord>& queue,
                                               bool supersede) {
  return Timed("FireSchedule",
               [&] { return inner_->FireSchedule(policy, kind, when, queue, supersede); });
}
absl::StatusOr<std::vector<QueuedBackupRecord>> InstrumentedCatalog::QueuedBackups() {
  return Timed("QueuedBackups", [&] { return inner_->QueuedBackups(); });
}
absl::Status InstrumentedCatalog::RemoveQueued(const std::string& unit,
                                               dagvault::v1::BackupType type) {
  return Timed("RemoveQueued", [&] { return inner_->RemoveQueued(unit, type); });
}
absl::Status InstrumentedCatalog::ExpireBackups(const std::vector<BackupRecord>& backups,
                                                const std::string& why, absl::Time when) {
  auto result = Timed("ExpireBackups", [&] { return inner_->ExpireBackups(backups, why, when); });
  for (const BackupRecord& b : backups) Touched(b.unit);
  return result;
}
absl::StatusOr<std::vector<std::string>> InstrumentedCatalog::Expiring() {
  return Timed("Expiring", [&] { return inner_->Expiring(); });
}
absl::Status InstrumentedCatalog::ClearExpiring(const std::vector<std::string>& manifests) {
  auto result = Timed("ClearExpiring", [&] { return inner_->ClearExpiring(manifests); });
  TouchedEveryUnit();
  return result;
}
absl::Status InstrumentedCatalog::FenceWrites(int64_t epoch) {
  return Timed("FenceWrites", [&] { return inner_->FenceWrites(epoch); });
}
absl::Status InstrumentedCatalog::PutVerification(const dagvault::v1::RestoreVerification& v) {
  auto result = Timed("PutVerification", [&] { return inner_->PutVerification(v); });
  Touched(v.unit());
  return result;
}
absl::StatusOr<std::vector<dagvault::v1::RestoreVerification>> InstrumentedCatalog::Verifications(
    const std::string& unit, size_t limit) {
  return Timed("Verifications", [&] { return inner_->Verifications(unit, limit); });
}
absl::Status InstrumentedCatalog::AppendAudit(const dagvault::v1::AuditEntry& entry) {
  return Timed("AppendAudit", [&] { return inner_->AppendAudit(entry); });
}
absl::StatusOr<std::vector<dagvault::v1::AuditEntry>> InstrumentedCatalog::AuditEntries(
    size_t limit, const std::string& identity) {
  return Timed("AuditEntries", [&] { return inner_->AuditEntries(limit, identity); });
}

void InstrumentedCatalog::Touched(const std::string& unit) {
  std::lock_guard<std::mutex> l(versions_mu_);
  unit_versions_[unit] = ++last_version_;
  recent_writes_.emplace_back(last_version_, unit);
  if (recent_writes_.size() > recent_unit_writes_) recent_writes_.pop_front();
}

void InstrumentedCatalog::TouchedEveryUnit() {
  std::lock_guard<std::mutex> l(versions_mu_);
  every_unit_version_ = ++last_version_;
}

uint64_t InstrumentedCatalog::UnitVersion(const std::string& unit) const {
  std::lock_guard<std::mutex> l(versions_mu_);
  auto it = unit_versions_.find(unit);
  return std::max(every_unit_version_, it == unit_versions_.end() ? 0 : it->second);
}

uint64_t InstrumentedCatalog::UnitsVersion() const {
  std::lock_guard<std::mutex> l(versions_mu_);
  return last_version_;
}

std::optional<uint64_t> InstrumentedCatalog::UnitsWrittenSince(
    uint64_t since, std::vector<std::string>* units) const {
  std::lock_guard<std::mutex> l(versions_mu_);
  if (since >= last_version_) return last_version_;
  if (every_unit_version_ > since) return std::nullopt;
  // Every version after `since` is a write to one unit (not to every
  // unit, just checked); the list holds them all only if it still reaches
  // back to the first.
  if (recent_writes_.empty() || recent_writes_.front().first > since + 1) return std::nullopt;
  for (auto it = recent_writes_.rbegin(); it != recent_writes_.rend() && it->first > since; ++it) {
    units->push_back(it->second);
  }
  return last_version_;
}

}  // namespace dagvault::coordinator
