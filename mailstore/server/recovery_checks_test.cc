// A restore verification's checks (recovery_checks.h) on real databases: a
// sound one passes with its digest, counts and sample; a damaged page, and
// a database that recovery did not leave consistent, are named.
#include "mailstore/server/recovery_checks.h"

#include <filesystem>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/format/edb_header.h"

namespace dagvault::mailstore {
namespace {

namespace v1 = dagvault::v1;
using dagvault::testing::TempDir;
using ::testing::HasSubstr;
using testing::MakeUnitConfig;
using testing::TestEngineOptions;
using testing::ValueFor;

class RecoveryChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = MakeUnitConfig(dir_.path(), 2);
    auto engine = Engine::Create(config_, TestEngineOptions());
    ASSERT_TRUE(engine.ok()) << engine.status();
    // Three mailboxes in db0, one of them with a value larger than a page
    // (a long value); one mailbox in db1.
    for (uint64_t mailbox = 1; mailbox <= 3; ++mailbox) {
      for (uint64_t item = 0; item < 40; ++item) {
        const size_t size = mailbox == 2 && item == 7 ? 100000 : 200 + item * 10;
        ASSERT_TRUE((*engine)->Put(0, {mailbox, item}, ValueFor(mailbox * 1000 + item, size)).ok());
      }
    }
    for (uint64_t item = 0; item < 5; ++item) {
      ASSERT_TRUE((*engine)->Put(1, {9, item}, ValueFor(item, 300)).ok());
    }
    ASSERT_TRUE((*engine)->Close().ok());
  }
  std::vector<RecoveredFile> Files() const {
    return {{"db0", JoinPath(dir_.path(), "db0.edb")}, {"db1", JoinPath(dir_.path(), "db1.edb")}};
  }

  TempDir dir_{"recovery-checks"};
  v1::UnitConfig config_;
};

TEST_F(RecoveryChecksTest, ASoundDatabasePassesWithItsDigestCountsAndSample) {
  const Sha256Digest offline = testing::OfflineDigest(JoinPath(dir_.path(), "db0.edb"));
  std::vector<v1::DatabaseCheck> checked = CheckRecoveredFiles(Files());
  ASSERT_EQ(checked.size(), 2u);
  for (const auto& c : checked) {
    EXPECT_TRUE(c.problems().empty()) << c.DebugString();
    EXPECT_GT(c.pages(), 2u);
  }
  auto engine = Engine::Open(config_, TestEngineOptions());
  ASSERT_TRUE(engine.ok()) << engine.status();
  v1::RecoveryDatabaseChecks checks;
  checks.set_requested(true);
  checks.set_sample_items(25);
  checks.set_seed(42);
  for (uint32_t i = 0; i < 2; ++i) ReadMountedDatabase(**engine, i, checks, &checked[i]);
  EXPECT_TRUE(checked[0].problems().empty()) << checked[0].DebugString();
  EXPECT_EQ(checked[0].sha256(), DigestToHex(offline));
  EXPECT_EQ(checked[0].items(), 120u);
  EXPECT_EQ(checked[0].sampled_items(), 25u);
  EXPECT_EQ(checked[1].items(), 5u);
  EXPECT_EQ(checked[1].sampled_items(), 25u);
  EXPECT_TRUE(checked[1].problems().empty()) << checked[1].DebugString();
  ASSERT_TRUE((*engine)->Close().ok());
}

TEST_F(RecoveryChecksTest, ADamagedPageIsNamedWithItsDatabase) {
  const std::string path = JoinPath(dir_.path(), "db0.edb");
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes.ok());
  auto header = ReadDbHeaderFromPath(path);
  ASSERT_TRUE(header.ok());
  const size_t page = header->header.page_size;
  // Page 3, in the middle: its checksum no longer matches.
  (*bytes)[3 * page + page / 2] ^= 0x5A;
  ASSERT_TRUE(WriteFileAtomically(path, *bytes, 0600).ok());
  const std::vector<v1::DatabaseCheck> checked = CheckRecoveredFiles(Files());
  ASSERT_EQ(checked.size(), 2u);
  ASSERT_FALSE(checked[0].problems().empty());
  EXPECT_THAT(checked[0].problems(0), HasSubstr("database db0"));
  EXPECT_THAT(checked[0].problems(0), HasSubstr("page 3"));
  EXPECT_TRUE(checked[1].problems().empty()) << checked[1].DebugString();
}

TEST_F(RecoveryChecksTest, ADatabaseLeftInconsistentIsAProblemAndAMissingOneToo) {
  // A copy taken while the database is open carries its DirtyShutdown state.
  auto engine = Engine::Open(config_, TestEngineOptions());
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::string dirty = JoinPath(dir_.path(), "dirty.edb");
  std::filesystem::copy_file(JoinPath(dir_.path(), "db0.edb"), dirty);
  ASSERT_TRUE((*engine)->Close().ok());
  const std::vector<v1::DatabaseCheck> checked =
      CheckRecoveredFiles({{"db0", dirty}, {"db9", JoinPath(dir_.path(), "db9.edb")}});
  ASSERT_EQ(checked.size(), 2u);
  ASSERT_FALSE(checked[0].problems().empty());
  EXPECT_THAT(checked[0].problems(0), HasSubstr("DirtyShutdown"));
  ASSERT_FALSE(checked[1].problems().empty());
  EXPECT_THAT(checked[1].problems(0), HasSubstr("database db9"));
}

}  // namespace
}  // namespace dagvault::mailstore
