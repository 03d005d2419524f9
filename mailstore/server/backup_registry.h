// The backup-in-progress state of the active copy of a unit: at most one
// backup per unit, whichever copy it runs on. Like Exchange's, it lives in
// memory only (a restart of the daemon loses it, and the backup then fails
// at its next writer call); unlike Exchange's, it also expires when its
// holder stops renewing it, so it can never stay stuck.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dagvault/v1/mailstored.pb.h"

namespace dagvault::mailstore {

class BackupRegistry {
 public:
  BackupRegistry(std::string unit, absl::Duration lease, Clock* clock)
      : unit_(std::move(unit)), lease_(lease), clock_(clock) {}

  // Fails, naming the holder (copy, node, start time, as Exchange's event
  // 9607 does), while another backup holds the unit.
  absl::Status Acquire(const dagvault::v1::BackupInProgress& backup);
  absl::Status Renew(const std::string& session);
  absl::Status Release(const std::string& session);
  std::optional<dagvault::v1::BackupInProgress> Current();
  // Releases a backup held by an earlier run of `node`'s daemon (its
  // sessions died with it). Returns whether one was released.
  bool ReleaseStale(const std::string& node, const std::string& current_incarnation);

 private:
  void ExpireLocked();
  absl::Status UnknownSession(const std::string& session) const;

  const std::string unit_;
  const absl::Duration lease_;
  Clock* clock_;
  std::mutex mu_;
  std::optional<dagvault::v1::BackupInProgress> current_;
  absl::Duration renewed_;  // monotonic
};

}  // namespace dagvault::mailstore
