// Restore's refusals: each names what is wrong, and none leaves a file
// with wrong bytes (or a partial file) behind.
#include "repository/restore.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "absl/base/internal/endian.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/fault_injection.h"
#include "common/testing/page_cache.h"
#include "common/testing/small_tmpfs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/block_map.h"
#include "repository/repository_test_util.h"

namespace dagvault::repository {
namespace {

using namespace testing;  // NOLINT: the shared test helpers
using ::testing::HasSubstr;

class RestoreTest : public RepositoryTest {
 protected:
  RestoreTest() : RepositoryTest("restore") {}

  // One database file of `pages` pages, backed up.
  dagvault::v1::Manifest BackUpDatabase(uint64_t pages) {
    data_ = MakeEdbLike(pages, 11);
    WriteFile(dir_.Sub("src/db.edb"), data_);
    auto m =
        Backup(*repo_, {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0}}, Header("DB01"), {});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : dagvault::v1::Manifest();
  }

  // The manifest rewritten under a new id after `edit`: what a bug, or
  // someone holding the key, could write.
  std::string Rewrite(dagvault::v1::Manifest m,
                      const std::function<void(dagvault::v1::Manifest*)>& edit) {
    auto id = Repository::NewSessionId();
    EXPECT_TRUE(id.ok());
    m.set_id(*id);
    edit(&m);
    EXPECT_TRUE(repo_->WriteManifest(m).ok());
    return *id;
  }

  // The names in a folder (none if it does not exist).
  std::vector<std::string> Names(const std::string& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }

  std::string data_;
};

TEST_P(RestoreTest, AFileNameThatWouldEscapeTheTargetIsRefusedAndNothingIsWritten) {
  const dagvault::v1::Manifest m = BackUpDatabase(4);
  for (const std::string name : {"../escaped.edb", "/tmp/absolute.edb", "a/../../b.edb", ""}) {
    SCOPED_TRACE(name);
    const std::string id = Rewrite(m, [&](auto* w) { w->mutable_files(0)->set_name(name); });
    const std::string target = dir_.Sub("target");
    auto r = Restore(*repo_, id, target);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr(absl::StrCat("manifest ", id, ": file name \"", name,
                                       "\" would escape the target folder")));
    EXPECT_THAT(Names(target), ::testing::IsEmpty());
  }
  EXPECT_FALSE(PathExists(dir_.Sub("escaped.edb")));
  EXPECT_FALSE(PathExists("/tmp/absolute.edb"));
}

TEST_P(RestoreTest, AnExistingFileIsKeptUnlessOverwriteIsAsked) {
  const dagvault::v1::Manifest m = BackUpDatabase(4);
  const std::string target = dir_.Sub("target");
  ASSERT_TRUE(CreateDirectories(target).ok());
  WriteFile(target + "/db.edb", "precious");
  auto refused = Restore(*repo_, m.id(), target);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr(absl::StrCat(target,
                                     "/db.edb exists; restore into an empty folder, or "
                                     "ask to overwrite")));
  EXPECT_EQ(ReadFile(target + "/db.edb"), "precious");

  RestoreOptions overwrite;
  overwrite.overwrite = true;
  auto r = Restore(*repo_, m.id(), target, overwrite);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(target + "/db.edb"), data_);
  EXPECT_THAT(Names(target), ::testing::ElementsAre("db.edb"));
}

TEST_P(RestoreTest, ASymlinkPlantedAtThePartialOrTheFinalNameIsReplacedNotFollowed) {
  const dagvault::v1::Manifest m = BackUpDatabase(4);
  const std::string target = dir_.Sub("target");
  const std::string victim = dir_.Sub("victim");
  ASSERT_TRUE(CreateDirectories(target).ok());
  WriteFile(victim, "precious");
  const std::string final_path = target + "/db.edb";
  ASSERT_EQ(::symlink(victim.c_str(), (final_path + ".dagvault-partial").c_str()), 0);
  auto r = Restore(*repo_, m.id(), target);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(victim), "precious");
  struct stat st {};
  ASSERT_EQ(::lstat(final_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ReadFile(final_path), data_);
  EXPECT_THAT(Names(target), ::testing::ElementsAre("db.edb"));

  // At the final name, restoring over what is there: the link is replaced.
  ASSERT_TRUE(RemoveDurably(final_path).ok());
  ASSERT_EQ(::symlink(victim.c_str(), final_path.c_str()), 0);
  RestoreOptions overwrite;
  overwrite.overwrite = true;
  r = Restore(*repo_, m.id(), target, overwrite);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(victim), "precious");
  ASSERT_EQ(::lstat(final_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ReadFile(final_path), data_);
}

