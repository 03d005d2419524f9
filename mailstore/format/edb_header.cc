#include "mailstore/format/edb_header.h"

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/fault_injection.h"
#include "common/status_macros.h"
#include "mailstore/format/codec.h"
#include "mailstore/format/page.h"

namespace dagvault::mailstore {
namespace {

constexpr char kDbMagic[8] = {'M', 'S', 'T', 'O', 'R', 'E', 'D', 'B'};

// Byte offsets within a header page (after the 32-byte page header).
namespace off {
constexpr uint32_t kMagic = 32;
constexpr uint32_t kVersion = 40;
constexpr uint32_t kPageSize = 44;
constexpr uint32_t kDbSig = 48;
constexpr uint32_t kLogSig = 72;
constexpr uint32_t kState = 96;
constexpr uint32_t kDbIndex = 100;
constexpr uint32_t kLogMin = 104;
constexpr uint32_t kLogMax = 108;
constexpr uint32_t kLogCommitted = 112;
constexpr uint32_t kConsistentLsn = 120;
constexpr uint32_t kConsistentTime = 128;
constexpr uint32_t kAttachLsn = 136;
constexpr uint32_t kAttachTime = 144;
constexpr uint32_t kDbTime = 152;
constexpr uint32_t kUpdateCount = 160;
constexpr uint32_t kBackups = 168;  // 4 x 24 bytes: full, incremental, differential, copy
constexpr uint32_t kBackupSize = 24;
constexpr uint32_t kName = 264;  // 64 bytes, NUL-padded
constexpr uint32_t kCheckpoint = 328;
constexpr uint32_t kEnd = 336;
}  // namespace off

void PutBackup(uint8_t* p, const BackupRecord& b) {
  StoreU32(p, b.low);
  StoreU32(p + 4, b.high);
  StoreU64(p + 8, static_cast<uint64_t>(b.time_us));
  p[16] = b.snapshot ? 1 : 0;
}

BackupRecord GetBackup(const uint8_t* p) {
  return BackupRecord{LoadU32(p), LoadU32(p + 4), static_cast<int64_t>(LoadU64(p + 8)), p[16] != 0};
}

}  // namespace

void EncodeDbHeader(const DbHeader& h, PageNo which, uint8_t* page) {
  InitPage(page, h.page_size, which, PageType::kDbHeader);
  SetPageDbTime(page, h.dbtime);
  std::memcpy(page + off::kMagic, kDbMagic, 8);
  StoreU32(page + off::kVersion, h.format_version);
  StoreU32(page + off::kPageSize, h.page_size);
  StoreSignature(page + off::kDbSig, h.db_signature);
  StoreSignature(page + off::kLogSig, h.log_signature);
  StoreU32(page + off::kState, static_cast<uint32_t>(h.state));
  StoreU32(page + off::kDbIndex, h.db_index);
  StoreU32(page + off::kLogMin, h.log_required_min);
  StoreU32(page + off::kLogMax, h.log_required_max);
  StoreU32(page + off::kLogCommitted, h.log_committed);
  StoreU64(page + off::kConsistentLsn, h.consistent_lsn.Pack());
  StoreU64(page + off::kConsistentTime, static_cast<uint64_t>(h.consistent_time_us));
  StoreU64(page + off::kAttachLsn, h.last_attach_lsn.Pack());
  StoreU64(page + off::kAttachTime, static_cast<uint64_t>(h.last_attach_time_us));
  StoreU64(page + off::kDbTime, h.dbtime);
  StoreU64(page + off::kUpdateCount, h.update_count);
  const BackupRecord* backups[] = {&h.previous_full, &h.previous_incremental,
                                   &h.previous_differential, &h.previous_copy};
  for (int i = 0; i < 4; ++i) PutBackup(page + off::kBackups + i * off::kBackupSize, *backups[i]);
  std::memcpy(page + off::kName, h.db_name.data(), std::min(h.db_name.size(), kMaxDbNameLength));
  StoreU64(page + off::kCheckpoint, h.checkpoint.Pack());
  SealPage(page, h.page_size);
}

namespace {

// Reads the fields without any checks (used to describe a damaged copy).
DbHeader DecodeFieldsUnchecked(const uint8_t* page) {
  DbHeader h;
  h.format_version = LoadU32(page + off::kVersion);
  h.page_size = LoadU32(page + off::kPageSize);
  h.db_signature = LoadSignature(page + off::kDbSig);
  h.log_signature = LoadSignature(page + off::kLogSig);
  h.state = static_cast<DbState>(LoadU32(page + off::kState));
  h.db_index = LoadU32(page + off::kDbIndex);
  h.log_required_min = LoadU32(page + off::kLogMin);
  h.log_required_max = LoadU32(page + off::kLogMax);
  h.log_committed = LoadU32(page + off::kLogCommitted);
  h.consistent_lsn = Lsn::Unpack(LoadU64(page + off::kConsistentLsn));
  h.consistent_time_us = static_cast<int64_t>(LoadU64(page + off::kConsistentTime));
  h.last_attach_lsn = Lsn::Unpack(LoadU64(page + off::kAttachLsn));
  h.last_attach_time_us = static_cast<int64_t>(LoadU64(page + off::kAttachTime));
  h.dbtime = LoadU64(page + off::kDbTime);
  h.update_count = LoadU64(page + off::kUpdateCount);
  BackupRecord* backups[] = {&h.previous_full, &h.previous_incremental, &h.previous_differential,
                             &h.previous_copy};
  for (int i = 0; i < 4; ++i) *backups[i] = GetBackup(page + off::kBackups + i * off::kBackupSize);
  const char* name = reinterpret_cast<const char*>(page + off::kName);
  h.db_name.assign(name, strnlen(name, kMaxDbNameLength));
  h.checkpoint = Lsn::Unpack(LoadU64(page + off::kCheckpoint));
  return h;
}

}  // namespace

std::vector<std::string> DbHeaderFieldDiffs(const DbHeader& a, const DbHeader& b) {
  std::vector<std::string> out;
  auto check = [&](bool same, const char* name) {
    if (!same) out.push_back(name);
  };
  check(a.format_version == b.format_version, "format_version");
  check(a.page_size == b.page_size, "page_size");
  check(a.db_signature == b.db_signature, "db_signature");
  check(a.log_signature == b.log_signature, "log_signature");
  check(a.state == b.state, "state");
  check(a.db_index == b.db_index, "db_index");
  check(a.db_name == b.db_name, "db_name");
  check(a.log_required_min == b.log_required_min, "log_required_min");
  check(a.log_required_max == b.log_required_max, "log_required_max");
  check(a.log_committed == b.log_committed, "log_committed");
  check(a.consistent_lsn == b.consistent_lsn, "consistent_position");
  check(a.consistent_time_us == b.consistent_time_us, "consistent_time");
  check(a.last_attach_lsn == b.last_attach_lsn, "last_attach_position");
  check(a.last_attach_time_us == b.last_attach_time_us, "last_attach_time");
  check(a.dbtime == b.dbtime, "dbtime");
  check(a.update_count == b.update_count, "update_count");
  check(a.previous_full == b.previous_full, "previous_full");
  check(a.previous_incremental == b.previous_incremental, "previous_incremental");
  check(a.previous_differential == b.previous_differential, "previous_differential");
  check(a.previous_copy == b.previous_copy, "previous_copy");
  check(a.checkpoint == b.checkpoint, "checkpoint");
  return out;
}

absl::StatusOr<DbHeader> DecodeDbHeader(const uint8_t* page, uint32_t page_size, PageNo which) {
  if (std::memcmp(page + off::kMagic, kDbMagic, 8) != 0) {
    if (IsZeroPage(page, page_size)) {
      return absl::DataLossError(
          absl::StrFormat("header copy %u (page %u) is all zeros", which, which));
    }
    return absl::DataLossError(absl::StrFormat(
        "header copy %u (page %u): not a mailstore database (bad magic)", which, which));
  }
  RETURN_IF_ERROR(
      Annotate(VerifyPage(page, page_size, which), absl::StrCat("header copy ", which)));
  if (PageTypeOf(page) != PageType::kDbHeader) {
    return absl::DataLossError(
        absl::StrFormat("header copy %u: page type is %s", which, PageTypeName(PageTypeOf(page))));
  }
  DbHeader h = DecodeFieldsUnchecked(page);
  if (h.format_version > kDbFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "header copy %u: database format version %u is newer than this build supports (%u)", which,
        h.format_version, kDbFormatVersion));
  }
  if (h.page_size != page_size) {
    return absl::DataLossError(absl::StrFormat("header copy %u: page size field %u, read as %u",
                                               which, h.page_size, page_size));
  }
  const uint32_t state = static_cast<uint32_t>(h.state);
  if (state < 1 || state > 3) {
    return absl::DataLossError(absl::StrFormat("header copy %u: invalid state %u", which, state));
  }
  static_assert(off::kEnd <= kMinPageSize);
  return h;
}

