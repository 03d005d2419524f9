// Chains from manifests alone: joins, gaps, divergence, signatures, and
// which pieces a restore to a generation needs.
#include "repository/chain.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::repository {
namespace {

using dagvault::v1::Manifest;
using ::testing::AllOf;
using ::testing::HasSubstr;

// The bytes of log generation g of a stream (a stand-in for its SHA-256):
// stream "b" diverges from "a" at generation `split`.
std::string LogHash(uint32_t g, char stream = 'a', uint32_t split = 0) {
  const char s = split != 0 && g >= split ? stream : 'a';
  return absl::StrCat("hash-", std::string(1, s), "-", g);
}

int next_id = 0;

Manifest Backup(dagvault::v1::BackupType type, uint32_t low, uint32_t high, char stream = 'a',
                uint32_t split = 0, const std::string& log_signature = "logsig") {
  Manifest m;
  m.set_id(absl::StrCat("2026112", next_id++ + 10, "T000000Z-0000"));
  m.set_unit("SG01");
  m.set_type(type);
  m.set_low_generation(low);
  m.set_high_generation(high);
  m.set_log_signature(log_signature);
  m.add_database_signatures("db1");
  for (uint32_t g = low; g <= high; ++g) {
    auto* f = m.add_files();
    f->set_role("log");
    f->set_name(absl::StrCat("logs/E01", g, ".log"));
    f->set_generation(g);
    f->set_sha256(LogHash(g, stream, split));
    if (g > 1) f->set_link_hash(LogHash(g - 1, stream, split));
  }
  return m;
}

std::vector<std::string> Ids(const std::vector<Manifest>& ms) {
  std::vector<std::string> ids;
  for (const auto& m : ms) ids.push_back(m.id());
  return ids;
}

TEST(ChainTest, IncrementalsExtendAFullAndARestoreTakesWhatReachesTheGeneration) {
  const Manifest full = Backup(dagvault::v1::FULL, 3, 5);
  const Manifest i1 = Backup(dagvault::v1::INCREMENTAL, 6, 9);
  const Manifest copy = Backup(dagvault::v1::COPY, 4, 10);
  const Manifest i2 = Backup(dagvault::v1::INCREMENTAL, 10, 12);
  const std::vector<dagvault::v1::Manifest> manifests = {i2, copy, full, i1};
  const auto chains = AssembleChains(manifests, "SG01");  // any order
  ASSERT_EQ(chains.size(), 1u);
  EXPECT_EQ(chains[0].incrementals.size(), 2u);
  EXPECT_FALSE(chains[0].broken);
  EXPECT_EQ(chains[0].high_generation(), 12u);

  auto latest = RestoreChain(chains, 0, "SG01");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(Ids(*latest), Ids({full, i1, i2}));
  auto middle = RestoreChain(chains, 7, "SG01");
  ASSERT_TRUE(middle.ok()) << middle.status();
  EXPECT_EQ(Ids(*middle), Ids({full, i1}));
  auto at_full = RestoreChain(chains, 5, "SG01");
  ASSERT_TRUE(at_full.ok());
  EXPECT_EQ(Ids(*at_full), Ids({full}));

  auto past = RestoreChain(chains, 13, "SG01");
  EXPECT_THAT(std::string(past.status().message()),
              HasSubstr("generation 0x0000000D is past the chain's last backed-up generation "
                        "0x0000000C"));
  auto before = RestoreChain(chains, 4, "SG01");
  EXPECT_THAT(std::string(before.status().message()), HasSubstr("is before the first Full"));

  auto base = BaseFor(chains, dagvault::v1::INCREMENTAL, "SG01");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->id(), i2.id());
  base = BaseFor(chains, dagvault::v1::DIFFERENTIAL, "SG01");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->id(), full.id());
}

