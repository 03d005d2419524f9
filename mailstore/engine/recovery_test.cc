// Hard recovery from "restored" files: a copy of the databases plus logs,
// replayed to a chosen generation, and every way such a set can be wrong.
#include "mailstore/engine/recovery.h"

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/format/edb_header.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;
using testing::MakeUnitConfig;
using testing::OfflineDigest;
using testing::RequestFor;
using testing::ValueFor;
namespace fs = std::filesystem;

uint64_t FileHash(const std::string& path) {
  auto data = ReadFileToString(path);
  return std::hash<std::string>()(*data);
}

void CopyLogs(const std::string& from, const std::string& to, Generation up_to = kMaxGeneration) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    const std::string name = entry.path().filename().string();
    auto gen = ParseLogFileName("E00", name);
    if (gen && *gen <= up_to) fs::copy_file(entry.path(), fs::path(to) / name);
  }
}

// A unit that has lived through several generations, with the digest the
// database had when each generation closed, and a base copy of the .edb.
class HistoryTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    config_ = MakeUnitConfig(dir_.Sub("live"), 1, 64 << 10);
    auto e = Engine::Create(config_, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    Write(0);
    const bool dirty_base = GetParam();
    if (dirty_base) {
      // The base is copied from a running unit after a flush, as a
      // snapshot is: its header says DirtyShutdown.
      ASSERT_TRUE(engine_->FlushNow().ok());
    } else {
      ASSERT_TRUE(engine_->Close().ok());
    }
    fs::create_directories(dir_.Sub("base"));
    fs::copy_file(dir_.Sub("live/db0.edb"), dir_.Sub("base/db0.edb"));
    if (!dirty_base) {
      auto e2 = Engine::Open(config_, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
      ASSERT_TRUE(e2.ok()) << e2.status();
      engine_ = std::move(*e2);
    }
    for (int round = 1; round <= 5; ++round) {
      Write(round);
      ASSERT_TRUE(engine_->RollLog().ok());
      const Generation closed = engine_->current_generation() - 1;
      digests_[closed] = *engine_->Digest(0);
    }
    final_digest_ = *engine_->Digest(0);
    ASSERT_TRUE(engine_->Close().ok());
    engine_.reset();
  }

  void Write(int round) {
    for (uint64_t i = 0; i < 80; ++i) {
      const uint64_t item = (round * 37 + i) % 150;  // overwrites earlier rounds
      ASSERT_TRUE(engine_->Put(0, {1, item}, ValueFor(round * 1000 + i, 300 + (i % 5) * 900)).ok());
    }
    for (uint64_t i = 0; i < 10; ++i) (void)engine_->Delete(0, {1, (round * 11 + i) % 150});
  }

  // A restore folder: the base .edb and the live logs (optionally filtered).
  std::string Restore(const std::string& name, Generation logs_up_to = kMaxGeneration) {
    const std::string r = dir_.Sub(name);
    fs::create_directories(r);
    fs::copy_file(dir_.Sub("base/db0.edb"), r + "/db0.edb");
    CopyLogs(dir_.Sub("live"), r + "/logs", logs_up_to);
    return r;
  }

  RecoveryRequest Request(const std::string& r, std::optional<Generation> to = std::nullopt) {
    RecoveryRequest req = RequestFor(r, r + "/logs", r);
    req.to_generation = to;
    return req;
  }

  TempDir dir_{"recovery"};
  dagvault::v1::UnitConfig config_;
  std::unique_ptr<Engine> engine_;
  std::map<Generation, Sha256Digest> digests_;
  Sha256Digest final_digest_;
};

TEST_P(HistoryTest, HardRecoveryToEachGenerationGivesTheDigestAtThatGeneration) {
  int n = 0;
  for (const auto& [gen, digest] : digests_) {
    const std::string r = Restore(absl::StrCat("r", n++));
    auto report = Recover(Request(r, gen));
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->last_generation, gen);
    EXPECT_EQ(OfflineDigest(r + "/db0.edb"), digest) << "generation " << gen;
    auto header = ReadDbHeaderFromPath(r + "/db0.edb");
    EXPECT_EQ(header->header.state, DbState::kCleanShutdown);
  }
}

TEST_P(HistoryTest, HardRecoveryToTheEndGivesTheFinalDigestAndIsRepeatable) {
  const std::string r = Restore("all");
  auto report = Recover(Request(r));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->records_applied, 0u);
  EXPECT_EQ(OfflineDigest(r + "/db0.edb"), final_digest_);
  // Running it again changes nothing: every record is already in its page.
  auto again = Recover(Request(r));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->records_applied, 0u);
  EXPECT_EQ(OfflineDigest(r + "/db0.edb"), final_digest_);
}

TEST_P(HistoryTest, MissingGenerationIsRefusedByNameAndNothingIsWritten) {
  const std::string r = Restore("gap");
  const Generation missing = digests_.begin()->first + 1;
  fs::remove(r + "/logs/" + LogFileName("E00", missing));
  const uint64_t before = FileHash(r + "/db0.edb");
  auto report = Recover(Request(r));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(report.status().message().find(LogFileName("E00", missing)), std::string::npos)
      << report.status();
  EXPECT_NE(report.status().message().find("missing"), std::string::npos);
  EXPECT_EQ(FileHash(r + "/db0.edb"), before);
}

