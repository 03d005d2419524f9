#include "repository/backup.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/evp.h"
#include "common/fault_injection.h"
#include "common/testing/page_cache.h"
#include "common/uncached_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/block_map.h"
#include "repository/check.h"
#include "repository/repository_test_util.h"
#include "repository/restore.h"

namespace dagvault::repository {
namespace {

using namespace testing;  // NOLINT: the shared test helpers
using ::testing::HasSubstr;

class BackupTest : public RepositoryTest {
 protected:
  BackupTest() : RepositoryTest("backup") {}

  dagvault::v1::Manifest BackUp(const std::vector<BackupFile>& files,
                                const BackupOptions& options = {}) {
    auto m = Backup(*repo_, files, Header("DB01"), options);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *m : dagvault::v1::Manifest();
  }

  BackupFile Put(const std::string& name, absl::string_view data,
                 const std::string& role = "database") {
    WriteFile(dir_.Sub("src/" + name), data);
    return BackupFile{dir_.Sub("src/" + name), name, role, "", 0};
  }

  // Restores a manifest into a fresh folder and returns that folder.
  std::string RestoreAll(const dagvault::v1::Manifest& m, RestoreResult* result = nullptr) {
    const std::string target = dir_.Sub(absl::StrCat("restore-", ++restores_));
    auto r = Restore(*repo_, m.id(), target);
    EXPECT_TRUE(r.ok()) << r.status();
    if (result != nullptr && r.ok()) *result = *r;
    return target;
  }

