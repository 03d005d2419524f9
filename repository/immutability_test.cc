// Immutable backups (docs/repository.md, "Immutable backups"): a repository
// with Object Lock in an S3 bucket that has it enabled (the test run's
// radosgw, $DAGVAULT_TEST_S3_LOCKED). An attacker holding the node's own
// S3 credentials tries to delete and to overwrite the packs and manifests a
// backup wrote; no attempt destroys a byte, a restore still gives the
// backed-up bytes, and prune keeps what is under retention and says so.
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/index.h"
#include "repository/pack.h"
#include "repository/prune.h"
#include "repository/repository_test_util.h"
#include "repository/s3_object_store.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;
using namespace testing;  // NOLINT: the shared test helpers

// A prefix of its own in the locked bucket; "" when the run has none.
std::string LockedLocation() {
  auto store = MakeTestStore(Backend::kS3Locked, "immutable");
  return store.ok() ? store->location : "";
}

TEST(Immutability, AnAttackerWithTheNodesCredentialsCannotDestroyALockedBackup) {
  const std::string location = LockedLocation();
  if (location.empty()) {
    GTEST_SKIP() << "no S3 bucket with Object Lock: $DAGVAULT_TEST_S3_LOCKED is not set";
  }
  auto s3 = S3ObjectStore::Open(location);
  ASSERT_TRUE(s3.ok()) << s3.status();
  ASSERT_TRUE((*s3)->versioned()) << "Object Lock needs a versioned bucket";
  std::shared_ptr<const ObjectStore> store = std::move(*s3);
  const auto* raw = static_cast<const S3ObjectStore*>(store.get());

  InitOptions init = FastInit();
  init.object_lock_days = 1;
  auto repo = Repository::Init(store, TestPassphrase(), init);
  ASSERT_TRUE(repo.ok()) << repo.status();
  ::dagvault::testing::TempDir dir("immutable");
  const std::string data = MakeEdbLike(512, 7);
  WriteFile(dir.Sub("db.edb"), data);
  // A unit whose retention asks for two days: longer than the
  // repository's one, so the backup's date is two days out.
  BackupOptions two_days;
  two_days.retain_at_least = absl::Hours(48);
  auto m =
      Backup(*repo, {{dir.Sub("db.edb"), "db.edb", "database", "", 0}}, Header("DB01"), two_days);
  ASSERT_TRUE(m.ok()) << m.status();

  // What the backup wrote carries its date; the config and the key slot
  // that open it were locked at init for a day and are now kept as long.
  auto packs = ListPackFiles(*store);
  ASSERT_TRUE(packs.ok() && !packs->empty());
  auto slots = repo->ListKeys();
  ASSERT_TRUE(slots.ok() && slots->size() == 1);
  const std::string manifest_key = Repository::ManifestKey(m->id());
  std::vector<std::string> targets = {manifest_key, IndexFileKey(m->session()), "config",
                                      absl::StrCat("keys/", (*slots)[0].slot(), ".key")};
  for (const auto& [id, object] : *packs) targets.push_back(object.key);
  for (const auto& key : targets) {
    auto head = store->Head(key);
    ASSERT_TRUE(head.ok()) << head.status();
    ASSERT_TRUE(head->retain_until.has_value()) << key;
    EXPECT_GT(*head->retain_until, absl::Now() + absl::Hours(47)) << key;
  }

  // The attacker, with the same credentials, at the HTTP level.
  const S3Client& attacker = raw->client();
  const std::string prefix = attacker.location().prefix;
  for (const auto& key : targets) {
    const std::string full = absl::StrCat(prefix, "/", key);
    // The version itself: refused.
    S3Request list;
    list.query = {{"versions", ""}, {"prefix", full}};
    auto versions = attacker.Send(list, "attacker");
    ASSERT_TRUE(versions.ok());
    const std::string version = XmlElement(versions->body, "VersionId").value_or("");
    ASSERT_FALSE(version.empty());
    S3Request destroy;
    destroy.method = "DELETE";
    destroy.key = full;
    destroy.query = {{"versionId", version}};
    auto destroyed = attacker.Send(destroy, "attacker");
    ASSERT_TRUE(destroyed.ok());
    EXPECT_EQ(destroyed->status, 403) << key << ": " << DescribeS3Error(*destroyed);
    // Overwritten with garbage, then hidden behind a delete marker: both
    // land as new versions on top, and the locked one stays.
    S3Request overwrite;
    overwrite.method = "PUT";
    overwrite.key = full;
    overwrite.body = "garbage";
    auto overwritten = attacker.Send(overwrite, "attacker");
    ASSERT_TRUE(overwritten.ok());
    S3Request hide;
    hide.method = "DELETE";
    hide.key = full;
    auto hidden = attacker.Send(hide, "attacker");
    ASSERT_TRUE(hidden.ok());
  }
  // dagvault's own delete refuses too, and says until when.
  const absl::Status refused = store->Delete(manifest_key);
  ASSERT_TRUE(RetainedUntil(refused).has_value()) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("under retention (Object Lock) until"));

  // A fresh reader (no cached versions) restores the backed-up bytes and
  // checks every chunk.
  auto reopened = Repository::Open(location, TestPassphrase());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto restored = Restore(*reopened, m->id(), dir.Sub("restored"));
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(ReadFile(dir.Sub("restored/db.edb")), data);
  CheckOptions read_data;
  read_data.read_data = true;
  auto check = Check(*reopened, read_data);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->clean()) << check->errors.front();
  EXPECT_EQ(check->manifests, 1u);

  // Prune removing the backup keeps it whole, and says until when.
  PruneOptions prune;
  prune.keep_manifests = {};
  prune.pack_grace = absl::ZeroDuration();
  auto pruned = Prune(*reopened, prune);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->manifests_removed, 0u);
  EXPECT_EQ(pruned->packs_removed, 0u);
  EXPECT_THAT(pruned->manifests_retained, ::testing::ElementsAre(m->id()));
  EXPECT_GT(pruned->retained_until, absl::Now() + absl::Hours(47));
  auto again = Restore(*reopened, m->id(), dir.Sub("after-prune"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ReadFile(dir.Sub("after-prune/db.edb")), data);
}