TEST_P(HistoryTest, GenerationBeyondTheLogsIsRefused) {
  const std::string r = Restore("beyond");
  auto report = Recover(Request(r, digests_.rbegin()->first + 50));
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("not present"), std::string::npos) << report.status();
}

TEST_P(HistoryTest, OpeningAfterPointInTimeRecoveryRefusesLaterLogs) {
  const std::string r = Restore("pit");
  auto report = Recover(Request(r, digests_.begin()->first));
  ASSERT_TRUE(report.ok()) << report.status();
  auto config = MakeUnitConfig(r, 1, 64 << 10);
  config.set_log_dir(r + "/logs");
  auto e = Engine::Open(config, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("committed after"), std::string::npos) << e.status();
}

INSTANTIATE_TEST_SUITE_P(Base, HistoryTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "DirtySnapshot" : "CleanCopy"; });

TEST(Recovery, DirtyBaseCannotStopBeforeItsRequiredGeneration) {
  TempDir dir("recovery");
  auto config = MakeUnitConfig(dir.Sub("live"), 1, 64 << 10);
  auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
  ASSERT_TRUE(e.ok());
  for (uint64_t i = 0; i < 200; ++i) ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i, 1500)).ok());
  ASSERT_TRUE((*e)->FlushNow().ok());
  const Generation required =
      ReadDbHeaderFromPath(dir.Sub("live/db0.edb"))->header.log_required_max;
  ASSERT_GT(required, 2u);
  fs::create_directories(dir.Sub("r"));
  fs::copy_file(dir.Sub("live/db0.edb"), dir.Sub("r/db0.edb"));
  ASSERT_TRUE((*e)->Close().ok());
  CopyLogs(dir.Sub("live"), dir.Sub("r/logs"));
  RecoveryRequest req = RequestFor("", dir.Sub("r/logs"), dir.Sub("r"));
  req.to_generation = required - 1;
  auto report = Recover(req);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(report.status().message().find("requires the logs up to"), std::string::npos)
      << report.status();
}

// A database file older than the checkpoint file (restored from elsewhere)
// needs logs from before it; soft recovery starts it at the checkpoint its
// own header records.
TEST(Recovery, OlderDatabaseFileIsRecoveredFromItsOwnRequiredLogs) {
  TempDir dir("recovery");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
  Sha256Digest final_digest;
  {
    auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
    ASSERT_TRUE(e.ok());
    for (uint64_t i = 0; i < 50; ++i) ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i, 2000)).ok());
    ASSERT_TRUE((*e)->FlushNow().ok());
    fs::copy_file(dir.Sub("db0.edb"), dir.Sub("old.edb"));
    for (uint64_t i = 50; i < 200; ++i) ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i, 2000)).ok());
    ASSERT_TRUE((*e)->FlushNow().ok());
    final_digest = *(*e)->Digest(0);
  }  // crash
  fs::copy_file(dir.Sub("old.edb"), dir.Sub("db0.edb"), fs::copy_options::overwrite_existing);
  auto report = Recover(RequestFor(dir.path(), dir.path(), dir.path()));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(OfflineDigest(dir.Sub("db0.edb")), final_digest);
}

TEST(Recovery, RunningUnitIsNotRecoveredUnderItsFeet) {
  TempDir dir("recovery");
  auto config = MakeUnitConfig(dir.path());
  auto e = Engine::Create(config, testing::TestEngineOptions());
  ASSERT_TRUE(e.ok());
  auto report = Recover(RequestFor(dir.path(), dir.path(), dir.path()));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(report.status().message().find("in use"), std::string::npos) << report.status();
  ASSERT_TRUE((*e)->Close().ok());
}

TEST(Recovery, DirtyDatabaseWhoseLogsAreGoneIsRefused) {
  TempDir dir("recovery");
  auto config = MakeUnitConfig(dir.path());
  {
    auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1)));
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE((*e)->Put(0, {1, 1}, "x").ok());
    ASSERT_TRUE((*e)->RollLog().ok());
    ASSERT_TRUE((*e)->FlushNow().ok());  // the checkpoint moves into the new generation
    ASSERT_TRUE((*e)->Put(0, {1, 2}, "y").ok());
  }                                // crash
  fs::remove(dir.Sub("E00.log"));  // the current generation is lost
  auto report = Recover(RequestFor(dir.path(), dir.path(), dir.path()));
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(report.status().message().find("requires generation 0x00000002 (E0000000002.log)"),
            std::string::npos)
      << report.status();
}

TEST(Recovery, OpenRefusesAnOpenLogOlderThanTheClosedOnes) {
  TempDir dir("recovery");
  auto config = MakeUnitConfig(dir.path(), 1, 64 << 10);
  {
    auto e = Engine::Create(config, testing::TestEngineOptions());
    ASSERT_TRUE(e.ok());
    for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i, 2000)).ok());
    ASSERT_TRUE((*e)->Close().ok());
  }
  // Someone put an old generation back as the open log.
  fs::copy_file(dir.Sub(LogFileName("E00", 2)), dir.Sub("E00.log"),
                fs::copy_options::overwrite_existing);
  auto e = Engine::Open(config, testing::TestEngineOptions());
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("mixes files from different points in time"),
            std::string::npos)
      << e.status();
}

