// Snapshot providers (DESIGN.md §6): a point-in-time image of a unit's
// files, taken while its writer is frozen, from which the backup reads
// after Thaw.
//
// A snapshot of /data/SG01/priv1.edb lives at
// /data/SG01/.dagvault-snapshot-<job>/priv1.edb: beside its source, so a
// reflink clone stays on the same volume. Each provider removes its
// folders on success, failure and cancellation. While a folder exists its
// job's process holds an flock on "<folder>.lock" beside it; a folder
// whose lock nobody holds was left by a crash, and RemoveLeftoverSnapshots
// removes it (when the agent starts, and before each backup of the unit).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dagvault::agent {

inline constexpr char kSnapshotFolderPrefix[] = ".dagvault-snapshot-";

struct SnapshotFile {
  std::string source;    // the writer's file
  std::string path;      // its image in the snapshot
  std::string provider;  // "reflink" or "copy": which one took it
  uint64_t size = 0;
};

// A taken snapshot. Its folders are removed by Remove() or, at the latest,
// by the destructor.
class Snapshot {
 public:
  virtual ~Snapshot() = default;
  virtual const std::vector<SnapshotFile>& files() const = 0;
  // Things the operator should know (a freeze that came near the writer's
  // timeout), reported with the job.
  virtual const std::vector<std::string>& warnings() const = 0;
  // Removes the snapshot's folders. Safe to call more than once.
  virtual absl::Status Remove() = 0;
};

struct SnapshotOptions {
  // The job's id: it names the snapshot folders.
  std::string job;
  // When the writer froze, and how long it stays frozen before it ends the
  // freeze itself. A copy that passes `warn_at` of the timeout is reported;
  // one that reaches `abort_at` is stopped, so the job fails with a clear
  // reason instead of the writer timing out underneath it.
  absl::Time frozen_at = absl::InfinitePast();
  absl::Duration freeze_timeout = absl::Seconds(20);
  double warn_at = 0.5;
  double abort_at = 0.9;
};

class SnapshotProvider {
 public:
  virtual ~SnapshotProvider() = default;
  // "reflink", "copy" or "auto".
  virtual std::string name() const = 0;
  // Takes a snapshot of `sources`. Called between Freeze and Thaw. On
  // failure nothing is left behind.
  virtual absl::StatusOr<std::unique_ptr<Snapshot>> Take(const std::vector<std::string>& sources,
                                                         const SnapshotOptions& options) = 0;
};

// "reflink": FICLONE, refusing a volume that cannot clone. "copy": a copy
// of the bytes, on any filesystem. "auto": reflink on each volume that
// can, copy elsewhere, decided per volume by trying.
absl::StatusOr<std::unique_ptr<SnapshotProvider>> MakeSnapshotProvider(const std::string& name);

// Removes every snapshot folder (by its name prefix) directly inside
// `dirs` whose owner lock no live process holds: what a crashed agent
// left. A running job's folders are left alone, so agents may sweep while
// other jobs run. Returns the folders removed.
absl::StatusOr<std::vector<std::string>> RemoveLeftoverSnapshots(
    const std::vector<std::string>& dirs);

}  // namespace dagvault::agent
