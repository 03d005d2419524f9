#include "mailstore/format/log_format.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "mailstore/format/codec.h"

namespace dagvault::mailstore {
namespace {

constexpr char kLogMagic[8] = {'M', 'S', 'T', 'O', 'R', 'L', 'O', 'G'};
constexpr uint32_t kMaxAttached = 64;

namespace hoff {
constexpr uint32_t kMagic = 0;
constexpr uint32_t kVersion = 8;
constexpr uint32_t kCrc = 12;
constexpr uint32_t kGeneration = 16;
constexpr uint32_t kFileSize = 20;
constexpr uint32_t kSignature = 24;  // 24 bytes
constexpr uint32_t kCreated = 48;
constexpr uint32_t kPrevLink = 56;  // 32 bytes
constexpr uint32_t kFlags = 88;
constexpr uint32_t kPageSize = 92;
constexpr uint32_t kDbCount = 96;
constexpr uint32_t kDbs = 104;  // kMaxAttached x 32 bytes
}  // namespace hoff

constexpr uint32_t kFlagCircular = 1;
constexpr uint32_t kFlagHasPrevLink = 2;

// Record header offsets.
namespace roff {
constexpr uint32_t kCrc = 0;
constexpr uint32_t kLength = 4;
constexpr uint32_t kGeneration = 8;
constexpr uint32_t kOffset = 12;
constexpr uint32_t kType = 16;
constexpr uint32_t kDbIndex = 17;
constexpr uint32_t kReserved = 18;  // to the end of the header: zero
}  // namespace roff

absl::Status BodyTooShort(const LogRecordView& r, uint32_t want) {
  return absl::DataLossError(absl::StrFormat("log record at %s (%s): body is %u bytes, expected %u",
                                             r.lsn.ToString(), RecordTypeName(r.type), r.body_size,
                                             want));
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

}  // namespace

const char* RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kPageImage:
      return "page-image";
    case RecordType::kPageDelta:
      return "page-delta";
    case RecordType::kCommit:
      return "commit";
    case RecordType::kSeal:
      return "seal";
    case RecordType::kTerm:
      return "term";
    case RecordType::kStart:
      return "start";
    case RecordType::kPageImageSparse:
      return "page-image-sparse";
  }
  return "invalid";
}

void StoreAttachedDatabase(uint8_t* p, const AttachedDatabase& db) {
  StoreU32(p, db.index);
  StoreU32(p + 4, 0);
  StoreSignature(p + 8, db.signature);
}

AttachedDatabase LoadAttachedDatabase(const uint8_t* p) {
  return AttachedDatabase{LoadU32(p), LoadSignature(p + 8)};
}

const AttachedDatabase* LogHeader::FindDatabase(uint32_t index) const {
  for (const auto& db : databases) {
    if (db.index == index) return &db;
  }
  return nullptr;
}

