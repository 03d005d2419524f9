// How much of a file is in the page cache, for tests of code that must
// leave the cache alone (common/uncached_io.h).
#pragma once

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace dagvault::testing {

// Pages of `path` in the page cache (0 for an empty or missing file).
inline size_t ResidentPages(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct stat st {};
  size_t resident = 0;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const size_t size = static_cast<size_t>(st.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map != MAP_FAILED) {
      const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
      std::vector<unsigned char> in((size + page - 1) / page);
      if (::mincore(map, size, in.data()) == 0) {
        for (unsigned char c : in) resident += c & 1;
      }
      ::munmap(map, size);
    }
  }
  ::close(fd);
  return resident;
}

// Whether files in `dir` can be opened for direct I/O and live outside
// the page cache (not tmpfs, whose files are the cache).
inline bool DirectIoWorksIn(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0 || fs.f_type == TMPFS_MAGIC) return false;
  const std::string probe = dir + "/.direct-io-probe";
  const int fd = ::open(probe.c_str(), O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  ::unlink(probe.c_str());
  return fd >= 0;
}

}  // namespace dagvault::testing
