// `mailstore-util bench`: commit throughput for item-size mixes, and check
// throughput on a large database. Prints figures; never fails on speed.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/cli_args.h"
#include "common/crc32c.h"
#include "common/file_util.h"
#include "mailstore/engine/engine.h"
#include "mailstore/tools/check.h"
#include "mailstore/tools/size_mix.h"
#include "mailstore/tools/util.h"

namespace dagvault::mailstore {
namespace {

namespace fs = std::filesystem;

struct WriteResult {
  uint64_t items = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  EngineStats stats;
  uint64_t db_bytes = 0;
};

dagvault::v1::UnitConfig BenchUnit(const std::string& dir, uint32_t page_size, uint64_t log_size) {
  dagvault::v1::UnitConfig c;
  c.set_name("bench");
  c.set_mode(dagvault::v1::UnitConfig::DATABASE);
  c.set_log_prefix("E00");
  c.set_system_dir(dir);
  c.set_page_size(page_size);
  c.set_log_file_size(log_size);
  c.set_circular_logging(true);  // a bench need not keep gigabytes of logs
  c.add_databases()->set_name("bench");
  return c;
}

absl::StatusOr<WriteResult> RunWrites(const dagvault::v1::UnitConfig& config, const SizeMix& mix,
                                      uint64_t items, uint64_t threads) {
  auto engine = Engine::Create(config);
  if (!engine.ok()) return engine.status();
  Engine& e = **engine;
  std::atomic<uint64_t> next{0}, bytes{0};
  std::atomic<bool> failed{false};
  absl::Status first_error;
  std::mutex mu;
  // Values are generated before the clock starts so that only the store is
  // measured.
  std::vector<std::vector<std::string>> values(threads);
  for (uint64_t t = 0; t < threads; ++t) {
    std::mt19937_64 rng(t + 1);
    for (int i = 0; i < 64; ++i) {
      std::string v;
      FillMailLikeBytes(rng, mix.Pick(rng), &v);
      values[t].push_back(std::move(v));
    }
  }
  const absl::Time t0 = absl::Now();
  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (uint64_t i = next++; i < items && !failed; i = next++) {
        const std::string& v = values[t][i % values[t].size()];
        absl::Status s = e.Put(0, {t + 1, i}, v);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (!failed.exchange(true)) first_error = s;
          return;
        }
        bytes += v.size();
      }
    });
  }
  for (auto& w : workers) w.join();
  WriteResult r;
  r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (failed) return first_error;
  r.items = items;
  r.bytes = bytes;
  r.stats = e.stats();
  absl::Status closed = e.Close();
  if (!closed.ok()) return closed;
  r.db_bytes = fs::file_size(e.unit().databases[0].path);
  return r;
}

void DropCaches() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
}

}  // namespace

int CmdBench(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(
      args, {{"dir", "size-mix", "items", "threads", "page-size", "log-size", "check-gib"},
             {"keep", "drop-caches"}});
  if (!parsed.ok()) {
    err << "mailstore-util bench: " << parsed.status().message() << "\n";
    return kExitUsage;
  }
  std::vector<std::string> mixes = parsed->GetAll("size-mix");
  if (mixes.empty()) mixes = {"4k", "75k"};
  auto items = parsed->GetUint("items", 0);
  auto threads = parsed->GetUint("threads", 8);
  auto page_size = parsed->GetUint("page-size", kDefaultPageSize);
  auto log_size = parsed->GetUint("log-size", kDefaultLogFileSize);
  auto check_gib = parsed->GetDouble("check-gib", 2.0);
  for (const absl::Status& s : {items.status(), threads.status(), page_size.status(),
                                log_size.status(), check_gib.status()}) {
    if (!s.ok()) {
      err << "mailstore-util bench: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  const std::string base = parsed->GetOr("dir", "/tmp");
  const std::string dir = absl::StrCat(base, "/mailstore-bench-", ::getpid());
  fs::create_directories(dir);
  out << absl::StrFormat(
      "mailstore bench in %s: %u threads, page size %u, log size %u, CRC32C %s\n", dir, *threads,
      *page_size, *log_size, Crc32cIsHardware() ? "hardware (SSE4.2)" : "software");
  int status = kExitOk;
  int n = 0;
  for (const std::string& spec : mixes) {
    auto mix = SizeMix::Parse(spec);
    if (!mix.ok()) {
      err << "mailstore-util bench: " << mix.status().message() << "\n";
      return kExitUsage;
    }
    // Enough items for about 400 MB of values, at least 5000.
    const uint64_t count =
        *items ? *items : std::max<uint64_t>(5000, static_cast<uint64_t>(400e6 / mix->MeanSize()));
    auto r = RunWrites(BenchUnit(absl::StrCat(dir, "/w", n++), *page_size, *log_size), *mix, count,
                       *threads);
    if (!r.ok()) {
      err << "mailstore-util bench: " << r.status().message() << "\n";
      status = kExitFailure;
      continue;
    }
    out << absl::StrFormat(
        "commit  mix %-12s %8u items  %8.0f items/s  %7.1f MB/s  %.2f s  (%.1f commits per log "
        "flush; log %.1f MB = %.2fx the values; %u page images and %u deltas)\n",
        spec, r->items, r->items / r->seconds, static_cast<double>(r->bytes) / 1e6 / r->seconds,
        r->seconds,
        static_cast<double>(r->stats.commits) / std::max<uint64_t>(1, r->stats.log_flushes),
        static_cast<double>(r->stats.log_bytes) / 1e6,
        static_cast<double>(r->stats.log_bytes) / std::max<uint64_t>(1, r->bytes),
        r->stats.pages_logged_image, r->stats.pages_logged_delta);
  }

  if (*check_gib > 0) {
    // A database of the requested size, written with 75 KiB items, then
    // checked as it is (hot page cache) and, if allowed, from disk.
    auto mix = SizeMix::Parse("75k");
    const uint64_t count = static_cast<uint64_t>(*check_gib * (1ull << 30) / mix->MeanSize()) + 1;
    auto r = RunWrites(BenchUnit(absl::StrCat(dir, "/check"), *page_size, *log_size), *mix, count,
                       *threads);
    if (!r.ok()) {
      err << "mailstore-util bench: " << r.status().message() << "\n";
      return kExitFailure;
    }
    const std::string db = absl::StrCat(dir, "/check/bench.edb");
    out << absl::StrFormat("built   %.2f GiB database (%u items of 75 KiB) in %.1f s\n",
                           static_cast<double>(r->db_bytes) / (1ull << 30), r->items, r->seconds);
    for (int pass = 0; pass < (parsed->Has("drop-caches") ? 2 : 1); ++pass) {
      if (pass == 1) DropCaches();
      auto report = CheckFiles({db}, CheckOptions{});
      if (!report.ok() || !report->clean()) {
        err << "mailstore-util bench: check failed: "
            << (report.ok() ? FormatCheckReport(*report) : std::string(report.status().message()))
            << "\n";
        return kExitFailure;
      }
      out << absl::StrFormat("check   %.2f GiB in %.3f s: %.0f MB/s (%s, one thread)\n",
                             static_cast<double>(report->bytes) / (1ull << 30), report->seconds,
                             report->MegabytesPerSecond(),
                             pass == 0 ? "page cache" : "cold, caches dropped");
    }
  }
  if (!parsed->Has("keep")) fs::remove_all(dir);
  return status;
}

}  // namespace dagvault::mailstore