  int restores_ = 0;
};

TEST_P(BackupTest, EverySizeEdgeRoundTripsByteExact) {
  std::mt19937_64 rng(7);
  auto random_bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  const uint32_t fixed = 4 << 20;
  const uint32_t block_chunk = BlocksPerChunk(kPage) * kPage;
  std::vector<BackupFile> files;
  std::map<std::string, std::string> expected;
  for (const auto& [role, sizes] : std::vector<std::pair<std::string, std::vector<size_t>>>{
           {"log", {0, 1, fixed - 1, fixed, fixed + 1, 2 * fixed + 5}},
           {"database", {0, 1, kPage - 1, kPage, kPage + 1, block_chunk, block_chunk + 1}}}) {
    for (size_t size : sizes) {
      const std::string name = absl::StrCat(role, "-", size);
      expected[name] = random_bytes(size);
      files.push_back(Put(name, expected[name], role));
    }
  }
  // Zero blocks (not stored) between and after data, the last one short.
  std::string holes =
      std::string(2 * kPage, '\0') + random_bytes(kPage) + std::string(kPage + 9, '\0');
  expected["database-holes"] = holes;
  files.push_back(Put("database-holes", holes, "database"));
  const auto m = BackUp(files);
  ASSERT_EQ(m.files_size(), static_cast<int>(files.size()));
  EXPECT_EQ(m.format_version(), 2u);
  for (const auto& f : m.files()) {
    EXPECT_EQ(f.has_block_map(), f.role() == "database") << f.name();
    // Every file has its tree digest, worked out here the long way; only
    // logs have a plain SHA-256 too (their link hashes need it).
    const std::string& data = expected[f.name()];
    Sha256 tree;
    tree.Update("dagvault file tree v1", 22);
    for (size_t at = 0; at < data.size(); at += kLeafSize) {
      const Sha256Digest leaf = Sha256::Of(absl::string_view(data).substr(at, kLeafSize));
      tree.Update(leaf.data(), leaf.size());
    }
    const Sha256Digest want = tree.Finish();
    EXPECT_EQ(absl::BytesToHexString(f.tree_sha256()),
              absl::BytesToHexString(std::string(want.begin(), want.end())))
        << f.name();
    EXPECT_EQ(absl::BytesToHexString(f.sha256()), f.role() == "log" ? Sha256Hex(data) : "")
        << f.name();
  }
  const std::string target = RestoreAll(m);
  for (const auto& [name, data] : expected) {
    EXPECT_EQ(Sha256Hex(ReadFile(target + "/" + name)), Sha256Hex(data)) << name;
  }
}

TEST_P(BackupTest, ASparseFileOverFourGibRoundTripsAndStaysSparse) {
  const uint64_t size = (4ull << 30) + 3 * kPage + 17;
  const std::string path = dir_.Sub("src/big.edb");
  {
    auto f = File::Open(path, O_CREAT | O_WRONLY, 0644);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->Truncate(size).ok());
    std::mt19937_64 rng(3);
    std::string page(kPage, '\0');
    for (uint64_t off : std::vector<uint64_t>{0, uint64_t{1} << 31, (4ull << 30) + kPage}) {
      FillPage(rng, page.data());
      ASSERT_TRUE(f->WriteAt(off, page.data(), page.size()).ok());
    }
    ASSERT_TRUE(f->WriteAt(size - 5, "tail!", 5).ok());
  }
  const auto m = BackUp({{path, "big.edb", "database", "", 0}});
  ASSERT_EQ(m.files_size(), 1);
  EXPECT_LT(m.new_bytes(), 1u << 20);  // four data blocks; the zeros are not stored
  EXPECT_EQ(m.files(0).block_map().block_size(), kPage);
  const std::string target = RestoreAll(m);
  // Byte-exact (the restore proved its SHA-256; compare anyway), and the
  // zeros are holes again.
  auto a = File::OpenReadOnly(path);
  auto b = File::OpenReadOnly(target + "/big.edb");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(*b->Size(), size);
  std::string x(8 << 20, '\0'), y(8 << 20, '\0');
  for (uint64_t off = 0; off < size; off += x.size()) {
    const size_t n = std::min<uint64_t>(x.size(), size - off);
    // Holes on both sides are equal without reading them.
    if (a->IsHole(off, n) && b->IsHole(off, n)) continue;
    ASSERT_TRUE(a->ReadAt(off, x.data(), n).ok());
    ASSERT_TRUE(b->ReadAt(off, y.data(), n).ok());
    ASSERT_EQ(0, std::memcmp(x.data(), y.data(), n)) << "at offset " << off;
  }
  struct stat st;
  ASSERT_EQ(0, ::stat((target + "/big.edb").c_str(), &st));
  EXPECT_LT(st.st_blocks * 512, 16 << 20);
}

TEST_P(BackupTest, ASecondBackupOfTheSameDataStoresNothingNew) {
  const std::string edb = MakeEdbLike(2048, 1);
  const auto first = BackUp({Put("a.edb", edb), Put("E00001.log", edb.substr(0, 1 << 20), "log")});
  EXPECT_EQ(first.new_bytes(), edb.size() + (1u << 20));
  // With its block maps compared against the first's, and without a base.
  for (const std::string& base : {std::string("auto"), std::string()}) {
    BackupOptions options;
    options.base_manifest = base;
    const auto again =
        BackUp({Put("a.edb", edb), Put("E00001.log", edb.substr(0, 1 << 20), "log")}, options);
    EXPECT_EQ(again.new_bytes(), 0u) << "base \"" << base << "\"";
    EXPECT_EQ(again.stored_bytes(), 0u);
    EXPECT_EQ(again.base_manifest(), base.empty() ? "" : first.id());
    RestoreResult result;
    EXPECT_EQ(Sha256Hex(ReadFile(RestoreAll(again, &result) + "/a.edb")), Sha256Hex(edb));
    // Chunks next to each other in a pack come in one ranged read of at
    // most the store's restore_read_bytes(): here 5 chunks (16 MiB of pages
    // and the log), in 2 or 3 reads of 8 MiB from a folder; on S3 (4 MiB)
    // nearly every chunk is a read of its own.
    const uint64_t span = repo_->store().restore_read_bytes();
    EXPECT_GE(result.chunks_read, 5u);
    EXPECT_LE(result.pack_reads, result.chunks_read);
    if (span >= (8u << 20)) {
      EXPECT_LT(result.pack_reads, result.chunks_read);
    }
    EXPECT_LE(result.pack_reads, result.sealed_bytes_read / span + 2);
  }
}

TEST_P(BackupTest, TwoPercentOfPagesChangedStoresAtMostFourPercent) {
  for (bool runs : {false, true}) {
    SCOPED_TRACE(runs ? "changes in runs" : "changes uniformly at random");
    std::string edb = MakeEdbLike(8192, runs ? 11 : 12);  // 64 MiB
    BackUp({Put("db.edb", edb)});
    ChangePages(&edb, 0.02, runs, 99);
    const auto second = BackUp({Put("db.edb", edb)});
    EXPECT_LE(second.new_bytes(), edb.size() * 4 / 100);
    EXPECT_GE(second.new_bytes(), edb.size() * 2 / 100 - kPage);
    EXPECT_EQ(Sha256Hex(ReadFile(RestoreAll(second) + "/db.edb")), Sha256Hex(edb));
  }
}

TEST_P(BackupTest, AFileThatShrinksWhileItIsReadFailsTheBackupAndWritesNoManifest) {
  // A sysfs attribute claims 4096 bytes and reads a few: a file shorter
  // at its read than at the plan, without a race to arrange.
  const std::string path = "/sys/devices/system/cpu/online";
  if (!PathExists(path)) GTEST_SKIP() << path << " is not here";
  auto m = Backup(*repo_, {{path, "online", "log", "", 0}}, Header("DB01"), {});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr(absl::StrCat("file ", path, " shrank while it was backed up (")));
  auto manifests = repo_->ListManifests();
  ASSERT_TRUE(manifests.ok());
  EXPECT_TRUE(manifests->empty());
}