std::string EncodeLogHeader(const LogHeader& h) {
  std::string out(kLogHeaderSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  std::memcpy(p + hoff::kMagic, kLogMagic, 8);
  StoreU32(p + hoff::kVersion, h.format_version);
  StoreU32(p + hoff::kGeneration, h.generation);
  StoreU32(p + hoff::kFileSize, h.file_size);
  StoreSignature(p + hoff::kSignature, h.log_signature);
  StoreU64(p + hoff::kCreated, static_cast<uint64_t>(h.created_us));
  if (h.has_prev_link) std::memcpy(p + hoff::kPrevLink, h.prev_link.data(), 32);
  StoreU32(p + hoff::kFlags,
           (h.circular_logging ? kFlagCircular : 0) | (h.has_prev_link ? kFlagHasPrevLink : 0));
  StoreU32(p + hoff::kPageSize, h.page_size);
  const uint32_t count = static_cast<uint32_t>(std::min<size_t>(h.databases.size(), kMaxAttached));
  StoreU32(p + hoff::kDbCount, count);
  for (uint32_t i = 0; i < count; ++i) {
    StoreAttachedDatabase(p + hoff::kDbs + i * kAttachedDatabaseSize, h.databases[i]);
  }
  StoreU32(p + hoff::kCrc, Crc32c(p, kLogHeaderSize));
  return out;
}

absl::StatusOr<LogHeader> DecodeLogHeader(const uint8_t* data, size_t size) {
  if (size < kLogHeaderSize) {
    return absl::DataLossError(absl::StrFormat("log header: file is only %u bytes", size));
  }
  if (std::memcmp(data + hoff::kMagic, kLogMagic, 8) != 0) {
    return absl::DataLossError("log header: not a mailstore log file (bad magic)");
  }
  uint8_t copy[kLogHeaderSize];
  std::memcpy(copy, data, kLogHeaderSize);
  const uint32_t stored = LoadU32(copy + hoff::kCrc);
  StoreU32(copy + hoff::kCrc, 0);
  const uint32_t computed = Crc32c(copy, kLogHeaderSize);
  if (stored != computed) {
    return absl::DataLossError(absl::StrFormat(
        "log header: checksum mismatch: stored 0x%08x, computed 0x%08x", stored, computed));
  }
  LogHeader h;
  h.format_version = LoadU32(data + hoff::kVersion);
  if (h.format_version > kLogFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrFormat("log format version %u is newer than this build supports (%u)",
                        h.format_version, kLogFormatVersion));
  }
  h.generation = LoadU32(data + hoff::kGeneration);
  h.file_size = LoadU32(data + hoff::kFileSize);
  h.log_signature = LoadSignature(data + hoff::kSignature);
  h.created_us = static_cast<int64_t>(LoadU64(data + hoff::kCreated));
  const uint32_t flags = LoadU32(data + hoff::kFlags);
  h.circular_logging = (flags & kFlagCircular) != 0;
  h.has_prev_link = (flags & kFlagHasPrevLink) != 0;
  if (h.has_prev_link) std::memcpy(h.prev_link.data(), data + hoff::kPrevLink, 32);
  h.page_size = LoadU32(data + hoff::kPageSize);
  const uint32_t count = LoadU32(data + hoff::kDbCount);
  if (count > kMaxAttached) {
    return absl::DataLossError(absl::StrFormat("log header: %u attached databases", count));
  }
  for (uint32_t i = 0; i < count; ++i) {
    h.databases.push_back(LoadAttachedDatabase(data + hoff::kDbs + i * kAttachedDatabaseSize));
  }
  return h;
}

void AppendRecord(std::string* out, Lsn lsn, RecordType type, uint8_t db_index,
                  std::initializer_list<absl::Span<const uint8_t>> parts) {
  size_t body_size = 0;
  for (const auto& part : parts) body_size += part.size();
  const uint32_t space = RecordSpace(body_size);
  const size_t start = out->size();
  out->resize(start + space, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out->data() + start);
  StoreU32(p + roff::kLength, static_cast<uint32_t>(kRecordHeaderSize + body_size));
  StoreU32(p + roff::kGeneration, lsn.generation);
  StoreU32(p + roff::kOffset, lsn.offset);
  p[roff::kType] = static_cast<uint8_t>(type);
  p[roff::kDbIndex] = db_index;
  uint8_t* body = p + kRecordHeaderSize;
  for (const auto& part : parts) {
    if (!part.empty()) std::memcpy(body, part.data(), part.size());
    body += part.size();
  }
  StoreU32(p + roff::kCrc, Crc32c(p + 4, kRecordHeaderSize - 4 + body_size));
}

