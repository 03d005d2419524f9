// repository_bench_data zstd-table LABEL FILE...: what each zstd level
// costs and saves on a sample of real or bench data (issue 21), and what
// a per-chunk "store it raw" decision taken from small samples would
// change. Compresses 4 MiB chunks, as a backup seals them (a chunk whose
// frame is not smaller is stored raw), on one thread.
#include "tests/bench/zstd_table.h"

#include <zstd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "repository/crypto.h"

namespace dagvault::bench {
namespace {

constexpr size_t kChunk = 4 << 20;
constexpr size_t kMaxSample = 256 << 20;

struct Row {
  double mb_per_s;
  double stored_fraction;
};

// Compresses every chunk at `level`; with `decide`, first asks the
// backup's own test (repository/crypto.h, LooksIncompressible) and stores
// the chunk raw, without compressing it, when it says so.
Row Measure(const std::vector<std::string>& chunks, int level, bool decide) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::vector<char> out(ZSTD_compressBound(kChunk));
  size_t in_bytes = 0, stored = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& c : chunks) {
    in_bytes += c.size();
    if (decide && repository::LooksIncompressible(c)) {
      stored += c.size();
      continue;
    }
    const size_t n = ZSTD_compressCCtx(cctx, out.data(), out.size(), c.data(), c.size(), level);
    stored += ZSTD_isError(n) ? c.size() : std::min(n, c.size());
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ZSTD_freeCCtx(cctx);
  return {in_bytes / 1e6 / s, static_cast<double>(stored) / in_bytes};
}

}  // namespace

int ZstdTable(const std::string& label, const std::vector<std::string>& files) {
  std::vector<std::string> chunks;
  size_t total = 0;
  for (const std::string& path : files) {
    auto f = File::OpenReadOnly(path);
    if (!f.ok()) {
      std::fprintf(stderr, "%s\n", f.status().ToString().c_str());
      return 1;
    }
    for (uint64_t at = 0; total < kMaxSample; at += kChunk) {
      std::string chunk(kChunk, '\0');
      auto got = f->ReadAtMost(at, chunk.data(), chunk.size());
      if (!got.ok() || *got == 0) break;
      chunk.resize(*got);
      total += *got;
      chunks.push_back(std::move(chunk));
    }
  }
  std::printf("zstd on %s: %zu MiB in %zu chunks of up to 4 MiB, one thread\n", label.c_str(),
              total >> 20, chunks.size());
  std::printf("  %-28s %9s %9s\n", "level", "MB/s", "stored");
  for (int level : {-5, -1, 1, 2, 3, 6}) {
    const Row r = Measure(chunks, level, false);
    std::printf("  %-28d %9.0f %8.1f%%\n", level, r.mb_per_s, 100 * r.stored_fraction);
  }
  for (int level : {1, 3}) {
    const Row r = Measure(chunks, level, true);
    std::printf("  %-28s %9.0f %8.1f%%\n",
                (std::to_string(level) + " after a raw-or-not sample").c_str(), r.mb_per_s,
                100 * r.stored_fraction);
  }
  return 0;
}

}  // namespace dagvault::bench
