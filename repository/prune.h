// Prune (docs/repository-format.md, "Pruning"): keeps the named manifests,
// removes the others, and sweeps every chunk no kept manifest needs. A
// pack whose live bytes fall below `repack_below` of it is repacked: its
// live chunks are copied, still sealed (after they authenticate), into new
// packs. Under an exclusive lock.
//
// On an object store, removal of packs has two phases: a prune marks the
// packs it finds unreferenced (prune/<session>.marks, sealed), and only a
// prune that finds a pack still unreferenced once its mark is older than
// the grace period removes it. A pack a writer whose stale lock was
// broken still needed is back in an index by then, or that writer failed.
// With a zero grace period (tests) both phases happen in one run.
//
// On a repository with Object Lock, what is still under retention is not
// removed: a manifest stays whole (with every chunk it needs), a pack or
// index file stays as it is; the report says until when, and a prune after
// that date removes them.
//
// Crash-safe by its order of steps: (1) unkept manifests go; (2) new packs
// and an index file for everything that stays are written; (3) the old
// index files go; (4) the dead and repacked packs go. After a kill at any
// point every kept manifest's chunks are in an indexed pack; what is left
// over is unreferenced and goes at the next prune.
//
// Safe against a writer whose lock it broke as stale (a paused or cut-off
// backup): it never removes or repacks a pack (or a temporary file)
// younger than the grace period, twice the lock stale time, so a writer's
// fresh data stays; it proves its own lock is still its own before each
// destructive step; and before removing index files and packs it looks
// again, and stops, if a manifest appeared that it did not plan for or a
// live lock appeared beside its own. The writer itself fails before its
// manifest is written when its lock was broken (lock.h).
#pragma once

#include <functional>
#include <optional>
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
  // Packs and temporary files younger than this stay whatever refers to
  // them. Unset: twice the lock stale time. Zero only where nothing else
  // writes to the repository (tests).
  std::optional<absl::Duration> pack_grace;
  // Called before each destructive step ("removing manifests", "removing
  // index files", "removing packs"), before the prune re-checks that it is
  // safe: tests act there as a concurrent writer would.
  std::function<void(absl::string_view step)> before_step;
};

struct PruneReport {
  uint64_t manifests_removed = 0;
  uint64_t packs_removed = 0;
  uint64_t packs_repacked = 0;
  uint64_t packs_written = 0;
  uint64_t chunks_removed = 0;
  uint64_t packs_kept_young = 0;  // unreferenced, but younger than the grace period
  // Two-phase removal (object stores): unreferenced packs marked by this
  // prune, and marked ones whose mark is not yet older than the grace
  // period (a later prune removes both if they are still unreferenced).
  uint64_t packs_marked = 0;
  uint64_t packs_waiting = 0;
  // Under retention (Object Lock): not removed now, removed by a prune
  // after the date. A retained manifest is kept whole (its chunks stay).
  std::vector<std::string> manifests_retained;
  uint64_t packs_retained = 0;
  uint64_t index_files_retained = 0;
  absl::Time retained_until = absl::InfinitePast();  // the latest such date
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
};

absl::StatusOr<PruneReport> Prune(const Repository& repo, const PruneOptions& options);

}  // namespace dagvault::repository
