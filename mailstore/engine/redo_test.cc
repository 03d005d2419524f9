// The redo rules, record by record, against a real database file.
#include "mailstore/engine/redo.h"

#include <cstring>

#include "common/fault_injection.h"
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
    return RedoApplier({RedoApplier::Database{db_.get(), Lsn{}}}, 1, mode);
  }

  // Flushes `r` as far as a crash right after the double-write buffer is
  // written would: nothing in place yet.
  void FlushStoppedAfterTheBuffer(RedoApplier& r) {
    ASSERT_TRUE(ConfigureFailPoint("redo.flush.after_double_write").ok());
    EXPECT_FALSE(r.Flush(1).ok());
    ASSERT_TRUE(ConfigureFailPoint("").ok());
  }
  // How many torn pages the buffer left in E00.dwb repairs.
  int RepairFromTheBuffer() {
    auto repaired = DoubleWriteBuffer(dir_.Sub("E00.dwb")).Repair({db_.get()});
    EXPECT_TRUE(repaired.ok()) << repaired.status();
    return repaired.value_or(-1);
  }
  RedoApplier ApplierWithBuffer(DoubleWriteBuffer* dwb) {
    return RedoApplier({RedoApplier::Database{db_.get(), Lsn{}}}, 1, RedoApplier::Mode::kApply,
                       dwb);
  }

  void Damage(PageNo pgno) {
    auto f = File::Open(dir_.Sub("db.edb"), O_RDWR);
    ASSERT_TRUE(f.ok());
    const char junk[4] = {1, 2, 3, 4};
    ASSERT_TRUE(f->WriteAt(uint64_t{pgno} * kPage + 6000, junk, 4).ok());
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

// Page buffers come from slabs of 256 pages that every flush hands back:
// pages over several slabs, flushed, then changed again (read back into
// reused slots) and flushed again, each end up as its own records say.
TEST_F(RedoTest, PagesOverSeveralSlabsAndSlotsReusedAfterAFlushEachKeepTheirOwnBytes) {
  constexpr PageNo kFirst = 9, kPages = 600;
  RedoApplier r = Applier();
  for (PageNo p = kFirst; p < kFirst + kPages; ++p) {
    ASSERT_TRUE(Apply(r, RecordType::kPageImage, ImageBody(p, p, 10 + p)).ok());
  }
  ASSERT_TRUE(r.Flush(1).ok());
  // In reverse order, so that each page lands in another slot than before.
  for (PageNo p = kFirst + kPages; p-- > kFirst;) {
    ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(p, 10 + p, 11 + p)).ok());
  }
  ASSERT_TRUE(r.Flush(1).ok());
  uint8_t page[kPage];
  for (PageNo p = kFirst; p < kFirst + kPages; ++p) {
    ASSERT_TRUE(db_->ReadPage(p, page).ok()) << p;
    EXPECT_EQ(PagePgno(page), p);
    EXPECT_EQ(PageDbTime(page), 11 + p);
    EXPECT_EQ(std::memcmp(page + 0x1000, "hi", 2), 0) << p;
  }
  EXPECT_EQ(r.applied(), 2 * kPages);
}

TEST_F(RedoTest, ImageOfAnotherPageIsRefused) {
  RedoApplier r = Applier();
  absl::Status s = Apply(r, RecordType::kPageImage, ImageBody(9, 8, 10));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("page 9"), std::string::npos) << s;
  EXPECT_NE(s.message().find("claiming to be page 8"), std::string::npos) << s;
}

TEST_F(RedoTest, RecordForAHeaderPageIsRefused) {
  RedoApplier r = Applier();
  absl::Status s = Apply(r, RecordType::kPageImage, ImageBody(1, 1, 10));
  EXPECT_NE(s.message().find("would overwrite a header copy"), std::string::npos) << s;
}

