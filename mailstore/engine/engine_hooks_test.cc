// The engine's hooks for the writers: freeze and thaw, sealing the log at a
// dismount, backup header fields, log truncation.
#include <atomic>
#include <filesystem>
#include <thread>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/format/edb_header.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;
using testing::MakeUnitConfig;
using testing::ValueFor;
namespace fs = std::filesystem;

// Every file of the unit, name -> content hash.
std::map<std::string, size_t> Files(const std::string& dir) {
  std::map<std::string, size_t> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().extension() == ".lck") continue;
    out[e.path().filename().string()] =
        std::hash<std::string>()(*ReadFileToString(e.path().string()));
  }
  return out;
}

TEST(EngineHooks, FreezeHoldsWritesWithoutFailingThemAndTheFilesStayStill) {
  TempDir dir("hooks");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions(absl::Milliseconds(10)));
  ASSERT_TRUE(e.ok());
  for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i, 1000)).ok());
  const Generation before = (*e)->current_generation();
  auto frozen = (*e)->Freeze();
  ASSERT_TRUE(frozen.ok()) << frozen.status();
  EXPECT_EQ(frozen->closed_generation, before);
  EXPECT_TRUE(PathExists(dir.Sub(LogFileName("E00", before))));  // the roll closed it
  EXPECT_TRUE((*e)->frozen());
  const auto files = Files(dir.path());

  std::atomic<bool> committed{false};
  std::thread writer([&] {
    ASSERT_TRUE((*e)->Put(0, {2, 2}, "written after the thaw").ok());
    committed = true;
  });
  absl::SleepFor(absl::Milliseconds(300));  // several lazy-writer intervals
  EXPECT_FALSE(committed) << "a commit went through while frozen";
  ASSERT_TRUE((*e)->FlushNow().ok());
  EXPECT_EQ(Files(dir.path()), files) << "a file changed while frozen";
  EXPECT_FALSE((*e)->Freeze().ok());  // already frozen

  ASSERT_TRUE((*e)->Thaw().ok());
  writer.join();
  EXPECT_TRUE(committed);
  EXPECT_FALSE((*e)->Thaw().ok());  // not frozen
  EXPECT_EQ(**(*e)->Get(0, {2, 2}), "written after the thaw");
  ASSERT_TRUE((*e)->Close().ok());
}

// A Full holds the logs through the generation Freeze closed; the frozen
// database files must need nothing newer. A flush cycle that ran between
// the roll and the freeze once wrote the new generation into the headers
// as required, and such a Full verified but could not be restored. Writes
// and flushes run flat out while the unit is frozen again and again.
TEST(EngineHooks, AFrozenDatabaseNeedsNoLogNewerThanTheGenerationFreezeClosed) {
  TempDir dir("hooks");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions(absl::Milliseconds(1)));
  ASSERT_TRUE(e.ok());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t i = 0; !stop; ++i) {
      if (!(*e)->Put(0, {3, i % 500}, ValueFor(i, 2000)).ok()) return;
    }
  });
  std::thread flusher([&] {
    while (!stop) (void)(*e)->FlushNow();
  });
  for (int round = 0; round < 150; ++round) {
    auto frozen = (*e)->Freeze();
    ASSERT_TRUE(frozen.ok()) << frozen.status();
    auto header = ReadDbHeaderFromPath((*e)->DatabasePath(0));
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_LE(header->header.log_required_max, frozen->closed_generation) << "round " << round;
    EXPECT_LE(frozen->checkpoint.generation, frozen->closed_generation) << "round " << round;
    ASSERT_TRUE((*e)->Thaw().ok());
  }
  stop = true;
  writer.join();
  flusher.join();
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(EngineHooks, CloseWithSealLeavesEveryGenerationClosedAndTheNextOpenContinues) {
  TempDir dir("hooks");
  auto config = MakeUnitConfig(dir.path());
  Generation last;
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE((*e)->Put(0, {1, 1}, "x").ok());
    last = (*e)->current_generation();
    ASSERT_TRUE((*e)->Close(/*seal_log=*/true).ok());
  }
  auto logs = ListLogStream(dir.path(), "E00");
  ASSERT_TRUE(logs.ok());
  EXPECT_FALSE(logs->current.has_value());
  EXPECT_EQ(logs->HighestClosed(), last);
  auto scan = ScanLogFile(logs->closed.back().second);
  ASSERT_TRUE(scan.ok());
  EXPECT_TRUE(CheckClosedLog(*scan).ok());
  auto e = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ((*e)->current_generation(), last + 1);
  EXPECT_EQ(**(*e)->Get(0, {1, 1}), "x");
  ASSERT_TRUE((*e)->Close().ok());
  auto next = ScanLogFile(dir.Sub("E00.log"));  // the successor, still open
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->header.generation, last + 1);
  EXPECT_TRUE(next->header.has_prev_link);
  EXPECT_EQ(next->header.prev_link, scan->file_hash);
}

TEST(EngineHooks, RecordBackupWritesTheHeaderFields) {
  TempDir dir("hooks");
  auto config = MakeUnitConfig(dir.path(), 2);
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE((*e)->RecordBackup(Engine::BackupType::kFull, 3, 9, 1234, true).ok());
  ASSERT_TRUE((*e)->RecordBackup(Engine::BackupType::kIncremental, 10, 12, 5678, true).ok());
  ASSERT_TRUE((*e)->Close().ok());
  for (const char* db : {"db0.edb", "db1.edb"}) {
    auto h = ReadDbHeaderFromPath(dir.Sub(db));
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->header.previous_full, (BackupRecord{3, 9, 1234, true}));
    EXPECT_EQ(h->header.previous_incremental, (BackupRecord{10, 12, 5678, true}));
    EXPECT_EQ(h->header.previous_differential, BackupRecord{});
  }
}

TEST(EngineHooks, TruncateNeverDeletesAtOrAboveTheCheckpoint) {
  TempDir dir("hooks");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1)));
  ASSERT_TRUE(e.ok());
  for (uint64_t i = 0; i < 200; ++i) ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i, 2000)).ok());
  ASSERT_TRUE((*e)->FlushNow().ok());
  const Generation checkpoint_gen = (*e)->checkpoint().generation;
  ASSERT_GT(checkpoint_gen, 3u);
  // Asking for everything deletes only what lies below the checkpoint.
  auto deleted = (*e)->TruncateLogs(kMaxGeneration);
  ASSERT_TRUE(deleted.ok());
  ASSERT_FALSE(deleted->empty());
  EXPECT_EQ(deleted->back(), checkpoint_gen - 1);
  auto logs = ListLogStream(dir.path(), "E00");
  EXPECT_TRUE(logs->current.has_value());
  for (const auto& [gen, path] : logs->closed) EXPECT_GE(gen, checkpoint_gen) << path;
  // The unit still recovers from what is left.
  e->reset();
  auto reopened = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->Meta(0)->item_count, 200u);
  ASSERT_TRUE((*reopened)->Close().ok());
}

}  // namespace
}  // namespace dagvault::mailstore