// Deduplication does not shorten immutability: a backup that reuses the
// chunks of an older backup's packs (unchanged .edb blocks through its base
// manifest, and a log file found in the index) keeps those packs, and the
// index file that finds them, as long as itself.
TEST(Immutability, ABackupKeepsTheOlderPacksItReusesAsLongAsItself) {
  const std::string location = LockedLocation();
  if (location.empty()) {
    GTEST_SKIP() << "no S3 bucket with Object Lock: $DAGVAULT_TEST_S3_LOCKED is not set";
  }
  auto s3 = S3ObjectStore::Open(location);
  ASSERT_TRUE(s3.ok()) << s3.status();
  std::shared_ptr<const ObjectStore> store = std::move(*s3);
  InitOptions init = FastInit();
  init.object_lock_days = 1;
  auto repo = Repository::Init(store, TestPassphrase(), init);
  ASSERT_TRUE(repo.ok()) << repo.status();
  ::dagvault::testing::TempDir dir("dedup-lock");
  WriteFile(dir.Sub("db.edb"), MakeEdbLike(512, 11));
  WriteFile(dir.Sub("E00.log"), MakeEdbLike(64, 12));
  const std::vector<BackupFile> files = {{dir.Sub("db.edb"), "db.edb", "database", "", 0},
                                         {dir.Sub("E00.log"), "E00.log", "log", "", 1}};
  auto first = Backup(*repo, files, Header("DB01"));  // the repository's one day
  ASSERT_TRUE(first.ok()) << first.status();
  auto first_packs = ListPackFiles(*store);
  ASSERT_TRUE(first_packs.ok() && !first_packs->empty());
  for (const auto& [id, object] : *first_packs) {
    auto head = store->Head(object.key);
    ASSERT_TRUE(head.ok() && head->retain_until) << object.key;
    EXPECT_LT(*head->retain_until, absl::Now() + absl::Hours(25)) << object.key;
  }

  // The same data again, for a unit whose retention asks for three days:
  // nothing new is stored, everything is reused.
  BackupOptions three_days;
  three_days.retain_at_least = absl::Hours(72);
  auto second = Backup(*repo, files, Header("DB01"), three_days);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->new_bytes(), 0u);
  auto packs = ListPackFiles(*store);
  ASSERT_TRUE(packs.ok());
  EXPECT_EQ(packs->size(), first_packs->size()) << "the second backup wrote packs";
  std::vector<std::string> needed = {IndexFileKey(first->session()),
                                     Repository::ManifestKey(second->id())};
  for (const auto& [id, object] : *packs) needed.push_back(object.key);
  for (const auto& key : needed) {
    auto head = store->Head(key);
    ASSERT_TRUE(head.ok()) << head.status();
    ASSERT_TRUE(head->retain_until.has_value()) << key;
    EXPECT_GT(*head->retain_until, absl::Now() + absl::Hours(71)) << key;
  }
  // Only ever later: a backup with a shorter date leaves them as they are.
  auto third = Backup(*repo, files, Header("DB01"));
  ASSERT_TRUE(third.ok()) << third.status();
  for (const auto& [id, object] : *packs) {
    auto head = store->Head(object.key);
    ASSERT_TRUE(head.ok() && head->retain_until) << object.key;
    EXPECT_GT(*head->retain_until, absl::Now() + absl::Hours(71)) << object.key;
  }
}

// A folder cannot lock anything: asking for Object Lock there is refused,
// not pretended.
TEST(Immutability, AFolderRepositoryRefusesObjectLock) {
  ::dagvault::testing::TempDir dir("no-lock");
  InitOptions init = FastInit();
  init.object_lock_days = 30;
  auto repo = Repository::Init(dir.Sub("repo"), TestPassphrase(), init);
  ASSERT_FALSE(repo.ok());
  EXPECT_THAT(std::string(repo.status().message()),
              HasSubstr("cannot lock objects against deletion"));
}

}  // namespace
}  // namespace dagvault::repository
