#include "mailstore/engine/engine.h"

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/engine/layout.h"
#include "mailstore/engine/recovery.h"
#include "mailstore/format/edb_header.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;
using testing::MakeUnitConfig;
using testing::ValueFor;
namespace fs = std::filesystem;

void PutMany(Engine& e, uint32_t db, uint64_t mailbox, uint64_t from, uint64_t n, size_t size) {
  for (uint64_t i = from; i < from + n; ++i) {
    ASSERT_TRUE(e.Put(db, {mailbox, i}, ValueFor(mailbox * 1000003 + i, size + i % 97)).ok());
  }
}

void ExpectMany(Engine& e, uint32_t db, uint64_t mailbox, uint64_t from, uint64_t n, size_t size) {
  for (uint64_t i = from; i < from + n; ++i) {
    auto got = e.Get(db, {mailbox, i});
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->has_value()) << "item " << mailbox << "/" << i << " missing";
    ASSERT_EQ(**got, ValueFor(mailbox * 1000003 + i, size + i % 97)) << mailbox << "/" << i;
  }
}

TEST(Engine, CreateWriteCloseReopen) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path());
  Sha256Digest digest;
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok()) << e.status();
    PutMany(**e, 0, 1, 0, 300, 100);
    PutMany(**e, 0, 2, 0, 20, 30000);  // long values
    digest = *(*e)->Digest(0);
    ASSERT_TRUE((*e)->Close().ok());
  }
  auto header = ReadDbHeaderFromPath(dir.Sub("db0.edb"));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->header.state, DbState::kCleanShutdown);
  auto e = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ExpectMany(**e, 0, 1, 0, 300, 100);
  ExpectMany(**e, 0, 2, 0, 20, 30000);
  EXPECT_EQ(*(*e)->Digest(0), digest);
  EXPECT_EQ((*e)->Meta(0)->item_count, 320u);
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Engine, CreateRefusesExistingFiles) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path());
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE((*e)->Close().ok());
  }
  auto again = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("db0.edb"), std::string::npos) << again.status();
}

TEST(Engine, SecondOpenerIsRefusedWhileTheFirstRuns) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path());
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  auto second = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Engine, CrashWithoutCloseIsRecoveredOnOpen) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path());
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok());
    PutMany(**e, 0, 1, 0, 500, 200);
    PutMany(**e, 0, 3, 0, 10, 50000);
    ASSERT_TRUE(*(*e)->Delete(0, {1, 7}));
    // Destroyed without Close: like a crash after the last commit.
  }
  EXPECT_EQ(ReadDbHeaderFromPath(dir.Sub("db0.edb"))->header.state, DbState::kDirtyShutdown);
  auto e = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  ExpectMany(**e, 0, 1, 0, 7, 200);
  ExpectMany(**e, 0, 1, 8, 492, 200);
  ExpectMany(**e, 0, 3, 0, 10, 50000);
  EXPECT_FALSE((*(*e)->Get(0, {1, 7})).has_value());
  ASSERT_TRUE((*e)->Close().ok());
}

