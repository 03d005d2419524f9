// The redo rules, record by record, against a real database file.
#include "mailstore/engine/redo.h"

#include <cstring>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/engine/layout.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;

constexpr uint32_t kPage = 8192;

class RedoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DbHeader h;
    h.page_size = kPage;
    h.state = DbState::kDirtyShutdown;
    h.log_required_min = h.log_required_max = 1;
    ASSERT_TRUE(DatabaseFile::Create(dir_.Sub("db.edb"), h).ok());
    auto db = DatabaseFile::Open(dir_.Sub("db.edb"), true);
    ASSERT_TRUE(db.ok());
    db_ = std::move(*db);
  }

  std::string ImageBody(PageNo record_pgno, PageNo page_pgno, DbTime after) {
    std::string page(kPage, '\0');
    InitPage(reinterpret_cast<uint8_t*>(page.data()), kPage, page_pgno, PageType::kBTreeLeaf);
    SetPageDbTime(reinterpret_cast<uint8_t*>(page.data()), after);
    uint8_t prefix[kPageImagePrefixSize];
    EncodePageImagePrefix(record_pgno, after, prefix);
    return std::string(reinterpret_cast<char*>(prefix), sizeof(prefix)) + page;
  }

  std::string DeltaBody(PageNo pgno, DbTime before, DbTime after) {
    uint8_t prefix[kPageDeltaPrefixSize];
    EncodePageDeltaPrefix(pgno, 1, before, after, prefix);
    return std::string(reinterpret_cast<char*>(prefix), sizeof(prefix)) +
           std::string("\x00\x10\x02\x00hi", 6);
  }

  absl::Status Apply(RedoApplier& r, RecordType type, const std::string& body) {
    return r.Apply(type, 0, Lsn{1, 4096}, reinterpret_cast<const uint8_t*>(body.data()),
                   static_cast<uint32_t>(body.size()));
  }

  RedoApplier Applier(RedoApplier::Mode mode = RedoApplier::Mode::kApply) {
    return RedoApplier({db_.get()}, 1, mode);
  }

  TempDir dir_{"redo"};
  std::unique_ptr<DatabaseFile> db_;
};

TEST_F(RedoTest, ImageThenDeltaApplyAndRepeatsAreSkipped) {
  RedoApplier r = Applier();
  ASSERT_TRUE(Apply(r, RecordType::kPageImage, ImageBody(9, 9, 10)).ok());
  ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(9, 10, 11)).ok());
  ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(9, 10, 11)).ok());  // again: skipped
  EXPECT_EQ(r.applied(), 2u);
  EXPECT_EQ(r.skipped(), 1u);
  ASSERT_TRUE(r.Flush(1).ok());
  uint8_t page[kPage];
  ASSERT_TRUE(db_->ReadPage(9, page).ok());
  EXPECT_EQ(PageDbTime(page), 11u);
  EXPECT_EQ(std::memcmp(page + 0x1000, "hi", 2), 0);
  EXPECT_GE(db_->header().dbtime, 11u);  // the header reserves what the file holds
}

TEST_F(RedoTest, ImageOfAnotherPageIsRefused) {
  RedoApplier r = Applier();
  absl::Status s = Apply(r, RecordType::kPageImage, ImageBody(9, 8, 10));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("page 9"), std::string::npos) << s;
}

TEST_F(RedoTest, DeltaWhoseDbTimeDoesNotIncreaseIsRefused) {
  RedoApplier r = Applier();
  absl::Status s = Apply(r, RecordType::kPageDelta, DeltaBody(kMetaPage, 5, 5));
  EXPECT_NE(s.message().find("dbtime does not increase"), std::string::npos) << s;
}

TEST_F(RedoTest, MissingChangeIsRefusedByPageAndPosition) {
  RedoApplier r = Applier();
  // The meta page is at dbtime 1; a change from dbtime 7 means 2..7 are lost.
  absl::Status s = Apply(r, RecordType::kPageDelta, DeltaBody(kMetaPage, 7, 8));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("page 2 has dbtime 1"), std::string::npos) << s;
  EXPECT_NE(s.message().find("0x00000001:4096"), std::string::npos) << s;
}

TEST_F(RedoTest, DeltaToADamagedPageIsRefusedButAnImageRepairsIt) {
  // Damage the meta page on disk.
  {
    auto f = File::Open(dir_.Sub("db.edb"), O_RDWR);
    ASSERT_TRUE(f.ok());
    const char junk[4] = {1, 2, 3, 4};
    ASSERT_TRUE(f->WriteAt(kMetaPage * kPage + 6000, junk, 4).ok());
  }
  RedoApplier r = Applier();
  absl::Status s = Apply(r, RecordType::kPageDelta, DeltaBody(kMetaPage, 1, 2));
  EXPECT_NE(s.message().find("is damaged"), std::string::npos) << s;
  RedoApplier r2 = Applier();
  ASSERT_TRUE(Apply(r2, RecordType::kPageImage, ImageBody(kMetaPage, kMetaPage, 3)).ok());
  ASSERT_TRUE(r2.Flush(1).ok());
  uint8_t page[kPage];
  EXPECT_TRUE(db_->ReadPage(kMetaPage, page).ok());
}

TEST_F(RedoTest, DryRunChecksButWritesNothing) {
  const std::string before = *ReadFileToString(dir_.Sub("db.edb"));
  RedoApplier dry = Applier(RedoApplier::Mode::kDryRun);
  ASSERT_TRUE(Apply(dry, RecordType::kPageImage, ImageBody(20, 20, 10)).ok());
  ASSERT_TRUE(Apply(dry, RecordType::kPageDelta, DeltaBody(20, 10, 11)).ok());
  // The dry run follows the dbtimes it would have applied.
  EXPECT_FALSE(Apply(dry, RecordType::kPageDelta, DeltaBody(20, 10, 12)).ok());
  ASSERT_TRUE(dry.Flush(1).ok());
  EXPECT_EQ(*ReadFileToString(dir_.Sub("db.edb")), before);
}

}  // namespace
}  // namespace dagvault::mailstore
