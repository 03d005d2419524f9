#include "common/file_util.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault {
namespace {

std::string MakeTempDir() {
  char tmpl[] = "/tmp/dagvault_file_util_XXXXXX";
  char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  return dir;
}

TEST(FileUtil, AtomicWriteReplacesContentAndLeavesNoTemp) {
  std::string dir = MakeTempDir();
  std::string path = JoinPath(dir, "cfg");
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two!").ok());
  auto content = ReadFileToString(path);
  ASSERT_TRUE(content.ok());
  EXPECT_EQ(*content, "two!");
  auto names = ListDirectory(dir);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"cfg"});
}

// Mode bits of what is at `path` itself (not of what a symlink points to).
mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode;
}

// A symlink planted at the path itself (rename(2) replaces the link), or at
// the fixed temporary name used before issue 15 (never opened now).
TEST(FileUtil, AtomicWriteFollowsNoSymlinkPlantedAtThePathOrAPredictableTemporaryName) {
  for (const std::string planted : {"cfg", "cfg.tmp"}) {
    SCOPED_TRACE(planted);
    std::string dir = MakeTempDir();
    std::string victim = JoinPath(dir, "victim");
    std::string path = JoinPath(dir, "cfg");
    ASSERT_TRUE(WriteFileAtomically(victim, "precious").ok());
    ASSERT_EQ(::symlink(victim.c_str(), JoinPath(dir, planted).c_str()), 0);
    ASSERT_TRUE(WriteFileAtomically(path, "new").ok());
    EXPECT_EQ(*ReadFileToString(victim), "precious");
    EXPECT_TRUE(S_ISREG(ModeOf(path)));
    EXPECT_EQ(*ReadFileToString(path), "new");
  }
}

TEST(FileUtil, CreateNewFileRefusesAnythingAlreadyThereAndFollowsNoSymlink) {
  std::string dir = MakeTempDir();
  std::string victim = JoinPath(dir, "victim");
  ASSERT_TRUE(WriteFileAtomically(victim, "precious").ok());
  std::string link = JoinPath(dir, "link");
  std::string dangling = JoinPath(dir, "dangling");
  ASSERT_EQ(::symlink(victim.c_str(), link.c_str()), 0);
  ASSERT_EQ(::symlink(JoinPath(dir, "absent").c_str(), dangling.c_str()), 0);
  for (const std::string& path : {victim, link, dangling}) {
    SCOPED_TRACE(path);
    auto f = CreateNewFile(path);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), absl::StatusCode::kAlreadyExists);
    EXPECT_THAT(std::string(f.status().message()), ::testing::HasSubstr(path));
  }
  EXPECT_EQ(*ReadFileToString(victim), "precious");
  EXPECT_FALSE(PathExists(JoinPath(dir, "absent")));
  auto fresh = CreateNewFile(JoinPath(dir, "fresh"));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_TRUE(fresh->WriteAt(0, "x", 1).ok());
}

TEST(FileUtil, AtomicWriteGivesExactlyTheModeAskedWhateverTheUmask) {
  std::string dir = MakeTempDir();
  const mode_t old = ::umask(0077);
  ASSERT_TRUE(WriteFileAtomically(JoinPath(dir, "public"), "p").ok());
  ::umask(0);
  ASSERT_TRUE(WriteFileAtomically(JoinPath(dir, "secret"), "s", 0600).ok());
  ::umask(old);
  EXPECT_EQ(ModeOf(JoinPath(dir, "public")) & 07777, 0644u);
  EXPECT_EQ(ModeOf(JoinPath(dir, "secret")) & 07777, 0600u);
  // Rewriting a file gives it the new mode, not the old file's.
  ASSERT_TRUE(WriteFileAtomically(JoinPath(dir, "public"), "now secret", 0600).ok());
  EXPECT_EQ(ModeOf(JoinPath(dir, "public")) & 07777, 0600u);
}

TEST(FileUtil, AFailedAtomicWriteRemovesItsUniquelyNamedTemporaryFile) {
  std::string dir = MakeTempDir();
  // A non-empty folder at the path: rename(2) onto it fails.
  std::string path = JoinPath(dir, "cfg");
  ASSERT_TRUE(CreateDirectories(JoinPath(path, "inside")).ok());
  absl::Status s = WriteFileAtomically(path, "data");
  ASSERT_FALSE(s.ok());
  // The error names the temporary file: <path>.<pid>-<16 hex digits>.tmp.
  EXPECT_THAT(std::string(s.message()), ::testing::ContainsRegex(absl::StrCat(
                                            path, "\\.", ::getpid(), "-[0-9a-f]{16}\\.tmp")));
  EXPECT_EQ(*ListDirectory(dir), std::vector<std::string>{"cfg"});
}

