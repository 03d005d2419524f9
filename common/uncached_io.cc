#include "common/uncached_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace dagvault {
namespace {

size_t AlignUp(size_t n) {
  return (n + kDirectIoAlignment - 1) / kDirectIoAlignment * kDirectIoAlignment;
}

// Turns O_DIRECT on or off for an open file; false when the filesystem
// does not support it.
bool SetDirect(int fd, bool on) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return false;
  return ::fcntl(fd, F_SETFL, on ? (flags | O_DIRECT) : (flags & ~O_DIRECT)) == 0;
}

// Big enough that each direct write keeps the device busy, small enough
// to keep per writer thread.
constexpr size_t kBounceSize = 8 << 20;

}  // namespace

void AlignedBuffer::reserve(size_t n) {
  if (n <= capacity_) return;
  constexpr size_t kHuge = 2 << 20;
  const size_t alignment = n >= kHuge ? kHuge : kDirectIoAlignment;
  const size_t capacity = (n + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, capacity);
  if (p == nullptr) throw std::bad_alloc();
  // Only advice: without transparent huge pages it changes nothing.
  if (alignment == kHuge) (void)::madvise(p, capacity, MADV_HUGEPAGE);
  if (size_ > 0) std::memcpy(p, data_.get(), size_);
  data_.reset(static_cast<char*>(p));
  capacity_ = capacity;
}

void AlignedBuffer::resize(size_t n) {
  reserve(n);
  size_ = n;
}

void AlignedBuffer::append(const char* bytes, size_t n) {
  if (size_ + n > capacity_) reserve(std::max(size_ + n, 2 * capacity_));
  if (n > 0) std::memcpy(data_.get() + size_, bytes, n);
  size_ += n;
}

absl::Status WriteUncached(File& file, absl::string_view data, bool try_direct) {
  return WriteAtUncached(file, 0, data, try_direct);
}

absl::Status WriteAtUncached(File& file, uint64_t offset, absl::string_view data, bool try_direct) {
  const size_t aligned = data.size() / kDirectIoAlignment * kDirectIoAlignment;
  size_t done = 0;
  if (try_direct && aligned > 0 && offset % kDirectIoAlignment == 0 && SetDirect(file.fd(), true)) {
    // Data already aligned (an AlignedBuffer's) is written where it lies;
    // any other goes through an aligned bounce buffer.
    const bool in_place = reinterpret_cast<uintptr_t>(data.data()) % kDirectIoAlignment == 0;
    thread_local AlignedBuffer bounce;
    if (!in_place) bounce.resize(kBounceSize);
    while (done < aligned) {
      const size_t n = in_place ? aligned - done : std::min(kBounceSize, aligned - done);
      const char* from = data.data() + done;
      if (!in_place) {
        std::memcpy(bounce.data(), from, n);
        from = bounce.data();
      }
      const ssize_t w = ::pwrite(file.fd(), from, n, static_cast<off_t>(offset + done));
      if (w < 0 && errno == EINTR) continue;
      // Accepted at open but not for this I/O (some filesystems): the
      // rest goes through the cache.
      if (w < 0 && errno == EINVAL) break;
      if (w < 0) {
        const int err = errno;
        (void)SetDirect(file.fd(), false);
        return ErrnoToStatus(err, absl::StrCat("write at offset ", offset + done, " of"),
                             file.path());
      }
      done += static_cast<size_t>(w);
      // A short write leaves the offset unaligned: the rest goes through the cache.
      if (static_cast<size_t>(w) != n) break;
    }
    (void)SetDirect(file.fd(), false);
  }
  return file.WriteAt(offset + done, data.data() + done, data.size() - done);
}

void DropCachedPages(const File& file, uint64_t offset, uint64_t length) {
  (void)::posix_fadvise(file.fd(), static_cast<off_t>(offset), static_cast<off_t>(length),
                        POSIX_FADV_DONTNEED);
}

absl::StatusOr<UncachedReader> UncachedReader::Open(const std::string& path, bool try_direct) {
  if (try_direct) {
    auto direct = File::Open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (direct.ok()) return UncachedReader(*std::move(direct), true);
  }
  ASSIGN_OR_RETURN(File buffered, File::OpenReadOnly(path));
  return UncachedReader(std::move(buffered), false);
}

absl::StatusOr<size_t> UncachedReader::ReadDirect(uint64_t offset, size_t n,
                                                  AlignedBuffer* buffer) {
  // The whole aligned length is asked for; the file's end makes it short.
  buffer->resize(AlignUp(n));
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(file_.fd(), buffer->data() + done, buffer->size() - done,
                              static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      return ErrnoToStatus(errno, absl::StrCat("read at offset ", offset + done, " of"),
                           file_.path());
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
    if (done % kDirectIoAlignment != 0) break;  // the end of the file
  }
  done = std::min(done, n);
  buffer->resize(done);
  return done;
}

absl::StatusOr<absl::Span<char>> UncachedReader::Read(uint64_t offset, size_t n,
                                                      AlignedBuffer* buffer) {
  if (direct_) {
    // An unaligned start is read from the alignment before it.
    const size_t skip = offset % kDirectIoAlignment;
    auto got = ReadDirect(offset - skip, n + skip, buffer);
    if (got.ok()) {
      const size_t start = std::min(skip, *got);
      return absl::MakeSpan(buffer->data() + start, *got - start);
    }
    if (!absl::IsInvalidArgument(got.status())) return got.status();
    // EINVAL: the filesystem took O_DIRECT at open but refuses its reads.
    if (!SetDirect(file_.fd(), false)) return got.status();
    direct_ = false;
  }
  buffer->resize(n);
  ASSIGN_OR_RETURN(size_t got, file_.ReadAtMost(offset, buffer->data(), n));
  buffer->resize(got);
  DropCachedPages(file_, offset, n);
  return absl::MakeSpan(buffer->data(), got);
}

absl::StatusOr<size_t> UncachedReader::ReadAtMost(uint64_t offset, size_t n,
                                                  AlignedBuffer* buffer) {
  ASSIGN_OR_RETURN(absl::Span<char> got, Read(offset, n, buffer));
  if (got.data() != buffer->data()) std::memmove(buffer->data(), got.data(), got.size());
  buffer->resize(got.size());
  return got.size();
}

}  // namespace dagvault