// Pages written by the lazy writer carry dbtimes the header may not have
// seen. After a crash with nothing to replay, the next session must still
// number its changes above every page on disk, or a later recovery would
// take its records for changes already applied and skip them.
TEST(Engine, DbTimeNeverGoesBackwardsAcrossCrashes) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), 1, 1 << 20);  // one generation throughout
  {
    auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1)));
    ASSERT_TRUE(e.ok());
    PutMany(**e, 0, 1, 0, 200, 300);
    ASSERT_TRUE((*e)->FlushNow().ok());  // pages with new dbtimes reach the file
  }                                      // crash: nothing left to replay
  {
    auto e = Engine::Open(config, testing::TestEngineOptions(absl::Hours(1)));
    ASSERT_TRUE(e.ok()) << e.status();
    ASSERT_TRUE((*e)->Put(0, {1, 10}, "changed after the first crash").ok());
  }  // crash again before the change is flushed
  auto e = Engine::Open(config, testing::TestEngineOptions(absl::Hours(1)));
  ASSERT_TRUE(e.ok()) << e.status();
  auto got = (*e)->Get(0, {1, 10});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->value_or("<missing>"), "changed after the first crash");
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Engine, AbortedTransactionLeavesNoTrace) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path());
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  ASSERT_TRUE((*e)->Put(0, {1, 1}, "kept").ok());
  auto before = *(*e)->Digest(0);
  {
    auto txn = (*e)->Begin();
    ASSERT_TRUE(txn.ok());
    for (uint64_t i = 0; i < 200; ++i) ASSERT_TRUE((*txn)->Put(0, {9, i}, ValueFor(i, 5000)).ok());
    ASSERT_TRUE((*txn)->Delete(0, {1, 1}).ok());
    EXPECT_TRUE((*(*txn)->Get(0, {9, 3})).has_value());  // visible inside
    (*txn)->Abort();
  }
  EXPECT_EQ(*(*e)->Digest(0), before);
  // Space the aborted transaction took is still free to use.
  ASSERT_TRUE((*e)->Put(0, {2, 2}, ValueFor(2, 5000)).ok());
  ASSERT_TRUE((*e)->Close().ok());
  auto reopened = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(reopened.ok());
  EXPECT_FALSE((*(*reopened)->Get(0, {9, 3})).has_value());
  EXPECT_EQ(**(*reopened)->Get(0, {1, 1}), "kept");
  ASSERT_TRUE((*reopened)->Close().ok());
}

TEST(Engine, StorageGroupSharesOneLogStreamAcrossDatabases) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), /*databases=*/2);
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok());
    auto txn = (*e)->Begin();
    ASSERT_TRUE((*txn)->Put(0, {1, 1}, "in db0").ok());
    ASSERT_TRUE((*txn)->Put(1, {1, 1}, "in db1").ok());
    ASSERT_TRUE((*txn)->Commit().ok());
    PutMany(**e, 1, 5, 0, 300, 400);
  }  // crash
  auto h0 = ReadDbHeaderFromPath(dir.Sub("db0.edb"));
  auto h1 = ReadDbHeaderFromPath(dir.Sub("db1.edb"));
  EXPECT_EQ(h0->header.log_signature, h1->header.log_signature);
  EXPECT_NE(h0->header.db_signature, h1->header.db_signature);
  auto logs = ListLogStream(dir.path(), "E00");
  ASSERT_TRUE(logs.ok());
  EXPECT_TRUE(logs->current.has_value());
  auto e = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(**(*e)->Get(0, {1, 1}), "in db0");
  EXPECT_EQ(**(*e)->Get(1, {1, 1}), "in db1");
  ExpectMany(**e, 1, 5, 0, 300, 400);
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Engine, LogsRollWithContiguousLinkedGenerations) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  PutMany(**e, 0, 1, 0, 400, 1500);
  ASSERT_TRUE((*e)->RollLog().ok());
  ASSERT_TRUE((*e)->Close().ok());
  auto logs = ListLogStream(dir.path(), "E00");
  ASSERT_TRUE(logs.ok());
  ASSERT_GT(logs->closed.size(), 5u);
  EXPECT_FALSE(logs->FirstGap().has_value());
  std::optional<Sha256Digest> prev;
  for (const auto& [gen, path] : logs->closed) {
    auto scan = ScanLogFile(path);
    ASSERT_TRUE(scan.ok()) << scan.status();
    EXPECT_TRUE(CheckClosedLog(*scan).ok());
    EXPECT_EQ(scan->header.generation, gen);
    if (prev) {
      EXPECT_TRUE(scan->header.has_prev_link);
      EXPECT_EQ(scan->header.prev_link, *prev) << "generation " << gen;
    }
    prev = scan->file_hash;
  }
}

