// mailstore-crash-writer: writes random transactions into a unit until it
// is killed, keeping an oracle of what it did in a separate file.
//
// Oracle lines (one write(2) each, on an O_APPEND file):
//   I <thread> <seq> <op>...   before Commit is called (intent)
//   A <thread> <seq>           after Commit returned OK (acknowledged)
//   X <thread> <seq>           after an explicit Abort
// where <op> is P<db>:<mailbox>:<item>:<size>:<value seed> or D<db>:<mailbox>:<item>.
// Values are ValueFor(seed, size), so the verifier regenerates them.
//
// Each thread owns mailboxes thread*10 .. thread*10+4, so the order of
// one thread's transactions decides its items alone.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/cli_args.h"
#include "common/logging.h"
#include "common/text_config.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/engine_test_util.h"

namespace {

using dagvault::mailstore::Engine;
using dagvault::mailstore::EngineOptions;
using dagvault::mailstore::ItemKey;

int oracle_fd = -1;

void Oracle(const std::string& line) {
  std::string l = line + "\n";
  if (::write(oracle_fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) std::abort();
}

size_t PickSize(std::mt19937_64& rng) {
  const int r = static_cast<int>(rng() % 100);
  if (r < 50) return rng() % 300;
  if (r < 80) return 1000 + rng() % 8000;
  if (r < 96) return 20000 + rng() % 80000;
  return 150000 + rng() % 450000;
}

}  // namespace

int main(int argc, char** argv) {
  dagvault::logging::Init({.level = "warn"});
  auto args = dagvault::CliArgs::Parse(
      std::vector<std::string>(argv + 1, argv + argc),
      {{"config", "oracle", "threads", "seed", "run", "cache-kib", "flush-ms", "max-seconds"}, {}});
  if (!args.ok()) {
    std::cerr << args.status().message() << "\n";
    return 2;
  }
  dagvault::v1::UnitConfig config;
  if (auto s = dagvault::LoadTextConfig(args->GetOr("config", ""), &config); !s.ok()) {
    std::cerr << s.message() << "\n";
    return 2;
  }
  const uint64_t threads = *args->GetUint("threads", 3);
  const uint64_t seed = *args->GetUint("seed", 1);
  const uint64_t run = *args->GetUint("run", 0);
  const uint64_t max_seconds = *args->GetUint("max-seconds", 30);
  EngineOptions options;
  options.cache_bytes = *args->GetUint("cache-kib", 1024) * 1024;
  options.flush_interval = absl::Milliseconds(*args->GetUint("flush-ms", 20));
  oracle_fd = ::open(args->GetOr("oracle", "").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (oracle_fd < 0) {
    std::perror("oracle");
    return 2;
  }
  auto engine = Engine::Open(config, options);
  if (!engine.ok()) {
    std::cerr << "open: " << engine.status().message() << "\n";
    return 3;
  }
  const uint32_t dbs = static_cast<uint32_t>(config.databases_size());
  const absl::Time deadline = absl::Now() + absl::Seconds(max_seconds);
  std::atomic<bool> failed{false};
  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000003 + run * 101 + t);
      for (uint64_t seq = 0; absl::Now() < deadline && !failed; ++seq) {
        auto txn = (*engine)->Begin();
        if (!txn.ok()) {
          std::cerr << "begin: " << txn.status().message() << "\n";
          failed = true;
          return;
        }
        std::string ops;
        const int n = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < n; ++i) {
          const uint32_t db = static_cast<uint32_t>(rng() % dbs);
          const uint64_t mailbox = t * 10 + rng() % 5;
          const uint64_t item = rng() % 200;
          absl::Status s;
          if (rng() % 10 < 7) {
            const size_t size = PickSize(rng);
            const uint64_t vseed = (run << 40) ^ (t << 32) ^ (seq << 4) ^ static_cast<uint64_t>(i);
            s = (*txn)->Put(db, ItemKey{mailbox, item},
                            dagvault::mailstore::testing::ValueFor(vseed, size));
            absl::StrAppend(&ops, " P", db, ":", mailbox, ":", item, ":", size, ":", vseed);
          } else {
            s = (*txn)->Delete(db, ItemKey{mailbox, item}).status();
            absl::StrAppend(&ops, " D", db, ":", mailbox, ":", item);
          }
          if (!s.ok()) {
            std::cerr << "op: " << s.message() << "\n";
            failed = true;
            return;
          }
        }
        const std::string id = absl::StrCat(t, " ", run, ".", seq);
        if (rng() % 10 == 0) {
          (*txn)->Abort();
          Oracle("X " + id);
          continue;
        }
        Oracle("I " + id + ops);
        auto committed = (*txn)->Commit();
        if (!committed.ok()) {
          std::cerr << "commit: " << committed.status().message() << "\n";
          failed = true;
          return;
        }
        Oracle("A " + id);
      }
    });
  }
  for (auto& w : workers) w.join();
  if (failed) return 3;
  absl::Status closed = (*engine)->Close();
  if (!closed.ok()) {
    std::cerr << "close: " << closed.message() << "\n";
    return 3;
  }
  return 0;
}