std::string DbHeaderRead::ShadowSummary() const {
  if (copy_status[0].ok() && copy_status[1].ok()) return "both copies valid";
  if (copy_status[0].ok()) return absl::StrCat("copy 1 damaged: ", copy_status[1].message());
  return absl::StrCat("copy 0 damaged: ", copy_status[0].message());
}

absl::StatusOr<DbHeaderRead> ReadDbHeader(const File& file) {
  // The page size is needed before a whole page can be read; both copies
  // store it at the same offset within the first 4 KiB.
  ASSIGN_OR_RETURN(uint64_t file_size, file.Size());
  std::unique_ptr<uint8_t[]> first(new uint8_t[kMaxPageSize * 2]());
  ASSIGN_OR_RETURN(size_t got, file.ReadAtMost(0, first.get(), kMaxPageSize * 2));
  return DecodeDbHeaderCopies(first.get(), got, file_size, file.path());
}

absl::StatusOr<DbHeaderRead> DecodeDbHeaderCopies(const uint8_t* head, size_t got,
                                                  uint64_t file_size, const std::string& path) {
  if (got < kMinPageSize) {
    return absl::DataLossError(absl::StrCat(path, ": file is ", file_size,
                                            " bytes, too short to be a mailstore database"));
  }
  uint32_t page_size = LoadU32(head + off::kPageSize);
  if (std::memcmp(head + off::kMagic, kDbMagic, 8) != 0 || !IsValidPageSize(page_size)) {
    // Copy 0 is damaged; copy 1 starts at an unknown offset, so try each size.
    page_size = 0;
    for (uint32_t size = kMinPageSize; size <= kMaxPageSize; size *= 2) {
      if (got >= 2 * size && std::memcmp(head + size + off::kMagic, kDbMagic, 8) == 0 &&
          LoadU32(head + size + off::kPageSize) == size) {
        page_size = size;
        break;
      }
    }
    if (page_size == 0) {
      return absl::DataLossError(
          absl::StrCat(path,
                       ": neither header copy is readable: not a mailstore database, or both "
                       "header pages are damaged"));
    }
  }
  DbHeaderRead read;
  absl::StatusOr<DbHeader> copies[2];
  for (PageNo which = 0; which < 2; ++which) {
    if (got < (which + 1) * page_size) {
      copies[which] = absl::DataLossError(
          absl::StrFormat("header copy %u is missing (file is %u bytes)", which, file_size));
    } else {
      copies[which] = DecodeDbHeader(head + which * page_size, page_size, which);
    }
    read.copy_status[which] = copies[which].status();
  }
  if (!copies[0].ok() && !copies[1].ok()) {
    if (copies[0].status().code() == absl::StatusCode::kFailedPrecondition) {
      return Annotate(copies[0].status(), path);
    }
    return absl::DataLossError(
        absl::StrCat(path, ": both header copies are damaged: ", copies[0].status().message(), "; ",
                     copies[1].status().message()));
  }
  if (copies[0].ok() && copies[1].ok()) {
    read.header = copies[0]->update_count >= copies[1]->update_count ? *copies[0] : *copies[1];
  } else {
    const PageNo good = copies[0].ok() ? 0 : 1;
    const PageNo bad = 1 - good;
    read.header = *copies[good];
    // Name the damaged fields: those where the bad copy's raw bytes differ
    // from the good copy. (A checksum alone says only that the copy is bad.)
    if (got >= (bad + 1) * page_size &&
        read.copy_status[bad].code() == absl::StatusCode::kDataLoss) {
      DbHeader raw = DecodeFieldsUnchecked(head + bad * page_size);
      std::vector<std::string> fields = DbHeaderFieldDiffs(raw, read.header);
      if (!fields.empty()) {
        read.copy_status[bad] = absl::DataLossError(
            absl::StrCat(read.copy_status[bad].message(), "; fields that differ from copy ", good,
                         ": ", absl::StrJoin(fields, ", ")));
      }
    }
  }
  return read;
}

absl::StatusOr<DbHeaderRead> ReadDbHeaderFromPath(const std::string& path) {
  ASSIGN_OR_RETURN(File file, File::OpenReadOnly(path));
  return ReadDbHeader(file);
}

absl::Status WriteDbHeader(File& file, DbHeader& header) {
  header.update_count++;
  std::unique_ptr<uint8_t[]> page(new uint8_t[header.page_size]);
  for (PageNo which = 0; which < 2; ++which) {
    EncodeDbHeader(header, which, page.get());
    RETURN_IF_ERROR(file.WriteAt(uint64_t{which} * header.page_size, page.get(), header.page_size));
    RETURN_IF_ERROR(file.DataSync());
    if (which == 0) DAGVAULT_CRASH_POINT("edb.header.between_copies");
  }
  return absl::OkStatus();
}

void MarkConsistent(DbHeader& h, Lsn at, int64_t time_us) {
  h.state = DbState::kCleanShutdown;
  h.consistent_lsn = at;
  h.consistent_time_us = time_us;
  h.log_required_min = 0;
  h.log_required_max = 0;
  h.log_committed = std::max(h.log_committed, at.generation);
  h.checkpoint = at;
}

}  // namespace dagvault::mailstore
