// A passive copy fed the active's closed logs: seeding from a copy taken
// while writes run, replay to the same digest, lag, divergence, refusals,
// and a replay killed half-way.
#include "mailstore/engine/replica.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/engine/recovery.h"
#include "mailstore/format/checkpoint.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;
using testing::MakeUnitConfig;
using testing::OfflineDigest;
using testing::ValueFor;
namespace fs = std::filesystem;

std::string FuzzyCopy(const std::string& path) {
  auto f = File::OpenReadOnly(path);
  EXPECT_TRUE(f.ok()) << f.status();
  std::string out(1 << 20, '\0');
  auto first = f->ReadAtMost(0, out.data(), out.size());
  EXPECT_TRUE(first.ok());
  const uint64_t size = std::max<uint64_t>(*f->Size(), *first);
  out.resize(std::max<uint64_t>(size, out.size()));
  for (uint64_t offset = *first; offset < size;) {
    auto n = f->ReadAtMost(offset, out.data() + offset, size - offset);
    EXPECT_TRUE(n.ok());
    if (*n == 0) break;
    offset += *n;
  }
  out.resize(size);
  return out;
}

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    active_config_ = MakeUnitConfig(dir_.Sub("active"), 1, 64 << 10);
    passive_config_ = MakeUnitConfig(dir_.Sub("passive"), 1, 64 << 10);
    fs::create_directories(dir_.Sub("passive"));
  }

  std::string ActiveLog(Generation g) { return dir_.Sub("active/" + LogFileName("E00", g)); }

  // Ships generation g as the replication service would: copied under a
  // temporary name next to the passive's logs, then accepted.
  absl::Status Ship(Replica& replica, Generation g) {
    const std::string incoming = dir_.Sub("passive/E00incoming.tmp");
    fs::copy_file(ActiveLog(g), incoming, fs::copy_options::overwrite_existing);
    return replica.Accept(incoming);
  }

  // Seeds the passive with a plain copy of a closed active's files.
  void SeedFromClosedActive() {
    fs::copy_file(dir_.Sub("active/db0.edb"), dir_.Sub("passive/db0.edb"));
    for (const auto& e : fs::directory_iterator(dir_.Sub("active"))) {
      if (ParseLogFileName("E00", e.path().filename().string())) {
        fs::copy_file(e.path(), dir_.Sub("passive/" + e.path().filename().string()));
      }
    }
  }

  // A closed, sealed active seeded to the passive; then `items` written on
  // the reopened active, its generation closed, and every closed
  // generation shipped to the passive (not replayed).
  void WriteAndShip(uint64_t items) {
    {
      auto created = Engine::Create(active_config_, testing::TestEngineOptions());
      ASSERT_TRUE(created.ok());
      ASSERT_TRUE((*created)->Close(/*seal_log=*/true).ok());
    }
    SeedFromClosedActive();
    auto replica = Replica::Open(passive_config_);
    ASSERT_TRUE(replica.ok()) << replica.status();
    replica_ = std::move(*replica);
    auto active = Engine::Open(active_config_, testing::TestEngineOptions());
    ASSERT_TRUE(active.ok()) << active.status();
    active_ = std::move(*active);
    for (uint64_t i = 0; i < items; ++i)
      ASSERT_TRUE(active_->Put(0, {1, i}, ValueFor(i, 3000)).ok());
    ASSERT_TRUE(active_->RollLog().ok());
    last_ = active_->current_generation() - 1;
    for (Generation g = replica_->last_inspected() + 1; g <= last_; ++g)
      ASSERT_TRUE(Ship(*replica_, g).ok()) << g;
  }

  TempDir dir_{"replica"};
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<Engine> active_;
  Generation last_ = 0;
  dagvault::v1::UnitConfig active_config_, passive_config_;
};