TEST(FileUtil, PositionalReadsAndWrites) {
  std::string dir = MakeTempDir();
  auto f = File::Open(JoinPath(dir, "f"), O_RDWR | O_CREAT);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->WriteAt(4096, "hello", 5).ok());
  char buf[5];
  ASSERT_TRUE(f->ReadAt(4096, buf, 5).ok());
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(*f->Size(), 4101u);
  auto n = f->ReadAtMost(4099, buf, 5);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
}

TEST(FileUtil, ShortReadNamesPathAndOffset) {
  std::string dir = MakeTempDir();
  auto f = File::Open(JoinPath(dir, "short"), O_RDWR | O_CREAT);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->WriteAt(0, "abc", 3).ok());
  char buf[10];
  absl::Status s = f->ReadAt(0, buf, 10);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("short"), std::string::npos);
  EXPECT_NE(s.message().find("offset 0"), std::string::npos);
}

TEST(FileUtil, MissingFileIsNotFoundAndNamed) {
  auto f = File::OpenReadOnly("/nonexistent/dir/x.edb");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("/nonexistent/dir/x.edb"), std::string::npos);
}

TEST(FileUtil, CreateDirectoriesAndRemove) {
  std::string dir = MakeTempDir();
  std::string deep = JoinPath(dir, "a/b/c");
  ASSERT_TRUE(CreateDirectories(deep).ok());
  EXPECT_TRUE(PathExists(deep));
  std::string file = JoinPath(deep, "x");
  ASSERT_TRUE(WriteFileAtomically(file, "x").ok());
  ASSERT_TRUE(RemoveDurably(file).ok());
  EXPECT_FALSE(PathExists(file));
  EXPECT_TRUE(RemoveDurably(file).ok());  // missing is fine
}

TEST(FileUtil, CreateDirectoriesBuildsOnWhatExistsAndGivesTheModeAsked) {
  std::string dir = MakeTempDir();
  ASSERT_TRUE(CreateDirectories(JoinPath(dir, "a")).ok());
  const mode_t old = ::umask(0022);
  absl::Status s = CreateDirectories(JoinPath(dir, "a/b/c/"), 0700);
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(ModeOf(JoinPath(dir, "a/b")) & 07777, 0700u);
  EXPECT_EQ(ModeOf(JoinPath(dir, "a/b/c")) & 07777, 0700u);
  EXPECT_EQ(ModeOf(JoinPath(dir, "a")) & 07777, 0755u);         // already there: left as it was
  EXPECT_TRUE(CreateDirectories(JoinPath(dir, "a/b/c")).ok());  // all there: fine
}

TEST(FileUtil, CreateDirectoriesNamesThePathItCouldNotCreate) {
  std::string dir = MakeTempDir();
  std::string file = JoinPath(dir, "file");
  ASSERT_TRUE(WriteFileAtomically(file, "x").ok());
  absl::Status s = CreateDirectories(JoinPath(file, "sub/deeper"));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("mkdir " + JoinPath(file, "sub")));
  s = CreateDirectories(file);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(file + " is not a directory"));
}

TEST(FileUtil, ASafeRelativePathStaysInsideItsFolder) {
  for (const char* good : {"a", "a.edb", "logs/E0000000001.log", "x/y/z"}) {
    EXPECT_TRUE(IsSafeRelativePath(good)) << good;
  }
  for (std::string bad : {std::string(""), std::string("/etc/passwd"), std::string("../x"),
                          std::string("a/../../x"), std::string("a//b"), std::string("a/./b"),
                          std::string("a/"), std::string("."), std::string("a\0b", 3)}) {
    EXPECT_FALSE(IsSafeRelativePath(bad)) << bad;
  }
}

TEST(FileUtil, PathHelpers) {
  EXPECT_EQ(DirName("/a/b/c.edb"), "/a/b");
  EXPECT_EQ(DirName("c.edb"), ".");
  EXPECT_EQ(BaseName("/a/b/c.edb"), "c.edb");
  EXPECT_EQ(JoinPath("/a/", "b"), "/a/b");
  EXPECT_EQ(JoinPath("/a", "/abs"), "/abs");
}

}  // namespace
}  // namespace dagvault