TEST(Engine, ARollOrFreezeWaitingWhileTheUnitClosesDoesNotRecreateTheClosedLog) {
  // A dismount's Close and a replica's seed (RollLog) or a backup's Freeze
  // can meet on the writer lock. A roll that ran after the close created
  // the closed generation's file anew, over its records (mailstored_test's
  // MountState flake). Each round holds the writer lock, queues both on it
  // (in either order: the first waiter usually gets it first), then lets
  // go; the log must scan whole whichever went first.
  int closed_first = 0;
  for (int round = 0; round < 8; ++round) {
    TempDir dir("close_race");
    auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
    {
      auto e = Engine::Create(config, testing::TestEngineOptions());
      ASSERT_TRUE(e.ok()) << e.status();
      PutMany(**e, 0, 1, 0, 40, 500);
      auto held = (*e)->Begin();  // holds the writer lock
      ASSERT_TRUE(held.ok()) << held.status();
      absl::Status rolled;
      auto roll = [&] {
        if (round % 4 < 2) {
          rolled = (*e)->RollLog();
        } else if (auto frozen = (*e)->Freeze(); frozen.ok()) {
          rolled = (*e)->Thaw();
        } else {
          rolled = frozen.status();
        }
      };
      auto close = [&] { EXPECT_TRUE((*e)->Close().ok()); };
      const bool close_queues_first = round % 2 == 1;
      std::thread first(close_queues_first ? std::function<void()>(close) : roll);
      absl::SleepFor(absl::Milliseconds(30));
      std::thread second(close_queues_first ? std::function<void()>(roll) : close);
      absl::SleepFor(absl::Milliseconds(30));
      (*held)->Abort();
      held->reset();
      first.join();
      second.join();
      if (!rolled.ok()) ++closed_first;
    }
    auto logs = ListLogStream(dir.path(), "E00");
    ASSERT_TRUE(logs.ok()) << logs.status();
    std::vector<std::string> files;
    for (const auto& [gen, path] : logs->closed) files.push_back(path);
    if (logs->current) files.push_back(*logs->current);
    for (const std::string& path : files) {
      auto scan = ScanLogFile(path);
      EXPECT_TRUE(scan.ok()) << "round " << round << ": " << scan.status();
    }
    auto reopened = Engine::Open(config, testing::TestEngineOptions());
    ASSERT_TRUE(reopened.ok()) << "round " << round << ": " << reopened.status();
    ExpectMany(**reopened, 0, 1, 0, 40, 500);
    ASSERT_TRUE((*reopened)->Close().ok());
  }
  // The race was run: in some rounds the close went first.
  EXPECT_GT(closed_first, 0);
}

TEST(Engine, AFailedCloseTakesTheUnitOfflineAndANewOpenRecoversEverything) {
  // A step after the Term fails (here once the log is closed): Close says
  // so and the unit is offline and closed (before, a second Close appended
  // a second Term to the closed log, which now refuses it), and the unit's
  // lock is released, so that an open recovers every item from the logs.
  TempDir dir("close_fails");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok()) << e.status();
    PutMany(**e, 0, 1, 0, 40, 500);
    ASSERT_TRUE(ConfigureFailPoint("engine.close.after_log_closed").ok());
    const absl::Status first = (*e)->Close();
    ASSERT_TRUE(ConfigureFailPoint("").ok());
    EXPECT_FALSE(first.ok());
    EXPECT_NE(first.message().find("engine.close.after_log_closed"), std::string::npos) << first;
    // Closed, offline: a second Close has nothing left to do.
    EXPECT_TRUE((*e)->Close().ok());
    EXPECT_NE((*e)->health().message().find("unit u1 is offline"), std::string::npos)
        << (*e)->health();
  }
  auto reopened = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  ExpectMany(**reopened, 0, 1, 0, 40, 500);
  ASSERT_TRUE((*reopened)->Close().ok());
}

TEST(Engine, CircularLoggingDeletesLogsBelowTheCheckpoint) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10, /*circular=*/true);
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  for (int round = 0; round < 10; ++round) {
    PutMany(**e, 0, round, 0, 60, 2000);
    ASSERT_TRUE((*e)->FlushNow().ok());
  }
  auto logs = ListLogStream(dir.path(), "E00");
  ASSERT_TRUE(logs.ok());
  const Generation checkpoint_gen = (*e)->stats().checkpoint.generation;
  EXPECT_GT((*e)->current_generation(), 10u);
  for (const auto& [gen, path] : logs->closed) EXPECT_GE(gen, checkpoint_gen) << path;
  EXPECT_LE(logs->closed.size(), 2u);
  ASSERT_TRUE((*e)->Close().ok());
  auto reopened = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  ExpectMany(**reopened, 0, 9, 0, 60, 2000);
  ASSERT_TRUE((*reopened)->Close().ok());
}