TEST_F(ReplicaTest, SeededFromAFuzzyCopyTakenDuringWritesItReachesTheActivesDigest) {
  auto active = Engine::Create(active_config_, testing::TestEngineOptions(absl::Milliseconds(15)));
  ASSERT_TRUE(active.ok());
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (uint64_t t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      for (uint64_t i = 0; !stop; ++i) {
        ASSERT_TRUE(
            (*active)->Put(0, {t, i % 300}, ValueFor(i * 7 + t, 100 + (i * 131) % 9000)).ok());
        if (i % 5 == 0) (void)(*active)->Delete(0, {t, (i * 3) % 300});
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(150));
  // The seed: the database read front to back while it changes, its
  // header before its size (as the replication service streams it: pages
  // appended after a size taken first could be flushed, and the checkpoint
  // moved past them, before the header is read).
  ASSERT_TRUE(
      WriteFileAtomically(dir_.Sub("passive/db0.edb"), FuzzyCopy(dir_.Sub("active/db0.edb"))).ok());
  ASSERT_TRUE((*active)->RollLog().ok());
  const Generation closed = (*active)->current_generation() - 1;
  const Lsn from = ReadDbHeaderFromPath(dir_.Sub("passive/db0.edb"))->header.checkpoint;
  for (Generation g = from.generation; g <= closed; ++g) {
    fs::copy_file(ActiveLog(g), dir_.Sub("passive/" + LogFileName("E00", g)));
  }
  auto replica = Replica::Open(passive_config_);
  ASSERT_TRUE(replica.ok()) << replica.status();
  EXPECT_EQ((*replica)->last_inspected(), closed);
  ASSERT_TRUE((*replica)->Replay().ok());
  EXPECT_EQ((*replica)->last_replayed(), closed);

  absl::SleepFor(absl::Milliseconds(150));
  stop = true;
  for (auto& w : writers) w.join();
  ASSERT_TRUE((*active)->RollLog().ok());
  const Generation last = (*active)->current_generation() - 1;
  const Sha256Digest expected = *(*active)->Digest(0);
  for (Generation g = closed + 1; g <= last; ++g) ASSERT_TRUE(Ship(**replica, g).ok()) << g;
  auto replayed = (*replica)->Replay();
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(*replayed, static_cast<int>(last - closed));
  ASSERT_TRUE((*replica)->Close().ok());
  EXPECT_EQ(OfflineDigest(dir_.Sub("passive/db0.edb")), expected);
  ASSERT_TRUE((*active)->Close().ok());
}

TEST_F(ReplicaTest, LaggedCopyHoldsInspectedLogsForItsLag) {
  {
    auto active = Engine::Create(active_config_, testing::TestEngineOptions());
    ASSERT_TRUE(active.ok());
    ASSERT_TRUE((*active)->Close(/*seal_log=*/true).ok());
  }
  SeedFromClosedActive();
  FakeClock clock;
  ReplicaOptions options;
  options.replay_lag = absl::Hours(1);
  options.clock = &clock;
  auto replica = Replica::Open(passive_config_, options);
  ASSERT_TRUE(replica.ok()) << replica.status();
  ASSERT_TRUE((*replica)->Replay().ok());  // the seed's own logs are due at once
  auto active = Engine::Open(active_config_, testing::TestEngineOptions());
  ASSERT_TRUE(active.ok());
  for (uint64_t i = 0; i < 50; ++i) ASSERT_TRUE((*active)->Put(0, {1, i}, ValueFor(i, 3000)).ok());
  ASSERT_TRUE((*active)->RollLog().ok());
  const Generation last = (*active)->current_generation() - 1;
  for (Generation g = (*replica)->last_inspected() + 1; g <= last; ++g) {
    ASSERT_TRUE(Ship(**replica, g).ok());
  }
  EXPECT_EQ((*replica)->last_inspected(), last);
  EXPECT_EQ(*(*replica)->Replay(), 0);  // inspected, held for the lag
  clock.Advance(absl::Minutes(59));
  EXPECT_EQ(*(*replica)->Replay(), 0);
  clock.Advance(absl::Minutes(2));
  EXPECT_GT(*(*replica)->Replay(), 0);
  EXPECT_EQ((*replica)->last_replayed(), last);
  ASSERT_TRUE((*active)->Close().ok());
}

TEST_F(ReplicaTest, RefusesGapsForeignStreamsAndDivergedLogsAndAcceptsRepeats) {
  {
    auto active = Engine::Create(active_config_, testing::TestEngineOptions());
    ASSERT_TRUE(active.ok());
    ASSERT_TRUE((*active)->Close(/*seal_log=*/true).ok());
  }
  SeedFromClosedActive();
  fs::copy(dir_.Sub("active"), dir_.Sub("twin"), fs::copy_options::recursive);
  auto replica = Replica::Open(passive_config_);
  ASSERT_TRUE(replica.ok()) << replica.status();
  // The active goes on, and so does a twin with the same history: after
  // this point their streams differ, as after a lossy failover.
  auto active = Engine::Open(active_config_, testing::TestEngineOptions());
  auto twin =
      Engine::Open(MakeUnitConfig(dir_.Sub("twin"), 1, 64 << 10), testing::TestEngineOptions());
  ASSERT_TRUE(active.ok() && twin.ok());
  for (uint64_t i = 0; i < 60; ++i) {
    ASSERT_TRUE((*active)->Put(0, {1, i}, ValueFor(i, 3000)).ok());
    ASSERT_TRUE((*twin)->Put(0, {1, i}, ValueFor(i + 1, 3000)).ok());
  }
  ASSERT_TRUE((*active)->RollLog().ok());
  ASSERT_TRUE((*twin)->RollLog().ok());
  const Generation next = (*replica)->last_inspected() + 1;

  // A gap.
  fs::copy_file(ActiveLog(next + 1), dir_.Sub("passive/E00incoming.tmp"));
  absl::Status gap = (*replica)->Accept(dir_.Sub("passive/E00incoming.tmp"));
  EXPECT_EQ(gap.code(), absl::StatusCode::kNotFound) << gap;
  EXPECT_NE(gap.message().find("comes first"), std::string::npos) << gap;
  // The twin's generation: same signature, but its link does not join.
  fs::copy_file(dir_.Sub("twin/" + LogFileName("E00", next + 0)),
                dir_.Sub("passive/E00incoming.tmp"), fs::copy_options::overwrite_existing);
  ASSERT_TRUE(Ship(**replica, next).ok());  // the active's own next is fine
  fs::copy_file(dir_.Sub("twin/" + LogFileName("E00", next + 1)),
                dir_.Sub("passive/E00incoming.tmp"), fs::copy_options::overwrite_existing);
  absl::Status diverged = (*replica)->Accept(dir_.Sub("passive/E00incoming.tmp"));
  ASSERT_FALSE(diverged.ok());
  EXPECT_EQ(DivergedAt(diverged), next + 1) << diverged;
  EXPECT_NE(diverged.message().find("diverged"), std::string::npos) << diverged;
  // The same generation twice is harmless.
  EXPECT_TRUE(Ship(**replica, next).ok());
  EXPECT_EQ((*replica)->last_inspected(), next);

  // A stream of another unit.
  auto other =
      Engine::Create(MakeUnitConfig(dir_.Sub("other"), 1, 64 << 10), testing::TestEngineOptions());
  ASSERT_TRUE(other.ok());
  while ((*other)->current_generation() <= next + 1) ASSERT_TRUE((*other)->RollLog().ok());
  fs::copy_file(dir_.Sub("other/" + LogFileName("E00", next + 1)),
                dir_.Sub("passive/E00incoming.tmp"), fs::copy_options::overwrite_existing);
  absl::Status foreign = (*replica)->Accept(dir_.Sub("passive/E00incoming.tmp"));
  EXPECT_NE(foreign.message().find("belongs to log stream"), std::string::npos) << foreign;
  for (auto* e : {&active, &twin, &other}) ASSERT_TRUE((**e)->Close().ok());
}

TEST_F(ReplicaTest, OldActiveWithAnOpenLogCannotReplay) {
  {
    auto active = Engine::Create(active_config_, testing::TestEngineOptions());
    ASSERT_TRUE(active.ok());
    ASSERT_TRUE((*active)->Put(0, {1, 1}, "x").ok());
  }  // crashed: E00.log stays open
  auto replica = Replica::Open(active_config_);
  ASSERT_FALSE(replica.ok());
  EXPECT_NE(replica.status().message().find("without a reseed"), std::string::npos)
      << replica.status();
}

// A replay killed while writing pages (one torn in place) resumes after a
// restart and reaches the same digest.
TEST_F(ReplicaTest, ReplayKilledMidWriteResumesAfterARestart) {
  Sha256Digest expected;
  Generation last;
  {
    auto active = Engine::Create(active_config_, testing::TestEngineOptions());
    ASSERT_TRUE(active.ok());
    ASSERT_TRUE((*active)->Close(/*seal_log=*/true).ok());
  }
  SeedFromClosedActive();
  {
    auto active = Engine::Open(active_config_, testing::TestEngineOptions());
    ASSERT_TRUE(active.ok());
    for (uint64_t i = 0; i < 400; ++i) {
      ASSERT_TRUE((*active)->Put(0, {i % 4, i}, ValueFor(i, 500 + (i * 37) % 6000)).ok());
    }
    ASSERT_TRUE((*active)->RollLog().ok());
    last = (*active)->current_generation() - 1;
    expected = *(*active)->Digest(0);
    ASSERT_TRUE((*active)->Close().ok());
  }
  {
    auto replica = Replica::Open(passive_config_);
    ASSERT_TRUE(replica.ok());
    for (Generation g = (*replica)->last_inspected() + 1; g <= last; ++g) {
      ASSERT_TRUE(Ship(**replica, g).ok());
    }
  }
  for (int hit : {2, 7}) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (!ConfigureCrashPoint("edb.write.torn@" + std::to_string(hit)).ok()) _exit(3);
      auto replica = Replica::Open(passive_config_);
      if (!replica.ok()) _exit(4);
      (void)(*replica)->Replay();
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the replay was not killed at page write " << hit;
  }
  auto replica = Replica::Open(passive_config_);
  ASSERT_TRUE(replica.ok()) << replica.status();
  ASSERT_TRUE((*replica)->Replay().ok());
  EXPECT_EQ((*replica)->last_replayed(), last);
  ASSERT_TRUE((*replica)->Close().ok());
  EXPECT_EQ(OfflineDigest(dir_.Sub("passive/db0.edb")), expected);
}

