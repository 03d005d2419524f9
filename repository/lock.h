// Repository locks (docs/repository-format.md, "Locks"). Backups, restores
// and checks hold shared locks; prune holds an exclusive one. A lock is an
// object under locks/ that its holder refreshes (the same on a filesystem
// and on S3: restic's scheme); one whose holder is gone (same host
// identity, dead pid) or that was not refreshed for the stale time (by the
// time written in it, on the holder's clock, and by the object's own
// modification time, on the storage's clock: measured against the judge's
// own lock just written, so a judge whose wall clock jumped breaks
// nothing) is broken, with a warning.
//
// Taking a lock writes the lock file first and then looks at the others,
// so that two takers racing both see each other (and a conflicting one
// backs off) rather than both proceeding.
//
// A holder must be able to prove, before it commits anything, that its
// lock is still its own: the file is there as it last wrote it (nobody
// broke it), and it refreshed it within half the stale time on its own
// monotonic clock (so that no host whose wall clock is off by less than
// that could have judged it stale). A lock that fails either test is lost
// for good: the refresher never writes a lock back that someone broke.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dagvault/v1/repository.pb.h"
#include "repository/object_store.h"

namespace dagvault::repository {

inline constexpr absl::Duration kDefaultLockStaleAfter = absl::Minutes(10);

struct LockOptions {
  // Zero: a tenth of stale_after.
  absl::Duration refresh_every = absl::ZeroDuration();
  // A lock not refreshed for this long is stale, whatever host holds it.
  // Zero: the repository's (RepositoryConfig.lock_stale_seconds), else
  // kDefaultLockStaleAfter.
  absl::Duration stale_after = absl::ZeroDuration();
  Clock* clock = RealClock();

  absl::Duration StaleAfter() const {
    return stale_after > absl::ZeroDuration() ? stale_after : kDefaultLockStaleAfter;
  }
  absl::Duration RefreshEvery() const {
    return refresh_every > absl::ZeroDuration() ? refresh_every : StaleAfter() / 10;
  }
  // How fresh the holder's own proof must be: half the stale time.
  absl::Duration ProveWithin() const { return StaleAfter() / 2; }
};

// The options a repository's config implies, with any field `given` sets
// taking precedence.
LockOptions LockOptionsFor(const dagvault::v1::RepositoryConfig& config, LockOptions given = {});

class RepositoryLockHandle {
 public:
  ~RepositoryLockHandle();  // releases the lock
  RepositoryLockHandle(const RepositoryLockHandle&) = delete;
  RepositoryLockHandle& operator=(const RepositoryLockHandle&) = delete;

  // The lock's key in the store.
  const std::string& key() const { return key_; }
  // "Now" on the storage's clock: when this holder's lock was last
  // written, as the store that keeps it says.
  absl::StatusOr<absl::Time> StorageNow();

  // OK while this holder can prove the lock is still its own (see above);
  // otherwise an Aborted error that says why, now and at every later call.
  absl::Status CheckStillHeld();
  // One refresh, as the refresher thread does it: proves the lock is still
  // its own, then writes a new refresh time. A failed write is returned
  // but the lock is not lost until the proof is too old.
  absl::Status Refresh();
  absl::Status Release();

 private:
  friend absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(
      std::shared_ptr<const ObjectStore>, dagvault::v1::RepositoryLock::Kind, const std::string&,
      const std::string&, const LockOptions&);
  RepositoryLockHandle() = default;
  void RefreshLoop();
  // The proof, with mu_ held: the file as last written, and fresh.
  absl::Status ProveLocked();

  std::shared_ptr<const ObjectStore> store_;
  std::string key_;  // empty once released
  dagvault::v1::RepositoryLock lock_;
  std::string written_;  // the bytes last written to key_
  LockOptions options_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  absl::Duration proven_at_;  // monotonic: when the refresh time in the file was taken
  absl::Status lost_;         // not OK once the lock is lost
  std::thread refresher_;
};

// Takes a lock on the repository in `store` for `session`. A conflicting
// live lock is a FailedPrecondition error that names its holder (host,
// pid, purpose, last refresh). The refresher runs when
// `options.refresh_every` is not infinite.
absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(
    std::shared_ptr<const ObjectStore> store, dagvault::v1::RepositoryLock::Kind kind,
    const std::string& session, const std::string& purpose, const LockOptions& options = {});
// The same on the repository at `location` (OpenObjectStore).
absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(
    const std::string& location, dagvault::v1::RepositoryLock::Kind kind,
    const std::string& session, const std::string& purpose, const LockOptions& options = {});

// Why the lock at `key` (as read) is stale, or empty when its holder may
// still be alive. Prune uses it to re-check locks before it deletes.
// `storage_now` is the judge's StorageNow().
std::string StaleReason(const ObjectStore& store, const std::string& key,
                        const dagvault::v1::RepositoryLock& lock, const LockOptions& options,
                        absl::Time storage_now);

// The locks in the store other than `except`: key and content. One that
// does not parse is a DataLoss error naming it (something else put it
// there); one removed while listed is skipped.
absl::StatusOr<std::vector<std::pair<std::string, dagvault::v1::RepositoryLock>>> ListLocks(
    const ObjectStore& store, const std::string& except);

// "<boot id>/<pid namespace>" of this process: see RepositoryLock.host_identity.
const std::string& ThisHostIdentity();

}  // namespace dagvault::repository
