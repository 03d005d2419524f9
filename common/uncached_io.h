// Reading and writing bulk data without filling the page cache (issue 21).
// A backup reads a whole database snapshot once and writes packs nobody
// reads back soon; through the page cache both would push the mail
// server's own cached pages out. Direct I/O (O_DIRECT) is the first
// choice: it neither adds pages nor drops pages someone else cached. On a
// filesystem that refuses it (tmpfs, some FUSE and network mounts), I/O
// falls back to the page cache with posix_fadvise(DONTNEED) behind it,
// which keeps the cache from growing but also drops pages of the same
// file that another process had cached.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/file_util.h"

namespace dagvault {

// Direct I/O wants buffers, offsets and lengths aligned to the device's
// logical block; 4 KiB serves every block size up to it.
inline constexpr size_t kDirectIoAlignment = 4096;

// A byte buffer aligned for direct I/O. Growing it never zero-fills, and
// shrinking keeps the memory for the next use. Buffers of 2 MiB or more
// are aligned to 2 MiB and asked to be backed by huge pages
// (MADV_HUGEPAGE): a backup fills hundreds of MiB of them, and on a
// virtual machine each 4 KiB page's first-touch fault costs microseconds.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // A moved-from buffer is empty, with no memory.
  AlignedBuffer(AlignedBuffer&& other) noexcept { *this = std::move(other); }
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    return *this;
  }

  // Sets the size; the capacity is rounded up to the alignment.
  void resize(size_t n);
  // Makes room for n bytes without changing the size.
  void reserve(size_t n);
  void append(const char* bytes, size_t n);
  void append(absl::string_view bytes) { append(bytes.data(), bytes.size()); }
  void clear() { size_ = 0; }
  bool empty() const { return size_ == 0; }
  char* data() { return data_.get(); }
  const char* data() const { return data_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  absl::string_view view() const { return absl::string_view(data_.get(), size_); }
  operator absl::string_view() const { return view(); }  // NOLINT: a buffer of bytes

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

// Writes `data` at the start of `file` (new and empty), the aligned part
// by direct I/O through a bounce buffer, the rest through the cache. The
// caller syncs, then calls DropCachedPages for whatever went through the
// cache.
// `try_direct` false: all of it through the cache (the fallback, for tests).
absl::Status WriteUncached(File& file, absl::string_view data, bool try_direct = true);
// The same at `offset` of a file open for writing: direct only when the
// offset is aligned; the unaligned tail through the cache.
absl::Status WriteAtUncached(File& file, uint64_t offset, absl::string_view data,
                             bool try_direct = true);

// Asks the kernel to drop the file's cached pages in [offset, offset +
// length) (0: to the end). Dirty pages are not dropped: sync first. Only a
// hint; it never fails.
void DropCachedPages(const File& file, uint64_t offset = 0, uint64_t length = 0);

// Reads a file by direct I/O when its filesystem allows, else through the
// cache with the pages dropped behind each read.
class UncachedReader {
 public:
  // `try_direct` false: through the cache with the pages dropped behind
  // (the fallback, for tests).
  static absl::StatusOr<UncachedReader> Open(const std::string& path, bool try_direct = true);

  // Reads up to n bytes at `offset` into *buffer (resized to what was
  // read); fewer at the end of the file.
  absl::StatusOr<size_t> ReadAtMost(uint64_t offset, size_t n, AlignedBuffer* buffer);
  // The same without moving the bytes to the buffer's start: an
  // unaligned `offset` is read from the alignment before it, and the
  // result is where the asked-for bytes lie in *buffer. For a caller that
  // works on the bytes where they are (a restore decrypts a pack's
  // chunks in place).
  absl::StatusOr<absl::Span<char>> Read(uint64_t offset, size_t n, AlignedBuffer* buffer);
  bool direct() const { return direct_; }
  const File& file() const { return file_; }

 private:
  UncachedReader(File file, bool direct) : file_(std::move(file)), direct_(direct) {}
  absl::StatusOr<size_t> ReadDirect(uint64_t offset, size_t n, AlignedBuffer* buffer);

  File file_;
  bool direct_;
};

}  // namespace dagvault