TEST_F(ReplicaTest, TruncateKeepsWhatIsNotReplayed) {
  ASSERT_NO_FATAL_FAILURE(WriteAndShip(80));
  auto nothing = replica_->Truncate(last_);  // nothing replayed yet past the seed
  ASSERT_TRUE(nothing.ok());
  for (Generation g : *nothing) EXPECT_LT(g, replica_->replay_position().generation);
  ASSERT_TRUE(replica_->Replay().ok());
  auto deleted = replica_->Truncate(last_);
  ASSERT_TRUE(deleted.ok());
  ASSERT_FALSE(deleted->empty());
  // Everything replayed may go but the last generation, which activation
  // (and a backup of this copy) still reads.
  EXPECT_EQ(deleted->back(), last_ - 1);
  EXPECT_TRUE(PathExists(dir_.Sub("passive/" + LogFileName("E00", last_))));
  ASSERT_TRUE(replica_->CloseForActivation().ok());
  ASSERT_TRUE(active_->Close().ok());
}

// Generations replay in batches; one that fails part-way (here: a later
// generation of the batch damaged on disk after it was accepted) leaves the
// replica where the batch began, and a retry replays the whole batch.
TEST_F(ReplicaTest, AReplayThatFailsPartWayIsRetriedWhole) {
  ASSERT_NO_FATAL_FAILURE(WriteAndShip(80));
  const Generation first = replica_->last_replayed() + 1;
  ASSERT_GE(last_, first + 1) << "the test needs a batch of two generations or more";
  const std::string path = dir_.Sub("passive/" + LogFileName("E00", last_));
  const std::string good = *ReadFileToString(path);
  std::string damaged = good;
  damaged[kLogHeaderSize + 100] ^= 0x5a;
  ASSERT_TRUE(WriteFileAtomically(path, damaged).ok());
  auto failed = replica_->Replay();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(replica_->last_replayed(), first - 1);

  ASSERT_TRUE(WriteFileAtomically(path, good).ok());
  auto replayed = replica_->Replay();
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(replica_->last_replayed(), last_);
  const Sha256Digest expected = *active_->Digest(0);
  ASSERT_TRUE(replica_->Close().ok());
  ASSERT_TRUE(active_->Close().ok());
  EXPECT_EQ(OfflineDigest(dir_.Sub("passive/db0.edb")), expected);
}

