// The repository through the real `dagvault repo` binary: four concurrent
// writers, kill -9 during backup and prune, and the key errors. Tampering
// has a suite of its own (tampering_test.cc).
#include "tests/repository/repo_cli.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/filesystem_object_store.h"
#include "repository/repository.h"
#include "repository/repository_test_util.h"

namespace dagvault::repository {
namespace {

namespace fs = std::filesystem;
using ::dagvault::testing::BinaryPath;
using ::dagvault::testing::ProcessResult;
using ::dagvault::testing::RunProcess;
using ::dagvault::testing::Subprocess;
using ::testing::HasSubstr;
using namespace testing;  // NOLINT: the shared test helpers

TEST_F(RepoCli, FourProcessesBackUpAtOnceAndEveryManifestRestoresExact) {
  std::vector<std::string> data;
  std::vector<std::unique_ptr<Subprocess>> procs;
  for (int i = 0; i < 4; ++i) {
    data.push_back(MakeEdbLike(2048, 100 + i));
    // Half of each file is shared with the others: concurrent dedup.
    data.back().replace(0, 4 << 20, data[0].substr(0, 4 << 20));
    const std::string path = dir_.Sub(absl::StrCat("src/db", i, ".edb"));
    WriteFile(path, data.back());
    procs.push_back(std::make_unique<Subprocess>(
        Argv({"backup", "--unit", absl::StrCat("DB0", i), "--file", "database:" + path}),
        std::map<std::string, std::string>{}, dir_.Sub(absl::StrCat("backup", i, ".log"))));
  }
  for (auto& p : procs) EXPECT_TRUE(p->Wait().ok());
  ProcessResult check = Repo({"check", "--read-data"});
  EXPECT_TRUE(check.ok()) << check.out << check.err;
  auto repo = Repository::Open(repo_, *PassphraseFromFile(pass_));
  ASSERT_TRUE(repo.ok());
  auto ids = repo->ListManifests();
  ASSERT_TRUE(ids.ok());
  ASSERT_EQ(ids->size(), 4u);
  for (const auto& id : *ids) {
    auto m = repo->ReadManifest(id);
    ASSERT_TRUE(m.ok());
    const int i = m->unit().back() - '0';
    const std::string to = dir_.Sub("out-" + id);
    ProcessResult r = RestoreTo(id, to);
    ASSERT_TRUE(r.ok()) << r.err;
    EXPECT_EQ(Sha256Hex(ReadFile(absl::StrCat(to, "/db", i, ".edb"))), Sha256Hex(data[i]));
  }
}

// Starts `argv`, kills it with SIGKILL after `delay`, and reaps it.
// Returns whether the kill landed while it was still running.
bool KillAfter(const std::vector<std::string>& argv, absl::Duration delay) {
  Subprocess p(argv);
  absl::SleepFor(delay);
  if (p.Poll()) return false;
  p.Kill(SIGKILL);
  return p.Wait().signal == SIGKILL;
}

TEST_F(RepoCli, KillNineDuringBackupAndPruneLeavesACleanRepositoryAndEveryManifest) {
  std::mt19937_64 rng(2026);
  std::string data = MakeEdbLike(4096, 9);       // 32 MiB
  std::map<std::string, std::string> completed;  // manifest → digest
  completed[BackUp("db.edb", data)] = Sha256Hex(data);
  // Backups killed at random moments, each after a change of 5% of pages.
  int kills = 0;
  for (int i = 0; kills < 20 && i < 100; ++i) {
    ChangePages(&data, 0.05, i % 2, 500 + i);
    WriteFile(dir_.Sub("src/db.edb"), data);
    kills += KillAfter(
        Argv({"backup", "--unit", "DB01", "--file", "database:" + dir_.Sub("src/db.edb")}),
        absl::Milliseconds(rng() % 300));
    if (i % 5 == 4) completed[BackUp("db.edb", data)] = Sha256Hex(data);
  }
  EXPECT_GE(kills, 20);
  ProcessResult check = Repo({"check", "--read-data"});
  EXPECT_TRUE(check.ok()) << check.out << check.err;

  // Prunes killed at random moments (and at each of its named steps),
  // each keeping every completed manifest but the oldest ones in turn.
  auto ids_now = [&] {
    auto repo = Repository::Open(repo_, *PassphraseFromFile(pass_));
    return *repo->ListManifests();
  };
  std::vector<std::string> crash_points = {"prune.manifest_removed", "prune.pack_written",
                                           "prune.index_written", "prune.index_removed",
                                           "prune.pack_removed"};
  kills = 0;
  int fired = 0;
  for (int i = 0; kills < 20 && i < 100; ++i) {
    std::vector<std::string> ids = ids_now();
    std::vector<std::string> keep(ids.begin() + (ids.size() > 2 ? 1 : 0), ids.end());
    std::string keep_list = absl::StrJoin(keep, ",");
    // No grace: nothing else writes here, and the sweep is what is tested.
    auto argv = Argv(
        {"prune", "--keep-manifests", keep_list, "--repack-below", "0.9", "--pack-grace", "0"});
    if (i < static_cast<int>(crash_points.size())) {
      fired += RunProcess(argv, {{"DAGVAULT_CRASH_AT", crash_points[i]}}).signal == SIGKILL;
    } else {
      kills += KillAfter(argv, absl::Milliseconds(rng() % 150));
    }
    for (auto it = completed.begin(); it != completed.end();) {
      it = std::find(keep.begin(), keep.end(), it->first) == keep.end() &&
                   !fs::exists(repo_ + "/manifests/" + it->first + ".mf")
               ? completed.erase(it)
               : std::next(it);
    }
    if (i % 5 == 4) completed[BackUp("db.edb", data)] = Sha256Hex(data);
  }
  EXPECT_GE(kills, 20);
  EXPECT_GE(fired, 3);  // the steps a prune with nothing to drop never reaches may not fire
  check = Repo({"check", "--read-data"});
  EXPECT_TRUE(check.ok()) << check.out << check.err;
  ASSERT_FALSE(completed.empty());
  for (const auto& [id, digest] : completed) {
    const std::string to = dir_.Sub("out-" + id);
    ProcessResult r = RestoreTo(id, to);
    ASSERT_TRUE(r.ok()) << id << ": " << r.err;
    EXPECT_EQ(Sha256Hex(ReadFile(to + "/db.edb")), digest) << id;
    fs::remove_all(to);
  }
}

// Issue 15: a backup paused (SIGSTOP) past the lock stale time while a
// prune breaks its lock and sweeps its packs must not commit a manifest
// that refers to them when it is resumed.
TEST(RepoCliLocks, ABackupPausedPastTheStaleTimeWhileAPruneRunsFailsCleanly) {
  ::dagvault::testing::TempDir dir("repo_cli_locks");
  const std::string repo = dir.Sub("repo"), pass = dir.Sub("pass");
  WriteFile(pass, "a long passphrase\n");
  auto argv = [&](std::vector<std::string> args) {
    std::vector<std::string> a = {BinaryPath("dagvault"), "repo"};
    a.insert(a.end(), args.begin(), args.end());
    a.insert(a.end(), {"--repo", repo, "--passphrase-file", pass});
    return a;
  };
  // Stale after 2 s (every host reads it from the repository's config):
  // the holder must prove a refresh within 1 s, prune spares packs younger
  // than 4 s.
  ASSERT_TRUE(RunProcess(argv({"init", "--lock-stale-seconds", "2"})).ok());
  ASSERT_TRUE(CreateDirectories(dir.Sub("src")).ok());
  WriteFile(dir.Sub("src/kept.edb"), MakeEdbLike(512, 1));
  ProcessResult kept = RunProcess(
      argv({"backup", "--unit", "DB01", "--file", "database:" + dir.Sub("src/kept.edb")}));
  ASSERT_TRUE(kept.ok()) << kept.err;
  const std::string kept_id = ManifestIdOf(kept.out);

  // The backup holds at the step after its packs and index are written
  // (for long enough that the test can stop it there), and is stopped.
  WriteFile(dir.Sub("src/paused.edb"), MakeEdbLike(2048, 2));
  Subprocess backup(
      argv({"backup", "--unit", "DB02", "--file", "database:" + dir.Sub("src/paused.edb")}),
      {{"DAGVAULT_DELAY_AT", "repository.backup.index_written:1500"}},
      dir.Sub("paused-backup.log"));
  auto index_files = [&] {
    size_t n = 0;
    // Not a write's temporary file: one that is being linked into place
    // stands beside the index file for a moment.
    for (const auto& e : fs::directory_iterator(repo + "/index")) {
      n += e.is_regular_file() && e.path().extension() != ".tmp";
    }
    return n;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (index_files() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(index_files(), 2u);
  ASSERT_EQ(kill(backup.pid(), SIGSTOP), 0);
  absl::SleepFor(absl::Seconds(5));  // past the stale time and the pack grace

  // The prune breaks the stale lock and sweeps the paused backup's packs.
  ProcessResult prune = RunProcess(argv({"prune", "--keep-manifests", kept_id}));
  ASSERT_TRUE(prune.ok()) << prune.err;
  EXPECT_THAT(prune.err, HasSubstr("breaking stale a shared lock for backup"));
  EXPECT_THAT(prune.out, HasSubstr("removed 0 manifests and 1 packs"));

  // Resumed, the backup finds its lock gone and fails before its manifest.
  ASSERT_EQ(kill(backup.pid(), SIGCONT), 0);
  ProcessResult resumed = backup.Wait();
  EXPECT_NE(resumed.exit_code, 0);
  const std::string said = ReadFile(dir.Sub("paused-backup.log.err"));
  EXPECT_THAT(said, HasSubstr("the backup's manifest was not written"));
  EXPECT_THAT(said, HasSubstr("it was removed (broken as stale by another process"));
  ProcessResult ls = RunProcess(argv({"ls"}));
  ASSERT_TRUE(ls.ok()) << ls.err;
  EXPECT_THAT(ls.out, HasSubstr(kept_id));
  EXPECT_THAT(ls.out, ::testing::Not(HasSubstr("DB02")));
  ProcessResult check = RunProcess(argv({"check", "--read-data"}));
  EXPECT_TRUE(check.ok()) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("no errors"));
}

TEST_F(RepoCli, WrongPassphraseMissingKeyFileBadLevelAndNewerFormatGetClearErrors) {
  const std::string wrong = dir_.Sub("wrong");
  WriteFile(wrong, "not it");
  ProcessResult r = RunProcess(
      {BinaryPath("dagvault"), "repo", "ls", "--repo", repo_, "--passphrase-file", wrong});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("opens none of its 1 passphrase key slots"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("not it")));

  r = RunProcess({BinaryPath("dagvault"), "repo", "ls", "--repo", repo_, "--key-file",
                  dir_.Sub("missing.key")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("key file " + dir_.Sub("missing.key")));

  r = RunProcess({BinaryPath("dagvault"), "repo", "ls", "--repo", repo_, "--passphrase", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("never given as an argument"));

  // A compression level zstd does not have: nothing is created.
  r = RunProcess({BinaryPath("dagvault"), "repo", "init", "--repo", dir_.Sub("repo2"),
                  "--passphrase-file", pass_, "--zstd-level", "30"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("zstd level 30 is not between 1 and"));
  EXPECT_FALSE(PathExists(dir_.Sub("repo2") + "/config"));
  r = RunProcess({BinaryPath("dagvault"), "repo", "init", "--repo", dir_.Sub("repo3"),
                  "--passphrase-file", pass_, "--zstd-level", "9"});
  ASSERT_TRUE(r.ok()) << r.err;
  auto level9 = Repository::ReadConfig(FilesystemObjectStore(dir_.Sub("repo3")));
  ASSERT_TRUE(level9.ok()) << level9.status();
  EXPECT_EQ(level9->zstd_level(), 9);

  // Key slots: add a key file, open with it, remove the passphrase slot;
  // the last slot cannot go.
  const std::string key = dir_.Sub("repo.key");
  WriteFile(key, std::string(64, 'k'));
  r = Repo({"key", "add", "--new-key-file", key});
  ASSERT_TRUE(r.ok()) << r.err;
  r = RunProcess(
      {BinaryPath("dagvault"), "repo", "key", "list", "--repo", repo_, "--key-file", key});
  ASSERT_TRUE(r.ok()) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  for (const auto& line : lines) {
    if (line.find("passphrase") == std::string::npos) continue;
    const std::string slot = line.substr(0, line.find(' '));
    r = RunProcess({BinaryPath("dagvault"), "repo", "key", "remove", slot, "--repo", repo_,
                    "--key-file", key});
    EXPECT_TRUE(r.ok()) << r.err;
  }
  EXPECT_FALSE(Repo({"ls"}).ok());  // the passphrase slot is gone
  r = RunProcess(
      {BinaryPath("dagvault"), "repo", "key", "list", "--repo", repo_, "--key-file", key});
  const std::string last = r.out.substr(0, r.out.find(' '));
  r = RunProcess(
      {BinaryPath("dagvault"), "repo", "key", "remove", last, "--repo", repo_, "--key-file", key});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("last"));

  // A repository from a newer dagvault.
  auto config = Repository::ReadConfig(FilesystemObjectStore(repo_));
  ASSERT_TRUE(config.ok());
  config->set_format_version(kRepositoryFormatVersion + 1);
  WriteFile(repo_ + "/config", config->SerializeAsString());
  r = RunProcess({BinaryPath("dagvault"), "repo", "ls", "--repo", repo_, "--key-file", key});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("is newer than this dagvault"));
  EXPECT_THAT(r.err, HasSubstr("upgrade"));
}

}  // namespace
}  // namespace dagvault::repository