absl::StatusOr<LogRecordView> ParseRecordAt(const uint8_t* file, uint32_t file_size,
                                            Generation generation, uint32_t offset) {
  if (offset + kRecordHeaderSize > file_size) {
    return absl::DataLossError(absl::StrFormat("offset %u: no room for a record header", offset));
  }
  const uint8_t* p = file + offset;
  const uint32_t length = LoadU32(p + roff::kLength);
  if (length == 0 && AllZero(p, kRecordHeaderSize)) {
    return absl::OutOfRangeError(absl::StrFormat("offset %u: end of records (zeros)", offset));
  }
  if (length < kRecordHeaderSize || length > file_size - offset) {
    return absl::DataLossError(
        absl::StrFormat("offset %u: invalid record length %u", offset, length));
  }
  // With its padding too: the next record starts at an aligned offset
  // inside the file (a file whose size is not a multiple of 8 could end
  // mid-padding).
  if (RecordSpace(length - kRecordHeaderSize) > file_size - offset) {
    return absl::DataLossError(absl::StrFormat(
        "offset %u: record of length %u and its padding run past the end of the file", offset,
        length));
  }
  const uint32_t stored = LoadU32(p + roff::kCrc);
  const uint32_t computed = Crc32c(p + 4, length - 4);
  if (stored != computed) {
    return absl::DataLossError(
        absl::StrFormat("offset %u: record checksum mismatch: stored 0x%08x, computed 0x%08x",
                        offset, stored, computed));
  }
  if (LoadU32(p + roff::kGeneration) != generation || LoadU32(p + roff::kOffset) != offset) {
    return absl::DataLossError(
        absl::StrFormat("offset %u: record says it belongs at generation 0x%08X offset %u", offset,
                        LoadU32(p + roff::kGeneration), LoadU32(p + roff::kOffset)));
  }
  const uint8_t type = p[roff::kType];
  if (type < 1 || type > static_cast<uint8_t>(RecordType::kPageImageSparse)) {
    return absl::DataLossError(absl::StrFormat("offset %u: unknown record type %u", offset, type));
  }
  if (!AllZero(p + roff::kReserved, kRecordHeaderSize - roff::kReserved)) {
    return absl::DataLossError(
        absl::StrFormat("offset %u: non-zero bytes in the record header's reserved field", offset));
  }
  // The alignment padding is outside the checksum, so it must be zero:
  // then every byte of a log file is verified by something.
  const uint32_t space = RecordSpace(length - kRecordHeaderSize);
  for (uint32_t i = length; i < space; ++i) {
    if (p[i] != 0) {
      return absl::DataLossError(
          absl::StrFormat("offset %u: non-zero byte in the padding after the record (at offset %u)",
                          offset, offset + i));
    }
  }
  LogRecordView r;
  r.type = static_cast<RecordType>(type);
  r.db_index = p[roff::kDbIndex];
  r.lsn = Lsn{generation, offset};
  r.body = p + kRecordHeaderSize;
  r.body_size = length - kRecordHeaderSize;
  r.space = RecordSpace(r.body_size);
  return r;
}

void EncodePageImagePrefix(PageNo pgno, DbTime after, uint8_t out[kPageImagePrefixSize]) {
  StoreU32(out, pgno);
  StoreU32(out + 4, 0);
  StoreU64(out + 8, after);
}

void EncodePageDeltaPrefix(PageNo pgno, uint16_t ranges, DbTime before, DbTime after,
                           uint8_t out[kPageDeltaPrefixSize]) {
  StoreU32(out, pgno);
  StoreU16(out + 4, ranges);
  StoreU16(out + 6, 0);
  StoreU64(out + 8, before);
  StoreU64(out + 16, after);
}

