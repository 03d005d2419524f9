#include "coordinator/retention/expiry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/testing/temp_dir.h"
#include "coordinator/catalog/rebuild.h"
#include "coordinator/catalog/sqlite_catalog.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kNow = absl::FromUnixSeconds(1795000000);

// A backup of DB02 with logs low..high (each log links to the one before)
// that finished `days_ago`.
BackupRecord Piece(v1::BackupType type, uint32_t low, uint32_t high, double days_ago) {
  static int next = 0;
  v1::Manifest m;
  m.set_id(absl::StrFormat("m%06d", ++next));  // ids sort in time order
  m.set_unit("DB02");
  m.set_type(type);
  m.set_low_generation(low);
  m.set_high_generation(high);
  m.set_log_signature("LS");
  m.add_database_signatures("DS");
  const absl::Time finished = kNow - absl::Hours(24 * days_ago);
  m.set_started_us(absl::ToUnixMicros(finished - absl::Minutes(1)));
  m.set_finished_us(absl::ToUnixMicros(finished));
  (*m.mutable_labels())["verified"] = "pages and logs";
  for (uint32_t g = low; g <= high; ++g) {
    auto* f = m.add_files();
    f->set_role("log");
    f->set_generation(g);
    f->set_sha256(absl::StrCat("h", g));
    if (g > 1) f->set_link_hash(absl::StrCat("h", g - 1));
  }
  if (type == v1::FULL) {
    auto* db = m.add_files();
    db->set_role("database");
    db->set_name("DB02.edb");
  }
  return BackupRecordOf(m);
}

v1::Policy KeepPolicy(uint32_t chains, uint32_t days) {
  v1::Policy p;
  p.set_name("gold");
  p.add_units("DB02");
  p.set_keep_chains(chains);
  p.set_keep_days(days);
  return p;
}

// Three chains, 30, 20 and 10 days old: Full+Incremental each.
std::vector<BackupRecord> ThreeChains() {
  return {Piece(v1::FULL, 1, 3, 31),   Piece(v1::INCREMENTAL, 4, 5, 30),
          Piece(v1::FULL, 6, 8, 21),   Piece(v1::INCREMENTAL, 9, 10, 20),
          Piece(v1::FULL, 11, 13, 11), Piece(v1::INCREMENTAL, 14, 15, 10)};
}

std::vector<std::string> Ids(const std::vector<ExpiredChain>& chains) {
  std::vector<std::string> out;
  for (const auto& c : chains) {
    for (const auto& p : c.pieces) out.push_back(p.manifest);
  }
  return out;
}

TEST(ExpiryTest, WholeChainsBeyondTheNewestNExpireWithTheirIncrementals) {
  auto backups = ThreeChains();
  auto expired = ExpiredChains(KeepPolicy(1, 0), "DB02", backups, {}, kNow);
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_THAT(Ids(expired), ElementsAre(backups[0].manifest, backups[1].manifest,
                                        backups[2].manifest, backups[3].manifest));
  EXPECT_THAT(expired[0].why, HasSubstr("not among the newest 1 chain(s)"));
  // Keep 2: only the oldest.
  EXPECT_THAT(Ids(ExpiredChains(KeepPolicy(2, 0), "DB02", backups, {}, kNow)),
              ElementsAre(backups[0].manifest, backups[1].manifest));
  // No retention set: everything is kept.
  EXPECT_THAT(ExpiredChains(KeepPolicy(0, 0), "DB02", backups, {}, kNow), IsEmpty());
}

// Archived log segments (issue 19 §1) expire with the chain they extend,
// unless a kept chain takes them in too; one that no chain takes in (past
// a gap) goes with the expired chain before the next kept Full.
TEST(ExpiryTest, ArchivedLogsExpireWithTheChainTheyExtend) {
  std::vector<BackupRecord> backups = ThreeChains();
  const BackupRecord first_archive = Piece(v1::LOG_ARCHIVE, 6, 7, 29);    // extends chain 1
  const BackupRecord orphan = Piece(v1::LOG_ARCHIVE, 9, 9, 28);           // past a gap
  const BackupRecord newest_archive = Piece(v1::LOG_ARCHIVE, 16, 17, 9);  // extends chain 3
  backups.push_back(first_archive);
  backups.push_back(orphan);
  backups.push_back(newest_archive);
  auto expired = ExpiredChains(KeepPolicy(1, 0), "DB02", backups, {}, kNow);
  const std::vector<std::string> ids = Ids(expired);
  EXPECT_THAT(ids, ::testing::Contains(first_archive.manifest));
  EXPECT_THAT(ids, ::testing::Contains(orphan.manifest));
  EXPECT_THAT(ids, ::testing::Not(::testing::Contains(newest_archive.manifest)));
  // Chain 1's Full, Incremental and archive; chain 2's pieces; the orphan.
  EXPECT_EQ(ids.size(), 6u);
}