TEST(ChainTest, ADifferentialIsTheFullPlusOnePiece) {
  const Manifest full = Backup(dagvault::v1::FULL, 1, 4);
  const Manifest d1 = Backup(dagvault::v1::DIFFERENTIAL, 5, 7);
  const Manifest d2 = Backup(dagvault::v1::DIFFERENTIAL, 5, 11);
  const std::vector<dagvault::v1::Manifest> manifests = {full, d1, d2};
  const auto chains = AssembleChains(manifests, "SG01");
  ASSERT_EQ(chains.size(), 1u);
  auto latest = RestoreChain(chains, 0, "SG01");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(Ids(*latest), Ids({full, d2}));
  auto middle = RestoreChain(chains, 6, "SG01");
  ASSERT_TRUE(middle.ok());
  EXPECT_EQ(Ids(*middle), Ids({full, d1}));
  EXPECT_FALSE(CheckChain({full, d1, d2}).ok());
}

TEST(ChainTest, AGapADivergenceOrAnotherStreamBreaksTheChainAtANamedGeneration) {
  const Manifest full = Backup(dagvault::v1::FULL, 1, 5);
  const Manifest gap = Backup(dagvault::v1::INCREMENTAL, 8, 9);
  auto s = CheckChain({full, gap});
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("the chain breaks at generation 0x00000006: generations 0x00000006 to "
                        "0x00000007 are in no backup"));

  // A lossy failover: generation 6 onwards was written twice.
  const Manifest diverged = Backup(dagvault::v1::INCREMENTAL, 6, 8, 'b', 5);
  s = CheckChain({full, diverged});
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("the chain breaks at generation 0x00000006: log generation "
                              "0x00000006"),
                    HasSubstr("the log stream diverged")));

  const Manifest other =
      Backup(dagvault::v1::INCREMENTAL, 6, 8, 'a', 0, /*log_signature=*/"another");
  s = CheckChain({full, other});
  EXPECT_THAT(std::string(s.message()), HasSubstr("they belong to different log streams"));

  // An overlapping Incremental joins when the shared generations agree.
  EXPECT_TRUE(CheckChain({full, Backup(dagvault::v1::INCREMENTAL, 5, 7)}).ok());

  // In a repository, the chain ends before the break: the restore points
  // before it remain, and the newest is refused rather than silently older.
  const Manifest good = Backup(dagvault::v1::INCREMENTAL, 6, 7);
  const Manifest bad = Backup(dagvault::v1::INCREMENTAL, 9, 10);
  const std::vector<dagvault::v1::Manifest> manifests = {full, good, bad};
  const auto chains = AssembleChains(manifests, "SG01");
  ASSERT_TRUE(chains[0].broken);
  EXPECT_EQ(chains[0].broken->generation, 8u);
  auto latest = RestoreChain(chains, 0, "SG01");
  EXPECT_THAT(std::string(latest.status().message()),
              AllOf(HasSubstr("breaks at generation 0x00000008"),
                    HasSubstr("restore to generation 0x00000007 or earlier")));
  auto ok = RestoreChain(chains, 7, "SG01");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(Ids(*ok), Ids({full, good}));
  auto base = BaseFor(chains, dagvault::v1::INCREMENTAL, "SG01");
  EXPECT_THAT(std::string(base.status().message()), HasSubstr("take a Full"));
}

