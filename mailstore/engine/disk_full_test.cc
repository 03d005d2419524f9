// A full disk in the middle of writing: the unit goes offline with a clear
// error, nothing it could not write is acknowledged, and recovery of the
// files (moved to a disk with room) brings back every acknowledged item.
#include <sys/mount.h>

#include <filesystem>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/engine/recovery.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;
namespace fs = std::filesystem;

class SmallDisk {
 public:
  explicit SmallDisk(const std::string& path) : path_(path) {
    fs::create_directories(path);
    mounted_ = ::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=3m") == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST(DiskFull, UnitGoesOfflineAndAcknowledgedItemsSurvive) {
  TempDir dir("diskfull");
  SmallDisk disk(dir.Sub("small"));
  if (!disk.mounted()) GTEST_SKIP() << "needs root to mount a tmpfs";
  auto config = testing::MakeUnitConfig(dir.Sub("small/unit"), 1, 64 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions(absl::Milliseconds(20)));
  ASSERT_TRUE(e.ok()) << e.status();

  std::vector<uint64_t> acknowledged;
  absl::Status failure;
  for (uint64_t i = 0; i < 10000 && failure.ok(); ++i) {
    failure = (*e)->Put(0, {1, i}, testing::ValueFor(i, 3000));
    if (failure.ok()) acknowledged.push_back(i);
  }
  ASSERT_FALSE(failure.ok()) << "the disk never filled";
  EXPECT_NE(failure.message().find("No space left on device"), std::string::npos) << failure;
  // Offline: every later call says so, and nothing more is acknowledged.
  absl::Status after = (*e)->Put(0, {2, 2}, "x");
  ASSERT_FALSE(after.ok());
  EXPECT_NE(after.message().find("unit u1 is offline"), std::string::npos) << after;
  EXPECT_FALSE((*e)->health().ok());
  // Close cannot mark the databases clean; it says why.
  absl::Status closed = (*e)->Close();
  EXPECT_NE(closed.message().find("offline"), std::string::npos) << closed;
  e->reset();

  // Move the files to a disk with room and recover them there.
  fs::copy(dir.Sub("small/unit"), dir.Sub("big"), fs::copy_options::recursive);
  auto report = Recover(testing::RequestFor(dir.Sub("big"), dir.Sub("big"), dir.Sub("big")));
  ASSERT_TRUE(report.ok()) << report.status();
  auto db = DatabaseFile::Open(dir.Sub("big/db0.edb"), false);
  ASSERT_TRUE(db.ok());
  FilePageReader reader(**db);
  ItemTable table(reader, nullptr);
  for (uint64_t i : acknowledged) {
    auto got = table.Get({1, i});
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value()) << "acknowledged item " << i << " lost";
    ASSERT_EQ(**got, testing::ValueFor(i, 3000));
  }
  EXPECT_FALSE((*table.Get({2, 2})).has_value());
}

}  // namespace
}  // namespace dagvault::mailstore
