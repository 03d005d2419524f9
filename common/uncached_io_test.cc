// Direct I/O and its fallback: the bytes are right either way, and on a
// filesystem with direct I/O the page cache is left as it was found (no
// page added, no page someone else cached dropped).
#include "common/uncached_io.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "common/testing/page_cache.h"
#include "gtest/gtest.h"

namespace dagvault {
namespace {

class UncachedIoTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    std::string tmpl = absl::StrCat(GetParam(), "/dagvault_uncached_XXXXXX");
    if (::access(GetParam(), W_OK) != 0) GTEST_SKIP() << GetParam() << " is not writable here";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) (void)::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }
  // tmpfs keeps its files in the page cache: they are always resident.
  bool OnTmpfs() {
    struct statfs st {};
    return ::statfs(dir_.c_str(), &st) == 0 && st.f_type == TMPFS_MAGIC;
  }
  // Whether this filesystem takes direct I/O (ext4, XFS: yes).
  bool DirectWorks() {
    const std::string probe = JoinPath(dir_, "probe");
    const int fd = ::open(probe.c_str(), O_CREAT | O_RDWR | O_DIRECT, 0644);
    if (fd >= 0) ::close(fd);
    ::unlink(probe.c_str());
    return fd >= 0;
  }
  static std::string Random(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  }

  std::string dir_;
};

using testing::ResidentPages;

TEST_P(UncachedIoTest, WritesAndReadsEverySizeByteExact) {
  // Around the alignment and the 8 MiB bounce buffer.
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097},
                      size_t{(8 << 20) + 12345}}) {
    SCOPED_TRACE(size);
    const std::string data = Random(size, size);
    const std::string path = JoinPath(dir_, absl::StrCat("obj-", size));
    ASSERT_TRUE(WriteNewFileAtomicallyUncached(path, data).ok());
    EXPECT_EQ(*ReadFileToString(path), data);

    auto reader = UncachedReader::Open(path);
    ASSERT_TRUE(reader.ok()) << reader.status();
    EXPECT_EQ(reader->direct(), DirectWorks());
    AlignedBuffer buf;
    // Aligned, unaligned (read through the cache), and past the end.
    for (uint64_t offset : {uint64_t{0}, uint64_t{4096}, uint64_t{100}}) {
      auto got = reader->ReadAtMost(offset, 1 << 20, &buf);
      ASSERT_TRUE(got.ok()) << got.status();
      const std::string want = offset >= size ? "" : data.substr(offset, 1 << 20);
      EXPECT_EQ(*got, want.size()) << offset;
      EXPECT_EQ(std::string(buf.view()), want) << offset;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % kDirectIoAlignment, 0u);
    }
  }
}

TEST_P(UncachedIoTest, TheCacheIsLeftAsItWasFound) {
  if (!DirectWorks() || OnTmpfs()) {
    GTEST_SKIP() << GetParam() << " has no page cache apart from its files: nothing to show";
  }
  const std::string data = Random((16 << 20) + 100, 3);
  const std::string written = JoinPath(dir_, "pack");
  ASSERT_TRUE(WriteNewFileAtomicallyUncached(written, data).ok());
  EXPECT_EQ(ResidentPages(written), 0u) << "a pack written around the cache left pages in it";

  // Read around the cache: no page is added.
  AlignedBuffer buf;
  auto reader = UncachedReader::Open(written);
  ASSERT_TRUE(reader.ok());
  for (uint64_t at = 0; at < data.size(); at += 4 << 20) {
    ASSERT_TRUE(reader->ReadAtMost(at, 4 << 20, &buf).ok());
    EXPECT_EQ(std::string(buf.view()), data.substr(at, 4 << 20));
  }
  EXPECT_EQ(ResidentPages(written), 0u);

  // A file someone else has in the cache keeps its pages.
  const std::string cached = JoinPath(dir_, "cached");
  ASSERT_TRUE(WriteFileAtomically(cached, data).ok());
  ASSERT_EQ(*ReadFileToString(cached), data);
  const size_t before = ResidentPages(cached);
  ASSERT_GT(before, 0u);
  auto again = UncachedReader::Open(cached);
  ASSERT_TRUE(again.ok());
  for (uint64_t at = 0; at < data.size(); at += 4 << 20) {
    ASSERT_TRUE(again->ReadAtMost(at, 4 << 20, &buf).ok());
  }
  EXPECT_EQ(ResidentPages(cached), before);
}

// Where direct I/O is refused, the pages go through the cache and are
// dropped behind: the cache does not grow (but pages another process had
// cached would be dropped too, which is why direct I/O comes first).
TEST_P(UncachedIoTest, TheFallbackDropsWhatItCachedBehindIt) {
  if (OnTmpfs()) GTEST_SKIP() << GetParam() << " has no page cache apart from its files";
  const std::string data = Random((8 << 20) + 3, 4);
  const std::string path = JoinPath(dir_, "fallback");
  {
    auto f = CreateNewFile(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(WriteUncached(*f, data, /*try_direct=*/false).ok());
    ASSERT_TRUE(f->Sync().ok());
    DropCachedPages(*f);
  }
  EXPECT_EQ(ResidentPages(path), 0u);
  auto reader = UncachedReader::Open(path, /*try_direct=*/false);
  ASSERT_TRUE(reader.ok());
  EXPECT_FALSE(reader->direct());
  AlignedBuffer buf;
  std::string read;
  for (uint64_t at = 0; at < data.size(); at += 1 << 20) {
    ASSERT_TRUE(reader->ReadAtMost(at, 1 << 20, &buf).ok());
    read.append(buf.data(), buf.size());
  }
  EXPECT_EQ(read, data);
  // Readahead may leave a little past the last read; nothing near the file.
  EXPECT_LT(ResidentPages(path), 64u);
}

// /var/tmp: a disk filesystem (direct I/O); /dev/shm: tmpfs (the fallback).
std::string FilesystemName(const ::testing::TestParamInfo<const char*>& param) {
  return std::string(param.param) == "/var/tmp" ? "Disk" : "Tmpfs";
}
INSTANTIATE_TEST_SUITE_P(Filesystems, UncachedIoTest, ::testing::Values("/var/tmp", "/dev/shm"),
                         FilesystemName);

TEST(AlignedBuffer, GrowsKeepingItsBytesAndAMovedFromBufferIsEmpty) {
  AlignedBuffer a;
  a.resize(10);
  std::memcpy(a.data(), "0123456789", 10);
  a.resize(5000);
  EXPECT_EQ(std::string(a.data(), 10), "0123456789");
  EXPECT_EQ(a.capacity(), 8192u);
  a.resize(3);
  EXPECT_EQ(a.view(), "012");
  AlignedBuffer b = std::move(a);
  EXPECT_EQ(b.view(), "012");
  EXPECT_EQ(a.size(), 0u);      // NOLINT: checking the moved-from state
  EXPECT_EQ(a.capacity(), 0u);  // NOLINT
  a.resize(4);                  // usable again
  std::memcpy(a.data(), "abcd", 4);
  EXPECT_EQ(a.view(), "abcd");
}

}  // namespace
}  // namespace dagvault