// Issue 15: a log missing from the middle of one backup, or a log of
// another stream in its place, breaks the chain at that generation; the
// joins between backups alone would not see either.
TEST(ChainTest, ALogMissingOrForeignInsideABackupBreaksTheChainThere) {
  const Manifest full = Backup(dagvault::v1::FULL, 1, 3);
  Manifest holed = Backup(dagvault::v1::INCREMENTAL, 4, 6);
  holed.mutable_files()->DeleteSubrange(1, 1);  // generation 5
  EXPECT_THAT(std::string(CheckChain({full, holed}).message()),
              HasSubstr("the chain breaks at generation 0x00000005: log generation 0x00000005 is "
                        "missing from Incremental"));
  Manifest foreign = Backup(dagvault::v1::INCREMENTAL, 4, 6);
  foreign.mutable_files(1)->set_sha256("hash-z-5");
  foreign.mutable_files(1)->set_link_hash("hash-z-4");
  const std::vector<Manifest> manifests = {full, foreign};
  const auto chains = AssembleChains(manifests, "SG01");
  ASSERT_TRUE(chains[0].broken);
  // The chain ends before the Incremental (its generation 4 is restored
  // through it or not at all); the reason names the foreign log.
  EXPECT_EQ(chains[0].broken->generation, 4u);
  EXPECT_THAT(chains[0].broken->reason,
              AllOf(HasSubstr("breaks at generation 0x00000005"),
                    HasSubstr("a log of another stream is in the backup")));

  // A Full with a hole is broken from the start.
  Manifest holed_full = Backup(dagvault::v1::FULL, 1, 3);
  holed_full.mutable_files()->DeleteSubrange(1, 1);
  const std::vector<Manifest> alone = {holed_full};
  const auto broken = AssembleChains(alone, "SG01");
  ASSERT_TRUE(broken[0].broken);
  EXPECT_EQ(broken[0].broken->generation, 1u);
  EXPECT_THAT(broken[0].broken->reason, HasSubstr("breaks at generation 0x00000002"));
  EXPECT_FALSE(RestoreChain(broken, 0, "SG01").ok());
  EXPECT_FALSE(RestoreChain(broken, 3, "SG01").ok());
}

TEST(ChainTest, NoFullMeansNoBaseAndNoRestore) {
  const std::vector<dagvault::v1::Manifest> manifests = {Backup(dagvault::v1::INCREMENTAL, 2, 3)};
  const auto chains = AssembleChains(manifests, "SG01");
  EXPECT_TRUE(chains.empty());
  auto base = BaseFor(chains, dagvault::v1::INCREMENTAL, "SG01");
  EXPECT_THAT(std::string(base.status().message()),
              HasSubstr("unit SG01 has no Full backup in this repository: take a Full before an "
                        "Incremental"));
  EXPECT_EQ(RestoreChain(chains, 0, "SG01").status().code(), absl::StatusCode::kNotFound);
}

// Log archive segments (issue 19): closed logs archived as they close
// extend the newest chain past its last Incremental, one restore point per
// generation; overlapping and repeated segments are harmless.
TEST(ChainTest, ArchivedLogsExtendTheChainWithARestorePointAtEachGeneration) {
  const Manifest full = Backup(dagvault::v1::FULL, 3, 5);
  const Manifest a6 = Backup(dagvault::v1::LOG_ARCHIVE, 6, 6);
  const Manifest a7 = Backup(dagvault::v1::LOG_ARCHIVE, 7, 8);
  const Manifest inc = Backup(dagvault::v1::INCREMENTAL, 6, 9);  // taken after a7
  const Manifest a8 = Backup(dagvault::v1::LOG_ARCHIVE, 8, 10);  // again after a restart
  const Manifest a11 = Backup(dagvault::v1::LOG_ARCHIVE, 11, 11);
  const std::vector<Manifest> manifests = {a11, full, a8, inc, a7, a6};
  const auto chains = AssembleChains(manifests, "SG01");
  ASSERT_EQ(chains.size(), 1u);
  ASSERT_EQ(chains[0].incrementals.size(), 1u);
  EXPECT_EQ(chains[0].backed_up_high_generation(), 9u);
  EXPECT_EQ(chains[0].high_generation(), 11u);
  EXPECT_EQ(chains[0].archived.size(), 2u);  // a8 and a11; a6 and a7 are within the Incremental
  EXPECT_FALSE(chains[0].archive_broken);

  auto latest = RestoreChain(chains, 0, "SG01");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(Ids(*latest), Ids({full, inc, a8, a11}));
  auto at10 = RestoreChain(chains, 10, "SG01");
  ASSERT_TRUE(at10.ok()) << at10.status();
  EXPECT_EQ(Ids(*at10), Ids({full, inc, a8}));
  auto at9 = RestoreChain(chains, 9, "SG01");
  ASSERT_TRUE(at9.ok());
  EXPECT_EQ(Ids(*at9), Ids({full, inc}));
  auto past = RestoreChain(chains, 12, "SG01");
  EXPECT_THAT(std::string(past.status().message()),
              HasSubstr("past the chain's last archived generation 0x0000000B"));
  EXPECT_TRUE(CheckChain(*latest).ok());

  // Without the Incremental, the segments alone carry the chain.
  const std::vector<Manifest> without_incremental = {full, a6, a7, a8};
  const auto archive_only = AssembleChains(without_incremental, "SG01");
  auto at8 = RestoreChain(archive_only, 8, "SG01");
  ASSERT_TRUE(at8.ok()) << at8.status();
  EXPECT_EQ(Ids(*at8), Ids({full, a6, a7}));

  // A segment is never a backup's base, and no Incremental follows one in a
  // chain.
  auto base = BaseFor(chains, dagvault::v1::INCREMENTAL, "SG01");
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->id(), inc.id());
  auto misordered = CheckChain({full, a6, inc});
  EXPECT_THAT(std::string(misordered.message()), HasSubstr("follows a log archive segment"));
}