// A backup of a passive copy holds its databases, whose replay position is
// the first record of the generation after the last one it replayed, and
// the logs through that one. Recovery walks the last log, replays nothing,
// and leaves the databases consistent at its end.
TEST_F(ReplicaTest, APassiveCopysFilesRecoverWithNothingLeftToReplay) {
  ASSERT_NO_FATAL_FAILURE(WriteAndShip(60));
  const Generation last = last_;
  ASSERT_TRUE(replica_->Replay().ok());
  ASSERT_EQ(replica_->replay_position(), (Lsn{last + 1, kLogHeaderSize}));
  // Its checkpoint file says the same, as an active copy's would.
  auto chk = ReadCheckpointFile(dir_.Sub("passive/E00.chk"));
  ASSERT_TRUE(chk.ok()) << chk.status();
  EXPECT_EQ(chk->checkpoint.position, replica_->replay_position());
  EXPECT_EQ(chk->checkpoint.log_signature, replica_->log_signature());
  const Sha256Digest expected = *active_->Digest(0);
  ASSERT_TRUE(replica_->Close().ok());
  ASSERT_TRUE(active_->Close().ok());

  // The backup: the database and the logs from the replay position's
  // generation down to the seed's, as the Replication writer lists them.
  fs::create_directories(dir_.Sub("restore"));
  fs::copy_file(dir_.Sub("passive/db0.edb"), dir_.Sub("restore/db0.edb"));
  fs::copy_file(dir_.Sub("passive/E00.chk"), dir_.Sub("restore/E00.chk"));
  for (Generation g = 1; g <= last; ++g) {
    const std::string name = LogFileName("E00", g);
    if (PathExists(dir_.Sub("passive/" + name)))
      fs::copy_file(dir_.Sub("passive/" + name), dir_.Sub("restore/" + name));
  }
  auto report =
      Recover(testing::RequestFor(dir_.Sub("restore"), dir_.Sub("restore"), dir_.Sub("restore")));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->last_generation, last);
  EXPECT_EQ(report->records_applied, 0u);
  auto header = ReadDbHeaderFromPath(dir_.Sub("restore/db0.edb"));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->header.state, DbState::kCleanShutdown);
  EXPECT_EQ(header->header.consistent_lsn.generation, last);
  EXPECT_EQ(OfflineDigest(dir_.Sub("restore/db0.edb")), expected);
}

}  // namespace
}  // namespace dagvault::mailstore
