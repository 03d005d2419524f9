// repository_bench_data: makes and changes the .edb-like file the
// repository benchmark backs up (tests/bench/repository_bench.sh).
//
//   repository_bench_data make FILE GIB SEED
//   repository_bench_data change FILE FRACTION uniform|runs SEED
//   repository_bench_data zstd-table LABEL FILE...   (zstd_table.cc)
//
// Pages are 8 KiB: half compressible text, half random, as the
// repository's tests make them (repository/repository_test_util.h).
#include <fcntl.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/testing/edb_like.h"
#include "tests/bench/zstd_table.h"

namespace {

using dagvault::testing::FillEdbPage;
constexpr uint32_t kPage = dagvault::testing::kEdbPage;

int Fail(const absl::Status& s) {
  std::cerr << s << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 4 && a[0] == "make") {
    const uint64_t pages = std::stoull(a[2]) * (1ull << 30) / kPage;
    std::mt19937_64 rng(std::stoull(a[3]));
    auto f = dagvault::File::Open(a[1], O_CREAT | O_TRUNC | O_WRONLY, 0644);
    if (!f.ok()) return Fail(f.status());
    std::string buf(256 * kPage, '\0');
    for (uint64_t p = 0; p < pages; p += 256) {
      for (int i = 0; i < 256; ++i) FillEdbPage(rng, buf.data() + i * kPage);
      if (auto s = f->WriteAt(p * kPage, buf.data(), buf.size()); !s.ok()) return Fail(s);
    }
    return f->Sync().ok() ? 0 : 1;
  }
  if (a.size() == 5 && a[0] == "change") {
    auto f = dagvault::File::Open(a[1], O_WRONLY, 0644);
    if (!f.ok()) return Fail(f.status());
    const uint64_t pages = *f->Size() / kPage;
    std::mt19937_64 rng(std::stoull(a[4]));
    std::string page(kPage, '\0');
    absl::Status status;
    dagvault::testing::ForEachChangedPage(pages, std::stod(a[2]), a[3] == "runs", rng,
                                          [&](uint64_t p) {
                                            FillEdbPage(rng, page.data());
                                            if (status.ok()) {
                                              status = f->WriteAt(p * kPage, page.data(), kPage);
                                            }
                                          });
    if (!status.ok()) return Fail(status);
    return f->Sync().ok() ? 0 : 1;
  }
  if (a.size() >= 3 && a[0] == "zstd-table") {
    return dagvault::bench::ZstdTable(a[1], std::vector<std::string>(a.begin() + 2, a.end()));
  }
  std::cerr << "usage: repository_bench_data make FILE GIB SEED | change FILE FRACTION "
               "uniform|runs SEED | zstd-table LABEL FILE...\n";
  return 2;
}
