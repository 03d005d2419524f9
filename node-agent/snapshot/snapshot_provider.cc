#include "node-agent/snapshot/snapshot_provider.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::agent {
namespace {

namespace fs = std::filesystem;

enum class Mode { kReflink, kCopy, kAuto };

std::string FolderFor(const std::string& source, const std::string& job) {
  return JoinPath(DirName(source), absl::StrCat(kSnapshotFolderPrefix, job));
}

// A snapshot folder's owner lock sits beside it: "<folder>.lock", held with
// flock() by the job's process for as long as the folder exists. The kernel
// drops it when that process dies, however it dies, so a sweep can tell a
// live job's folder from a dead one's.
constexpr char kLockSuffix[] = ".lock";
std::string LockFor(const std::string& folder) { return folder + kLockSuffix; }

// Creates the owner lock of `folder`, already held: made under a name the
// sweep ignores, locked, then renamed into place (the lock follows the
// inode), so no sweep ever sees it unlocked while its owner lives.
absl::StatusOr<File> CreateOwnerLock(const std::string& folder) {
  const std::string lock = LockFor(folder);
  const std::string staging =
      JoinPath(DirName(folder), absl::StrCat(".dagvault-lock-staging-", BaseName(folder)));
  ASSIGN_OR_RETURN(File f, File::Open(staging, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (::flock(f.fd(), LOCK_EX | LOCK_NB) != 0) return ErrnoToStatus(errno, "lock", staging);
  if (::rename(staging.c_str(), lock.c_str()) != 0) return ErrnoToStatus(errno, "rename", staging);
  return f;
}

// Whether a live process holds `folder`'s owner lock. A folder with no lock
// file is a dead job's (one from before owner locks, or killed between its
// mkdir and its lock). Returns the lock, held, when it was free, so that
// nothing takes it while the folder is removed.
absl::StatusOr<std::optional<File>> TakeAbandoned(const std::string& folder, bool* live) {
  *live = false;
  const std::string lock = LockFor(folder);
  auto f = File::Open(lock, O_RDWR | O_CLOEXEC);
  if (!f.ok()) {
    if (absl::IsNotFound(f.status())) return std::optional<File>();
    return f.status();
  }
  if (::flock(f->fd(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      *live = true;
      return std::optional<File>();
    }
    return ErrnoToStatus(errno, "lock", lock);
  }
  return std::optional<File>(std::move(*f));
}

// Whether a FICLONE failure means "this volume cannot clone" rather than
// a real error.
bool CannotClone(int err) {
  return err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS;
}

class TakenSnapshot : public Snapshot {
 public:
  ~TakenSnapshot() override { (void)Remove(); }
  const std::vector<SnapshotFile>& files() const override { return files_; }
  const std::vector<std::string>& warnings() const override { return warnings_; }
  absl::Status Remove() override {
    absl::Status first;
    for (const std::string& folder : folders_) {
      std::error_code ec;
      fs::remove_all(folder, ec);
      if (ec && first.ok()) first = ErrnoToStatus(ec.value(), "remove snapshot folder", folder);
      // The lock goes last: while it stands, no sweep touches the folder.
      if (!ec) fs::remove(LockFor(folder), ec);
    }
    if (first.ok()) {
      folders_.clear();
      locks_.clear();
    }
    return first;
  }

  std::vector<SnapshotFile> files_;
  std::vector<std::string> warnings_;
  std::set<std::string> folders_;
  std::vector<File> locks_;  // the folders' owner locks, held
};

class Provider : public SnapshotProvider {
 public:
  explicit Provider(Mode mode) : mode_(mode), log_(logging::Get("agent.snapshot")) {}

  std::string name() const override {
    return mode_ == Mode::kReflink ? "reflink" : mode_ == Mode::kCopy ? "copy" : "auto";
  }

  absl::StatusOr<std::unique_ptr<Snapshot>> Take(const std::vector<std::string>& sources,
                                                 const SnapshotOptions& options) override {
    auto snapshot = std::make_unique<TakenSnapshot>();
    // Per volume (device), what auto found: can it clone?
    std::map<dev_t, bool> clones;
    for (const std::string& source : sources) {
      const std::string folder = FolderFor(source, options.job);
      if (snapshot->folders_.insert(folder).second) {
        if (PathExists(folder)) {
          return absl::AlreadyExistsError(
              absl::StrCat("snapshot folder ", folder, " exists already (job ids must differ)"));
        }
        ASSIGN_OR_RETURN(File lock, CreateOwnerLock(folder));
        snapshot->locks_.push_back(std::move(lock));
        RETURN_IF_ERROR(CreateDirectories(folder));
      }
      SnapshotFile file;
      file.source = source;
      file.path = JoinPath(folder, BaseName(source));
      RETURN_IF_ERROR(TakeOne(&file, &clones, options, snapshot.get()));
      snapshot->files_.push_back(std::move(file));
    }
    return std::unique_ptr<Snapshot>(std::move(snapshot));
  }

 private:
  absl::Status TakeOne(SnapshotFile* file, std::map<dev_t, bool>* clones,
                       const SnapshotOptions& options, TakenSnapshot* snapshot) {
    ASSIGN_OR_RETURN(File in, File::OpenReadOnly(file->source));
    struct stat st;
    if (::fstat(in.fd(), &st) != 0) return ErrnoToStatus(errno, "stat", file->source);
    file->size = static_cast<uint64_t>(st.st_size);
    ASSIGN_OR_RETURN(File out,
                     File::Open(file->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    auto known = clones->find(st.st_dev);
    const bool try_clone = mode_ == Mode::kReflink ||
                           (mode_ == Mode::kAuto && (known == clones->end() || known->second));
    if (try_clone) {
      if (::ioctl(out.fd(), FICLONE, in.fd()) == 0) {
        (*clones)[st.st_dev] = true;
        file->provider = "reflink";
        return out.Close();
      }
      const int err = errno;
      if (mode_ == Mode::kReflink || !CannotClone(err)) {
        return ErrnoToStatus(
            err,
            CannotClone(err)
                ? "clone (FICLONE) into the snapshot: the volume cannot clone (reflink needs XFS "
                  "with reflink=1 or btrfs; name the copy provider for this volume)"
                : "clone (FICLONE) into the snapshot",
            file->source);
      }
      (*clones)[st.st_dev] = false;
      log_->info("{}: the volume cannot clone ({}); copying its files instead", file->source,
                 std::strerror(err));
    }
    file->provider = "copy";
    return Copy(in, &out, *file, options, snapshot);
  }

  absl::Status Copy(const File& in, File* out, const SnapshotFile& file,
                    const SnapshotOptions& options, TakenSnapshot* snapshot) {
    std::vector<char> buf(4 << 20);
    const absl::Duration warn_after = options.freeze_timeout * options.warn_at;
    const absl::Duration abort_after = options.freeze_timeout * options.abort_at;
    for (uint64_t off = 0; off < file.size; off += buf.size()) {
      const size_t n = std::min<uint64_t>(buf.size(), file.size - off);
      ASSIGN_OR_RETURN(size_t got, in.ReadAtMost(off, buf.data(), n));
      RETURN_IF_ERROR(out->WriteAt(off, buf.data(), got));
      if (got < n) break;  // the writer is frozen: it cannot have shrunk, but do not loop
      const absl::Duration frozen = absl::Now() - options.frozen_at;
      if (frozen >= abort_after) {
        return absl::DeadlineExceededError(absl::StrFormat(
            "the copy snapshot stopped at %s offset %d: the writer has been frozen for %s of its "
            "%s freeze timeout; put the unit on a volume that can clone (XFS with reflink, "
            "btrfs) or raise the writer's freeze timeout",
            file.source, off + got, absl::FormatDuration(frozen),
            absl::FormatDuration(options.freeze_timeout)));
      }
      if (frozen >= warn_after && snapshot->warnings_.empty()) {
        std::string warning = absl::StrFormat(
            "the copy snapshot kept the writer frozen for %s, past %.0f%% of its %s freeze "
            "timeout; a volume that can clone (XFS with reflink, btrfs) freezes for milliseconds",
            absl::FormatDuration(frozen), 100 * options.warn_at,
            absl::FormatDuration(options.freeze_timeout));
        log_->warn("{}", warning);
        snapshot->warnings_.push_back(std::move(warning));
      }
    }
    return out->Close();
  }

  const Mode mode_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SnapshotProvider>> MakeSnapshotProvider(const std::string& name) {
  if (name == "reflink") return std::unique_ptr<SnapshotProvider>(new Provider(Mode::kReflink));
  if (name == "copy") return std::unique_ptr<SnapshotProvider>(new Provider(Mode::kCopy));
  if (name == "auto" || name.empty()) {
    return std::unique_ptr<SnapshotProvider>(new Provider(Mode::kAuto));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("snapshot provider \"", name, "\" is not one of auto, reflink, copy"));
}

absl::StatusOr<std::vector<std::string>> RemoveLeftoverSnapshots(
    const std::vector<std::string>& dirs) {
  std::vector<std::string> removed;
  std::set<std::string> seen;
  for (const std::string& dir : dirs) {
    if (!seen.insert(dir).second || !PathExists(dir)) continue;
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
    for (const std::string& name : names) {
      if (!absl::StartsWith(name, kSnapshotFolderPrefix)) continue;
      std::string folder = JoinPath(dir, name);
      const bool lock_only = absl::EndsWith(name, kLockSuffix);
      // A lock file alone: its folder was removed but not the lock.
      if (lock_only) {
        folder.resize(folder.size() - strlen(kLockSuffix));
        if (PathExists(folder)) continue;  // handled with its folder
      }
      bool live = false;
      // Held until the folder and its lock are gone.
      ASSIGN_OR_RETURN(std::optional<File> held, TakeAbandoned(folder, &live));
      if (live) continue;  // a running job's
      std::error_code ec;
      fs::remove_all(folder, ec);
      if (ec) return ErrnoToStatus(ec.value(), "remove leftover snapshot folder", folder);
      fs::remove(LockFor(folder), ec);
      if (!lock_only) removed.push_back(folder);
    }
  }
  return removed;
}

}  // namespace dagvault::agent
