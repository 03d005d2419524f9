// The crash-recovery harness: a unit, a writer process killed at random
// moments (or at a named crash point), recovery and check through the real
// mailstore-util, and verification against the writer's oracle.
#pragma once

#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "common/testing/temp_dir.h"
#include "dagvault/v1/mailstore.pb.h"

namespace dagvault::mailstore::testing {

struct CrashHarnessOptions {
  int databases = 2;
  uint64_t log_size = 64 << 10;
  uint32_t page_size = 8192;
  bool circular = false;
  int threads = 3;
  uint64_t cache_kib = 1024;
  uint64_t flush_ms = 20;
};

class CrashHarness {
 public:
  CrashHarness(const std::string& tag, CrashHarnessOptions options, uint64_t seed);

  // Creates the unit (in-process; the writer and tools are separate
  // processes).
  void CreateUnit();
  // Starts the writer and kills it with SIGKILL after `kill_after`.
  void RunAndKill(int kill_after_ms);
  // Starts the writer with DAGVAULT_CRASH_AT set and waits for it to die
  // there (or to finish after a few seconds if the point is never reached).
  // Returns true if the crash point fired.
  bool RunToCrashPoint(const std::string& point);
  // Runs mailstore-util recover with DAGVAULT_CRASH_AT set, so that
  // recovery itself is killed there. Returns true if it was.
  bool RecoverToCrashPoint(const std::string& point, bool hard = false);
  // mailstore-util recover, then check of databases and checkpoint, then
  // comparison of every item with the oracle. Fails the test on any
  // difference.
  void RecoverCheckAndVerify();
  // Whether the unit has an open log (<prefix>.log) to adopt at the next open.
  bool HasOpenLog() const;
  // check of every file of the unit, logs included.
  void CheckAllFiles();

  uint64_t acknowledged() const { return acknowledged_; }
  uint64_t in_flight_committed() const { return in_flight_committed_; }
  uint64_t in_flight_lost() const { return in_flight_lost_; }
  size_t model_items() const { return model_.size(); }

 private:
  struct Op {
    bool put;
    uint32_t db;
    uint64_t mailbox, item, size, vseed;
  };
  struct Txn {
    int thread;
    std::string id;
    std::vector<Op> ops;
    char state;  // 'I' in flight, 'A' acknowledged, 'X' aborted
  };
  using Key = std::tuple<uint32_t, uint64_t, uint64_t>;        // db, mailbox, item
  using Model = std::map<Key, std::pair<uint64_t, uint64_t>>;  // size, vseed

  std::vector<std::string> WriterArgs();
  std::vector<std::string> RecoverArgs(bool hard = false) const;
  std::vector<Txn> ReadNewOracleLines();
  static void Apply(Model& model, const std::vector<Op>& ops);

  dagvault::testing::TempDir dir_;
  CrashHarnessOptions options_;
  std::mt19937_64 rng_;
  dagvault::v1::UnitConfig config_;
  std::string config_path_, oracle_path_;
  size_t oracle_offset_ = 0;
  uint64_t run_ = 0;
  Model model_;
  uint64_t acknowledged_ = 0, in_flight_committed_ = 0, in_flight_lost_ = 0;
};

}  // namespace dagvault::mailstore::testing