TEST_F(RedoTest, SparseImageThatLeavesAnInvalidPageIsRefusedInTheDryRunToo) {
  // A sparse image whose ranges set no page type.
  uint8_t prefix[kPageDeltaPrefixSize];
  EncodePageDeltaPrefix(12, 1, 0, 10, prefix);
  std::string body(reinterpret_cast<char*>(prefix), sizeof(prefix));
  body += std::string("\x04\x00\x04\x00", 4) + std::string("\x0c\x00\x00\x00", 4);
  for (auto mode : {RedoApplier::Mode::kDryRun, RedoApplier::Mode::kApply}) {
    RedoApplier r = Applier(mode);
    absl::Status s = Apply(r, RecordType::kPageImageSparse, body);
    EXPECT_NE(s.message().find("type 0"), std::string::npos) << s;
  }
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
  EXPECT_NE(s.message().find("page 2: log record at 0x00000001:4096: the page has dbtime 1"),
            std::string::npos)
      << s;
}

TEST_F(RedoTest, DeltasToADamagedPageWaitForItsImage) {
  Damage(kMetaPage);
  // Deltas, then an image: the image rebuilds the page, the deltas before
  // it are superseded.
  RedoApplier r = Applier();
  ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(kMetaPage, 1, 2)).ok());
  ASSERT_TRUE(Apply(r, RecordType::kPageImage, ImageBody(kMetaPage, kMetaPage, 3)).ok());
  ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(kMetaPage, 3, 4)).ok());
  EXPECT_EQ(r.superseded(), 1u);
  ASSERT_TRUE(r.Finish().ok());
  ASSERT_TRUE(r.Flush(1).ok());
  uint8_t page[kPage];
  ASSERT_TRUE(db_->ReadPage(kMetaPage, page).ok());
  EXPECT_EQ(PageDbTime(page), 4u);
}

TEST_F(RedoTest, DamagedPageWithoutAnImageIsRefusedAtTheEnd) {
  Damage(kMetaPage);
  RedoApplier r = Applier(RedoApplier::Mode::kDryRun);
  ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(kMetaPage, 1, 2)).ok());
  absl::Status s = r.Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("page 2 is damaged"), std::string::npos) << s;
  EXPECT_NE(s.message().find("no image"), std::string::npos) << s;
}

TEST_F(RedoTest, TruncatedFileIsRefusedUnlessTheLogRebuildsTheCutPage) {
  // Cut the file in the middle of page 5 (the first page after the space map).
  {
    auto f = File::Open(dir_.Sub("db.edb"), O_RDWR);
    ASSERT_TRUE(f->Truncate(5 * kPage + 100).ok());
  }
  auto cut = DatabaseFile::Open(dir_.Sub("db.edb"), true, /*allow_partial_last_page=*/true);
  ASSERT_TRUE(cut.ok());
  db_ = std::move(*cut);
  RedoApplier r = Applier(RedoApplier::Mode::kDryRun);
  absl::Status s = r.Finish();
  EXPECT_NE(s.message().find("cut short in page 5"), std::string::npos) << s;
  RedoApplier rebuilt = Applier(RedoApplier::Mode::kDryRun);
  ASSERT_TRUE(Apply(rebuilt, RecordType::kPageImage, ImageBody(5, 5, 10)).ok());
  EXPECT_TRUE(rebuilt.Finish().ok());
}

TEST_F(RedoTest, RecordsBeforeTheDatabasesOwnStartAreSkipped) {
  RedoApplier r({RedoApplier::Database{db_.get(), Lsn{1, 8192}}}, 1, RedoApplier::Mode::kApply);
  // At 0x1:4096, before the start: even a mismatching change is not looked at.
  ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(kMetaPage, 7, 8)).ok());
  EXPECT_EQ(r.skipped(), 1u);
  EXPECT_EQ(r.applied(), 0u);
}