TEST_P(RestoreTest, AMapThatNeedsMoreOfAChunkThanItHoldsFailsAndLeavesNoFile) {
  // Three blocks, all in one chunk of three. Block 0 is made to point at
  // slot 7 of it: a valid slot number, but past the chunk's end.
  const dagvault::v1::Manifest m = BackUpDatabase(3);
  ASSERT_TRUE(m.files(0).has_block_map());
  const std::string id = Rewrite(m, [](auto* w) {
    std::string* blocks = w->mutable_files(0)->mutable_block_map()->mutable_blocks();
    absl::little_endian::Store32(blocks->data() + 8, BlockRecord::Ref(0, 7));
  });
  const std::string target = dir_.Sub("target");
  auto r = Restore(*repo_, id, target);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("restore of manifest ", id, " file db.edb: chunk ")));
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("has ", 3 * kPage, " bytes; the map needs ", 8 * kPage)));
  EXPECT_THAT(Names(target), ::testing::IsEmpty());
}

TEST_P(RestoreTest, BytesThatDoNotHaveTheManifestsTreeDigestAreNotPutInPlace) {
  const dagvault::v1::Manifest m = BackUpDatabase(4);
  const std::string id =
      Rewrite(m, [](auto* w) { w->mutable_files(0)->set_tree_sha256(std::string(32, '\0')); });
  const std::string target = dir_.Sub("target");
  auto r = Restore(*repo_, id, target);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("file db.edb: the restored bytes have the tree digest ",
                                     absl::BytesToHexString(m.files(0).tree_sha256()),
                                     ", not the backed-up ", std::string(64, '0'),
                                     "; the file was not put in place")));
  EXPECT_THAT(Names(target), ::testing::IsEmpty());
}

