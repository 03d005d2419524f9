#include "tests/mailstore/crash_harness.h"

#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/subprocess.h"
#include "common/text_config.h"
#include "gtest/gtest.h"
#include "mailstore/engine/database_file.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/engine/memory_page_access.h"

namespace dagvault::mailstore::testing {

using dagvault::testing::BinaryPath;
using dagvault::testing::RunProcess;
using dagvault::testing::Subprocess;

CrashHarness::CrashHarness(const std::string& tag, CrashHarnessOptions options, uint64_t seed)
    : dir_(tag), options_(options), rng_(seed) {
  config_.set_name("crash");
  config_.set_mode(options.databases == 1 ? dagvault::v1::UnitConfig::DATABASE
                                          : dagvault::v1::UnitConfig::STORAGE_GROUP);
  config_.set_log_prefix("E00");
  config_.set_system_dir(dir_.Sub("unit"));
  config_.set_log_dir(dir_.Sub("unit/logs"));
  config_.set_log_file_size(options.log_size);
  config_.set_page_size(options.page_size);
  config_.set_circular_logging(options.circular);
  for (int i = 0; i < options.databases; ++i)
    config_.add_databases()->set_name("db" + std::to_string(i));
  config_path_ = dir_.Sub("unit.conf");
  oracle_path_ = dir_.Sub("oracle.txt");
  // Seeds are printed so a failing run can be repeated.
  std::cout << "crash harness: dir " << dir_.path() << ", seed " << seed << std::endl;
}

void CrashHarness::CreateUnit() {
  ASSERT_TRUE(WriteFileAtomically(config_path_, ToTextConfig(config_)).ok());
  auto r = RunProcess({BinaryPath("mailstore-util"), "create", "--config", config_path_});
  ASSERT_TRUE(r.ok()) << r.err;
}

std::vector<std::string> CrashHarness::WriterArgs() {
  return {BinaryPath("mailstore-crash-writer"),
          "--config",
          config_path_,
          "--oracle",
          oracle_path_,
          "--threads",
          std::to_string(options_.threads),
          "--seed",
          std::to_string(rng_() % 1000000),
          "--run",
          std::to_string(run_),
          "--cache-kib",
          std::to_string(options_.cache_kib),
          "--flush-ms",
          std::to_string(options_.flush_ms),
          "--max-seconds",
          "4"};
}

void CrashHarness::RunAndKill(int kill_after_ms) {
  run_++;
  Subprocess writer(WriterArgs(), {}, dir_.Sub("writer.log"));
  absl::SleepFor(absl::Milliseconds(kill_after_ms));
  writer.Kill(SIGKILL);
  auto status = writer.Wait();
  // It may have failed on its own before the kill: that is a bug.
  ASSERT_TRUE(status.signal == SIGKILL || status.exit_code == 0)
      << "writer exited with " << status.exit_code << ": "
      << ReadFileToString(dir_.Sub("writer.log.err")).value_or("");
}

bool CrashHarness::RunToCrashPoint(const std::string& point) {
  run_++;
  Subprocess writer(WriterArgs(), {{"DAGVAULT_CRASH_AT", point}}, dir_.Sub("writer.log"));
  auto status = writer.Wait();
  EXPECT_TRUE(status.signal == SIGKILL || status.exit_code == 0)
      << "writer exited with " << status.exit_code << ": "
      << ReadFileToString(dir_.Sub("writer.log.err")).value_or("");
  return status.signal == SIGKILL;
}

std::vector<CrashHarness::Txn> CrashHarness::ReadNewOracleLines() {
  std::string data = ReadFileToString(oracle_path_).value_or("");
  std::vector<Txn> txns;
  std::map<std::string, size_t> by_id;
  size_t pos = oracle_offset_;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) break;  // a line cut by the kill
    std::vector<std::string> f = absl::StrSplit(data.substr(pos, nl - pos), ' ', absl::SkipEmpty());
    pos = nl + 1;
    if (f.size() < 3) continue;
    const std::string id = f[1] + " " + f[2];
    if (f[0] == "I") {
      Txn t;
      t.thread = std::stoi(f[1]);
      t.id = id;
      t.state = 'I';
      for (size_t i = 3; i < f.size(); ++i) {
        std::vector<std::string> p = absl::StrSplit(f[i].substr(1), ':');
        Op op{f[i][0] == 'P',
              static_cast<uint32_t>(std::stoul(p[0])),
              std::stoull(p[1]),
              std::stoull(p[2]),
              0,
              0};
        if (op.put) {
          op.size = std::stoull(p[3]);
          op.vseed = std::stoull(p[4]);
        }
        t.ops.push_back(op);
      }
      by_id[id] = txns.size();
      txns.push_back(std::move(t));
    } else if (f[0] == "A") {
      auto it = by_id.find(id);
      if (it != by_id.end()) txns[it->second].state = 'A';
    }
    // X: the transaction was aborted and left no intent; nothing to do.
  }
  oracle_offset_ = pos;
  return txns;
}

void CrashHarness::Apply(Model& model, const std::vector<Op>& ops) {
  for (const Op& op : ops) {
    Key k{op.db, op.mailbox, op.item};
    if (op.put) {
      model[k] = {op.size, op.vseed};
    } else {
      model.erase(k);
    }
  }
}

std::vector<std::string> CrashHarness::RecoverArgs(bool hard) const {
  std::vector<std::string> recover = {
      BinaryPath("mailstore-util"), "recover", "--system", dir_.Sub("unit"), "--logs",
      dir_.Sub("unit/logs")};
  if (hard) recover.push_back("--hard");
  for (int i = 0; i < options_.databases; ++i) {
    recover.push_back("--db");
    recover.push_back(dir_.Sub("unit/db" + std::to_string(i) + ".edb"));
  }
  return recover;
}

