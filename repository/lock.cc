#include "repository/lock.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

using dagvault::v1::RepositoryLock;

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

std::string Describe(const RepositoryLock& lock) {
  return absl::StrCat(lock.kind() == RepositoryLock::EXCLUSIVE ? "an exclusive" : "a shared",
                      " lock for ", lock.purpose(), " (session ", lock.session(), ", host ",
                      lock.host(), ", pid ", lock.pid(), ", refreshed ",
                      FormatUtc(absl::FromUnixMicros(lock.refreshed_us())), ")");
}

}  // namespace

const std::string& ThisHostIdentity() {
  static const std::string* identity = [] {
    // A /proc file reports size 0: read it as a stream.
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string boot;
    std::getline(in, boot);
    std::string id(absl::StripAsciiWhitespace(boot));
    char ns[128] = {};
    const ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
    // Without both parts a pid cannot be judged: the identity stays empty
    // and locks are broken only by their age.
    if (id.empty() || n <= 0) return new std::string();
    return new std::string(absl::StrCat(id, "/", absl::string_view(ns, static_cast<size_t>(n))));
  }();
  return *identity;
}

LockOptions LockOptionsFor(const dagvault::v1::RepositoryConfig& config, LockOptions given) {
  if (given.stale_after <= absl::ZeroDuration() && config.lock_stale_seconds() != 0) {
    given.stale_after = absl::Seconds(config.lock_stale_seconds());
  }
  return given;
}

std::string StaleReason(const ObjectStore& store, const std::string& key,
                        const RepositoryLock& lock, const LockOptions& options,
                        absl::Time storage_now) {
  if (!lock.host_identity().empty() && lock.host_identity() == ThisHostIdentity() &&
      lock.pid() > 0 && kill(static_cast<pid_t>(lock.pid()), 0) != 0 && errno == ESRCH) {
    return "its process is gone";
  }
  // Two witnesses must agree that the lock is old: the time its holder
  // wrote in it, against this judge's wall clock, and the object's
  // modification time, against the judge's own lock (both on the
  // storage's clock). A holder whose wall clock is behind, or a judge
  // whose wall clock jumped ahead, breaks nothing.
  const absl::Duration age = options.clock->Now() - absl::FromUnixMicros(lock.refreshed_us());
  auto object = store.Head(key);
  if (!object.ok()) return "";  // released meanwhile
  const absl::Duration file_age = storage_now - object->modified;
  const absl::Duration stale_after = options.StaleAfter();
  if (age > stale_after && file_age > stale_after) {
    return absl::StrCat("it was last refreshed ", absl::FormatDuration(age), " ago (its object ",
                        absl::FormatDuration(file_age), " ago)");
  }
  return "";
}

absl::StatusOr<std::vector<std::pair<std::string, RepositoryLock>>> ListLocks(
    const ObjectStore& store, const std::string& except) {
  std::vector<std::pair<std::string, RepositoryLock>> locks;
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(store, "locks/"));
  for (const auto& o : objects) {
    if (o.key == except || !absl::EndsWith(o.key, ".lock")) continue;
    auto bytes = store.Get(o.key);
    if (absl::IsNotFound(bytes.status())) continue;  // released meanwhile
    if (!bytes.ok()) return bytes.status();
    RepositoryLock lock;
    if (!lock.ParseFromString(*bytes)) {
      // A lock cut short by a crash while it was written is not possible
      // (written whole); one that does not parse was put there by
      // something else, and is left for an operator.
      return absl::DataLossError(absl::StrCat("lock file ", store.Name(o.key),
                                              " does not parse; remove it "
                                              "if no dagvault process owns it"));
    }
    locks.emplace_back(o.key, std::move(lock));
  }
  return locks;
}

absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(const std::string& location,
                                                                  RepositoryLock::Kind kind,
                                                                  const std::string& session,
                                                                  const std::string& purpose,
                                                                  const LockOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const ObjectStore> store, OpenObjectStore(location));
  return AcquireLock(std::move(store), kind, session, purpose, options);
}

absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(
    std::shared_ptr<const ObjectStore> store, RepositoryLock::Kind kind, const std::string& session,
    const std::string& purpose, const LockOptions& options) {
  auto log = logging::Get("repository.lock");
  std::unique_ptr<RepositoryLockHandle> handle(new RepositoryLockHandle());
  handle->options_ = options;
  handle->store_ = store;
  handle->key_ = absl::StrCat("locks/", session, ".lock");
  RepositoryLock& lock = handle->lock_;
  lock.set_kind(kind);
  lock.set_host(HostName());
  lock.set_host_identity(ThisHostIdentity());
  lock.set_pid(getpid());
  lock.set_session(session);
  lock.set_purpose(purpose);
  handle->proven_at_ = options.clock->Monotonic();
  lock.set_created_us(options.clock->NowMicros());
  lock.set_refreshed_us(lock.created_us());
  handle->written_ = lock.SerializeAsString();
  // A session id is new: if its lock is somehow there, it is not ours.
  if (absl::Status put = store->PutIfAbsent(handle->key_, handle->written_); !put.ok()) {
    handle->key_.clear();
    return put;
  }
  auto own = store->Head(handle->key_);
  const absl::Time storage_now = own.ok() ? own->modified : options.clock->Now();

  // Then every other lock: stale ones are broken, a conflicting live one
  // makes this taker back off.
  auto others = ListLocks(*store, handle->key_);
  if (!others.ok()) {
    (void)handle->Release();
    return Annotate(others.status(),
                    absl::StrCat("repository ", store->location(), ": cannot see the other locks"));
  }
  for (const auto& [key, other] : *others) {
    const std::string stale = StaleReason(*store, key, other, options, storage_now);
    if (!stale.empty()) {
      log->warn("breaking stale {} in {}: {}", Describe(other), store->location(), stale);
      (void)store->Delete(key);
      continue;
    }
    if (kind == RepositoryLock::EXCLUSIVE || other.kind() == RepositoryLock::EXCLUSIVE) {
      (void)handle->Release();
      return absl::FailedPreconditionError(absl::StrCat("repository ", store->location(),
                                                        " is locked by ", Describe(other),
                                                        "; try again later"));
    }
  }
  if (options.refresh_every != absl::InfiniteDuration()) {
    handle->refresher_ = std::thread([h = handle.get()] { h->RefreshLoop(); });
  }
  return handle;
}

