// Shared by the repository's tests: a repository in a temporary folder,
// .edb-like files, and page changes.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "repository/backup.h"
#include "repository/repository.h"
#include "repository/restore.h"

namespace dagvault::repository::testing {

inline constexpr uint32_t kPage = 8192;

inline Secret TestPassphrase(const std::string& text = "correct horse battery staple") {
  Secret s;
  s.bytes = text;
  s.source = "test";
  return s;
}

// Fast scrypt: the tests are about the repository, not the KDF's cost.
inline InitOptions FastInit() {
  InitOptions o;
  o.scrypt.n = 1 << 10;
  return o;
}

// A page of an .edb-like file: half compressible text, half random.
inline void FillPage(std::mt19937_64& rng, char* page, uint32_t size = kPage) {
  static const char kWords[] = "mailbox message subject from to date attachment body ";
  for (uint32_t i = 0; i < size / 2; ++i) page[i] = kWords[(rng() >> 7) % (sizeof(kWords) - 1)];
  for (uint32_t i = size / 2; i < size; i += 8) {
    const uint64_t r = rng();
    std::memcpy(page + i, &r, std::min<uint32_t>(8, size - i));
  }
}

inline std::string MakeEdbLike(uint64_t pages, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string data(pages * kPage, '\0');
  for (uint64_t p = 0; p < pages; ++p) FillPage(rng, data.data() + p * kPage);
  return data;
}

// Rewrites `fraction` of the pages: uniformly at random, or in runs of 16.
inline void ChangePages(std::string* data, double fraction, bool runs, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const uint64_t pages = data->size() / kPage;
  const uint64_t want = static_cast<uint64_t>(pages * fraction);
  std::vector<bool> changed(pages);
  uint64_t done = 0;
  while (done < want) {
    const uint64_t start = rng() % pages;
    const uint64_t len = runs ? std::min<uint64_t>(16, want - done) : 1;
    for (uint64_t p = start; p < std::min(pages, start + len); ++p) {
      if (changed[p]) continue;
      changed[p] = true;
      FillPage(rng, data->data() + p * kPage);
      ++done;
    }
  }
}

inline std::string Sha256Hex(absl::string_view data) {
  const Sha256Digest d = Sha256::Of(data);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

inline void WriteFile(const std::string& path, absl::string_view data) {
  ASSERT_TRUE(WriteFileAtomically(path, data).ok()) << path;
}

inline std::string ReadFile(const std::string& path) {
  auto data = ReadFileToString(path);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.ok() ? *data : std::string();
}

inline dagvault::v1::Manifest Header(const std::string& unit) {
  dagvault::v1::Manifest m;
  m.set_unit(unit);
  m.set_type(dagvault::v1::FULL);
  m.set_source_node("node1");
  return m;
}

}  // namespace dagvault::repository::testing
