// Archiving closed log generations as they close (issue 19 §1): one
// segment (a LOG_ARCHIVE manifest) of the generations a copy of the unit
// holds, read straight from its log folder (closed logs never change until
// truncated), verified like a backup's logs and stored in the repository.
//
// A segment continues the unit's newest chain: its first log must link to
// the last log of the chain's newest piece (a Full, an Incremental or an
// earlier segment), every log carries the chain's log signature, and the
// generations are contiguous. Anything else fails the segment, naming the
// file and generation, and nothing is written: the archive never holds a
// log it could not restore. Archiving takes no writer session and
// truncates nothing, so it runs beside backups.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/repository.pb.h"
#include "node-agent/verify/unit_verifier.h"
#include "repository/backup.h"
#include "repository/repository.h"

namespace dagvault::agent {

struct LogArchiveSpec {
  std::string unit;
  std::string node;         // where the logs are read
  std::string source_copy;  // "active" or "passive"
  // The unit's log folder and file prefix, as the writer's metadata says
  // (UnitMetadata.log_dir, log_prefix): generation g is
  // <log_dir>/<prefix><g as 8 hex digits>.log.
  std::string log_dir;
  std::string log_prefix;
  uint32_t low_generation = 0;  // the first to archive
  uint32_t high_generation = 0;
};

// What a segment continues: the newest chain's newest piece, and what the
// new logs must match.
struct ArchiveBase {
  std::string manifest;
  uint32_t high_generation = 0;  // the next segment starts after it
  std::string log_signature;
  std::vector<std::string> database_signatures;
  std::string high_log_sha256;                 // 32 bytes
  std::map<uint32_t, std::string> log_sha256;  // the piece's logs
  // The newest chain's latest archive segments (summaries), at most 16:
  // reported again after a restart, in case one was written but never
  // acknowledged (cataloguing is idempotent).
  std::vector<dagvault::v1::Manifest> recent_segments;
};

// Where a copy keeps generation g: <log_dir>/<prefix><g as 8 hex digits>.log.
std::string LogFilePath(const std::string& log_dir, const std::string& log_prefix,
                        uint32_t generation);

// What a segment after `piece` (a Full, an Incremental or a segment) must
// continue; DataLoss when the piece lacks its high generation's log.
absl::StatusOr<ArchiveBase> ArchiveBaseOf(const dagvault::v1::Manifest& piece);

// The newest chain of `unit` in the repository, with its archived logs:
// NotFound without a Full.
absl::StatusOr<ArchiveBase> ArchiveBaseFromRepository(const repository::Repository& repo,
                                                      const std::string& unit);

struct LogArchiveResult {
  dagvault::v1::Manifest summary;  // repository::ChainSummaryOf
  VerifySummary verified;
};

// Archives generations low..high of the spec after `base`; low must be the
// generation after the base's high (or within it: the overlap must be the
// same logs).
absl::StatusOr<LogArchiveResult> ArchiveLogs(const repository::Repository& repo,
                                             const LogArchiveSpec& spec, const ArchiveBase& base,
                                             repository::BackupOptions options = {});

}  // namespace dagvault::agent
