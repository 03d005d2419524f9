#include "repository/lock.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

namespace fs = std::filesystem;
using dagvault::v1::RepositoryLock;

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

std::string Describe(const RepositoryLock& lock) {
  return absl::StrCat(
      lock.kind() == RepositoryLock::EXCLUSIVE ? "an exclusive" : "a shared", " lock for ",
      lock.purpose(), " (session ", lock.session(), ", host ", lock.host(), ", pid ", lock.pid(),
      ", refreshed ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMicros(lock.refreshed_us()),
                       absl::UTCTimeZone()),
      ")");
}

// Why a lock is stale, or empty when its holder may still be alive.
std::string StaleReason(const RepositoryLock& lock, const LockOptions& options) {
  if (lock.host() == HostName() && lock.pid() > 0 && kill(static_cast<pid_t>(lock.pid()), 0) != 0 &&
      errno == ESRCH) {
    return "its process is gone";
  }
  const absl::Duration age = absl::Now() - absl::FromUnixMicros(lock.refreshed_us());
  if (age > options.stale_after) {
    return absl::StrCat("it was last refreshed ", absl::FormatDuration(age), " ago");
  }
  return "";
}

absl::Status WriteLock(const std::string& path, const RepositoryLock& lock) {
  return WriteFileAtomically(path, lock.SerializeAsString());
}

}  // namespace

absl::StatusOr<std::unique_ptr<RepositoryLockHandle>> AcquireLock(const std::string& root,
                                                                  RepositoryLock::Kind kind,
                                                                  const std::string& session,
                                                                  const std::string& purpose,
                                                                  const LockOptions& options) {
  auto log = logging::Get("repository.lock");
  const std::string dir = JoinPath(root, "locks");
  RETURN_IF_ERROR(CreateDirectories(dir));
  std::unique_ptr<RepositoryLockHandle> handle(new RepositoryLockHandle());
  handle->options_ = options;
  handle->path_ = JoinPath(dir, absl::StrCat(session, ".lock"));
  RepositoryLock& lock = handle->lock_;
  lock.set_kind(kind);
  lock.set_host(HostName());
  lock.set_pid(getpid());
  lock.set_session(session);
  lock.set_purpose(purpose);
  lock.set_created_us(absl::ToUnixMicros(absl::Now()));
  lock.set_refreshed_us(lock.created_us());
  RETURN_IF_ERROR(WriteLock(handle->path_, lock));

  // Then every other lock: stale ones are broken, a conflicting live one
  // makes this taker back off.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string path = e.path().string();
    if (path == handle->path_ || !absl::EndsWith(path, ".lock")) continue;
    auto bytes = ReadFileToString(path);
    if (!bytes.ok()) continue;  // released meanwhile
    RepositoryLock other;
    if (!other.ParseFromString(*bytes)) {
      // A lock file cut short by a crash while it was written is not
      // possible (written atomically); one that does not parse was put
      // there by something else, and is left for an operator.
      (void)handle->Release();
      return absl::DataLossError(absl::StrCat("lock file ", path,
                                              " does not parse; remove it "
                                              "if no dagvault process owns it"));
    }
    const std::string stale = StaleReason(other, options);
    if (!stale.empty()) {
      log->warn("breaking stale {} in {}: {}", Describe(other), root, stale);
      (void)RemoveDurably(path);
      continue;
    }
    if (kind == RepositoryLock::EXCLUSIVE || other.kind() == RepositoryLock::EXCLUSIVE) {
      (void)handle->Release();
      return absl::FailedPreconditionError(absl::StrCat("repository ", root, " is locked by ",
                                                        Describe(other), "; try again later"));
    }
  }
  handle->refresher_ = std::thread([h = handle.get()] { h->RefreshLoop(); });
  return handle;
}

void RepositoryLockHandle::RefreshLoop() {
  std::unique_lock<std::mutex> guard(mu_);
  while (!stop_cv_.wait_for(guard, absl::ToChronoMilliseconds(options_.refresh_every),
                            [&] { return stop_; })) {
    lock_.set_refreshed_us(absl::ToUnixMicros(absl::Now()));
    if (auto s = WriteLock(path_, lock_); !s.ok()) {
      logging::Get("repository.lock")->warn("could not refresh lock {}: {}", path_, s.ToString());
    }
  }
}

absl::Status RepositoryLockHandle::Release() {
  {
    std::lock_guard<std::mutex> guard(mu_);
    if (stop_ && !refresher_.joinable() && path_.empty()) return absl::OkStatus();
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  if (path_.empty()) return absl::OkStatus();
  absl::Status s = RemoveDurably(path_);
  path_.clear();
  return s;
}

RepositoryLockHandle::~RepositoryLockHandle() { (void)Release(); }

}  // namespace dagvault::repository
