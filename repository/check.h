// Verifying a repository, and what it holds (docs/repository-format.md,
// "Checking"). `Check` reads every index file, every pack's trailer and
// every manifest, and with read_data every pack's bytes, in pack order;
// it reports every problem it finds, each naming the pack, chunk, index
// file or manifest at fault, rather than stopping at the first.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "repository/lock.h"
#include "repository/repository.h"

namespace dagvault::repository {

struct CheckOptions {
  bool read_data = false;
  LockOptions lock;
};

struct CheckReport {
  std::vector<std::string> errors;    // data at risk: a restore would fail
  std::vector<std::string> warnings;  // leftovers that prune removes
  uint64_t index_files = 0;
  uint64_t packs = 0;
  uint64_t chunks = 0;
  uint64_t manifests = 0;
  uint64_t bytes_read = 0;
  bool clean() const { return errors.empty(); }
};

absl::StatusOr<CheckReport> Check(const Repository& repo, const CheckOptions& options = {});

struct RepositoryStats {
  uint64_t manifests = 0;
  uint64_t files = 0;
  uint64_t logical_bytes = 0;  // the sizes of every file of every manifest
  uint64_t packs = 0;
  uint64_t pack_bytes = 0;  // on disk
  uint64_t chunks = 0;
  uint64_t chunk_plaintext_bytes = 0;  // unique data, before compression
  uint64_t chunk_sealed_bytes = 0;     // after compression and encryption
  double dedup_ratio() const {
    return chunk_plaintext_bytes ? double(logical_bytes) / chunk_plaintext_bytes : 0;
  }
  double compression_ratio() const {
    return chunk_sealed_bytes ? double(chunk_plaintext_bytes) / chunk_sealed_bytes : 0;
  }
};

absl::StatusOr<RepositoryStats> Stats(const Repository& repo);

}  // namespace dagvault::repository
