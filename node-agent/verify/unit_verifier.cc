#include "node-agent/verify/unit_verifier.h"

#include <algorithm>
#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dagvault::agent {

uint32_t ChainBreakGenerationOf(const absl::Status& status) {
  auto payload = status.GetPayload(kChainBreakPayload);
  uint32_t generation = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &generation)) return 0;
  return generation;
}
namespace {

absl::Status ChainBreak(uint32_t generation, const std::string& message) {
  absl::Status s = absl::DataLossError(message);
  s.SetPayload(kChainBreakPayload, absl::Cord(absl::StrCat(generation)));
  return s;
}

// docs/formats.md.
constexpr uint32_t kPageFormatVersion = 1;
constexpr uint8_t kMaxPageType = 6;
constexpr char kDbMagic[] = "MSTOREDB";
constexpr uint32_t kDbMagicAt = 32, kDbPageSizeAt = 44, kDbSignatureAt = 48, kDbLogSignatureAt = 72,
                   kDbStateAt = 96, kDbRequiredMinAt = 104, kDbRequiredMaxAt = 108;
constexpr uint32_t kDbStateDirtyShutdown = 2;
constexpr uint32_t kLogHeaderSize = 4096;
constexpr char kLogMagic[] = "MSTORLOG";
constexpr uint32_t kLogVersion = 1, kLogCrcAt = 12, kLogGenerationAt = 16, kLogFileSizeAt = 20,
                   kLogSignatureAt = 24, kLogLinkAt = 56, kLogFlagsAt = 88;
constexpr uint32_t kLogFlagLink = 2;
constexpr uint32_t kRecordHeaderSize = 24;
constexpr uint8_t kMaxRecordType = 7, kSealRecord = 4;
constexpr uint32_t kCheckpointCopySize = 4096;
constexpr char kCheckpointMagic[] = "MSTORCHK";
constexpr uint32_t kSignatureRandomBytes = 16;

uint32_t U32(const uint8_t* p) { return absl::little_endian::Load32(p); }

std::string Gen(uint32_t g) { return absl::StrFormat("0x%08X", g); }

std::string Hex(const uint8_t* p, size_t n) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(p), n));
}

std::string ShortHex(const std::string& bytes) {
  return absl::BytesToHexString(bytes).substr(0, 16);
}