bool CrashHarness::RecoverToCrashPoint(const std::string& point, bool hard) {
  auto r = RunProcess(RecoverArgs(hard), {{"DAGVAULT_CRASH_AT", point}});
  EXPECT_TRUE(r.signal == SIGKILL || r.exit_code == 0) << r.out << r.err;
  return r.signal == SIGKILL;
}

void CrashHarness::RecoverCheckAndVerify() {
  std::vector<std::string> dbs;
  for (int i = 0; i < options_.databases; ++i) {
    dbs.push_back(dir_.Sub("unit/db" + std::to_string(i) + ".edb"));
  }
  auto r = RunProcess(RecoverArgs());
  ASSERT_TRUE(r.ok()) << "recover failed (run " << run_ << "):\n" << r.out << r.err;
  std::vector<std::string> check = {BinaryPath("mailstore-util"), "check", "--deep",
                                    dir_.Sub("unit/E00.chk")};
  check.insert(check.end(), dbs.begin(), dbs.end());
  auto c = RunProcess(check);
  ASSERT_TRUE(c.ok()) << "check failed after recovery (run " << run_ << "):\n" << c.out << c.err;

  // What the databases hold now.
  std::map<Key, std::string> actual;
  for (int i = 0; i < options_.databases; ++i) {
    auto db = DatabaseFile::Open(dbs[i], false);
    ASSERT_TRUE(db.ok()) << db.status();
    FilePageReader reader(**db);
    ItemTable table(reader, nullptr);
    ASSERT_TRUE(table
                    .ForEach([&](const ItemKey& k, absl::string_view v) {
                      actual[Key{static_cast<uint32_t>(i), k.mailbox, k.item}] = std::string(v);
                      return absl::OkStatus();
                    })
                    .ok());
  }

  // Each thread's acknowledged transactions must all be there; its one
  // transaction in flight at the kill may or may not be, but entirely or
  // not at all. Nothing aborted or never committed may appear.
  std::vector<Txn> txns = ReadNewOracleLines();
  std::map<int, std::optional<Txn>> in_flight;
  std::map<int, Model> per_thread;
  for (const auto& [key, value] : model_)
    per_thread[static_cast<int>(std::get<1>(key) / 10)][key] = value;
  for (const Txn& t : txns) {
    if (t.state == 'A') {
      ASSERT_FALSE(in_flight[t.thread].has_value())
          << "thread " << t.thread << " acknowledged " << t.id << " after an unacknowledged one";
      Apply(per_thread[t.thread], t.ops);
      acknowledged_++;
    } else {
      in_flight[t.thread] = t;
    }
  }
  std::map<int, Model> actual_by_thread;
  for (const auto& [key, value] : actual) {
    const int thread = static_cast<int>(std::get<1>(key) / 10);
    ASSERT_LT(thread, options_.threads) << "item in a mailbox no thread owns";
    actual_by_thread[thread];
  }
  auto matches = [&](const Model& expected, int thread, std::string* why) {
    size_t count = 0;
    for (const auto& [key, value] : actual) {
      if (static_cast<int>(std::get<1>(key) / 10) != thread) continue;
      count++;
      auto it = expected.find(key);
      if (it == expected.end()) {
        *why = absl::StrCat("item ", std::get<0>(key), "/", std::get<1>(key), "/", std::get<2>(key),
                            " is present but was never committed");
        return false;
      }
      if (value != ValueFor(it->second.second, it->second.first)) {
        *why = absl::StrCat("item ", std::get<0>(key), "/", std::get<1>(key), "/", std::get<2>(key),
                            " has the wrong value (", value.size(), " bytes, expected ",
                            it->second.first, ")");
        return false;
      }
    }
    if (count != expected.size()) {
      for (const auto& [key, value] : expected) {
        if (!actual.count(key)) {
          *why = absl::StrCat("committed item ", std::get<0>(key), "/", std::get<1>(key), "/",
                              std::get<2>(key), " is missing");
          break;
        }
      }
      return false;
    }
    return true;
  };
  Model next;
  for (int thread = 0; thread < options_.threads; ++thread) {
    Model without = per_thread[thread];
    std::string why_without, why_with;
    if (matches(without, thread, &why_without)) {
      if (in_flight[thread]) in_flight_lost_++;
      next.insert(without.begin(), without.end());
      continue;
    }
    if (in_flight[thread]) {
      Model with = without;
      Apply(with, in_flight[thread]->ops);
      if (matches(with, thread, &why_with)) {
        in_flight_committed_++;
        next.insert(with.begin(), with.end());
        continue;
      }
    }
    FAIL() << "run " << run_ << ", thread " << thread << ": the recovered data matches no "
           << "allowed outcome: " << why_without
           << (why_with.empty() ? "" : "; with the transaction in flight: " + why_with);
  }
  model_ = std::move(next);
}

bool CrashHarness::HasOpenLog() const { return PathExists(dir_.Sub("unit/logs/E00.log")); }

void CrashHarness::CheckAllFiles() {
  auto c =
      RunProcess({BinaryPath("mailstore-util"), "check", dir_.Sub("unit"), dir_.Sub("unit/logs")});
  ASSERT_TRUE(c.ok()) << c.out << c.err;
  auto l = RunProcess({BinaryPath("mailstore-util"), "logs", dir_.Sub("unit/logs")});
  ASSERT_TRUE(l.ok()) << l.out << l.err;
}

}  // namespace dagvault::mailstore::testing
