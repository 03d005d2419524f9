#include "mailstore/engine/double_write.h"

#include <cstring>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/engine/layout.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;
constexpr uint32_t kPage = 8192;

class DoubleWriteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DbHeader h;
    h.page_size = kPage;
    ASSERT_TRUE(DatabaseFile::Create(dir_.Sub("db.edb"), h).ok());
    db_ = std::move(*DatabaseFile::Open(dir_.Sub("db.edb"), true, true));
    page_.resize(kPage);
    InitPage(reinterpret_cast<uint8_t*>(page_.data()), kPage, 7, PageType::kLongValue);
    SetPageDbTime(reinterpret_cast<uint8_t*>(page_.data()), 99);
    std::memset(page_.data() + 100, 'q', 5000);
  }
  void TearInPlace(PageNo pgno) {
    auto f = File::Open(dir_.Sub("db.edb"), O_RDWR);
    std::string half(kPage / 2, '\x3c');
    ASSERT_TRUE(f->WriteAt(uint64_t{pgno} * kPage + kPage / 2, half.data(), half.size()).ok());
  }

  TempDir dir_{"dwb"};
  std::unique_ptr<DatabaseFile> db_;
  std::string page_;
};

TEST_F(DoubleWriteTest, RepairsATornInPlaceWriteAndLeavesIntactPagesAlone) {
  DoubleWriteBuffer dwb(dir_.Sub("E00.dwb"));
  const auto* p = reinterpret_cast<const uint8_t*>(page_.data());
  ASSERT_TRUE(dwb.Write({{0, 7, p}}, kPage).ok());
  ASSERT_TRUE(db_->WritePage(7, p).ok());
  TearInPlace(7);
  uint8_t buf[kPage];
  EXPECT_FALSE(db_->ReadPage(7, buf).ok());
  auto repaired = dwb.Repair({db_.get()});
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(*repaired, 1);
  ASSERT_TRUE(db_->ReadPage(7, buf).ok());
  EXPECT_EQ(std::memcmp(buf + 100, page_.data() + 100, 5000), 0);
  EXPECT_EQ(*dwb.Repair({db_.get()}), 0);  // intact now
  ASSERT_TRUE(dwb.Clear().ok());
  EXPECT_EQ(*dwb.Repair({db_.get()}), 0);
}

TEST_F(DoubleWriteTest, ABufferTornWhileBeingWrittenIsIgnored) {
  DoubleWriteBuffer dwb(dir_.Sub("E00.dwb"));
  const auto* p = reinterpret_cast<const uint8_t*>(page_.data());
  ASSERT_TRUE(dwb.Write({{0, 7, p}, {0, 8, p}}, kPage).ok());
  // Cut the buffer short: the crash came before any in-place write.
  auto f = File::Open(dir_.Sub("E00.dwb"), O_RDWR);
  ASSERT_TRUE(f->Truncate(*f->Size() - 100).ok());
  auto repaired = dwb.Repair({db_.get()});
  ASSERT_TRUE(repaired.ok());
  EXPECT_EQ(*repaired, 0);
}

}  // namespace
}  // namespace dagvault::mailstore