TEST(ChainTest, AGapOrADivergenceInTheArchiveEndsItsRestorePointsNamingTheGeneration) {
  const Manifest full = Backup(dagvault::v1::FULL, 3, 5);
  const Manifest a6 = Backup(dagvault::v1::LOG_ARCHIVE, 6, 7);
  const Manifest a9 = Backup(dagvault::v1::LOG_ARCHIVE, 9, 9);  // 8 never archived
  const std::vector<Manifest> with_gap = {full, a6, a9};
  const auto gap = AssembleChains(with_gap, "SG01");
  ASSERT_TRUE(gap[0].archive_broken);
  EXPECT_EQ(gap[0].archive_broken->generation, 8u);
  EXPECT_EQ(gap[0].high_generation(), 7u);
  auto at7 = RestoreChain(gap, 7, "SG01");
  ASSERT_TRUE(at7.ok()) << at7.status();
  auto latest = RestoreChain(gap, 0, "SG01");
  EXPECT_THAT(std::string(latest.status().message()),
              AllOf(HasSubstr("has a log archive that stops joining it"),
                    HasSubstr("generations 0x00000008 to 0x00000008 are in no backup"),
                    HasSubstr("restore to generation 0x00000007 or earlier")));
  auto at9 = RestoreChain(gap, 9, "SG01");
  EXPECT_THAT(std::string(at9.status().message()),
              HasSubstr("no restore to generation 0x00000009 through the log archive"));

  // A lossy failover at 8: the old active archived its 8, the new one its
  // own 8 and 9. The archive names the divergence; the new stream's
  // segments extend the chain of the next Full.
  const Manifest old8 = Backup(dagvault::v1::LOG_ARCHIVE, 8, 8);
  const Manifest new8 = Backup(dagvault::v1::LOG_ARCHIVE, 8, 8, 'b', 8);
  const Manifest new9 = Backup(dagvault::v1::LOG_ARCHIVE, 9, 9, 'b', 8);
  const Manifest full_b = Backup(dagvault::v1::FULL, 9, 10, 'b', 8);
  const Manifest new11 = Backup(dagvault::v1::LOG_ARCHIVE, 11, 11, 'b', 8);
  const std::vector<Manifest> both_streams = {full, a6, old8, new8, new9, full_b, new11};
  const auto diverged = AssembleChains(both_streams, "SG01");
  ASSERT_EQ(diverged.size(), 2u);
  ASSERT_TRUE(diverged[0].archive_broken);
  EXPECT_EQ(diverged[0].archive_broken->generation, 9u);
  EXPECT_THAT(diverged[0].archive_broken->reason, HasSubstr("the log stream diverged"));
  EXPECT_EQ(diverged[0].high_generation(), 8u);
  EXPECT_FALSE(diverged[1].archive_broken);
  EXPECT_EQ(diverged[1].high_generation(), 11u);
  auto newest = RestoreChain(diverged, 0, "SG01");
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(Ids(*newest), Ids({full_b, new11}));
}

}  // namespace
}  // namespace dagvault::repository