TEST(Engine, SmallChangeDirtiesFewPagesAndLogsFewBytes) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), 1, 1 << 20);
  // The lazy writer runs only when the test says, so the epoch is fixed.
  auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1)));
  ASSERT_TRUE(e.ok());
  PutMany(**e, 0, 1, 0, 5000, 300);
  ASSERT_TRUE((*e)->FlushNow().ok());
  // The first change of a page after a flush is logged as an image
  // (full-page writes, so that a torn page can be rebuilt).
  EngineStats before = (*e)->stats();
  ASSERT_TRUE((*e)->Put(0, {1, 2500}, ValueFor(77, 300)).ok());
  EngineStats after = (*e)->stats();
  EXPECT_EQ(after.pages_logged_delta, before.pages_logged_delta);
  EXPECT_GE(after.pages_logged_image - before.pages_logged_image, 1u);
  // Later changes in the same epoch are deltas of a few hundred bytes.
  before = after;
  ASSERT_TRUE((*e)->Put(0, {1, 2501}, ValueFor(78, 300)).ok());  // replaced in place
  after = (*e)->stats();
  const uint64_t pages = (after.pages_logged_delta + after.pages_logged_image) -
                         (before.pages_logged_delta + before.pages_logged_image);
  EXPECT_LE(pages, 2u);  // the leaf, and the meta page if the size changed
  EXPECT_EQ(after.pages_logged_image, before.pages_logged_image);
  EXPECT_LT(after.log_bytes - before.log_bytes, 1200u);
  ASSERT_TRUE((*e)->Close().ok());
}

// A page torn on disk (a kill between the 4 KiB halves of its write, or a
// power loss) is rebuilt by recovery from the image logged after the
// checkpoint. The test builds the exact state a kill in the middle of a
// flush leaves: every page that flush changed torn (new first half, old
// second half) and the checkpoint of the cycle before.
TEST(Engine, TornPagesOfAnInterruptedFlushAreRebuiltFromTheLog) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), 1, 1 << 20);
  Sha256Digest expected;
  std::string before_db, before_chk;
  {
    auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1)));
    ASSERT_TRUE(e.ok());
    PutMany(**e, 0, 1, 0, 300, 300);
    ASSERT_TRUE((*e)->FlushNow().ok());
    before_db = *ReadFileToString(dir.Sub("db0.edb"));
    before_chk = *ReadFileToString(dir.Sub("E00.chk"));
    for (uint64_t i = 0; i < 300; i += 7) {
      ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i + 5000, 200 + i)).ok());
    }
    // New pages at the end of the file, too.
    ASSERT_TRUE((*e)->Put(0, {2, 1}, ValueFor(42, 100000)).ok());
    expected = *(*e)->Digest(0);
    ASSERT_TRUE((*e)->FlushNow().ok());
  }  // crash
  std::string after_db = *ReadFileToString(dir.Sub("db0.edb"));
  ASSERT_EQ(after_db.size() % 8192, 0u);
  // A kill in the middle of the flush: the header still names the previous
  // checkpoint (it moves only after the pages are written and synced).
  std::string torn = after_db;
  torn.replace(0, 2 * 8192, before_db.substr(0, 2 * 8192));
  int torn_pages = 0;
  for (size_t p = kFirstSpaceMapPage - 2; p * 8192 < after_db.size(); ++p) {
    const size_t off = p * 8192;
    const std::string old_page =
        off < before_db.size() ? before_db.substr(off, 8192) : std::string(8192, '\0');
    if (old_page == after_db.substr(off, 8192)) continue;
    torn.replace(off + 4096, 4096, old_page.substr(4096));
    torn_pages++;
  }
  ASSERT_GT(torn_pages, 3);
  // The last page, written past the old end of the file, is cut in half.
  ASSERT_GT(after_db.size(), before_db.size());
  torn.resize(torn.size() - 4096);
  ASSERT_TRUE(WriteFileAtomically(dir.Sub("db0.edb"), torn).ok());
  ASSERT_TRUE(WriteFileAtomically(dir.Sub("E00.chk"), before_chk).ok());

  auto e = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(*(*e)->Digest(0), expected);
  ASSERT_TRUE((*e)->Close().ok());
}

