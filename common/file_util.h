// File helpers with the durability steps spelled out: write to a temporary
// file, fsync it, rename it into place, fsync the directory. Every error names
// the path (and offset, for positional I/O) it concerns.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dagvault {

// Converts an errno value into a Status whose message names the operation and
// path, e.g. "open /data/mb1.edb: No such file or directory".
absl::Status ErrnoToStatus(int err, absl::string_view operation, absl::string_view path);

// An open file descriptor that closes itself. Positional reads and writes
// loop over short transfers and EINTR.
class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  static absl::StatusOr<File> Open(const std::string& path, int flags, mode_t mode = 0644);
  static absl::StatusOr<File> OpenReadOnly(const std::string& path) {
    return Open(path, O_RDONLY | O_CLOEXEC);
  }

  // Reads exactly n bytes at offset; a short file is an OutOfRange error that
  // names the path and offset.
  absl::Status ReadAt(uint64_t offset, void* buf, size_t n) const;
  // Reads up to n bytes at offset; returns how many were read (less at EOF).
  absl::StatusOr<size_t> ReadAtMost(uint64_t offset, void* buf, size_t n) const;
  // Whether [offset, offset + n) lies wholly in a hole of a sparse file
  // (reads as zeros without reading anything). False when unsure.
  bool IsHole(uint64_t offset, uint64_t n) const;
  absl::Status WriteAt(uint64_t offset, const void* buf, size_t n);
  absl::Status Sync();
  absl::Status DataSync();
  absl::StatusOr<uint64_t> Size() const;
  absl::Status Truncate(uint64_t size);
  // Allocates the blocks of [offset, offset + length) (fallocate(2); they
  // read as zeros), so that the space is known to be there and writes
  // into them need not allocate. Unimplemented when the filesystem cannot.
  absl::Status Allocate(uint64_t offset, uint64_t length);
  absl::Status Close();

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

// Reads a whole file into memory.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Creates `path`, which must not exist, for writing: O_EXCL and O_NOFOLLOW,
// so that anything already there (a symlink planted by someone else
// included) is an AlreadyExists error naming the path, never followed. The
// mode is subject to the umask, as with open(2).
absl::StatusOr<File> CreateNewFile(const std::string& path, mode_t mode = 0644);

// Replaces `path` with `data` so that a crash leaves either the old or the
// new content, never a mix: temp file, fsync, rename, fsync directory. The
// temporary file is `<path>.<pid>-<random hex>.tmp` (repository/prune.cc
// sweeps leftover "*.tmp"), created with CreateNewFile and removed again on
// any failure. The file ends up with exactly `mode` whatever the umask: use
// 0600 for secrets. A symlink at `path` is replaced, not followed.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data,
                                 mode_t mode = 0644);

// As WriteFileAtomically, but never replaces: when `path` exists (a file,
// a symlink, anything) it is left alone and the result is AlreadyExists
// naming it. The new name is made with link(2), which fails rather than
// replace, so two writers racing for one name cannot both win.
absl::Status WriteNewFileAtomically(const std::string& path, absl::string_view data,
                                    mode_t mode = 0644);
// The same for bulk data nobody will read back soon (a pack): written
// around the page cache (common/uncached_io.h), so that it does not push
// other processes' cached pages out.
absl::Status WriteNewFileAtomicallyUncached(const std::string& path, absl::string_view data,
                                            mode_t mode = 0644);

// fsyncs a directory so that renames and creations in it are durable.
absl::Status FsyncDir(const std::string& dir);

// rename(2) followed by an fsync of the destination's directory.
absl::Status RenameDurably(const std::string& from, const std::string& to);

// unlink(2) followed by an fsync of the directory. Missing files are fine.
absl::Status RemoveDurably(const std::string& path);

// mkdir -p. Each directory it creates gets `mode` (subject to the umask, as
// with mkdir(2)), and its parent is fsynced so that the new entry is durable
// before anything durable refers to it.
absl::Status CreateDirectories(const std::string& path, mode_t mode = 0755);

bool PathExists(const std::string& path);

// The names (not paths) of the entries of a directory, sorted.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

// Whether `name`, joined to a folder (JoinPath), names a path inside it:
// relative, no "..", no NUL (which would end the name open(2) sees), and
// every component a name (no "a//b", "a/./b" or "a/"). For names that come
// from outside: a manifest's files, a peer's seed.
bool IsSafeRelativePath(absl::string_view name);

std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
std::string JoinPath(absl::string_view a, absl::string_view b);

}  // namespace dagvault
