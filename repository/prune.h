// Prune (docs/repository-format.md, "Pruning"): keeps the named manifests,
// removes the others, and sweeps every chunk no kept manifest needs. A
// pack whose live bytes fall below `repack_below` of it is repacked: its
// live chunks are copied, still sealed (after they authenticate), into new
// packs. Under an exclusive lock.
//
// Crash-safe by its order of steps: (1) unkept manifests go; (2) new packs
// and an index file for everything that stays are written; (3) the old
// index files go; (4) the dead and repacked packs go. After a kill at any
// point every kept manifest's chunks are in an indexed pack; what is left
// over is unreferenced and goes at the next prune.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "repository/lock.h"
#include "repository/repository.h"

namespace dagvault::repository {

struct PruneOptions {
  std::vector<std::string> keep_manifests;
  // Instead of keep_manifests: remove these, keep every other manifest the
  // repository holds when the lock is taken (so that a backup that wrote
  // its manifest a moment before is kept). Those not present are ignored.
  std::vector<std::string> remove_manifests;
  double repack_below = 0.5;
  LockOptions lock;
};

struct PruneReport {
  uint64_t manifests_removed = 0;
  uint64_t packs_removed = 0;
  uint64_t packs_repacked = 0;
  uint64_t packs_written = 0;
  uint64_t chunks_removed = 0;
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
};

absl::StatusOr<PruneReport> Prune(const Repository& repo, const PruneOptions& options);

}  // namespace dagvault::repository