// A format 1 manifest (written before tree digests) proves its files by
// their plain SHA-256: it still restores, and still refuses wrong bytes.
TEST_P(RestoreTest, AFormatOneManifestIsProvedByItsPlainSha256) {
  const dagvault::v1::Manifest m = BackUpDatabase(4);
  auto format_one = [&](const std::string& sha256) {
    return Rewrite(m, [&](auto* w) {
      w->set_format_version(1);
      w->mutable_files(0)->clear_tree_sha256();
      w->mutable_files(0)->set_sha256(sha256);
    });
  };
  const Sha256Digest d = Sha256::Of(data_);
  const std::string good = format_one(std::string(d.begin(), d.end()));
  auto r = Restore(*repo_, good, dir_.Sub("good"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(dir_.Sub("good/db.edb")), data_);

  const std::string bad = format_one(std::string(32, '\0'));
  r = Restore(*repo_, bad, dir_.Sub("bad"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("file db.edb: the restored bytes hash to ", Sha256Hex(data_),
                                     ", not the backed-up ", std::string(64, '0'),
                                     "; the file was not put in place")));
  EXPECT_THAT(Names(dir_.Sub("bad")), ::testing::IsEmpty());

  // Neither digest: refused before anything is written.
  const std::string none = Rewrite(m, [](auto* w) {
    w->mutable_files(0)->clear_tree_sha256();
    w->mutable_files(0)->clear_sha256();
  });
  r = Restore(*repo_, none, dir_.Sub("none"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("manifest ", none,
                                     " file db.edb: it records neither a tree "
                                     "digest nor a 32-byte SHA-256")));
  EXPECT_THAT(Names(dir_.Sub("none")), ::testing::IsEmpty());
}

// A restore allocates the blocks it will write before writing any: a
// target without room fails at that step, naming the manifest, the file
// and how much it needed, and leaves nothing behind.
TEST_P(RestoreTest, ATargetWithoutRoomFailsWhenAllocatingAndLeavesNoFile) {
  BackUpDatabase(256);  // 2 MiB
  ::dagvault::testing::SmallTmpfs small(dir_.Sub("small"), 1 << 20);
  if (!small.ok()) GTEST_SKIP() << small.error();
  auto manifests = repo_->ListManifests();
  ASSERT_TRUE(manifests.ok() && manifests->size() == 1);
  auto r = Restore(*repo_, manifests->front(), small.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_THAT(
      std::string(r.status().message()),
      HasSubstr(absl::StrCat("restore of manifest ", manifests->front(), " file db.edb: allocate ",
                             256 * kPage, " bytes at offset 0 of ", small.path(),
                             "/db.edb.dagvault-partial: No space left")));
  EXPECT_THAT(Names(small.path()), ::testing::IsEmpty());
}

TEST_P(RestoreTest, AFileTheManifestDoesNotHoldIsNamed) {
  const dagvault::v1::Manifest m = BackUpDatabase(2);
  RestoreOptions options;
  options.files = {"db.edb", "nope.edb"};
  auto r = Restore(*repo_, m.id(), dir_.Sub("target"), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr(absl::StrCat("manifest ", m.id(), " has no file named nope.edb")));
}

TEST_P(RestoreTest, TargetsPutEachFileAtItsOwnPathAndCancellingLeavesNoFile) {
  const dagvault::v1::Manifest m = BackUpDatabase(4096);  // 32 MiB
  RestoreOptions options;
  options.targets = {{"db.edb", dir_.Sub("elsewhere/deeper/renamed.edb")}};
  TransferControl control;
  options.control = &control;
  auto r = Restore(*repo_, m.id(), "", options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadFile(dir_.Sub("elsewhere/deeper/renamed.edb")), data_);
  EXPECT_EQ(control.bytes_done.load(), data_.size());

  options.targets = {{"db.edb", dir_.Sub("cancelled/db.edb")}};
  control.cancel = true;
  r = Restore(*repo_, m.id(), "", options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(Names(dir_.Sub("cancelled")).empty());

  options.targets = {{"other.edb", dir_.Sub("x/other.edb")}};
  control.cancel = false;
  r = Restore(*repo_, m.id(), "", options);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("has no file named other.edb"));
}

// A restore leaves the page cache to the mail server: a database's pages
// are not left in it (it is written around the cache and proved by reading
// the disk), while a log, which replay reads next, is.
TEST_P(RestoreTest, ARestoredDatabaseLeavesThePageCacheAndALogStaysInIt) {
  if (!::dagvault::testing::DirectIoWorksIn(dir_.path())) {
    GTEST_SKIP() << dir_.path() << " takes no direct I/O: nothing to show";
  }
  const std::string edb = MakeEdbLike(2048, 5);  // 16 MiB
  const std::string log = MakeEdbLike(128, 6);   // 1 MiB
  WriteFile(dir_.Sub("src/db.edb"), edb);
  WriteFile(dir_.Sub("src/E0100000001.log"), log);
  auto m = Backup(*repo_,
                  {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0},
                   {dir_.Sub("src/E0100000001.log"), "E0100000001.log", "log", "", 1}},
                  Header("DB01"), {});
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string target = dir_.Sub("target");
  auto r = Restore(*repo_, m->id(), target);
  ASSERT_TRUE(r.ok()) << r.status();
  const size_t log_pages = log.size() / 4096;
  // Of the database's 4096 pages, none stays (a few may: the tail is
  // written through the cache).
  EXPECT_LT(::dagvault::testing::ResidentPages(target + "/db.edb"), 16u);
  EXPECT_EQ(::dagvault::testing::ResidentPages(target + "/E0100000001.log"), log_pages);
  EXPECT_EQ(ReadFile(target + "/db.edb"), edb);
  EXPECT_EQ(ReadFile(target + "/E0100000001.log"), log);
}

// Where the blocks cannot be allocated ahead (a filesystem without
// fallocate, here a fail point), a restore still writes every block and
// proves it; only long runs go direct, and the short ones an incremental
// chain scatters leave the cache once proved.
TEST_P(RestoreTest, WithoutAllocatingAheadAChainStillRestoresAndLeavesTheCache) {
  std::string edb = MakeEdbLike(2048, 5);  // 16 MiB
  WriteFile(dir_.Sub("src/db.edb"), edb);
  const std::vector<BackupFile> files = {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0}};
  ASSERT_TRUE(Backup(*repo_, files, Header("DB01"), {}).ok());
  ChangePages(&edb, 0.02, /*runs=*/false, 7);
  WriteFile(dir_.Sub("src/db.edb"), edb);
  BackupOptions options;
  options.base_manifest = "auto";
  auto m = Backup(*repo_, files, Header("DB01"), options);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(ConfigureFailPoint("restore.allocate").ok());
  auto r = Restore(*repo_, m->id(), dir_.Sub("target"));
  ASSERT_TRUE(ConfigureFailPoint("").ok());
  ASSERT_TRUE(r.ok()) << r.status();
  if (::dagvault::testing::DirectIoWorksIn(dir_.path())) {
    EXPECT_LT(::dagvault::testing::ResidentPages(dir_.Sub("target/db.edb")), 16u);
  }
  EXPECT_EQ(ReadFile(dir_.Sub("target/db.edb")), edb);  // (reads it into the cache)
}

