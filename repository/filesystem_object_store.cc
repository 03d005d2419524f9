#include "repository/filesystem_object_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/uncached_io.h"

namespace dagvault::repository {
namespace {

namespace fs = std::filesystem;

// Temporary files of a write in progress (file_util: "<path>.<pid>-<hex>.tmp").
bool IsTemporary(absl::string_view name) { return absl::EndsWith(name, ".tmp"); }

// Objects and ranges from this size on are bulk data (packs), kept out of
// the page cache.
constexpr size_t kUncachedMin = 1 << 20;
constexpr size_t kKeptBuffer = 8 << 20;

}  // namespace

std::string FilesystemObjectStore::Name(const std::string& key) const {
  return JoinPath(root_, key);
}

absl::StatusOr<std::string> FilesystemObjectStore::PathOf(const std::string& key) const {
  if (!IsSafeRelativePath(key) || IsTemporary(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", key, "\" is not an object key of repository ", root_));
  }
  return JoinPath(root_, key);
}

absl::Status FilesystemObjectStore::PutIfAbsent(const std::string& key, absl::string_view data,
                                                const PutOptions& options) const {
  ASSIGN_OR_RETURN(std::string path, PathOf(key));
  if (options.retain_until) {
    return absl::FailedPreconditionError(absl::StrCat(
        "repository ", root_,
        " is on a filesystem, which cannot lock objects against deletion (docs/repository.md, "
        "\"Immutable backups\")"));
  }
  RETURN_IF_ERROR(CreateDirectories(DirName(path)));
  const mode_t mode = options.owner_only ? 0600 : 0644;
  // Objects this large are packs, written once and not read back soon:
  // they go around the page cache, leaving it to the mail server.
  if (data.size() >= kUncachedMin) return WriteNewFileAtomicallyUncached(path, data, mode);
  return WriteNewFileAtomically(path, data, mode);
}

absl::Status FilesystemObjectStore::Replace(const std::string& key, absl::string_view data) const {
  ASSIGN_OR_RETURN(std::string path, PathOf(key));
  RETURN_IF_ERROR(CreateDirectories(DirName(path)));
  return WriteFileAtomically(path, data);
}

absl::StatusOr<std::string> FilesystemObjectStore::Get(const std::string& key) const {
  ASSIGN_OR_RETURN(std::string path, PathOf(key));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) >= kUncachedMin) {
    // A whole pack (check --read-data, a prune's repack): read once,
    // around the page cache.
    return GetRange(key, 0, static_cast<uint64_t>(st.st_size));
  }
  return ReadFileToString(path);
}

namespace {

// An object opened for a ranged read, and how much of the range it holds.
struct OpenedRange {
  File file;
  uint64_t length;
};
absl::StatusOr<OpenedRange> OpenRange(const std::string& path, uint64_t offset, uint64_t length) {
  ASSIGN_OR_RETURN(File f, File::OpenReadOnly(path));
  ASSIGN_OR_RETURN(uint64_t size, f.Size());
  if (offset >= size && !(offset == 0 && length == 0)) {
    return absl::OutOfRangeError(
        absl::StrCat(path, ": offset ", offset, " is past its end (", size, " bytes)"));
  }
  return OpenedRange{std::move(f), std::min<uint64_t>(length, size - offset)};
}

}  // namespace

absl::StatusOr<std::string> FilesystemObjectStore::GetRange(const std::string& key, uint64_t offset,
                                                            uint64_t length) const {
  if (length < kUncachedMin) {
    // Small objects (manifests, indexes, locks) straight into the result.
    ASSIGN_OR_RETURN(std::string path, PathOf(key));
    ASSIGN_OR_RETURN(OpenedRange range, OpenRange(path, offset, length));
    std::string out(range.length, '\0');
    ASSIGN_OR_RETURN(size_t got, range.file.ReadAtMost(offset, out.data(), out.size()));
    out.resize(got);
    return out;
  }
  // A thread keeps a buffer for a restore's ranges (at most 8 MiB); a
  // larger one (a whole pack) is given back at once.
  thread_local AlignedBuffer kept;
  AlignedBuffer once;
  AlignedBuffer& buffer = length <= kKeptBuffer ? kept : once;
  ASSIGN_OR_RETURN(absl::Span<char> bytes, GetRangeInto(key, offset, length, &buffer));
  return std::string(bytes.data(), bytes.size());
}

absl::StatusOr<absl::Span<char>> FilesystemObjectStore::GetRangeInto(const std::string& key,
                                                                     uint64_t offset,
                                                                     uint64_t length,
                                                                     AlignedBuffer* buffer) const {
  ASSIGN_OR_RETURN(std::string path, PathOf(key));
  ASSIGN_OR_RETURN(OpenedRange range, OpenRange(path, offset, length));
  const uint64_t want = range.length;
  File& f = range.file;
  if (want >= kUncachedMin) {
    // Pack data a restore or a check reads once: around the page cache,
    // so that neither fills it with packs.
    ASSIGN_OR_RETURN(UncachedReader reader, UncachedReader::Open(path));
    return reader.Read(offset, want, buffer);
  }
  buffer->resize(want);
  ASSIGN_OR_RETURN(size_t got, f.ReadAtMost(offset, buffer->data(), want));
  buffer->resize(got);
  return absl::MakeSpan(buffer->data(), got);
}

absl::StatusOr<ObjectInfo> FilesystemObjectStore::Head(const std::string& key) const {
  ASSIGN_OR_RETURN(std::string path, PathOf(key));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  }
  ObjectInfo info;
  info.key = key;
  info.size = static_cast<uint64_t>(st.st_size);
  info.modified = absl::TimeFromTimespec(st.st_mtim);
  return info;
}

absl::StatusOr<ObjectPage> FilesystemObjectStore::List(const std::string& prefix,
                                                       const std::string& token,
                                                       size_t max_keys) const {
  // The folder the prefix names ("packs/" → packs, "index/s1" → index).
  const size_t slash = prefix.rfind('/');
  const std::string dir =
      slash == std::string::npos ? root_ : JoinPath(root_, prefix.substr(0, slash));
  ObjectPage page;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return page;
  std::vector<ObjectInfo> found;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::string name = it->path().filename().string();
    if (IsTemporary(name)) continue;
    std::string key = it->path().lexically_relative(root_).string();
    if (!absl::StartsWith(key, prefix) || key <= token) continue;
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) continue;  // removed meanwhile
    ObjectInfo info;
    info.key = std::move(key);
    info.size = static_cast<uint64_t>(st.st_size);
    info.modified = absl::TimeFromTimespec(st.st_mtim);
    found.push_back(std::move(info));
  }
  if (ec) return ErrnoToStatus(ec.value(), "list", dir);
  std::sort(found.begin(), found.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  if (max_keys != 0 && found.size() > max_keys) {
    found.resize(max_keys);
    page.next_token = found.back().key;
  }
  page.objects = std::move(found);
  return page;
}

absl::Status FilesystemObjectStore::Delete(const std::string& key) const {
  ASSIGN_OR_RETURN(std::string path, PathOf(key));
  return RemoveDurably(path);
}

absl::StatusOr<size_t> FilesystemObjectStore::RemoveIncomplete(absl::Time before) const {
  size_t removed = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string path = it->path().string();
    struct stat st {};
    if (!IsTemporary(path) || ::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (absl::TimeFromTimespec(st.st_mtim) < before && RemoveDurably(path).ok()) ++removed;
  }
  if (ec) return ErrnoToStatus(ec.value(), "list", root_);
  return removed;
}

}  // namespace dagvault::repository
