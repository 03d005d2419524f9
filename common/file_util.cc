#include "common/file_util.h"

#include <dirent.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/uncached_io.h"

namespace dagvault {

absl::Status ErrnoToStatus(int err, absl::string_view operation, absl::string_view path) {
  std::string message = absl::StrCat(operation, " ", path, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR:
      return absl::InvalidArgumentError(message);
    case EAGAIN:
    case EBUSY:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

File::File(File&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

absl::StatusOr<File> File::Open(const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ErrnoToStatus(errno, "open", path);
  return File(fd, path);
}

absl::StatusOr<size_t> File::ReadAtMost(uint64_t offset, void* buf, size_t n) const {
  auto* out = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("read at offset ", offset + done, " of"), path_);
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

absl::Status File::ReadAt(uint64_t offset, void* buf, size_t n) const {
  ASSIGN_OR_RETURN(size_t got, ReadAtMost(offset, buf, n));
  if (got != n) {
    return absl::OutOfRangeError(absl::StrCat(path_, ": short read at offset ", offset, ": wanted ",
                                              n, " bytes, file ends after ", got));
  }
  return absl::OkStatus();
}

bool File::IsHole(uint64_t offset, uint64_t n) const {
  const off_t data = ::lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
  // ENXIO: no data at or after offset (the rest of the file is a hole).
  if (data < 0) return errno == ENXIO;
  return static_cast<uint64_t>(data) >= offset + n;
}

absl::Status File::WriteAt(uint64_t offset, const void* buf, size_t n) {
  const auto* in = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::pwrite(fd_, in + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoToStatus(errno, absl::StrCat("write at offset ", offset + done, " of"), path_);
    }
    done += static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status File::Sync() {
  if (::fsync(fd_) != 0) return ErrnoToStatus(errno, "fsync", path_);
  return absl::OkStatus();
}

absl::Status File::DataSync() {
  if (::fdatasync(fd_) != 0) return ErrnoToStatus(errno, "fdatasync", path_);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> File::Size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return ErrnoToStatus(errno, "stat", path_);
  return static_cast<uint64_t>(st.st_size);
}

absl::Status File::Truncate(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return ErrnoToStatus(errno, "truncate", path_);
  }
  return absl::OkStatus();
}

absl::Status File::Allocate(uint64_t offset, uint64_t length) {
  if (length == 0) return absl::OkStatus();
  int r;
  do {
    r = ::fallocate(fd_, 0, static_cast<off_t>(offset), static_cast<off_t>(length));
  } while (r != 0 && errno == EINTR);
  if (r == 0) return absl::OkStatus();
  if (errno == EOPNOTSUPP || errno == ENOSYS) {
    return absl::UnimplementedError(absl::StrCat(path_, ": its filesystem cannot allocate ahead"));
  }
  return ErrnoToStatus(errno, absl::StrCat("allocate ", length, " bytes at offset ", offset, " of"),
                       path_);
}

absl::Status File::Close() {
  if (fd_ < 0) return absl::OkStatus();
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoToStatus(errno, "close", path_);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  ASSIGN_OR_RETURN(File file, File::OpenReadOnly(path));
  ASSIGN_OR_RETURN(uint64_t size, file.Size());
  std::string data(size, '\0');
  ASSIGN_OR_RETURN(size_t got, file.ReadAtMost(0, data.data(), data.size()));
  data.resize(got);
  return data;
}

absl::Status FsyncDir(const std::string& dir) {
  ASSIGN_OR_RETURN(File d, File::Open(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY));
  return d.Sync();
}

absl::StatusOr<File> CreateNewFile(const std::string& path, mode_t mode) {
  return File::Open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
}

namespace {

// A name beside `path` that no one can predict: a fixed "<path>.tmp" let
// anyone who can write the folder plant a symlink there in advance.
absl::StatusOr<std::string> TemporaryNameFor(const std::string& path) {
  char random[8];
  if (::getrandom(random, sizeof(random), 0) != static_cast<ssize_t>(sizeof(random))) {
    return ErrnoToStatus(errno, "getrandom for a temporary name beside", path);
  }
  return absl::StrCat(path, ".", ::getpid(), "-",
                      absl::BytesToHexString(absl::string_view(random, sizeof(random))), ".tmp");
}

}  // namespace

namespace {

// The temporary file of WriteFileAtomically and WriteNewFileAtomically,
// written and synced; it goes into place by rename (replace) or by link.
absl::Status WriteIntoPlace(const std::string& path, absl::string_view data, mode_t mode,
                            bool replace, bool uncached = false) {
  ASSIGN_OR_RETURN(std::string tmp, TemporaryNameFor(path));
  // Created with `mode` under the umask, so never wider than asked, then
  // set to exactly `mode`: the caller says what the file must be (0600 for a
  // key), and neither a daemon's umask (systemd's 0022) nor a stricter one
  // should change that silently.
  ASSIGN_OR_RETURN(File f, CreateNewFile(tmp, mode));
  bool renamed = false;
  auto remove_tmp = absl::MakeCleanup([&] {
    if (!renamed) ::unlink(tmp.c_str());
  });
  if (::fchmod(f.fd(), mode) != 0) return ErrnoToStatus(errno, "chmod", tmp);
  if (uncached) {
    RETURN_IF_ERROR(WriteUncached(f, data));
  } else {
    RETURN_IF_ERROR(f.WriteAt(0, data.data(), data.size()));
  }
  RETURN_IF_ERROR(f.Sync());
  if (uncached) DropCachedPages(f);  // the tail, or all of it where direct I/O was refused
  RETURN_IF_ERROR(f.Close());
  if (replace) {
    // rename(2) replaces a symlink at `path` itself; it never follows it.
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      return ErrnoToStatus(errno, absl::StrCat("rename to ", path, " from"), tmp);
    }
    renamed = true;
  } else {
    // link(2) fails with EEXIST whatever is at `path`, a dangling symlink
    // included; the temporary name goes either way.
    if (::link(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      // On NFS a retransmitted LINK can fail with EEXIST after the link was
      // made: two names on the temporary file prove it was (open(2)).
      struct stat st {};
      const bool made = err == EEXIST && ::stat(tmp.c_str(), &st) == 0 && st.st_nlink == 2;
      if (!made) {
        if (err == EEXIST) return absl::AlreadyExistsError(absl::StrCat(path, " already exists"));
        return ErrnoToStatus(err, absl::StrCat("link to ", path, " from"), tmp);
      }
    }
  }
  return FsyncDir(DirName(path));
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, absl::string_view data, mode_t mode) {
  return WriteIntoPlace(path, data, mode, /*replace=*/true);
}

absl::Status WriteNewFileAtomically(const std::string& path, absl::string_view data, mode_t mode) {
  return WriteIntoPlace(path, data, mode, /*replace=*/false);
}

absl::Status WriteNewFileAtomicallyUncached(const std::string& path, absl::string_view data,
                                            mode_t mode) {
  return WriteIntoPlace(path, data, mode, /*replace=*/false, /*uncached=*/true);
}

absl::Status RenameDurably(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("rename to ", to, " from"), from);
  }
  return FsyncDir(DirName(to));
}

absl::Status RemoveDurably(const std::string& path) {
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoToStatus(errno, "unlink", path);
  }
  return FsyncDir(DirName(path));
}

absl::Status CreateDirectories(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::OkStatus();
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), mode) == 0) {
      // The new entry is durable before anything is created in it.
      RETURN_IF_ERROR(FsyncDir(DirName(partial)));
    } else if (errno != EEXIST) {
      return ErrnoToStatus(errno, "mkdir", partial);
    }
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat", path);
  if (!S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(path + " is not a directory");
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoToStatus(errno, "opendir", dir);
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(std::move(name));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool IsSafeRelativePath(absl::string_view name) {
  if (name.empty() || name[0] == '/' || name.find("..") != absl::string_view::npos ||
      name.find('\0') != absl::string_view::npos) {
    return false;
  }
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    const absl::string_view c = name.substr(
        start, slash == absl::string_view::npos ? absl::string_view::npos : slash - start);
    if (c.empty() || c == ".") return false;
    if (slash == absl::string_view::npos) return true;
    start = slash + 1;
  }
}

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string JoinPath(absl::string_view a, absl::string_view b) {
  if (a.empty() || (!b.empty() && b.front() == '/')) return std::string(b);
  if (a.back() == '/') return absl::StrCat(a, b);
  return absl::StrCat(a, "/", b);
}

}  // namespace dagvault
