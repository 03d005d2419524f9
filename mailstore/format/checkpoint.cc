#include "mailstore/format/checkpoint.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "mailstore/format/codec.h"

namespace dagvault::mailstore {
namespace {

constexpr char kChkMagic[8] = {'M', 'S', 'T', 'O', 'R', 'C', 'H', 'K'};
constexpr uint32_t kMaxDatabases = 64;

namespace coff {
constexpr uint32_t kMagic = 0;
constexpr uint32_t kVersion = 8;
constexpr uint32_t kCrc = 12;
constexpr uint32_t kCopyIndex = 16;
constexpr uint32_t kSignature = 24;
constexpr uint32_t kPosition = 48;
constexpr uint32_t kTime = 56;
constexpr uint32_t kUpdateCount = 64;
constexpr uint32_t kDbCount = 72;
constexpr uint32_t kDbs = 80;  // 32 bytes each
}  // namespace coff

void EncodeCopy(const Checkpoint& c, uint32_t index, uint8_t* p) {
  std::memset(p, 0, kCheckpointCopySize);
  std::memcpy(p + coff::kMagic, kChkMagic, 8);
  StoreU32(p + coff::kVersion, c.format_version);
  StoreU32(p + coff::kCopyIndex, index);
  StoreSignature(p + coff::kSignature, c.log_signature);
  StoreU64(p + coff::kPosition, c.position.Pack());
  StoreU64(p + coff::kTime, static_cast<uint64_t>(c.time_us));
  StoreU64(p + coff::kUpdateCount, c.update_count);
  const uint32_t count = static_cast<uint32_t>(std::min<size_t>(c.databases.size(), kMaxDatabases));
  StoreU32(p + coff::kDbCount, count);
  for (uint32_t i = 0; i < count; ++i) {
    StoreAttachedDatabase(p + coff::kDbs + i * kAttachedDatabaseSize, c.databases[i]);
  }
  StoreU32(p + coff::kCrc, Crc32c(p, kCheckpointCopySize));
}

absl::StatusOr<Checkpoint> DecodeCopy(const uint8_t* p, uint32_t index) {
  if (std::memcmp(p + coff::kMagic, kChkMagic, 8) != 0) {
    return absl::DataLossError(
        absl::StrFormat("copy %u (offset %u): bad magic", index, index * kCheckpointCopySize));
  }
  uint8_t copy[kCheckpointCopySize];
  std::memcpy(copy, p, kCheckpointCopySize);
  const uint32_t stored = LoadU32(copy + coff::kCrc);
  StoreU32(copy + coff::kCrc, 0);
  const uint32_t computed = Crc32c(copy, kCheckpointCopySize);
  if (stored != computed) {
    return absl::DataLossError(
        absl::StrFormat("copy %u (offset %u): checksum mismatch: stored 0x%08x, computed 0x%08x",
                        index, index * kCheckpointCopySize, stored, computed));
  }
  Checkpoint c;
  c.format_version = LoadU32(p + coff::kVersion);
  if (c.format_version > kCheckpointFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "copy %u: checkpoint format version %u is newer than this build supports (%u)", index,
        c.format_version, kCheckpointFormatVersion));
  }
  if (LoadU32(p + coff::kCopyIndex) != index) {
    return absl::DataLossError(
        absl::StrFormat("copy %u: says it is copy %u", index, LoadU32(p + coff::kCopyIndex)));
  }
  c.log_signature = LoadSignature(p + coff::kSignature);
  c.position = Lsn::Unpack(LoadU64(p + coff::kPosition));
  c.time_us = static_cast<int64_t>(LoadU64(p + coff::kTime));
  c.update_count = LoadU64(p + coff::kUpdateCount);
  const uint32_t count = LoadU32(p + coff::kDbCount);
  if (count > kMaxDatabases) {
    return absl::DataLossError(absl::StrFormat("copy %u: %u databases", index, count));
  }
  for (uint32_t i = 0; i < count; ++i) {
    c.databases.push_back(LoadAttachedDatabase(p + coff::kDbs + i * kAttachedDatabaseSize));
  }
  return c;
}

}  // namespace

std::string EncodeCheckpointFile(const Checkpoint& checkpoint) {
  std::string out(2 * kCheckpointCopySize, '\0');
  for (uint32_t i = 0; i < 2; ++i) {
    EncodeCopy(checkpoint, i, reinterpret_cast<uint8_t*>(out.data()) + i * kCheckpointCopySize);
  }
  return out;
}

absl::StatusOr<CheckpointRead> DecodeCheckpointFile(const std::string& data,
                                                    const std::string& path) {
  CheckpointRead read;
  absl::StatusOr<Checkpoint> copies[2];
  for (uint32_t i = 0; i < 2; ++i) {
    if (data.size() < (i + 1) * kCheckpointCopySize) {
      copies[i] = absl::DataLossError(
          absl::StrFormat("copy %u is missing (file is %u bytes)", i, data.size()));
    } else {
      copies[i] =
          DecodeCopy(reinterpret_cast<const uint8_t*>(data.data()) + i * kCheckpointCopySize, i);
    }
    read.copy_status[i] = copies[i].status();
  }
  if (!copies[0].ok() && !copies[1].ok()) {
    if (copies[0].status().code() == absl::StatusCode::kFailedPrecondition) {
      return Annotate(copies[0].status(), path);
    }
    return absl::DataLossError(
        absl::StrCat(path, ": both checkpoint copies are damaged: ", copies[0].status().message(),
                     "; ", copies[1].status().message()));
  }
  if (copies[0].ok() && copies[1].ok()) {
    read.checkpoint = copies[0]->update_count >= copies[1]->update_count ? *copies[0] : *copies[1];
  } else {
    read.checkpoint = copies[0].ok() ? *copies[0] : *copies[1];
  }
  return read;
}

absl::StatusOr<CheckpointRead> ReadCheckpointFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
  return DecodeCheckpointFile(data, path);
}

absl::Status WriteCheckpointFile(const std::string& path, Checkpoint& checkpoint) {
  checkpoint.update_count++;
  DAGVAULT_CRASH_POINT("checkpoint.before_write");
  return WriteFileAtomically(path, EncodeCheckpointFile(checkpoint));
}

}  // namespace dagvault::mailstore
