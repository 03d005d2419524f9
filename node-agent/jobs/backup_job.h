// One backup job on this node (DESIGN.md §5): the writer session, the
// snapshot, the verified stream into the repository, and an honest result.
//
//   BeginBackup → CreateSnapshot (Freeze, snapshot, Thaw) → repository
//   Backup with the UnitVerifier inline → manifest durable → BackupComplete
//   with the frozen generation range.
//
// Anything that fails, at any step, ends the writer session with failure,
// so nothing is truncated and no manifest is written; the error names the
// file, page or generation at fault. The snapshot folders are removed
// whatever happens.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/agent.pb.h"
#include "node-agent/jobs/job_progress.h"
#include "node-agent/shadow/shadow_session.h"
#include "node-agent/verify/unit_verifier.h"
#include "repository/backup.h"
#include "repository/repository.h"

namespace dagvault::agent {

struct BackupJobResult {
  std::string job;
  std::string unit;
  dagvault::v1::BackupType type = dagvault::v1::FULL;
  std::string manifest;       // its id in the repository
  std::string base_manifest;  // whose block maps the .edb files were compared with
  std::string node;
  std::string writer_instance;
  uint32_t low_generation = 0;
  uint32_t high_generation = 0;
  std::string snapshot_provider;  // which provider took the files
  absl::Duration freeze_window;   // Freeze to Thaw, as the agent measured it
  absl::Duration writer_frozen_for;
  absl::Duration transfer;      // read, verify and store
  absl::Duration transfer_cpu;  // the process's CPU time during the transfer
  absl::Duration elapsed;       // the whole job
  uint64_t logical_bytes = 0;
  uint64_t new_bytes = 0;
  uint64_t stored_bytes = 0;
  VerifySummary verified;
  std::vector<uint32_t> truncated;  // generations the writer truncated on this node
  std::vector<std::string> warnings;
  // The manifest without chunk lists and block maps (repository/chain.h),
  // for the coordinator's catalog.
  dagvault::v1::Manifest summary;
};

// The result as the agent reports it to the coordinator, without the
// summary (agent.proto BackupJobResult).
dagvault::v1::BackupJobResult ResultMessageOf(const BackupJobResult& r);

// A backup whose manifest is verified and durable but whose BackupComplete
// was not acknowledged fails with this payload: the manifest's chain
// summary (a serialized dagvault.v1.Manifest). The writer may have recorded
// it and truncated logs after it before the answer was lost, so the
// backup must be catalogued all the same, never orphaned or removed.
inline constexpr char kUnacknowledgedBackupPayload[] =
    "type.dagvault.dev/unacknowledged-verified-backup";
// The summary such a failure carries, if it does.
std::optional<dagvault::v1::Manifest> UnacknowledgedBackupOf(const absl::Status& status);

struct BackupJobOptions {
  repository::BackupOptions repository;  // workers, zstd level; observer and control are set
  absl::Duration progress_every = absl::Milliseconds(500);
  // Called with the manifest's chain summary when everything is verified,
  // just before the manifest is written; an error stops the commit. The
  // agent keeps it on disk so that, if it dies before the backup's result
  // is delivered, the backup is still catalogued, never orphaned.
  std::function<absl::Status(const dagvault::v1::Manifest& summary)> before_commit;
};

// Runs the job. An Incremental or Differential needs spec.base_high_generation
// and spec.base_high_log_sha256 (FillBaseFromRepository finds them in
// local mode). `control` may be null; setting its cancel flag stops the job
// within a segment's time, and the job then fails as cancelled.
absl::StatusOr<BackupJobResult> RunBackupJob(ShadowSession& session, SnapshotProvider& provider,
                                             const repository::Repository& repo,
                                             const BackupJobSpec& spec,
                                             repository::TransferControl* control,
                                             const ProgressFn& progress,
                                             const BackupJobOptions& options = {});

// The folders a snapshot of `unit` may sit in: its system and log folders
// and every file's folder.
std::vector<std::string> SnapshotDirsOf(const dagvault::v1::UnitMetadata& unit);

// At agent start: removes the snapshot folders that crashed jobs left
// beside every unit's files on this node (a running job's are kept: see
// RemoveLeftoverSnapshots). Returns the folders removed.
absl::StatusOr<std::vector<std::string>> SweepLeftoverSnapshots(ShadowSession& session);

// Local mode: the backup an Incremental or Differential of spec->unit
// follows, from the repository's manifests (repository/chain.h).
absl::Status FillBaseFromRepository(const repository::Repository& repo, BackupJobSpec* spec);

// The name a frozen file gets in the manifest: the databases and the
// checkpoint by their file names, the logs under logs/.
std::string ManifestNameFor(const dagvault::v1::FreezeResponse::File& file);

}  // namespace dagvault::agent
