// The agent's log archiver (issue 19 §1): for each unit the coordinator
// has this node archive (ArchiveAssignments), every closed log generation
// the local copy holds goes to the repository as soon as it is here: on
// the active copy, each generation as it closes; on a passive one, each as
// it is copied in. Where the policy sets archive_roll_seconds, the agent on
// the active copy's node closes the open generation once its oldest record
// is that old, so that a quiet unit's restore point is that recent too.
// Segments of up to 64 generations (jobs/log_archive.h),
// each verified and joined to the one before.
//
// The segments written are reported to the coordinator with every node
// report until it acknowledges them (so one written while the stream is
// down reaches the catalog when it is back); the repository holds them
// either way. A failure (a log truncated before it was archived, a stream
// that diverged after a lossy failover) is reported as the unit's error,
// and archiving starts again from the repository's newest chain after a
// pause: a gap stays a named break until the next Full, which the archive
// then extends.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dagvault/v1/agent.pb.h"
#include "node-agent/jobs/log_archive.h"
#include "repository/repository.h"

namespace dagvault::agent {

class LogArchiver {
 public:
  struct Options {
    absl::Duration retry_after_error = absl::Seconds(10);
    uint32_t max_generations_per_segment = 64;
    // A unit's next segment waits this long after its last unless
    // max_generations_per_segment are waiting: a busy unit writes a
    // manifest every few seconds, not every generation.
    absl::Duration min_segment_interval = absl::Seconds(3);
    // Segments reported per node report at most (oldest first): a report
    // stays small after a long coordinator outage.
    int max_segments_per_report = 64;
    // Where unacknowledged segments are kept across restarts ("": not).
    std::string state_path;
  };
  using MetadataFn = std::function<absl::StatusOr<dagvault::v1::WriterMetadata>()>;
  // The repository, opened once and kept (opening it derives the key).
  using RepositoryFn = std::function<absl::StatusOr<const repository::Repository*>()>;
  // Closes the open log generation of a unit (mailstored's RollLog).
  using RollFn = std::function<absl::Status(const std::string& unit)>;

  LogArchiver(std::string node, RepositoryFn repository, MetadataFn metadata, RollFn roll,
              Clock* clock, Options options);

  void SetUnits(const std::vector<std::string>& units);
  // Units whose open generation this node closes once its oldest record is
  // that old, while their active copy is here (a policy's
  // archive_roll_seconds).
  void SetRolls(const std::map<std::string, uint32_t>& seconds_by_unit);
  void Acknowledged(const std::vector<std::string>& manifests);
  // One pass: archives what each assigned unit's local copy holds beyond
  // its archive. Returns how many segments it wrote.
  int RunOnce();
  // The unacknowledged segments and each unit's progress.
  void FillReport(dagvault::v1::NodeReport* report);

 private:
  struct UnitState {
    std::optional<ArchiveBase> base;  // unset: read from the repository
    uint32_t archived_through = 0;
    absl::Duration last_segment_at = -absl::InfiniteDuration();  // monotonic
    std::string error;
    absl::Time error_since;
    // Where this copy's log stream stopped joining the archive (a lossy
    // activation diverged it): the archive's piece it fails to follow and
    // the first generation that does not. Kept, and reported, until a
    // segment is written again (after the next Full starts a new chain);
    // while the repository's newest piece is still `break_after`, the same
    // logs are not uploaded again.
    std::string break_after;
    uint32_t break_generation = 0;
    absl::Duration retry_at = -absl::InfiniteDuration();  // monotonic
  };
  // Archives one unit's next segment, if it has one; true when written.
  absl::StatusOr<bool> ArchiveNext(const std::string& unit, UnitState& state,
                                   const dagvault::v1::WriterMetadata& metadata);

  const std::string node_;
  const RepositoryFn repository_;
  const MetadataFn metadata_;
  const RollFn roll_;
  Clock* const clock_;
  const Options options_;
  // Adds a segment to report; mu_ held. Kept on disk when a state path is set.
  void AddPendingLocked(const dagvault::v1::Manifest& summary);
  void PersistPendingLocked();
  std::mutex mu_;  // units_, pending_
  std::map<std::string, UnitState> units_;
  std::map<std::string, uint32_t> rolls_;
  std::vector<dagvault::v1::Manifest> pending_;
};

}  // namespace dagvault::agent
