// Transaction log files: <prefix><generation as 8 upper-case hex>.log when
// closed, <prefix>.log while open. Every file has the same fixed size.
//
// Layout: a 4 KiB header, then records at 8-byte aligned offsets, then zeros.
// Each record carries its own generation and offset, so a stale or misplaced
// record never validates. A closed log ends with a Seal record. Each header
// holds the SHA-256 of the whole previous log file (its "link hash"), so the
// generations form a hash chain: two streams that diverged after a lossy
// failover disagree from the generation where they split. See docs/formats.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/evp.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

constexpr uint32_t kLogFormatVersion = 1;
constexpr uint32_t kLogHeaderSize = 4096;
constexpr uint32_t kRecordHeaderSize = 24;
constexpr uint32_t kRecordAlignment = 8;

enum class RecordType : uint8_t {
  // A whole page after a change: for new pages and heavily changed ones.
  kPageImage = 1,
  // Changed byte ranges of one page, applied only if the page's dbtime still
  // equals dbtime_before.
  kPageDelta = 2,
  // Ends a transaction; its records are replayed only if this one is present.
  kCommit = 3,
  // Last record of a closed log file.
  kSeal = 4,
  // Clean shutdown: every database was flushed and marked consistent here.
  kTerm = 5,
  // First record of every session (each open starts a new generation).
  // Records of a transaction that never committed before it are void.
  kStart = 6,
  // A new page as its non-zero byte ranges over an all-zero page: the body
  // has the PageDelta layout, with dbtime_before 0. Applied like an image.
  kPageImageSparse = 7,
};
const char* RecordTypeName(RecordType type);

struct AttachedDatabase {
  uint32_t index = 0;
  Signature signature;
  bool operator==(const AttachedDatabase&) const = default;
};

// On disk: index u32, 4 zero bytes, signature (32 bytes). Used by the log
// header and the checkpoint.
constexpr uint32_t kAttachedDatabaseSize = 32;
void StoreAttachedDatabase(uint8_t* p, const AttachedDatabase& db);
AttachedDatabase LoadAttachedDatabase(const uint8_t* p);

struct LogHeader {
  uint32_t format_version = kLogFormatVersion;
  Generation generation = 0;
  uint32_t file_size = 0;
  Signature log_signature;
  int64_t created_us = 0;
  // SHA-256 of the whole previous generation's file. Absent for the first
  // generation of a stream.
  bool has_prev_link = false;
  Sha256Digest prev_link{};
  bool circular_logging = false;
  uint32_t page_size = 0;
  // The databases this stream writes to, with their signatures, as ESE's
  // attach records do. Recovery refuses a database whose signature differs.
  std::vector<AttachedDatabase> databases;

  const AttachedDatabase* FindDatabase(uint32_t index) const;
};

// Exactly kLogHeaderSize bytes.
std::string EncodeLogHeader(const LogHeader& header);
absl::StatusOr<LogHeader> DecodeLogHeader(const uint8_t* data, size_t size);

inline uint32_t RecordSpace(size_t body_size) {
  return static_cast<uint32_t>((kRecordHeaderSize + body_size + kRecordAlignment - 1) &
                               ~size_t{kRecordAlignment - 1});
}

// Appends one record, positioned at `lsn`, to `out` (padding included). The
// body is the concatenation of `parts`.
void AppendRecord(std::string* out, Lsn lsn, RecordType type, uint8_t db_index,
                  std::initializer_list<absl::Span<const uint8_t>> parts);

struct LogRecordView {
  RecordType type;
  uint8_t db_index;
  Lsn lsn;
  const uint8_t* body;
  uint32_t body_size;
  uint32_t space;  // bytes the record occupies, padding included
};

// Parses the record at `offset` of a log file image. The error says what is
// wrong (checksum, length, position fields, type).
absl::StatusOr<LogRecordView> ParseRecordAt(const uint8_t* file, uint32_t file_size,
                                            Generation generation, uint32_t offset);

// Bodies of the record types.
struct PageImageBody {
  PageNo pgno;
  DbTime dbtime_after;
  const uint8_t* page;  // page_size bytes
};
struct PageDeltaBody {
  PageNo pgno;
  DbTime dbtime_before;
  DbTime dbtime_after;
  uint16_t range_count;
  const uint8_t* ranges;  // range_count x {u16 offset, u16 length, bytes}
  uint32_t ranges_size;
};
struct CommitBody {
  uint64_t txn_seq;
  int64_t time_us;
  uint32_t record_count;  // records of the transaction before this one
};
struct SealBody {
  uint32_t record_count;  // records in the file before the seal
  int64_t time_us;
};
// Term and Start share this body.
struct TermBody {
  int64_t time_us;
};

