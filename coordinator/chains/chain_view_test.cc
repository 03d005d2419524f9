// The coordinator's view of chains with log archive segments (issue 19):
// `chain show`'s archived range and restore points, and restores planned
// to an archived generation or time, from catalog records alone.
#include "coordinator/chains/chain_view.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

// A catalogued piece of DB02 holding logs low..high, frozen (or, for a
// segment, archived) `minutes` after kStart; stream 'b' diverges at 8.
BackupRecord Piece(v1::BackupType type, uint32_t low, uint32_t high, int minutes,
                   char stream = 'a') {
  v1::Manifest m;
  m.set_id(absl::StrCat("20270115T", 100000 + minutes * 100, ".000000Z-0000000", minutes % 10));
  m.set_unit("DB02");
  m.set_type(type);
  m.set_low_generation(low);
  m.set_high_generation(high);
  m.set_log_signature("LS");
  m.add_database_signatures("DS");
  m.set_frozen_us(absl::ToUnixMicros(kStart + absl::Minutes(minutes)));
  auto hash = [&](uint32_t g) { return absl::StrCat("h", stream == 'b' && g >= 8 ? "b" : "a", g); };
  for (uint32_t g = low; g <= high; ++g) {
    v1::ManifestFile* f = m.add_files();
    f->set_role("log");
    f->set_generation(g);
    f->set_sha256(hash(g));
    if (g > 1) f->set_link_hash(hash(g - 1));
  }
  BackupRecord r = BackupRecordOf(m);
  r.chain_summary = m;
  return r;
}

TEST(ChainView, ArchivedLogsShowAsARangeAndAreRestorePointsByGenerationAndTime) {
  const std::vector<BackupRecord> records = {
      Piece(v1::FULL, 1, 5, 0),        Piece(v1::LOG_ARCHIVE, 6, 6, 2),
      Piece(v1::LOG_ARCHIVE, 7, 7, 4), Piece(v1::INCREMENTAL, 6, 8, 5),
      Piece(v1::LOG_ARCHIVE, 8, 9, 6), Piece(v1::LOG_ARCHIVE, 10, 10, 8),
  };
  const v1::ShowChainsResponse shown = ShowChains("DB02", records, {});
  ASSERT_EQ(shown.chains_size(), 1);
  const v1::ChainInfo& c = shown.chains(0);
  EXPECT_EQ(c.archived_segments(), 2u);
  EXPECT_EQ(c.archived_low_generation(), 9u);
  EXPECT_EQ(c.archived_high_generation(), 10u);
  EXPECT_EQ(c.archived_through_us(), absl::ToUnixMicros(kStart + absl::Minutes(8)));
  EXPECT_FALSE(c.archive_broken());
  // The newest restore point is the newest archived generation.
  ASSERT_GT(c.restore_points_size(), 0);
  EXPECT_EQ(c.restore_points(c.restore_points_size() - 1).generation(), 10u);
  // The next Incremental still follows the last backup, not the archive.
  EXPECT_THAT(shown.next_incremental(), HasSubstr("after generation 0x00000008"));

  uint32_t target = 0;
  auto latest = RestorePlan("DB02", records, {}, 0, absl::InfinitePast(), &target);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->size(), 4u);  // Full, Incremental, 8-9, 10
  auto at9 = RestorePlan("DB02", records, {}, 9, absl::InfinitePast(), &target);
  ASSERT_TRUE(at9.ok()) << at9.status();
  EXPECT_EQ(at9->back().high_generation(), 9u);
  // To a time: the newest segment archived at or before it.
  auto by_time = RestorePlan("DB02", records, {}, 0, kStart + absl::Minutes(7), &target);
  ASSERT_TRUE(by_time.ok()) << by_time.status();
  EXPECT_EQ(target, 9u);
  EXPECT_EQ(by_time->back().high_generation(), 9u);
}