const uint8_t* Bytes(absl::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

bool AllZero(const uint8_t* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

bool ValidPageSize(uint32_t s) { return s == 4096 || s == 8192 || s == 16384 || s == 32768; }

std::string What(const std::string& role, const std::string& name, const std::string& source) {
  return absl::StrCat(role == "database" ? "database file "
                      : role == "log"    ? "log "
                                         : "file ",
                      name, " (", source, ")");
}

}  // namespace

absl::StatusOr<std::unique_ptr<UnitVerifier>> UnitVerifier::Create(
    UnitExpectations expect, const std::vector<repository::BackupFile>& files,
    const std::vector<std::string>& sources) {
  std::unique_ptr<UnitVerifier> v(new UnitVerifier(std::move(expect)));
  for (size_t i = 0; i < files.size(); ++i) {
    FileCheck f;
    f.role = files[i].role;
    f.name = files[i].name;
    f.source = i < sources.size() ? sources[i] : files[i].path;
    f.generation = files[i].generation;
    ASSIGN_OR_RETURN(File in, File::OpenReadOnly(files[i].path));
    ASSIGN_OR_RETURN(f.size, in.Size());
    if (f.role == "database") {
      // The page size from the first header copy, or the second when the
      // first is damaged: the second sits at one page of any valid size.
      uint8_t head[kDbPageSizeAt + 4] = {};
      ASSIGN_OR_RETURN(size_t got, in.ReadAtMost(0, head, sizeof(head)));
      if (got == sizeof(head) && std::memcmp(head + kDbMagicAt, kDbMagic, 8) == 0 &&
          ValidPageSize(U32(head + kDbPageSizeAt))) {
        f.page_size = U32(head + kDbPageSizeAt);
      }
      for (uint32_t candidate = 4096; f.page_size == 0 && candidate <= 32768; candidate *= 2) {
        ASSIGN_OR_RETURN(got, in.ReadAtMost(candidate, head, sizeof(head)));
        if (got == sizeof(head) && std::memcmp(head + kDbMagicAt, kDbMagic, 8) == 0 &&
            U32(head + kDbPageSizeAt) == candidate && U32(head + 4) == 1) {
          f.page_size = candidate;
        }
      }
      if (f.page_size == 0) {
        return absl::DataLossError(absl::StrCat(What(f.role, f.name, f.source),
                                                ": neither header copy (page 0 or 1) is a "
                                                "mailstore database header"));
      }
      if (f.size % f.page_size != 0) {
        return absl::DataLossError(absl::StrCat(What(f.role, f.name, f.source), ": its size of ",
                                                f.size, " bytes is not a whole number of ",
                                                f.page_size, "-byte pages"));
      }
    }
    v->files_.push_back(std::move(f));
  }
  return v;
}

absl::Status UnitVerifier::OnSegment(size_t file, uint64_t offset, absl::string_view data) {
  // For the tests of a killed agent: a snapshot taken, a transfer begun.
  DAGVAULT_CRASH_POINT("agent.backup.segment_read");
  const absl::Duration cpu_before = ThreadCpuTime();
  absl::Status checked = CheckSegment(file, offset, data);
  const absl::Duration cpu = ThreadCpuTime() - cpu_before;
  std::lock_guard<std::mutex> l(mu_);
  summary_.cpu += cpu;
  return checked;
}

absl::Status UnitVerifier::CheckSegment(size_t file, uint64_t offset, absl::string_view data) {
  FileCheck& f = files_[file];
  {
    std::lock_guard<std::mutex> l(mu_);
    current_ = file;
  }
  VerifySummary local;
  if (f.role == "database") {
    if (expect_.type == dagvault::v1::FULL || expect_.type == dagvault::v1::COPY) {
      RETURN_IF_ERROR(CheckPages(f, offset, data, &local));
      if (offset == 0 && data.size() >= kDbRequiredMaxAt + 4) {
        const uint8_t* header = Bytes(data);
        std::lock_guard<std::mutex> l(mu_);
        f.header_read = true;
        f.state = U32(header + kDbStateAt);
        f.log_required_min = U32(header + kDbRequiredMinAt);
        f.log_required_max = U32(header + kDbRequiredMaxAt);
      }
    }
  } else if (f.role == "log") {
    if (offset == 0 && data.size() == f.size) {
      RETURN_IF_ERROR(CheckLog(f, data, &local));
    } else {
      // A log larger than one segment: put together, then checked whole.
      std::unique_lock<std::mutex> l(mu_);
      if (f.assembled.size() != f.size) f.assembled.resize(f.size);
      std::memcpy(f.assembled.data() + offset, data.data(), data.size());
      f.assembled_bytes += data.size();
      if (f.assembled_bytes == f.size) {
        std::string whole = std::move(f.assembled);
        l.unlock();
        RETURN_IF_ERROR(CheckLog(f, whole, &local));
      }
    }
  } else if (f.role == "checkpoint") {
    RETURN_IF_ERROR(CheckCheckpoint(f, data));
  }
  std::lock_guard<std::mutex> l(mu_);
  f.seen += data.size();
  summary_.pages += local.pages;
  summary_.empty_pages += local.empty_pages;
  summary_.logs += local.logs;
  summary_.log_records += local.log_records;
  return absl::OkStatus();
}

absl::Status UnitVerifier::CheckPages(const FileCheck& f, uint64_t offset, absl::string_view data,
                                      VerifySummary* summary) const {
  const uint32_t ps = f.page_size;
  if (offset % ps != 0 || data.size() % ps != 0) {
    return absl::InternalError(absl::StrCat(What(f.role, f.name, f.source), ": a segment at ",
                                            offset, " is not page-aligned"));
  }
  for (uint64_t at = 0; at < data.size(); at += ps) {
    const uint8_t* p = Bytes(data) + at;
    const uint64_t pgno = (offset + at) / ps;
    ++summary->pages;
    if (AllZero(p, ps)) {
      ++summary->empty_pages;  // never written
      continue;
    }
    // Built only for an error: a string per page would cost more than the
    // checksum.
    const auto where = [&] {
      return absl::StrCat(What(f.role, f.name, f.source), ": page ", pgno, " (offset ", offset + at,
                          ")");
    };
    const uint32_t stored = U32(p), computed = Crc32c(p + 4, ps - 4);
    if (stored != computed) {
      return absl::DataLossError(
          absl::StrFormat("%s: checksum mismatch: stored 0x%08x, computed "
                          "0x%08x",
                          where(), stored, computed));
    }
    if (U32(p + 4) != pgno) {
      return absl::DataLossError(absl::StrCat(where(), ": it holds page ", U32(p + 4),
                                              " (a write that went to the wrong place)"));
    }
    if (p[16] == 0 || p[16] > kMaxPageType) {
      return absl::DataLossError(absl::StrCat(where(), ": unknown page type ", p[16]));
    }
    if (p[17] != kPageFormatVersion) {
      return absl::DataLossError(absl::StrCat(where(), ": page format version ", p[17],
                                              " (this agent reads ", kPageFormatVersion, ")"));
    }
    if (pgno < 2) RETURN_IF_ERROR(CheckHeaderPage(f, pgno, p));
  }
  return absl::OkStatus();
}

absl::Status UnitVerifier::CheckHeaderPage(const FileCheck& f, uint64_t pgno,
                                           const uint8_t* p) const {
  const std::string where =
      absl::StrCat(What(f.role, f.name, f.source), ": header copy ", pgno, " (page ", pgno, ")");
  if (std::memcmp(p + kDbMagicAt, kDbMagic, 8) != 0 || U32(p + kDbPageSizeAt) != f.page_size) {
    return absl::DataLossError(absl::StrCat(where, ": not a database header"));
  }
  const std::string db = Hex(p + kDbSignatureAt, kSignatureRandomBytes);
  if (!expect_.database_signatures.empty() &&
      std::find(expect_.database_signatures.begin(), expect_.database_signatures.end(), db) ==
          expect_.database_signatures.end()) {
    return absl::DataLossError(
        absl::StrCat(where, ": database signature ", db, " is not one the writer froze"));
  }
  const std::string log = Hex(p + kDbLogSignatureAt, kSignatureRandomBytes);
  if (!expect_.log_signature.empty() && log != expect_.log_signature) {
    return absl::DataLossError(absl::StrCat(where, ": log signature ", log, " is not the unit's (",
                                            expect_.log_signature, ")"));
  }
  return absl::OkStatus();
}

absl::Status UnitVerifier::CheckLog(FileCheck& f, absl::string_view data,
                                    VerifySummary* summary) const {
  const std::string where =
      absl::StrCat(What(f.role, f.name, f.source), " (generation ", Gen(f.generation), ")");
  const uint8_t* p = Bytes(data);
  const uint64_t size = data.size();
  if (size < kLogHeaderSize) {
    return absl::DataLossError(absl::StrCat(where, ": ", size, " bytes, shorter than its header"));
  }
  if (std::memcmp(p, kLogMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(where, ": not a mailstore log (bad magic)"));
  }
  if (U32(p + 8) != kLogVersion) {
    return absl::DataLossError(absl::StrCat(where, ": log format version ", U32(p + 8),
                                            " (this agent reads ", kLogVersion, ")"));
  }
  {
    uint8_t header[kLogHeaderSize];
    std::memcpy(header, p, kLogHeaderSize);
    std::memset(header + kLogCrcAt, 0, 4);
    const uint32_t computed = Crc32c(header, kLogHeaderSize);
    if (computed != U32(p + kLogCrcAt)) {
      return absl::DataLossError(
          absl::StrFormat("%s: header checksum mismatch: stored 0x%08x, computed 0x%08x", where,
                          U32(p + kLogCrcAt), computed));
    }
  }
  if (U32(p + kLogGenerationAt) != f.generation) {
    return absl::DataLossError(
        absl::StrCat(where, ": its header says generation ", Gen(U32(p + kLogGenerationAt))));
  }
  if (U32(p + kLogFileSizeAt) != size) {
    return absl::DataLossError(absl::StrCat(where, ": its header says ", U32(p + kLogFileSizeAt),
                                            " bytes; the file has ", size));
  }
  const std::string signature = Hex(p + kLogSignatureAt, kSignatureRandomBytes);
  if (!expect_.log_signature.empty() && signature != expect_.log_signature) {
    return absl::DataLossError(absl::StrCat(where, ": log signature ", signature,
                                            " is not the unit's (", expect_.log_signature,
                                            "): a log of another stream"));
  }
  uint64_t records = 0;
  for (uint64_t off = kLogHeaderSize;;) {
    const std::string at = absl::StrCat(where, ": record at offset ", off);
    if (off + kRecordHeaderSize > size || (U32(p + off) == 0 && U32(p + off + 4) == 0)) {
      return absl::DataLossError(absl::StrCat(where, ": not sealed: the records end at offset ",
                                              off, " without a Seal record"));
    }
    const uint8_t* r = p + off;
    const uint32_t length = U32(r + 4);
    if (length < kRecordHeaderSize || length > size - off) {
      return absl::DataLossError(absl::StrCat(at, ": length ", length, " is out of range"));
    }
    const uint32_t computed = Crc32c(r + 4, length - 4);
    if (computed != U32(r)) {
      return absl::DataLossError(
          absl::StrFormat("%s: checksum mismatch: stored 0x%08x, computed "
                          "0x%08x",
                          at, U32(r), computed));
    }
    if (U32(r + 8) != f.generation || U32(r + 12) != off) {
      return absl::DataLossError(absl::StrCat(at, ": it belongs to generation ", Gen(U32(r + 8)),
                                              " at offset ", U32(r + 12), " (misplaced)"));
    }
    if (r[16] == 0 || r[16] > kMaxRecordType || !AllZero(r + 18, 6)) {
      return absl::DataLossError(
          absl::StrCat(at, ": unknown record type ", r[16], " or non-zero reserved bytes"));
    }
    const uint64_t next = (off + length + 7) & ~uint64_t{7};
    if (next > size || !AllZero(p + off + length, next - off - length)) {
      return absl::DataLossError(absl::StrCat(at, ": its padding is not zero"));
    }
    ++records;
    if (r[16] == kSealRecord) {
      if (!AllZero(p + next, size - next)) {
        return absl::DataLossError(
            absl::StrCat(where, ": bytes after the Seal record (from offset ", next, ")"));
      }
      break;
    }
    off = next;
  }
  const bool linked = (U32(p + kLogFlagsAt) & kLogFlagLink) != 0;
  f.link_hash = linked ? std::string(reinterpret_cast<const char*>(p + kLogLinkAt), 32) : "";
  f.checked = true;
  ++summary->logs;
  summary->log_records += records;
  return absl::OkStatus();
}

absl::Status UnitVerifier::CheckCheckpoint(const FileCheck& f, absl::string_view data) const {
  std::string problems;
  for (uint32_t copy = 0; copy < 2; ++copy) {
    if (data.size() < (copy + 1) * kCheckpointCopySize) {
      absl::StrAppend(&problems, " copy ", copy, ": missing;");
      continue;
    }
    uint8_t c[kCheckpointCopySize];
    std::memcpy(c, data.data() + copy * kCheckpointCopySize, kCheckpointCopySize);
    const uint32_t stored = U32(c + 12);
    std::memset(c + 12, 0, 4);
    if (std::memcmp(c, kCheckpointMagic, 8) != 0 || Crc32c(c, kCheckpointCopySize) != stored) {
      absl::StrAppend(&problems, " copy ", copy, ": damaged;");
      continue;
    }
    const std::string signature = Hex(c + 24, kSignatureRandomBytes);
    if (!expect_.log_signature.empty() && signature != expect_.log_signature) {
      return absl::DataLossError(absl::StrCat(What(f.role, f.name, f.source), ": log signature ",
                                              signature, " is not the unit's (",
                                              expect_.log_signature, ")"));
    }
    return absl::OkStatus();  // one good copy is what the format promises
  }
  return absl::DataLossError(
      absl::StrCat(What(f.role, f.name, f.source), ": no valid copy:", problems));
}

absl::Status UnitVerifier::BeforeCommit(dagvault::v1::Manifest* manifest) {
  std::lock_guard<std::mutex> l(mu_);
  if (manifest->files_size() != static_cast<int>(files_.size())) {
    return absl::InternalError("the manifest's files are not the verified ones");
  }
  struct Log {
    uint32_t generation;
    size_t index;
  };
  std::vector<Log> logs;
  for (size_t i = 0; i < files_.size(); ++i) {
    const FileCheck& f = files_[i];
    if (f.seen != f.size || (f.role == "log" && !f.checked)) {
      return absl::InternalError(absl::StrCat(What(f.role, f.name, f.source), ": only ", f.seen,
                                              " of its ", f.size, " bytes were verified"));
    }
    if (f.role == "log") logs.push_back({f.generation, i});
  }
  std::sort(logs.begin(), logs.end(),
            [](const Log& a, const Log& b) { return a.generation < b.generation; });
  if (logs.empty() || logs.front().generation != expect_.low_generation ||
      logs.back().generation != expect_.high_generation) {
    return absl::DataLossError(absl::StrCat(
        "unit ", expect_.unit, ": the writer froze log generations ", Gen(expect_.low_generation),
        " to ", Gen(expect_.high_generation), ", but the backup holds ",
        logs.empty()
            ? std::string("no logs")
            : absl::StrCat(Gen(logs.front().generation), " to ", Gen(logs.back().generation))));
  }
  // A database frozen while attached needs the logs its header names to be
  // made consistent: a backup without them verifies page by page but can
  // never be restored.
  for (const FileCheck& f : files_) {
    if (f.role != "database" || !f.header_read || f.state != kDbStateDirtyShutdown) continue;
    if (f.log_required_min < logs.front().generation ||
        f.log_required_max > logs.back().generation) {
      return absl::DataLossError(absl::StrCat(
          What(f.role, f.name, f.source), ": its header needs log generations ",
          Gen(f.log_required_min), " to ", Gen(f.log_required_max),
          " to be made consistent, but the backup holds ", Gen(logs.front().generation), " to ",
          Gen(logs.back().generation), ": it could not be restored"));
    }
  }
  auto sha = [&](size_t i) { return manifest->files(static_cast<int>(i)).sha256(); };
  for (size_t k = 1; k < logs.size(); ++k) {
    const uint32_t g = logs[k].generation, before = logs[k - 1].generation;
    if (g != before + 1) {
      return absl::DataLossError(absl::StrCat("unit ", expect_.unit, ": log generation ",
                                              Gen(before + 1), " is missing from the backup"));
    }
    const std::string& link = files_[logs[k].index].link_hash;
    if (link != sha(logs[k - 1].index)) {
      return absl::DataLossError(absl::StrCat(
          What("log", files_[logs[k].index].name, files_[logs[k].index].source), " (generation ",
          Gen(g), ") does not link to generation ", Gen(before), ": its link hash is ",
          link.empty() ? std::string("absent") : ShortHex(link), ", generation ", Gen(before),
          " hashes to ", ShortHex(sha(logs[k - 1].index)), ": the logs are not one stream"));
    }
  }
  if (expect_.join_generation != 0) {
    const uint32_t first = logs.front().generation;
    // Where the chain and these logs first disagree, if the chain's logs
    // reach that far: the break is named there rather than at the join.
    uint32_t diverged = 0;
    for (const Log& log : logs) {
      auto it = expect_.chain_log_sha256.find(log.generation);
      if (it != expect_.chain_log_sha256.end() && it->second != sha(log.index)) {
        diverged = log.generation;
        break;
      }
    }
    auto at = [&](uint32_t fallback) { return diverged != 0 ? diverged : fallback; };
    if (expect_.join_generation + 1 == first) {
      const std::string& link = files_[logs.front().index].link_hash;
      if (link != expect_.join_sha256) {
        return ChainBreak(
            at(first),
            absl::StrCat("unit ", expect_.unit, ": log generation ", Gen(first),
                         " does not join the backup this one follows: its link hash is ",
                         link.empty() ? std::string("absent") : ShortHex(link),
                         ", that backup's generation ", Gen(expect_.join_generation), " hashes to ",
                         ShortHex(expect_.join_sha256), ": the log stream diverged; take a Full"));
      }
    } else if (expect_.join_generation >= first &&
               expect_.join_generation <= logs.back().generation) {
      const size_t i = logs[expect_.join_generation - first].index;
      if (sha(i) != expect_.join_sha256) {
        return ChainBreak(
            at(expect_.join_generation),
            absl::StrCat("unit ", expect_.unit, ": log generation ", Gen(expect_.join_generation),
                         " differs from the same generation in the backup this one follows: the "
                         "log stream diverged; take a Full"));
      }
    } else {
      return ChainBreak(
          at(expect_.join_generation + 1),
          absl::StrCat("unit ", expect_.unit, ": the backup this one follows ends at generation ",
                       Gen(expect_.join_generation), " and this one begins at ", Gen(first),
                       ": the generations between are in no backup; take a Full"));
    }
  }
  for (const Log& log : logs) {
    manifest->mutable_files(static_cast<int>(log.index))
        ->set_link_hash(files_[log.index].link_hash);
  }
  (*manifest->mutable_labels())["verified"] =
      absl::StrCat("pages=", summary_.pages, " empty_pages=", summary_.empty_pages,
                   " logs=", summary_.logs, " records=", summary_.log_records);
  return absl::OkStatus();
}

VerifySummary UnitVerifier::summary() const {
  std::lock_guard<std::mutex> l(mu_);
  return summary_;
}

std::string UnitVerifier::current_file() const {
  std::lock_guard<std::mutex> l(mu_);
  return files_.empty() ? std::string() : files_[current_].name;
}

}  // namespace dagvault::agent