constexpr uint32_t kPageImagePrefixSize = 16;
constexpr uint32_t kPageDeltaPrefixSize = 24;

void EncodePageImagePrefix(PageNo pgno, DbTime after, uint8_t out[kPageImagePrefixSize]);
void EncodePageDeltaPrefix(PageNo pgno, uint16_t ranges, DbTime before, DbTime after,
                           uint8_t out[kPageDeltaPrefixSize]);
std::string EncodeCommitBody(const CommitBody& body);
std::string EncodeSealBody(const SealBody& body);
std::string EncodeTermBody(const TermBody& body);

absl::StatusOr<PageImageBody> DecodePageImage(const LogRecordView& r, uint32_t page_size);
// Decodes a PageDelta or a PageImageSparse (same layout).
absl::StatusOr<PageDeltaBody> DecodePageDelta(const LogRecordView& r, uint32_t page_size);
// Decodes any page record far enough to check it.
absl::Status CheckPageRecordBody(const LogRecordView& r, uint32_t page_size);
absl::StatusOr<CommitBody> DecodeCommit(const LogRecordView& r);
absl::StatusOr<SealBody> DecodeSeal(const LogRecordView& r);
absl::StatusOr<TermBody> DecodeTerm(const LogRecordView& r);

// True for the record types that change one page.
inline bool IsPageRecord(RecordType t) {
  return t == RecordType::kPageImage || t == RecordType::kPageDelta ||
         t == RecordType::kPageImageSparse;
}

// Applies a delta's ranges to a page image; fails if a range falls outside.
absl::Status ApplyPageDelta(const PageDeltaBody& delta, uint8_t* page, uint32_t page_size);

// Everything known about one log file after reading it end to end.
struct LogFileScan {
  enum class Tail {
    kZero,              // nothing but zeros after the last valid record
    kTorn,              // garbage, but no valid record after it (crash mid-write)
    kCorruptMidstream,  // an invalid record with valid ones after it
  };

  std::string path;
  LogHeader header;
  std::string data;  // the whole file
  std::vector<LogRecordView> records;
  uint32_t valid_end = kLogHeaderSize;
  bool sealed = false;
  Tail tail = Tail::kZero;
  std::string tail_detail;
  Sha256Digest file_hash{};
};

// Reads and scans a log file. Fails only when the file cannot be read or its
// header is invalid; record-level problems are described in the result.
absl::StatusOr<LogFileScan> ScanLogFile(const std::string& path);
// The same for a file's bytes already in memory; `path` names it in errors.
absl::StatusOr<LogFileScan> ScanLogImage(const std::string& path, std::string image);

// For a closed log: Ok, or DataLoss naming the file and offset of the first
// problem (unsealed, damaged record, bytes after the seal).
absl::Status CheckClosedLog(const LogFileScan& scan);
// For the open log: Ok for a zero or torn tail, DataLoss when valid records
// follow a damaged one (that is corruption, not a crash).
absl::Status CheckOpenLog(const LogFileScan& scan);

// File names.
std::string LogFileName(const std::string& prefix, Generation generation);
std::string CurrentLogName(const std::string& prefix);
std::string TempLogName(const std::string& prefix);
std::string CheckpointFileName(const std::string& prefix);
// Returns the generation for "<prefix>XXXXXXXX.log", nullopt otherwise.
std::optional<Generation> ParseLogFileName(const std::string& prefix, const std::string& name);

struct LogStreamListing {
  std::vector<std::pair<Generation, std::string>> closed;  // sorted by generation; full paths
  std::optional<std::string> current;                      // <prefix>.log, if present
  std::optional<std::string> temp;                         // <prefix>tmp.log, if present

  Generation LowestClosed() const { return closed.empty() ? 0 : closed.front().first; }
  Generation HighestClosed() const { return closed.empty() ? 0 : closed.back().first; }
  // The first generation missing between the lowest and highest closed
  // logs, or nullopt when they are contiguous.
  std::optional<Generation> FirstGap() const;
};

absl::StatusOr<LogStreamListing> ListLogStream(const std::string& dir, const std::string& prefix);

// Distinct log prefixes present in a directory (for tools given no --prefix).
absl::StatusOr<std::vector<std::string>> FindLogPrefixes(const std::string& dir);

}  // namespace dagvault::mailstore