TEST(Recovery, LogsOfAnotherStreamAreRefused) {
  TempDir dir("recovery");
  for (const char* unit : {"a", "b"}) {
    auto e = Engine::Create(MakeUnitConfig(dir.Sub(unit)),
                            testing::TestEngineOptions(absl::Hours(1), 8 << 20));
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE((*e)->Put(0, {1, 1}, unit).ok());
    ASSERT_TRUE((*e)->Close().ok());
  }
  const uint64_t before = FileHash(dir.Sub("a/db0.edb"));
  auto report = Recover(RequestFor("", dir.Sub("b"), dir.Sub("a")));
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("log signature"), std::string::npos) << report.status();
  EXPECT_NE(report.status().message().find("b/E00"), std::string::npos) << report.status();
  EXPECT_NE(report.status().message().find("(generation 0000000"), std::string::npos)
      << report.status();
  EXPECT_EQ(FileHash(dir.Sub("a/db0.edb")), before);
}

TEST(Recovery, DatabaseWithAnotherSignatureIsRefused) {
  TempDir dir("recovery");
  auto config = MakeUnitConfig(dir.path());
  {
    auto e = Engine::Create(config, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
    ASSERT_TRUE(e.ok());
    ASSERT_TRUE((*e)->Put(0, {1, 1}, "x").ok());
    ASSERT_TRUE((*e)->Close().ok());
  }
  // Same log stream, but a different database: give it a new signature.
  {
    auto f = File::Open(dir.Sub("db0.edb"), O_RDWR);
    ASSERT_TRUE(f.ok());
    auto read = ReadDbHeader(*f);
    ASSERT_TRUE(read.ok());
    DbHeader h = read->header;
    h.db_signature.random[0] ^= 0xff;
    h.state = DbState::kDirtyShutdown;
    h.log_required_min = 1;
    h.log_required_max = 1;
    ASSERT_TRUE(WriteDbHeader(*f, h).ok());
  }
  auto report = Recover(RequestFor("", dir.path(), dir.path()));
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("is not the database this log stream writes to"),
            std::string::npos)
      << report.status();
}

TEST(Recovery, DivergedStreamsAreRefusedAtTheGenerationWhereTheyDiverge) {
  TempDir dir("recovery");
  auto config_a = MakeUnitConfig(dir.Sub("a"), 1, 64 << 10);
  {
    auto e = Engine::Create(config_a, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
    ASSERT_TRUE(e.ok());
    for (uint64_t i = 0; i < 50; ++i) ASSERT_TRUE((*e)->Put(0, {1, i}, ValueFor(i, 800)).ok());
    ASSERT_TRUE((*e)->Close().ok());
  }
  // b is a copy of a; from here the two go separate ways, as after a lossy
  // failover.
  fs::copy(dir.Sub("a"), dir.Sub("b"), fs::copy_options::recursive);
  fs::copy(dir.Sub("a"), dir.Sub("base"), fs::copy_options::recursive);
  auto config_b = MakeUnitConfig(dir.Sub("b"), 1, 64 << 10);
  Generation diverged = 0;
  for (auto* cfg : {&config_a, &config_b}) {
    auto e = Engine::Open(*cfg, testing::TestEngineOptions(absl::Hours(1), 8 << 20));
    ASSERT_TRUE(e.ok()) << e.status();
    diverged = (*e)->current_generation();
    for (uint64_t i = 0; i < 60; ++i) {
      ASSERT_TRUE((*e)->Put(0, {2, i}, ValueFor(i + (cfg == &config_a ? 0 : 999), 800)).ok());
    }
    ASSERT_TRUE((*e)->RollLog().ok());
    ASSERT_TRUE((*e)->Close().ok());
  }
  // Restore: the base, a's logs up to the divergence, b's after it.
  const std::string r = dir.Sub("r");
  fs::create_directories(r);
  fs::copy_file(dir.Sub("base/db0.edb"), r + "/db0.edb");
  CopyLogs(dir.Sub("a"), r + "/logs", diverged);
  for (const auto& entry : fs::directory_iterator(dir.Sub("b"))) {
    auto gen = ParseLogFileName("E00", entry.path().filename().string());
    if (gen && *gen > diverged)
      fs::copy_file(entry.path(), r + "/logs/" + entry.path().filename().string());
  }
  const uint64_t before = FileHash(r + "/db0.edb");
  auto report = Recover(RequestFor("", r + "/logs", r));
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("link hash"), std::string::npos) << report.status();
  EXPECT_NE(report.status().message().find(LogFileName("E00", diverged + 1)), std::string::npos)
      << report.status();
  EXPECT_EQ(FileHash(r + "/db0.edb"), before);
}

}  // namespace
}  // namespace dagvault::mailstore
