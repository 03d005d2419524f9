#include "coordinator/catalog/rebuild.h"

#include "coordinator/catalog/sqlite_catalog.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/backup.h"
#include "repository/repository_test_util.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RebuildTest : public repository::testing::RepositoryTest {
 protected:
  RebuildTest() : RepositoryTest("rebuild") {}

  // A one-file backup of `unit`; returns its manifest id.
  std::string BackUp(const std::string& unit, const std::string& content) {
    const std::string path = dir_.Sub("src/" + unit + ".edb");
    repository::testing::WriteFile(path, content);
    v1::Manifest header = repository::testing::Header(unit);
    (*header.mutable_labels())["job"] = "job-" + unit;
    auto m = repository::Backup(*repo_, {{path, unit + ".edb", "database", unit, 0}}, header, {});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? m->id() : "";
  }
};

TEST_P(RebuildTest, TheBackupRecordsBecomeExactlyTheRepositorysManifests) {
  const std::string a = BackUp("DB02", std::string(10000, 'a'));
  const std::string b = BackUp("SG01", std::string(10000, 'b'));
  auto catalog = SqliteCatalog::Open(dir_.Sub("catalog.db"));
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  // A record with no manifest behind it (its backup was pruned) goes.
  BackupRecord stale;
  stale.manifest = "19991231T000000Z-dead";
  stale.unit = "DB02";
  ASSERT_TRUE((*catalog)->PutBackup(stale).ok());

  auto rebuilt = RebuildBackupsFromRepository(*repo_, **catalog);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(*rebuilt, 2u);
  auto backups = (*catalog)->Backups("");
  ASSERT_TRUE(backups.ok());
  std::vector<std::string> ids;
  for (const auto& r : *backups) ids.push_back(r.manifest);
  EXPECT_THAT(ids, ElementsAre(a, b));
  EXPECT_EQ((*backups)[0].unit, "DB02");
  EXPECT_EQ((*backups)[0].job, "job-DB02");
  EXPECT_EQ((*backups)[0].logical_bytes, 10000u);
}

TEST_P(RebuildTest, AnUnreadableManifestChangesNothingAndIsNamed) {
  const std::string a = BackUp("DB02", std::string(10000, 'a'));
  auto catalog = SqliteCatalog::Open(dir_.Sub("catalog.db"));
  ASSERT_TRUE(catalog.ok());
  ASSERT_TRUE(RebuildBackupsFromRepository(*repo_, **catalog).ok());
  const std::string b = BackUp("SG01", std::string(10000, 'b'));
  ASSERT_TRUE(
      repo_->store().Replace(repository::Repository::ManifestKey(b), "not a sealed manifest").ok());

  auto rebuilt = RebuildBackupsFromRepository(*repo_, **catalog);
  ASSERT_FALSE(rebuilt.ok());
  EXPECT_THAT(
      std::string(rebuilt.status().message()),
      HasSubstr("catalog rebuild: manifest " + b + " cannot be read, so nothing was changed"));
  auto backups = (*catalog)->Backups("");
  ASSERT_TRUE(backups.ok());
  ASSERT_EQ(backups->size(), 1u);
  EXPECT_EQ((*backups)[0].manifest, a);
}

// The catalog is rebuilt the same from a folder and from an S3 bucket.
INSTANTIATE_TEST_SUITE_P(Backends, RebuildTest, repository::testing::Backends(),
                         repository::testing::BackendName);

}  // namespace
}  // namespace dagvault::coordinator