TEST_P(BackupTest, AManifestWriteThatFailsAfterItsRenameLeavesNoManifest) {
  // As when the folder's fsync fails after the rename: the file is there,
  // the write failed, so the backup failed and must not leave it.
  ASSERT_TRUE(ConfigureFailPoint("repository.manifest.renamed").ok());
  auto m = Backup(*repo_, {Put("a.log", "some log", "log")}, Header("DB01"), {});
  ASSERT_TRUE(ConfigureFailPoint("").ok());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("injected failure at repository.manifest.renamed"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("was not committed"));
  auto manifests = repo_->ListManifests();
  ASSERT_TRUE(manifests.ok());
  EXPECT_TRUE(manifests->empty());
  auto checked = Check(*repo_);
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_TRUE(checked->clean());
  // The next backup commits as usual.
  ASSERT_TRUE(Backup(*repo_, {Put("a.log", "some log", "log")}, Header("DB01"), {}).ok());
}

TEST_P(BackupTest, ACompressionLevelZstdDoesNotHaveIsRefused) {
  BackupOptions options;
  options.zstd_level = 23;
  auto m = Backup(*repo_, {Put("a.log", "x", "log")}, Header("DB01"), options);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("zstd level 23 is not between 1 and"));
  InitOptions init = FastInit();
  init.zstd_level = 0;
  auto repo = Repository::Init(dir_.Sub("repo0"), TestPassphrase(), init);
  ASSERT_FALSE(repo.ok());
  EXPECT_THAT(std::string(repo.status().message()), HasSubstr("zstd level 0 is not between 1 and"));
  EXPECT_FALSE(PathExists(dir_.Sub("repo0")));
  // Every level in range round-trips.
  for (int level : {1, 19}) {
    options.zstd_level = level;
    const std::string data = MakeEdbLike(16, level);
    RestoreResult result;
    const std::string target = RestoreAll(BackUp({Put("db.edb", data)}, options), &result);
    EXPECT_EQ(ReadFile(target + "/db.edb"), data) << level;
  }
}

// A Full reads the snapshot and writes its packs around the page cache:
// neither the file's pages nor the packs' are left in it.
TEST_P(BackupTest, AFullLeavesThePageCacheAsItFoundIt) {
  if (!::dagvault::testing::DirectIoWorksIn(dir_.path())) {
    GTEST_SKIP() << dir_.path() << " takes no direct I/O: nothing to show";
  }
  const BackupFile file = Put("db.edb", MakeEdbLike(4096, 8));  // 32 MiB
  {
    auto f = File::Open(file.path, O_RDONLY);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->Sync().ok());
    DropCachedPages(*f);
  }
  ASSERT_EQ(::dagvault::testing::ResidentPages(file.path), 0u);
  const auto m = BackUp({file});
  EXPECT_EQ(::dagvault::testing::ResidentPages(file.path), 0u);
  if (GetParam() == Backend::kFilesystem) {
    size_t pack_pages = 0;
    for (const auto& e :
         std::filesystem::recursive_directory_iterator(store_.location + "/packs")) {
      if (e.is_regular_file()) {
        pack_pages += ::dagvault::testing::ResidentPages(e.path().string());
      }
    }
    // At most each pack's last, partial page, written through the cache
    // and dropped after its fsync.
    EXPECT_LE(pack_pages, 2u);
  }
}

TEST_P(BackupTest, AFixedChunkSizeOffTheLeavesIsRefused) {
  // The tree digest is built from chunks' leaf digests: chunks must start on leaves.
  BackupOptions options;
  options.fixed_chunk_size = kLeafSize + 1;
  auto m = Backup(*repo_, {Put("a.log", "x", "log")}, Header("DB01"), options);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("fixed chunk size 4097 is not a positive multiple of 4096"));
}

