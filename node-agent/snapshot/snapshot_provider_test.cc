// The snapshot providers on real filesystems: reflink on a loop-mounted
// XFS made by the test, copy anywhere, auto choosing per volume, and
// snapshot folders removed on success, failure and after a crash.
#include "node-agent/snapshot/snapshot_provider.h"

#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/testing/loop_xfs.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::agent {
namespace {

using ::testing::HasSubstr;

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void Write(const std::string& path, const std::string& data) {
  ASSERT_TRUE(CreateDirectories(DirName(path)).ok());
  ASSERT_TRUE(WriteFileAtomically(path, data).ok()) << path;
}

std::string Read(const std::string& path) {
  auto s = ReadFileToString(path);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : "";
}

// The unit's files in `root`: a database in one folder, logs in another.
std::vector<std::string> MakeUnit(const std::string& root) {
  std::vector<std::string> files = {root + "/db/priv1.edb", root + "/logs/E0000000001.log",
                                    root + "/logs/E00.chk"};
  for (size_t i = 0; i < files.size(); ++i) Write(files[i], RandomBytes((3 << 20) + i, i));
  return files;
}

SnapshotOptions Options(const std::string& job) {
  SnapshotOptions o;
  o.job = job;
  o.frozen_at = absl::Now();
  return o;
}

std::unique_ptr<SnapshotProvider> Provider(const std::string& name) {
  auto p = MakeSnapshotProvider(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

// The source is changed after the snapshot: the snapshot keeps the bytes
// of the moment it was taken.
void ExpectPointInTime(const Snapshot& snapshot, const std::vector<std::string>& before) {
  ASSERT_EQ(snapshot.files().size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    const SnapshotFile& f = snapshot.files()[i];
    Write(f.source, "changed after the snapshot");
    EXPECT_EQ(Read(f.path), before[i]) << f.path;
    EXPECT_EQ(f.size, before[i].size());
  }
}

TEST(SnapshotProvider, ReflinkClonesOnXfsAndTheSnapshotKeepsItsPointInTime) {
  ::dagvault::testing::LoopXfs xfs;
  // As root (CI, tests/run.sh) a loop mount must work; elsewhere it cannot.
  if (!xfs.mounted() && ::geteuid() == 0) FAIL() << xfs.error();
  if (!xfs.mounted()) GTEST_SKIP() << xfs.error();
  const std::vector<std::string> sources = MakeUnit(xfs.mount_point() + "/SG01");
  std::vector<std::string> before;
  for (const auto& s : sources) before.push_back(Read(s));

  auto snapshot = Provider("reflink")->Take(sources, Options("job1"));
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  for (const auto& f : (*snapshot)->files()) {
    EXPECT_EQ(f.provider, "reflink");
    EXPECT_EQ(f.path, JoinPath(DirName(f.source), ".dagvault-snapshot-job1/" + BaseName(f.source)));
  }
  ExpectPointInTime(**snapshot, before);
  EXPECT_TRUE((*snapshot)->warnings().empty());
  ASSERT_TRUE((*snapshot)->Remove().ok());
  EXPECT_FALSE(PathExists(xfs.mount_point() + "/SG01/db/.dagvault-snapshot-job1"));
  EXPECT_FALSE(PathExists(xfs.mount_point() + "/SG01/logs/.dagvault-snapshot-job1"));
}

TEST(SnapshotProvider, ReflinkRefusesAVolumeThatCannotCloneAndLeavesNothing) {
  ::dagvault::testing::TempDir dir("snap");
  // The test's temporary folder is not on a cloning volume here (ext4 or
  // tmpfs); if it were, this test would have nothing to show.
  const std::vector<std::string> sources = MakeUnit(dir.Sub("SG01"));
  auto snapshot = Provider("reflink")->Take(sources, Options("job2"));
  if (snapshot.ok() && (*snapshot)->files()[0].provider == "reflink") {
    GTEST_SKIP() << dir.path() << " is on a volume that clones";
  }
  ASSERT_FALSE(snapshot.ok());
  EXPECT_THAT(std::string(snapshot.status().message()), HasSubstr("the volume cannot clone"));
  EXPECT_THAT(std::string(snapshot.status().message()), HasSubstr(sources[0]));
  EXPECT_FALSE(PathExists(dir.Sub("SG01/db/.dagvault-snapshot-job2")));
}

TEST(SnapshotProvider, CopyWorksAnywhereAndAutoChoosesPerVolume) {
  ::dagvault::testing::TempDir dir("snap");
  ::dagvault::testing::LoopXfs xfs;
  // As root the per-volume choice is shown on a real XFS; elsewhere only
  // the copy half runs.
  if (::geteuid() == 0) {
    ASSERT_TRUE(xfs.mounted()) << xfs.error();
  }
  // The database on XFS, the logs where the temporary folder is.
  std::vector<std::string> sources = MakeUnit(dir.Sub("SG01"));
  if (xfs.mounted()) {
    const std::string edb = xfs.mount_point() + "/SG01/db/priv1.edb";
    Write(edb, Read(sources[0]));
    sources[0] = edb;
  }
  std::vector<std::string> before;
  for (const auto& s : sources) before.push_back(Read(s));

  auto copied = Provider("copy")->Take(sources, Options("copy1"));
  ASSERT_TRUE(copied.ok()) << copied.status();
  for (const auto& f : (*copied)->files()) EXPECT_EQ(f.provider, "copy");
  ExpectPointInTime(**copied, before);
  ASSERT_TRUE((*copied)->Remove().ok());

  for (size_t i = 0; i < sources.size(); ++i) Write(sources[i], before[i]);
  auto chosen = Provider("auto")->Take(sources, Options("auto1"));
  ASSERT_TRUE(chosen.ok()) << chosen.status();
  if (xfs.mounted()) {
    EXPECT_EQ((*chosen)->files()[0].provider, "reflink");
  }
  ExpectPointInTime(**chosen, before);
  const std::string folder = DirName((*chosen)->files()[1].path);
  chosen->reset();  // the destructor removes what Remove() was not asked to
  EXPECT_FALSE(PathExists(folder));
}

TEST(SnapshotProvider, ACopyNearTheFreezeTimeoutWarnsAndOnePastItsLimitStopsCleanly) {
  ::dagvault::testing::TempDir dir("snap");
  const std::vector<std::string> sources = MakeUnit(dir.Sub("SG01"));
  // Frozen long enough ago to be past the warning but not the limit.
  SnapshotOptions warn = Options("slow1");
  warn.freeze_timeout = absl::Seconds(20);
  warn.frozen_at = absl::Now() - absl::Seconds(12);
  auto warned = Provider("copy")->Take(sources, warn);
  ASSERT_TRUE(warned.ok()) << warned.status();
  ASSERT_EQ((*warned)->warnings().size(), 1u);
  EXPECT_THAT((*warned)->warnings()[0], HasSubstr("past 50% of its 20s freeze timeout"));
  ASSERT_TRUE((*warned)->Remove().ok());

  SnapshotOptions late = Options("slow2");
  late.freeze_timeout = absl::Seconds(20);
  late.frozen_at = absl::Now() - absl::Seconds(19);
  auto stopped = Provider("copy")->Take(sources, late);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(stopped.status().message()),
              HasSubstr(absl::StrCat("the copy snapshot stopped at ", sources[0])));
  EXPECT_THAT(std::string(stopped.status().message()), HasSubstr("raise the writer's freeze"));
  EXPECT_FALSE(PathExists(dir.Sub("SG01/db/.dagvault-snapshot-slow2")));
}

TEST(SnapshotProvider, AFolderLeftByACrashIsRemovedAndALiveJobsIsKept) {
  ::dagvault::testing::TempDir dir("snap");
  const std::vector<std::string> sources = MakeUnit(dir.Sub("SG01"));
  // A job whose process died holding its snapshot: a child that takes one
  // and exits without removing it.
  const pid_t child = fork();
  if (child == 0) {
    auto taken = Provider("copy")->Take(sources, Options("crashed"));
    if (!taken.ok()) _exit(3);
    (void)taken->release();
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(PathExists(dir.Sub("SG01/db/.dagvault-snapshot-crashed")));
  // A job that is still running, in this process.
  auto live = Provider("copy")->Take(sources, Options("running"));
  ASSERT_TRUE(live.ok()) << live.status();
  Write(dir.Sub("SG01/db/keep-me/file"), "x");

  auto removed = RemoveLeftoverSnapshots(
      {dir.Sub("SG01/db"), dir.Sub("SG01/logs"), dir.Sub("SG01/logs"), dir.Sub("nowhere")});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed,
              ::testing::UnorderedElementsAre(dir.Sub("SG01/db/.dagvault-snapshot-crashed"),
                                              dir.Sub("SG01/logs/.dagvault-snapshot-crashed")));
  EXPECT_FALSE(PathExists(dir.Sub("SG01/db/.dagvault-snapshot-crashed.lock")));
  EXPECT_TRUE(PathExists(dir.Sub("SG01/db/keep-me/file")));
  for (const auto& s : sources) EXPECT_TRUE(PathExists(s));
  for (const auto& f : (*live)->files()) EXPECT_TRUE(PathExists(f.path)) << f.path;

  // Once the running job ends, nothing of it is left, lock files included.
  ASSERT_TRUE((*live)->Remove().ok());
  for (const std::string sub : {"SG01/db", "SG01/logs"}) {
    auto names = ListDirectory(dir.Sub(sub));
    ASSERT_TRUE(names.ok());
    for (const auto& name : *names) EXPECT_FALSE(absl::StrContains(name, "dagvault")) << name;
  }
}

TEST(SnapshotProvider, AnUnknownProviderOrAMissingSourceIsNamed) {
  auto bad = MakeSnapshotProvider("lvm");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("snapshot provider \"lvm\" is not one of auto, reflink, copy"));
  ::dagvault::testing::TempDir dir("snap");
  Write(dir.Sub("SG01/a.edb"), "a");
  auto missing =
      Provider("auto")->Take({dir.Sub("SG01/a.edb"), dir.Sub("SG01/gone.log")}, Options("missing"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr(dir.Sub("SG01/gone.log")));
  EXPECT_FALSE(PathExists(dir.Sub("SG01/.dagvault-snapshot-missing")));
}

}  // namespace
}  // namespace dagvault::agent