// Full-page writes rely on the checkpoint being exactly the cycle's redo
// point R, even while commits run during the cycle: a checkpoint earlier
// than R could fall between a page's image and a later delta.
TEST(Engine, CheckpointIsTheRedoPointEvenUnderConcurrentCommits) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), 1, 256 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1)));
  ASSERT_TRUE(e.ok());
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (uint64_t t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (uint64_t i = 0; !stop; ++i) {
        ASSERT_TRUE((*e)->Put(0, {t, i % 500}, ValueFor(i, 100 + i % 3000)).ok());
      }
    });
  }
  for (int cycle = 0; cycle < 30; ++cycle) {
    absl::SleepFor(absl::Milliseconds(10));
    ASSERT_TRUE((*e)->FlushNow().ok());
    const EngineStats s = (*e)->stats();
    EXPECT_EQ(s.checkpoint, s.last_redo_point) << "cycle " << cycle;
  }
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Engine, ConcurrentWritersAllCommit) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path(), 1, 256 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] { PutMany(**e, 0, 100 + t, 0, 200, 500); });
  }
  // A reader alongside the writers always sees whole items.
  std::thread reader([&] {
    for (int i = 0; i < 200; ++i) {
      auto got = (*e)->Get(0, {100, static_cast<uint64_t>(i)});
      ASSERT_TRUE(got.ok());
      if (got->has_value()) {
        ASSERT_EQ(**got, ValueFor(100 * 1000003 + i, 500 + i % 97));
      }
    }
  });
  for (auto& t : threads) t.join();
  reader.join();
  for (uint64_t t = 0; t < 4; ++t) ExpectMany(**e, 0, 100 + t, 0, 200, 500);
  EXPECT_EQ((*e)->Meta(0)->item_count, 800u);
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Engine, DamagedPageIsReportedByFileAndPage) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path());
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok());
    PutMany(**e, 0, 1, 0, 2000, 100);
    ASSERT_TRUE((*e)->Close().ok());
  }
  // Flip one byte in the middle of page 10.
  {
    auto f = File::Open(dir.Sub("db0.edb"), O_RDWR);
    ASSERT_TRUE(f.ok());
    char byte;
    ASSERT_TRUE(f->ReadAt(10 * 8192 + 4000, &byte, 1).ok());
    byte ^= 1;
    ASSERT_TRUE(f->WriteAt(10 * 8192 + 4000, &byte, 1).ok());
  }
  auto e = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  absl::Status first_error;
  for (uint64_t i = 0; i < 2000 && first_error.ok(); ++i) {
    first_error = (*e)->Get(0, {1, i}).status();
  }
  EXPECT_EQ(first_error.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(first_error.message().find("db0.edb"), std::string::npos) << first_error;
  EXPECT_NE(first_error.message().find("page 10 "), std::string::npos) << first_error;
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Engine, BadConfigurationNamesTheField) {
  TempDir dir("engine");
  auto config = MakeUnitConfig(dir.path());
  config.set_page_size(6000);
  config.set_log_prefix("E-0");
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("field 'page_size'"), std::string::npos) << e.status();
  EXPECT_NE(e.status().message().find("field 'log_prefix'"), std::string::npos) << e.status();
  auto two = MakeUnitConfig(dir.path(), 2);
  two.set_mode(dagvault::v1::UnitConfig::DATABASE);
  e = Engine::Create(two, testing::TestEngineOptions());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("exactly one database"), std::string::npos) << e.status();
}

}  // namespace
}  // namespace dagvault::mailstore