TEST(ChainView, ADivergedArchiveIsNamedAndARecordedBreakEndsIt) {
  const std::vector<BackupRecord> records = {
      Piece(v1::FULL, 1, 5, 0),
      Piece(v1::LOG_ARCHIVE, 6, 7, 2),
      Piece(v1::LOG_ARCHIVE, 8, 8, 3),  // the old active's 8, then a lossy failover
      Piece(v1::LOG_ARCHIVE, 8, 8, 4, 'b'),
      Piece(v1::LOG_ARCHIVE, 9, 9, 5, 'b'),
  };
  v1::ShowChainsResponse shown = ShowChains("DB02", records, {});
  ASSERT_EQ(shown.chains_size(), 1);
  EXPECT_EQ(shown.chains(0).archived_high_generation(), 8u);
  EXPECT_TRUE(shown.chains(0).archive_broken());
  EXPECT_EQ(shown.chains(0).archive_broken_at_generation(), 9u);
  EXPECT_THAT(shown.chains(0).archive_broken_reason(), HasSubstr("the log stream diverged"));
  uint32_t target = 0;
  auto at9 = RestorePlan("DB02", records, {}, 9, absl::InfinitePast(), &target);
  EXPECT_THAT(std::string(at9.status().message()),
              HasSubstr("restore to generation 0x00000008 or earlier"));

  // A break a later backup recorded after the Full: no archived log
  // extends the chain past it.
  ChainBreakRecord recorded;
  recorded.unit = "DB02";
  recorded.after_manifest = records[0].manifest;
  recorded.generation = 6;
  recorded.reason = "the log stream diverged at 0x00000006";
  shown = ShowChains("DB02", records, {recorded});
  EXPECT_EQ(shown.chains(0).archived_segments(), 0u);
  EXPECT_TRUE(shown.chains(0).broken());
}

// An archiver whose copy's stream no longer follows the archive (a lossy
// activation) records the break after the segment it cannot follow: the
// chain ends with that segment, like a backup's break, and the next
// Incremental becomes a Full.
TEST(ChainView, ABreakAnArchiverRecordedEndsTheChainWithItsSegment) {
  const std::vector<BackupRecord> records = {
      Piece(v1::FULL, 1, 5, 0),
      Piece(v1::LOG_ARCHIVE, 6, 7, 2),
      Piece(v1::LOG_ARCHIVE, 8, 9, 3),
  };
  ChainBreakRecord recorded;
  recorded.unit = "DB02";
  recorded.after_manifest = records[1].manifest;
  recorded.generation = 8;
  recorded.reason = "archiving from node2: the log stream diverged; take a Full";
  const v1::ShowChainsResponse shown = ShowChains("DB02", records, {recorded});
  ASSERT_EQ(shown.chains_size(), 1);
  const v1::ChainInfo& c = shown.chains(0);
  EXPECT_TRUE(c.broken());
  EXPECT_EQ(c.broken_at_generation(), 8u);
  EXPECT_THAT(c.broken_reason(), HasSubstr("archiving from node2"));
  EXPECT_EQ(c.archived_segments(), 1u);
  EXPECT_EQ(c.archived_high_generation(), 7u);
  ASSERT_EQ(c.restore_points_size(), 2);
  EXPECT_EQ(c.restore_points(1).generation(), 7u);
  EXPECT_THAT(shown.next_incremental(), HasSubstr("Full: the newest chain"));
  EXPECT_THAT(shown.next_incremental(), HasSubstr("is broken at generation 0x00000008"));

  uint32_t target = 0;
  auto latest = RestorePlan("DB02", records, {recorded}, 0, absl::InfinitePast(), &target);
  EXPECT_THAT(std::string(latest.status().message()),
              HasSubstr("restore to generation 0x00000007 or earlier"));
  auto at7 = RestorePlan("DB02", records, {recorded}, 7, absl::InfinitePast(), &target);
  ASSERT_TRUE(at7.ok()) << at7.status();
  EXPECT_EQ(at7->back().id(), records[1].manifest);
  auto at9 = RestorePlan("DB02", records, {recorded}, 9, absl::InfinitePast(), &target);
  EXPECT_FALSE(at9.ok());
  // A break recorded for another unit changes nothing.
  recorded.unit = "DB01";
  EXPECT_FALSE(ShowChains("DB02", records, {recorded}).chains(0).broken());
}

}  // namespace
}  // namespace dagvault::coordinator
