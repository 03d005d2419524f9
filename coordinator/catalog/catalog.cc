#include "coordinator/catalog/catalog.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "repository/chain.h"

namespace dagvault::coordinator {
namespace {

constexpr std::array<const char*, 10> kStateNames = {
    "queued",    "assigned",   "preparing", "frozen", "transferring",
    "verifying", "completing", "succeeded", "failed", "cancelled"};

}  // namespace

std::string JobStateName(JobState state) { return kStateNames[static_cast<size_t>(state)]; }

absl::StatusOr<JobState> ParseJobState(absl::string_view name) {
  for (size_t i = 0; i < kStateNames.size(); ++i) {
    if (name == kStateNames[i]) return static_cast<JobState>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" is not a job state"));
}

dagvault::v1::JobState ToProto(JobState state) {
  // The enums list the same states in the same order, after unspecified.
  return static_cast<dagvault::v1::JobState>(static_cast<int>(state) + 1);
}

JobState FromProto(dagvault::v1::JobState state) {
  const int n = static_cast<int>(state);
  if (n < 1 || n > static_cast<int>(kStateNames.size())) return JobState::kFailed;
  return static_cast<JobState>(n - 1);
}

dagvault::v1::JobKind JobKindOf(const std::string& kind) {
  if (kind == "backup") return dagvault::v1::JOB_BACKUP;
  if (kind == "restore") return dagvault::v1::JOB_RESTORE;
  return dagvault::v1::JOB_KIND_UNSPECIFIED;
}

bool IsFinal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

BackupRecord BackupRecordOf(const dagvault::v1::Manifest& m) {
  BackupRecord b;
  b.manifest = m.id();
  b.unit = m.unit();
  b.type = m.type();
  b.source_node = m.source_node();
  b.writer_instance = m.writer_instance();
  b.low_generation = m.low_generation();
  b.high_generation = m.high_generation();
  b.log_signature = m.log_signature();
  b.database_signatures.assign(m.database_signatures().begin(), m.database_signatures().end());
  b.logical_bytes = m.logical_bytes();
  b.new_bytes = m.new_bytes();
  b.stored_bytes = m.stored_bytes();
  b.started = absl::FromUnixMicros(m.started_us());
  b.finished = absl::FromUnixMicros(m.finished_us());
  const auto label = m.labels().find("verified");
  b.verified = label != m.labels().end();
  if (const auto job = m.labels().find("job"); job != m.labels().end()) b.job = job->second;
  b.chain_summary = repository::ChainSummaryOf(m);
  return b;
}

PolicyReader ReadPoliciesEachTime(Catalog* catalog) {
  return [catalog]() -> absl::StatusOr<std::shared_ptr<const std::vector<dagvault::v1::Policy>>> {
    auto policies = catalog->Policies();
    if (!policies.ok()) return policies.status();
    return std::make_shared<const std::vector<dagvault::v1::Policy>>(std::move(*policies));
  };
}

}  // namespace dagvault::coordinator