// A chain's newer pages split its base chunks' runs. Each base chunk is
// written whole instead, and the newer pages over it afterwards: a
// second Incremental's pages land over the first's and over the Full's,
// and what is restored is the newest of each. Two files with the same
// bytes share every chunk, each placed in its own file. (Should the late
// pass run first, the Full's stale pages win and the proof refuses the
// file; a chain whose bytes do not prove, or a cancelled restore, leaves
// no file behind.)
TEST_P(RestoreTest, AChainWritesItsBaseChunksWholeAndTheNewerPagesWin) {
  std::string edb = MakeEdbLike(2048, 21);  // 16 MiB
  const std::vector<BackupFile> files = {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0},
                                         {dir_.Sub("src/twin.edb"), "twin.edb", "database", "", 0}};
  auto write_both = [&] {
    WriteFile(dir_.Sub("src/db.edb"), edb);
    WriteFile(dir_.Sub("src/twin.edb"), edb);
  };
  write_both();
  auto full = Backup(*repo_, files, Header("DB01"), {});
  ASSERT_TRUE(full.ok()) << full.status();
  auto first = Restore(*repo_, full->id(), dir_.Sub("full"));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->span_writes, 0u);  // nothing to write over
  BackupOptions options;
  options.base_manifest = "auto";
  ChangePages(&edb, 0.02, /*runs=*/false, 22);
  write_both();
  ASSERT_TRUE(Backup(*repo_, files, Header("DB01"), options).ok());
  ChangePages(&edb, 0.05, /*runs=*/true, 23);
  ChangePages(&edb, 0.02, /*runs=*/false, 24);
  write_both();
  auto m = Backup(*repo_, files, Header("DB01"), options);
  ASSERT_TRUE(m.ok()) << m.status();
  RestoreOptions restore_options;
  TransferControl control;
  restore_options.control = &control;
  auto r = Restore(*repo_, m->id(), dir_.Sub("target"), restore_options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->span_writes, 0u);
  EXPECT_EQ(ReadFile(dir_.Sub("target/db.edb")), edb);
  EXPECT_EQ(ReadFile(dir_.Sub("target/twin.edb")), edb);
  // Progress counts each byte placed once, not a span's stale bytes.
  EXPECT_EQ(control.bytes_done.load(), 2 * edb.size());

  const std::string wrong =
      Rewrite(*m, [](auto* w) { w->mutable_files(1)->set_tree_sha256(std::string(32, '\0')); });
  auto refused = Restore(*repo_, wrong, dir_.Sub("wrong"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("file twin.edb: the restored"));
  EXPECT_THAT(Names(dir_.Sub("wrong")), ::testing::IsEmpty());

  control.cancel = true;
  auto cancelled = Restore(*repo_, m->id(), dir_.Sub("cancelled"), restore_options);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(Names(dir_.Sub("cancelled")), ::testing::IsEmpty());
}

// A page that became all zeros is a hole in the restored file, never
// covered by the stale bytes of the chunk around it: that chunk is
// written as it is placed.
TEST_P(RestoreTest, AChunkIsNotWrittenWholeOverAPageThatBecameZeros) {
  std::string edb = MakeEdbLike(256, 31);  // 2 MiB
  const std::vector<BackupFile> files = {{dir_.Sub("src/db.edb"), "db.edb", "database", "", 0}};
  WriteFile(dir_.Sub("src/db.edb"), edb);
  ASSERT_TRUE(Backup(*repo_, files, Header("DB01"), {}).ok());
  for (const uint64_t page : {3, 100, 101, 200}) {
    std::fill_n(edb.begin() + static_cast<int64_t>(page * kPage), kPage, '\0');
  }
  WriteFile(dir_.Sub("src/db.edb"), edb);
  BackupOptions options;
  options.base_manifest = "auto";
  auto m = Backup(*repo_, files, Header("DB01"), options);
  ASSERT_TRUE(m.ok()) << m.status();
  auto r = Restore(*repo_, m->id(), dir_.Sub("target"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->span_writes, 0u);
  EXPECT_EQ(ReadFile(dir_.Sub("target/db.edb")), edb);
}

TEST_P(RestoreTest, OnlyTheNamedFilesAreRestored) {
  WriteFile(dir_.Sub("src/a.log"), "first");
  WriteFile(dir_.Sub("src/b.log"), "second");
  WriteFile(dir_.Sub("src/c.log"), "third");
  auto m = Backup(*repo_,
                  {{dir_.Sub("src/a.log"), "a.log", "log", "", 1},
                   {dir_.Sub("src/b.log"), "b.log", "log", "", 2},
                   {dir_.Sub("src/c.log"), "c.log", "log", "", 3}},
                  Header("DB01"), {});
  ASSERT_TRUE(m.ok()) << m.status();
  RestoreOptions options;
  options.files = {"a.log"};
  ASSERT_TRUE(Restore(*repo_, m->id(), dir_.Sub("subset"), options).ok());
  EXPECT_EQ(Names(dir_.Sub("subset")), std::vector<std::string>{"a.log"});
  options.files.clear();
  options.targets = {{"b.log", dir_.Sub("targets/b.log")}};
  ASSERT_TRUE(Restore(*repo_, m->id(), "", options).ok());
  EXPECT_EQ(Names(dir_.Sub("targets")), std::vector<std::string>{"b.log"});
}

INSTANTIATE_TEST_SUITE_P(Backends, RestoreTest, Backends(), BackendName);

}  // namespace
}  // namespace dagvault::repository
