// kill -9 of a process writing to mailstore, at random moments and at every
// named crash point; after each kill, soft recovery must give databases that
// `check` passes, holding every acknowledged transaction, and no
// transaction that was aborted or never committed.
//
// DAGVAULT_CRASH_ITERATIONS sets the number of random kills (default 50;
// ./tests/run.sh --long runs 500). DAGVAULT_CRASH_SEED repeats a run.
#include <cstdlib>
#include <iostream>
#include <random>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/mailstore/crash_harness.h"

namespace dagvault::mailstore::testing {
namespace {

int Iterations(int fallback) {
  const char* v = std::getenv("DAGVAULT_CRASH_ITERATIONS");
  return v ? std::atoi(v) : fallback;
}

uint64_t Seed() {
  const char* v = std::getenv("DAGVAULT_CRASH_SEED");
  return v ? std::strtoull(v, nullptr, 10) : static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
}

void RandomKills(const std::string& tag, CrashHarnessOptions options, int iterations) {
  const uint64_t seed = Seed();
  CrashHarness harness(tag, options, seed);
  harness.CreateUnit();
  std::mt19937_64 rng(seed);
  for (int i = 0; i < iterations; ++i) {
    // Mostly mid-run kills; some very early ones land during open and its
    // recovery-related steps.
    const int ms =
        rng() % 8 == 0 ? static_cast<int>(rng() % 40) : 40 + static_cast<int>(rng() % 360);
    harness.RunAndKill(ms);
    ASSERT_NO_FATAL_FAILURE(harness.RecoverCheckAndVerify())
        << "iteration " << i << ", kill after " << ms << " ms";
  }
  harness.CheckAllFiles();
  std::cout << tag << ": " << iterations << " kills, " << harness.acknowledged()
            << " acknowledged transactions verified; of the transactions in flight at a kill, "
            << harness.in_flight_committed() << " were durable and " << harness.in_flight_lost()
            << " were not; " << harness.model_items() << " items at the end" << std::endl;
  EXPECT_GT(harness.acknowledged(), static_cast<uint64_t>(iterations));
}

TEST(CrashRecovery, RandomKillsOfAStorageGroupWriter) {
  RandomKills("crash_sg", CrashHarnessOptions{}, Iterations(50));
}

TEST(CrashRecovery, RandomKillsWithCircularLoggingAndSmallPages) {
  CrashHarnessOptions options;
  options.databases = 1;
  options.circular = true;
  options.page_size = 4096;
  options.threads = 2;
  RandomKills("crash_circular", options, std::max(10, Iterations(50) / 4));
}

TEST(CrashRecovery, KillAtEveryNamedCrashPoint) {
  // Each point with the hits at which to fire: the first time, and later
  // ones where the step repeats within one process.
  const std::vector<std::pair<std::string, std::vector<int>>> kPoints = {
      {"commit.before_durable", {1, 3, 17}},
      {"log.write.before_sync", {1, 3, 17}},
      {"log.roll.after_seal", {1, 3, 17}},
      {"log.roll.after_rename", {1, 3, 17}},
      {"log.create.before_rename", {1, 3, 17}},
      {"lazywriter.mid_flush", {1, 3, 17}},
      {"checkpoint.before_chk", {1, 3, 17}},
      {"checkpoint.before_write", {1, 3, 17}},
      {"edb.header.between_copies", {1, 3, 17}},
      // A page write cut between its 4 KiB halves, as a kill can do.
      {"edb.write.torn", {1, 5, 40}},
      // Once per open: the previous session's log is sealed and closed.
      {"open.adopt.before_rename", {1}},
  };
  CrashHarness harness("crash_points", CrashHarnessOptions{}, Seed());
  harness.CreateUnit();
  std::vector<std::string> not_fired;
  for (const auto& [point, hits] : kPoints) {
    for (int hit : hits) {
      const std::string spec = point + "@" + std::to_string(hit);
      // Adoption needs an open log left by the previous session; a kill
      // between a log's rename and its successor's creation leaves none.
      const bool reachable = point != "open.adopt.before_rename" || harness.HasOpenLog();
      if (!harness.RunToCrashPoint(spec) && reachable) not_fired.push_back(spec);
      ASSERT_NO_FATAL_FAILURE(harness.RecoverCheckAndVerify()) << "crash point " << spec;
    }
  }
  // Every point is on the normal write path, so each must have fired.
  EXPECT_TRUE(not_fired.empty()) << "crash points never reached: "
                                 << absl::StrJoin(not_fired, ", ");
  harness.CheckAllFiles();
}

// Page writes torn at random points of a run (the N-th page write, N
// random): every torn page must be rebuilt from its image.
TEST(CrashRecovery, RandomTornPageWrites) {
  const uint64_t seed = Seed();
  CrashHarness harness("crash_torn", CrashHarnessOptions{}, seed);
  harness.CreateUnit();
  std::mt19937_64 rng(seed);
  const int iterations = std::max(8, Iterations(50) / 6);
  int torn = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string spec = "edb.write.torn@" + std::to_string(1 + rng() % 300);
    if (harness.RunToCrashPoint(spec)) torn++;
    ASSERT_NO_FATAL_FAILURE(harness.RecoverCheckAndVerify()) << spec;
  }
  std::cout << "crash_torn: " << torn << " of " << iterations << " runs ended in a torn page write"
            << std::endl;
  EXPECT_GT(torn, 0);
}

// Recovery writes pages too, and can itself be killed half-way through a
// page; running it again must still succeed.
TEST(CrashRecovery, RecoveryKilledMidWriteIsRecoveredAgain) {
  CrashHarness harness("crash_recover_torn", CrashHarnessOptions{}, Seed());
  harness.CreateUnit();
  int killed = 0;
  // Soft recovery (from the checkpoints), then hard recovery (from the
  // start of the required generations, before the checkpoint): either one
  // killed in the middle of a page write must succeed when run again.
  for (bool hard : {false, true}) {
    for (int hit : {1, 3, 9}) {
      // The writer runs for a fixed time, so on a loaded machine it may
      // leave recovery fewer than `hit` pages to write: then run more work
      // and try again (every round is recovered and verified).
      bool torn = false;
      for (int round = 0; round < 3 && !torn; ++round) {
        harness.RunAndKill(350);
        torn = harness.RecoverToCrashPoint("edb.write.torn@" + std::to_string(hit), hard);
        ASSERT_NO_FATAL_FAILURE(harness.RecoverCheckAndVerify())
            << (hard ? "hard" : "soft") << " recovery torn at page write " << hit;
      }
      if (torn) killed++;
    }
  }
  EXPECT_GT(killed, 2);
}

TEST(CrashRecovery, KillAtCircularDeletion) {
  CrashHarnessOptions options;
  options.databases = 1;
  options.circular = true;
  CrashHarness harness("crash_circular_points", options, Seed());
  harness.CreateUnit();
  for (int hit : {1, 2, 5}) {
    EXPECT_TRUE(
        harness.RunToCrashPoint("checkpoint.before_circular_delete@" + std::to_string(hit)));
    ASSERT_NO_FATAL_FAILURE(harness.RecoverCheckAndVerify());
  }
}

}  // namespace
}  // namespace dagvault::mailstore::testing