// Sees every byte once, from any worker, and has the last word on commit.
class RecordingObserver : public BackupObserver {
 public:
  absl::Status OnSegment(size_t file, uint64_t offset, absl::string_view data) override {
    std::lock_guard<std::mutex> l(mu_);
    seen_[file] += data.size();
    if (fail_at_file_ == static_cast<int>(file)) {
      return absl::DataLossError(absl::StrCat("file ", file, " offset ", offset, " is bad"));
    }
    if (control_ != nullptr && seen_[file] >= cancel_after_) control_->cancel = true;
    return absl::OkStatus();
  }
  absl::Status BeforeCommit(dagvault::v1::Manifest* manifest) override {
    if (refuse_commit_) return absl::FailedPreconditionError("the logs do not join");
    (*manifest->mutable_labels())["verified"] = "yes";
    return absl::OkStatus();
  }

  std::mutex mu_;
  std::map<size_t, uint64_t> seen_;
  int fail_at_file_ = -1;
  bool refuse_commit_ = false;
  TransferControl* control_ = nullptr;
  uint64_t cancel_after_ = 0;
};

TEST_P(BackupTest, TheObserverSeesEveryByteAndAnyRefusalCommitsNothing) {
  const std::string edb = MakeEdbLike(4096, 21);  // 32 MiB: several segments
  const std::vector<BackupFile> files = {Put("a.edb", edb), Put("E01.log", "log bytes", "log")};
  auto no_manifests = [&] {
    auto ids = repo_->ListManifests();
    return ids.ok() && ids->empty();
  };
  {
    RecordingObserver refusing;
    refusing.fail_at_file_ = 1;
    BackupOptions options;
    options.observer = &refusing;
    auto m = Backup(*repo_, files, Header("DB01"), options);
    ASSERT_FALSE(m.ok());
    EXPECT_THAT(std::string(m.status().message()), HasSubstr("file 1 offset 0 is bad"));
    EXPECT_TRUE(no_manifests());
  }
  {
    RecordingObserver refusing;
    refusing.refuse_commit_ = true;
    BackupOptions options;
    options.observer = &refusing;
    auto m = Backup(*repo_, files, Header("DB01"), options);
    ASSERT_FALSE(m.ok());
    EXPECT_THAT(std::string(m.status().message()), HasSubstr("the logs do not join"));
    EXPECT_TRUE(no_manifests());
  }
  {
    TransferControl control;
    RecordingObserver cancelling;
    cancelling.control_ = &control;
    cancelling.cancel_after_ = 8 << 20;
    BackupOptions options;
    options.observer = &cancelling;
    options.control = &control;
    options.workers = 1;
    auto m = Backup(*repo_, files, Header("DB01"), options);
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kCancelled);
    EXPECT_LT(control.bytes_done.load(), edb.size());
    EXPECT_TRUE(no_manifests());
  }
  TransferControl control;
  RecordingObserver observer;
  BackupOptions options;
  options.observer = &observer;
  options.control = &control;
  const auto m = BackUp(files, options);
  EXPECT_EQ(observer.seen_[0], edb.size());
  EXPECT_EQ(observer.seen_[1], 9u);
  EXPECT_EQ(control.bytes_done.load(), edb.size() + 9);
  EXPECT_EQ(m.labels().at("verified"), "yes");
  auto stored = repo_->ReadManifest(m.id());
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->labels().at("verified"), "yes");
}

TEST_P(BackupTest, AChainOfThirtyBlockIncrementalsRestoresEveryPointReadingEachChunkOnce) {
  std::string edb = MakeEdbLike(4096, 5);  // 32 MiB
  std::vector<std::pair<dagvault::v1::Manifest, std::string>> points;
  for (int i = 0; i < 30; ++i) {
    if (i > 0) ChangePages(&edb, 0.02, i % 2 == 0, 1000 + i);
    points.emplace_back(BackUp({Put("db.edb", edb)}), Sha256Hex(edb));
    if (i > 0) {
      EXPECT_LE(points.back().first.new_bytes(), edb.size() * 4 / 100) << "backup " << i;
    }
  }
  for (const auto& [m, digest] : points) {
    RestoreResult result;
    const std::string target = RestoreAll(m, &result);
    EXPECT_EQ(Sha256Hex(ReadFile(target + "/db.edb")), digest) << m.id();
    // Each chunk of the map once, and no more: the chain's length costs
    // nothing beyond the map.
    const auto& map = m.files(0).block_map();
    EXPECT_EQ(result.chunks_read, map.chunk_ids().size() / 32) << m.id();
    std::filesystem::remove_all(target);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackupTest, Backends(), BackendName);

}  // namespace
}  // namespace dagvault::repository
