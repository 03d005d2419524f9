#include "common/file_util.h"

#include <stdlib.h>

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

TEST(FileUtil, PathHelpers) {
  EXPECT_EQ(DirName("/a/b/c.edb"), "/a/b");
  EXPECT_EQ(DirName("c.edb"), ".");
  EXPECT_EQ(BaseName("/a/b/c.edb"), "c.edb");
  EXPECT_EQ(JoinPath("/a/", "b"), "/a/b");
  EXPECT_EQ(JoinPath("/a", "/abs"), "/abs");
}

}  // namespace
}  // namespace dagvault