absl::Status RepositoryLockHandle::ProveLocked() {
  if (!lost_.ok()) return lost_;
  auto bytes = store_->Get(key_);
  if (!bytes.ok() && !absl::IsNotFound(bytes.status())) {
    // The store did not answer: no proof either way, and not yet lost
    // (the proof's age decides that below).
    return Annotate(bytes.status(), absl::StrCat("repository lock ", store_->Name(key_)));
  }
  if (!bytes.ok() || *bytes != written_) {
    lost_ = absl::AbortedError(absl::StrCat(
        "repository lock ", store_->Name(key_), " is no longer this session's: ",
        bytes.ok() ? "another process rewrote it"
                   : "it was removed (broken as stale by another process, which may have "
                     "pruned this session's data)"));
    return lost_;
  }
  const absl::Duration since = options_.clock->Monotonic() - proven_at_;
  if (since > options_.ProveWithin()) {
    lost_ = absl::AbortedError(absl::StrCat(
        "repository lock ", store_->Name(key_), " was last refreshed ", absl::FormatDuration(since),
        " ago, longer than half its stale time (", absl::FormatDuration(options_.StaleAfter()),
        "): another process may have broken it and pruned this session's data (was this "
        "process paused, or its repository unreachable?)"));
    return lost_;
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> RepositoryLockHandle::StorageNow() {
  std::lock_guard<std::mutex> guard(mu_);
  if (key_.empty()) return absl::FailedPreconditionError("the repository lock was released");
  ASSIGN_OR_RETURN(ObjectInfo own, store_->Head(key_));
  return own.modified;
}

absl::Status RepositoryLockHandle::CheckStillHeld() {
  std::lock_guard<std::mutex> guard(mu_);
  if (key_.empty()) return absl::FailedPreconditionError("the repository lock was released");
  return ProveLocked();
}

absl::Status RepositoryLockHandle::Refresh() {
  std::lock_guard<std::mutex> guard(mu_);
  if (key_.empty()) return absl::FailedPreconditionError("the repository lock was released");
  RETURN_IF_ERROR(ProveLocked());
  DAGVAULT_CRASH_POINT("repository.lock.refresh");
  const absl::Duration at = options_.clock->Monotonic();
  RepositoryLock next = lock_;
  next.set_refreshed_us(options_.clock->NowMicros());
  std::string bytes = next.SerializeAsString();
  absl::Status wrote = store_->Replace(key_, bytes);
  if (!wrote.ok()) {
    // The write may have landed before the failure (a folder fsync, a lost
    // response): then the lock holds the new bytes, and they are what to
    // prove next.
    auto now = store_->Get(key_);
    if (now.ok() && *now == bytes) {
      lock_ = std::move(next);
      written_ = std::move(bytes);
    }
    return wrote;
  }
  lock_ = std::move(next);
  written_ = std::move(bytes);
  proven_at_ = at;
  return absl::OkStatus();
}

void RepositoryLockHandle::RefreshLoop() {
  auto log = logging::Get("repository.lock");
  std::unique_lock<std::mutex> guard(mu_);
  while (!stop_cv_.wait_for(guard, absl::ToChronoMilliseconds(options_.RefreshEvery()),
                            [&] { return stop_; })) {
    guard.unlock();
    absl::Status s = Refresh();
    guard.lock();
    if (!s.ok()) {
      if (!lost_.ok()) {
        log->error("{}", lost_.message());
        return;  // lost for good: nothing more to refresh
      }
      log->warn("could not refresh lock {}: {}", store_->Name(key_), s.ToString());
    }
  }
}

absl::Status RepositoryLockHandle::Release() {
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (stop_ && !refresher_.joinable() && key_.empty()) return absl::OkStatus();
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  std::lock_guard<std::mutex> guard(mu_);
  if (key_.empty()) return absl::OkStatus();
  absl::Status s;
  // A lock that is lost is someone else's business now, or gone: only one
  // that is still this holder's is removed.
  auto bytes = store_->Get(key_);
  if (bytes.ok() && *bytes == written_) s = store_->Delete(key_);
  key_.clear();
  return s;
}

RepositoryLockHandle::~RepositoryLockHandle() { (void)Release(); }

}  // namespace dagvault::repository