TEST(ExpiryTest, AChainIsAsOldAsItsNewestPieceAndDaysAndCountBothKeep) {
  auto backups = ThreeChains();
  // 25 days: the chain whose Incremental is 20 days old stays.
  EXPECT_THAT(Ids(ExpiredChains(KeepPolicy(0, 25), "DB02", backups, {}, kNow)),
              ElementsAre(backups[0].manifest, backups[1].manifest));
  // Keep 1 chain or 25 days: a chain either keeps is kept.
  EXPECT_THAT(Ids(ExpiredChains(KeepPolicy(1, 25), "DB02", backups, {}, kNow)),
              ElementsAre(backups[0].manifest, backups[1].manifest));
  // 1 day: even the newest chain is older, but it is the newest valid one.
  EXPECT_THAT(Ids(ExpiredChains(KeepPolicy(0, 1), "DB02", backups, {}, kNow)),
              ElementsAre(backups[0].manifest, backups[1].manifest, backups[2].manifest,
                          backups[3].manifest));
}

TEST(ExpiryTest, TheNewestValidChainStaysWhenANewerOneIsBroken) {
  auto backups = ThreeChains();
  // The newest chain is broken after its Full: the one before is the newest valid.
  ChainBreakRecord broken{"DB02", backups[5].manifest, 16, "diverged", kNow, "job"};
  auto expired = ExpiredChains(KeepPolicy(1, 0), "DB02", backups, {broken}, kNow);
  EXPECT_THAT(Ids(expired), ElementsAre(backups[0].manifest, backups[1].manifest));
}

class ExpiryRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = SqliteCatalog::Open(dir_.path() + "/catalog.db");
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = std::move(*c);
    for (const auto& b : ThreeChains()) {
      backups_.push_back(b);
      ASSERT_TRUE(catalog_->PutBackup(b).ok());
    }
    ASSERT_TRUE(catalog_->PutPolicy(KeepPolicy(1, 0)).ok());
  }
  testing::TempDir dir_{"expiry"};
  std::unique_ptr<SqliteCatalog> catalog_;
  std::vector<BackupRecord> backups_;
};

TEST_F(ExpiryRunTest, ADryRunChangesNothingAndARunWithoutARepositoryKeepsTheExpiringRecords) {
  ExpiryOptions options;
  options.dry_run = true;
  auto dry = RunExpiry(*catalog_, options, kNow);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->expired_size(), 2);
  EXPECT_EQ(catalog_->Backups("DB02")->size(), 6u);

  // The catalog step happens; the prune cannot, and says why: the records
  // stay expiring for the next run.
  options.dry_run = false;
  auto run = RunExpiry(*catalog_, options, kNow);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("no repository configured"));
  EXPECT_EQ(catalog_->Backups("DB02")->size(), 2u);
  EXPECT_EQ(catalog_->Expiring()->size(), 4u);
  // A second run expires nothing new (the newest chain is kept).
  auto again = RunExpiry(*catalog_, options, kNow);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(catalog_->Expiring()->size(), 4u);
  ASSERT_TRUE(catalog_->ClearExpiring(*catalog_->Expiring()).ok());
  EXPECT_THAT(*catalog_->Expiring(), IsEmpty());
}

TEST_F(ExpiryRunTest, ACoordinatorThatNoLongerLeadsDoesNotBeginThePrune) {
  ExpiryOptions options;
  options.repository = dir_.path() + "/no-repository-opened";
  options.may_act = [] { return false; };
  auto run = RunExpiry(*catalog_, options, kNow);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kAborted) << run.status();
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("no longer leads"));
  // Left expiring for the leader's run.
  EXPECT_EQ(catalog_->Expiring()->size(), 4u);
}

}  // namespace
}  // namespace dagvault::coordinator