std::string EncodeCommitBody(const CommitBody& body) {
  std::string out(24, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  StoreU64(p, body.txn_seq);
  StoreU64(p + 8, static_cast<uint64_t>(body.time_us));
  StoreU32(p + 16, body.record_count);
  return out;
}

std::string EncodeSealBody(const SealBody& body) {
  std::string out(16, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  StoreU32(p, body.record_count);
  StoreU64(p + 8, static_cast<uint64_t>(body.time_us));
  return out;
}

std::string EncodeTermBody(const TermBody& body) {
  std::string out(8, '\0');
  StoreU64(reinterpret_cast<uint8_t*>(out.data()), static_cast<uint64_t>(body.time_us));
  return out;
}

absl::StatusOr<PageImageBody> DecodePageImage(const LogRecordView& r, uint32_t page_size) {
  if (r.body_size != kPageImagePrefixSize + page_size) {
    return BodyTooShort(r, kPageImagePrefixSize + page_size);
  }
  return PageImageBody{LoadU32(r.body), LoadU64(r.body + 8), r.body + kPageImagePrefixSize};
}

absl::StatusOr<PageDeltaBody> DecodePageDelta(const LogRecordView& r, uint32_t page_size) {
  if (r.body_size < kPageDeltaPrefixSize) return BodyTooShort(r, kPageDeltaPrefixSize);
  PageDeltaBody d;
  d.pgno = LoadU32(r.body);
  d.range_count = LoadU16(r.body + 4);
  d.dbtime_before = LoadU64(r.body + 8);
  d.dbtime_after = LoadU64(r.body + 16);
  d.ranges = r.body + kPageDeltaPrefixSize;
  d.ranges_size = r.body_size - kPageDeltaPrefixSize;
  // Validate the range list fully here so that applying it cannot overrun.
  uint32_t pos = 0;
  for (uint16_t i = 0; i < d.range_count; ++i) {
    if (pos + 4 > d.ranges_size) {
      return absl::DataLossError(
          absl::StrFormat("log record at %s: delta range %u is truncated", r.lsn.ToString(), i));
    }
    const uint32_t off = LoadU16(d.ranges + pos);
    const uint32_t len = LoadU16(d.ranges + pos + 2);
    if (off + len > page_size || pos + 4 + len > d.ranges_size) {
      return absl::DataLossError(
          absl::StrFormat("log record at %s: delta range %u (offset %u, %u bytes) is out of bounds",
                          r.lsn.ToString(), i, off, len));
    }
    pos += 4 + len;
  }
  if (pos != d.ranges_size) {
    return absl::DataLossError(absl::StrFormat("log record at %s: %u stray bytes after the ranges",
                                               r.lsn.ToString(), d.ranges_size - pos));
  }
  return d;
}

absl::Status CheckPageRecordBody(const LogRecordView& r, uint32_t page_size) {
  if (r.type == RecordType::kPageImage) return DecodePageImage(r, page_size).status();
  return DecodePageDelta(r, page_size).status();
}

absl::Status ApplyPageDelta(const PageDeltaBody& delta, uint8_t* page, uint32_t page_size) {
  uint32_t pos = 0;
  for (uint16_t i = 0; i < delta.range_count; ++i) {
    const uint32_t off = LoadU16(delta.ranges + pos);
    const uint32_t len = LoadU16(delta.ranges + pos + 2);
    if (off + len > page_size) return absl::DataLossError("delta range out of bounds");
    std::memcpy(page + off, delta.ranges + pos + 4, len);
    pos += 4 + len;
  }
  return absl::OkStatus();
}

absl::StatusOr<CommitBody> DecodeCommit(const LogRecordView& r) {
  if (r.body_size != 24) return BodyTooShort(r, 24);
  return CommitBody{LoadU64(r.body), static_cast<int64_t>(LoadU64(r.body + 8)),
                    LoadU32(r.body + 16)};
}

absl::StatusOr<SealBody> DecodeSeal(const LogRecordView& r) {
  if (r.body_size != 16) return BodyTooShort(r, 16);
  return SealBody{LoadU32(r.body), static_cast<int64_t>(LoadU64(r.body + 8))};
}

absl::StatusOr<TermBody> DecodeTerm(const LogRecordView& r) {
  if (r.body_size != 8) return BodyTooShort(r, 8);
  return TermBody{static_cast<int64_t>(LoadU64(r.body))};
}

absl::StatusOr<LogFileScan> ScanLogFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  return ScanLogImage(path, std::move(data));
}

absl::StatusOr<LogFileScan> ScanLogImage(const std::string& path, std::string image) {
  LogFileScan scan;
  scan.path = path;
  scan.data = std::move(image);
  const auto* data = reinterpret_cast<const uint8_t*>(scan.data.data());
  const uint32_t size = static_cast<uint32_t>(scan.data.size());
  auto header = DecodeLogHeader(data, size);
  if (!header.ok()) return Annotate(header.status(), path);
  scan.header = *std::move(header);
  if (scan.header.file_size != size) {
    return absl::DataLossError(absl::StrFormat("%s: header says the file is %u bytes, it is %u",
                                               path, scan.header.file_size, size));
  }
  scan.file_hash = Sha256::Of(scan.data.data(), scan.data.size());

  uint32_t offset = kLogHeaderSize;
  while (offset < size) {
    auto record = ParseRecordAt(data, size, scan.header.generation, offset);
    if (!record.ok()) {
      if (record.status().code() != absl::StatusCode::kOutOfRange) {
        scan.tail_detail = std::string(record.status().message());
      }
      break;
    }
    scan.records.push_back(*record);
    offset += record->space;
    if (record->type == RecordType::kSeal) {
      scan.sealed = true;
      break;
    }
  }
  scan.valid_end = offset;
  if (!AllZero(data + offset, size - offset)) {
    scan.tail = LogFileScan::Tail::kTorn;
    if (scan.tail_detail.empty()) {
      scan.tail_detail = absl::StrFormat("offset %u: non-zero bytes after the last record", offset);
    }
    // A crash tears only the last write; a valid record beyond the damage
    // means the damage is in the middle of the stream.
    for (uint32_t probe = offset + kRecordAlignment; probe + kRecordHeaderSize <= size;
         probe += kRecordAlignment) {
      if (LoadU32(data + probe + roff::kOffset) != probe) continue;
      if (ParseRecordAt(data, size, scan.header.generation, probe).ok()) {
        scan.tail = LogFileScan::Tail::kCorruptMidstream;
        absl::StrAppend(&scan.tail_detail, "; a valid record follows at offset ", probe);
        break;
      }
    }
  }
  return scan;
}

absl::Status CheckClosedLog(const LogFileScan& scan) {
  if (scan.sealed) {
    auto seal = DecodeSeal(scan.records.back());
    if (!seal.ok()) return Annotate(seal.status(), scan.path);
    if (seal->record_count != scan.records.size() - 1) {
      return absl::DataLossError(
          absl::StrFormat("%s: the seal counts %u records, the file holds %u", scan.path,
                          seal->record_count, scan.records.size() - 1));
    }
  }
  if (!scan.sealed) {
    return absl::DataLossError(absl::StrCat(
        scan.path, ": closed log is not sealed: ",
        scan.tail_detail.empty() ? absl::StrFormat("records end at offset %u", scan.valid_end)
                                 : scan.tail_detail));
  }
  if (scan.tail != LogFileScan::Tail::kZero) {
    return absl::DataLossError(
        absl::StrCat(scan.path, ": bytes after the seal: ", scan.tail_detail));
  }
  return absl::OkStatus();
}

absl::Status CheckOpenLog(const LogFileScan& scan) {
  if (scan.tail == LogFileScan::Tail::kCorruptMidstream) {
    return absl::DataLossError(absl::StrCat(scan.path, ": ", scan.tail_detail));
  }
  return absl::OkStatus();
}

std::string LogFileName(const std::string& prefix, Generation generation) {
  return absl::StrCat(prefix, GenerationHex(generation), ".log");
}
std::string CurrentLogName(const std::string& prefix) { return absl::StrCat(prefix, ".log"); }
std::string TempLogName(const std::string& prefix) { return absl::StrCat(prefix, "tmp.log"); }
std::string CheckpointFileName(const std::string& prefix) { return absl::StrCat(prefix, ".chk"); }

std::optional<Generation> ParseLogFileName(const std::string& prefix, const std::string& name) {
  if (name.size() != prefix.size() + 12 || !absl::StartsWith(name, prefix) ||
      !absl::EndsWith(name, ".log")) {
    return std::nullopt;
  }
  Generation gen = 0;
  for (size_t i = prefix.size(); i < prefix.size() + 8; ++i) {
    const char c = name[i];
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else {
      return std::nullopt;
    }
    gen = gen * 16 + static_cast<Generation>(v);
  }
  return gen;
}

std::optional<Generation> LogStreamListing::FirstGap() const {
  for (size_t i = 1; i < closed.size(); ++i) {
    if (closed[i].first != closed[i - 1].first + 1) return closed[i - 1].first + 1;
  }
  return std::nullopt;
}

absl::StatusOr<LogStreamListing> ListLogStream(const std::string& dir, const std::string& prefix) {
  ASSIGN_OR_RETURN(auto names, ListDirectory(dir));
  LogStreamListing listing;
  for (const auto& name : names) {
    if (name == CurrentLogName(prefix)) {
      listing.current = JoinPath(dir, name);
    } else if (name == TempLogName(prefix)) {
      listing.temp = JoinPath(dir, name);
    } else if (auto gen = ParseLogFileName(prefix, name)) {
      listing.closed.emplace_back(*gen, JoinPath(dir, name));
    }
  }
  std::sort(listing.closed.begin(), listing.closed.end());
  return listing;
}

absl::StatusOr<std::vector<std::string>> FindLogPrefixes(const std::string& dir) {
  ASSIGN_OR_RETURN(auto names, ListDirectory(dir));
  std::set<std::string> prefixes;
  for (const auto& name : names) {
    if (!absl::EndsWith(name, ".log") || name.size() < 5) continue;
    std::string stem = name.substr(0, name.size() - 4);
    if (stem.size() > 8) {
      std::string candidate = stem.substr(0, stem.size() - 8);
      if (ParseLogFileName(candidate, name)) {
        prefixes.insert(candidate);
        continue;
      }
    }
    if (!absl::EndsWith(stem, "tmp")) prefixes.insert(stem);
  }
  return std::vector<std::string>(prefixes.begin(), prefixes.end());
}

}  // namespace dagvault::mailstore
