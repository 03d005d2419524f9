// The .edb database header, kept in two shadow copies on pages 0 and 1.
//
// The header is never logged: it is written in place, page 0 first, then
// page 1, each followed by fdatasync, so a torn write damages at most one
// copy. Readers take the valid copy with the higher update count.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/file_util.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

constexpr uint32_t kDbFormatVersion = 1;
constexpr size_t kMaxDbNameLength = 63;

// One "previous backup" field: the generation range the backup covered.
struct BackupRecord {
  Generation low = 0;
  Generation high = 0;
  int64_t time_us = 0;
  bool snapshot = false;
  bool operator==(const BackupRecord&) const = default;
};

struct DbHeader {
  uint32_t format_version = kDbFormatVersion;
  uint32_t page_size = kDefaultPageSize;
  Signature db_signature;
  Signature log_signature;
  DbState state = DbState::kJustCreated;
  // Position of this database within its unit's log stream (0 in database
  // mode; 0..n-1 in storage-group mode). Log records name databases by it.
  uint32_t db_index = 0;
  std::string db_name;
  // The logs needed to bring the file to a consistent state. While the
  // database is attached, min follows the checkpoint and max is raised before
  // any page holding changes from a newer generation is written.
  Generation log_required_min = 0;
  Generation log_required_max = 0;
  // The newest generation that was durable in the log when the header was
  // last written.
  Generation log_committed = 0;
  // Where the stream stood at the last clean shutdown (or at creation).
  Lsn consistent_lsn;
  int64_t consistent_time_us = 0;
  Lsn last_attach_lsn;
  int64_t last_attach_time_us = 0;
  // A reservation: no page in the file has a larger dbtime.
  DbTime dbtime = 0;
  // While attached: every change logged before this position is in this
  // file. Written before the checkpoint file at every checkpoint, so soft
  // recovery starts each database at its own position, right even for a
  // file restored from another point in time.
  Lsn checkpoint;
  // Bumped on every header write; picks the newer shadow copy.
  uint64_t update_count = 0;
  BackupRecord previous_full;
  BackupRecord previous_incremental;
  BackupRecord previous_differential;
  BackupRecord previous_copy;

  bool operator==(const DbHeader&) const = default;
};

// Marks a header CleanShutdown and consistent at `at`: no logs required,
// its checkpoint and consistent position both at `at`, log_committed at
// least `at`'s generation. A clean shutdown, the end of a recovery, and a
// passive copy closed for activation all end this way.
void MarkConsistent(DbHeader& h, Lsn at, int64_t time_us);

// The names of the fields in which two headers differ, e.g.
// {"log_required_min", "previous_full"}.
std::vector<std::string> DbHeaderFieldDiffs(const DbHeader& a, const DbHeader& b);

// Fills a whole page (page_size bytes) with the header as shadow copy
// `which` (0 or 1), checksum included.
void EncodeDbHeader(const DbHeader& header, PageNo which, uint8_t* page);

// Decodes and verifies one shadow copy.
absl::StatusOr<DbHeader> DecodeDbHeader(const uint8_t* page, uint32_t page_size, PageNo which);

struct DbHeaderRead {
  DbHeader header;
  // Per shadow copy: OK, or what is wrong with it.
  std::array<absl::Status, 2> copy_status;
  std::string ShadowSummary() const;
};

// Reads both shadow copies from an open .edb file and returns the newer
// valid one. Fails, naming the file and both problems, when neither is valid.
absl::StatusOr<DbHeaderRead> ReadDbHeader(const File& file);
// The same from the first `got` bytes of a file of `file_size` bytes (at
// most 2 x kMaxPageSize are looked at); `path` names it in errors.
absl::StatusOr<DbHeaderRead> DecodeDbHeaderCopies(const uint8_t* head, size_t got,
                                                  uint64_t file_size, const std::string& path);
absl::StatusOr<DbHeaderRead> ReadDbHeaderFromPath(const std::string& path);

// Writes both shadow copies (bumping update_count first), each followed by
// fdatasync.
absl::Status WriteDbHeader(File& file, DbHeader& header);

}  // namespace dagvault::mailstore
