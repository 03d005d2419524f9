// The checkpoint file <prefix>.chk: where soft recovery starts replaying.
//
// It holds two identical 4 KiB copies. It is always replaced whole through a
// temporary file, fsync, rename and directory fsync, so a crash leaves the
// old or the new checkpoint; the second copy survives damage to the first.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mailstore/format/log_format.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

constexpr uint32_t kCheckpointFormatVersion = 1;
constexpr uint32_t kCheckpointCopySize = 4096;

struct Checkpoint {
  uint32_t format_version = kCheckpointFormatVersion;
  Signature log_signature;
  // Every change logged before this position is in the database files.
  Lsn position;
  int64_t time_us = 0;
  uint64_t update_count = 0;
  std::vector<AttachedDatabase> databases;
  bool operator==(const Checkpoint&) const = default;
};

// 2 x kCheckpointCopySize bytes.
std::string EncodeCheckpointFile(const Checkpoint& checkpoint);

struct CheckpointRead {
  Checkpoint checkpoint;
  std::array<absl::Status, 2> copy_status;
  bool BothValid() const { return copy_status[0].ok() && copy_status[1].ok(); }
};

// Decodes both copies of a checkpoint file image; returns the valid copy with
// the higher update count. Fails only when neither copy is valid.
absl::StatusOr<CheckpointRead> DecodeCheckpointFile(const std::string& data,
                                                    const std::string& path);
absl::StatusOr<CheckpointRead> ReadCheckpointFile(const std::string& path);

// Bumps update_count and replaces the file atomically.
absl::Status WriteCheckpointFile(const std::string& path, Checkpoint& checkpoint);

}  // namespace dagvault::mailstore