// A flush puts in the double-write buffer only the pages the log could
// not rebuild: a page an image rebuilt in this batch is written once, and
// if its write is torn by a crash the same replay's image rebuilds it.
TEST_F(RedoTest, APageAnImageRebuiltSkipsTheDoubleWriteBufferAndATornOneIsRebuiltByIt) {
  {
    RedoApplier first = Applier();  // page 12 is on disk before the batch
    ASSERT_TRUE(Apply(first, RecordType::kPageImage, ImageBody(12, 12, 5)).ok());
    ASSERT_TRUE(first.Flush(1).ok());
  }
  auto batch = [&](RedoApplier& r) {
    ASSERT_TRUE(Apply(r, RecordType::kPageImage, ImageBody(9, 9, 10)).ok());
    ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(9, 10, 11)).ok());
    ASSERT_TRUE(Apply(r, RecordType::kPageDelta, DeltaBody(12, 5, 6)).ok());
  };
  DoubleWriteBuffer dwb(dir_.Sub("E00.dwb"));
  RedoApplier r = ApplierWithBuffer(&dwb);
  batch(r);
  // The crash: the buffer written, then both pages torn in place.
  FlushStoppedAfterTheBuffer(r);
  Damage(9);
  Damage(12);
  // Only page 12, which deltas alone changed, is in the buffer.
  EXPECT_EQ(RepairFromTheBuffer(), 1);
  uint8_t page[kPage];
  ASSERT_TRUE(db_->ReadPage(12, page).ok());
  EXPECT_EQ(PageDbTime(page), 6u);
  EXPECT_FALSE(db_->ReadPage(9, page).ok());
  // The replay after the crash, from the same start: page 9's image
  // rebuilds it, page 12 already holds its change.
  RedoApplier again = Applier();
  batch(again);
  ASSERT_TRUE(again.Finish().ok());
  ASSERT_TRUE(again.Flush(1).ok());
  ASSERT_TRUE(db_->ReadPage(9, page).ok());
  EXPECT_EQ(PageDbTime(page), 11u);
  EXPECT_EQ(std::memcmp(page + 0x1000, "hi", 2), 0);
  ASSERT_TRUE(db_->ReadPage(12, page).ok());
  EXPECT_EQ(PageDbTime(page), 6u);
}

// An image before where a later replay could start (a hard recovery
// replays from log_required_min, a soft one from the checkpoint) is not
// replayed after a crash: its page goes through the buffer.
TEST_F(RedoTest, AnImageBeforeTheCheckpointDoesNotSkipTheDoubleWriteBuffer) {
  ASSERT_TRUE(db_->UpdateHeader([](DbHeader& h) { h.checkpoint = Lsn{2, 0}; }).ok());
  DoubleWriteBuffer dwb(dir_.Sub("E00.dwb"));
  // A hard recovery's applier: from the start, before the checkpoint.
  RedoApplier r = ApplierWithBuffer(&dwb);
  ASSERT_TRUE(Apply(r, RecordType::kPageImage, ImageBody(9, 9, 10)).ok());  // at 1:4096
  FlushStoppedAfterTheBuffer(r);
  Damage(9);
  EXPECT_EQ(RepairFromTheBuffer(), 1);
  uint8_t page[kPage];
  ASSERT_TRUE(db_->ReadPage(9, page).ok());
  EXPECT_EQ(PageDbTime(page), 10u);
}

// A flush empties the buffer even when none of its pages needed it: what
// an interrupted flush left there must not be put back over newer pages by
// a later repair.
TEST_F(RedoTest, AFlushOfImagedPagesOnlyStillEmptiesALeftoverBuffer) {
  std::string stale(kPage, '\0');
  InitPage(reinterpret_cast<uint8_t*>(stale.data()), kPage, 12, PageType::kBTreeLeaf);
  SetPageDbTime(reinterpret_cast<uint8_t*>(stale.data()), 3);
  DoubleWriteBuffer dwb(dir_.Sub("E00.dwb"));
  ASSERT_TRUE(dwb.Write({{0, 12, reinterpret_cast<const uint8_t*>(stale.data())}}, kPage).ok());
  RedoApplier r = ApplierWithBuffer(&dwb);
  ASSERT_TRUE(Apply(r, RecordType::kPageImage, ImageBody(9, 9, 10)).ok());
  ASSERT_TRUE(r.Flush(1).ok());
  Damage(12);
  EXPECT_EQ(RepairFromTheBuffer(), 0);
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
