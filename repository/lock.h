// Repository locks (docs/repository-format.md, "Locks"). Backups, restores
// and checks hold shared locks; prune holds an exclusive one. A lock is a
// file under locks/ that its holder refreshes; one whose holder is gone
// (same host, dead pid) or whose refresh is older than the stale time is
// broken, with a warning.
//
// Taking a lock writes the lock file first and then looks at the others,
// so that two takers racing both see each other (and a conflicting one
// backs off) rather than both proceeding.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dagvault/v1/repository.pb.h"

namespace dagvault::repository {

struct LockOptions {
  absl::Duration refresh_every = absl::Seconds(60);
  // A lock not refreshed for this long is stale, whatever host holds it.
  absl::Duration stale_after = absl::Minutes(10);
};

class RepositoryLockHandle {
 public:
  ~RepositoryLockHandle();  // releases the lock
  RepositoryLockHandle(const RepositoryLockHandle&) = delete;
  RepositoryLockHandle& operator=(const RepositoryLockHandle&) = delete;

  const std::string& path() const { return path_; }
  absl::Status Release();

 private:
  friend absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(
      const std::string&, dagvault::v1::RepositoryLock::Kind, const std::string&,
      const std::string&, const LockOptions&);
  RepositoryLockHandle() = default;
  void RefreshLoop();

  std::string path_;
  dagvault::v1::RepositoryLock lock_;
  LockOptions options_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread refresher_;
};

// Takes a lock on the repository at `root` for `session`. A conflicting
// live lock is a FailedPrecondition error that names its holder (host,
// pid, purpose, last refresh).
absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(
    const std::string& root, dagvault::v1::RepositoryLock::Kind kind, const std::string& session,
    const std::string& purpose, const LockOptions& options = {});

}  // namespace dagvault::repository
