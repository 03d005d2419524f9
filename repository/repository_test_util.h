// Shared by the repository's tests: a repository in a temporary folder or
// an S3 bucket, .edb-like files, and page changes.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/testing/edb_like.h"
#include "common/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "repository/backup.h"
#include "repository/check.h"
#include "repository/filesystem_object_store.h"
#include "repository/object_store.h"
#include "repository/repository.h"
#include "repository/restore.h"

namespace dagvault::repository::testing {

inline constexpr uint32_t kPage = ::dagvault::testing::kEdbPage;

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

inline void FillPage(std::mt19937_64& rng, char* page) {
  ::dagvault::testing::FillEdbPage(rng, page);
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
  ::dagvault::testing::ForEachChangedPage(
      data->size() / kPage, fraction, runs, rng,
      [&](uint64_t p) { FillPage(rng, data->data() + p * kPage); });
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

// The backends a repository test runs against: one parameterised suite
// covers both (INSTANTIATE_TEST_SUITE_P(..., Backends(), BackendName)).
// kS3Locked: the run's bucket with Object Lock ($DAGVAULT_TEST_S3_LOCKED),
// for the tests of immutable backups only (not among Backends()).
enum class Backend { kFilesystem, kS3, kS3Locked };
inline auto Backends() { return ::testing::Values(Backend::kFilesystem, Backend::kS3); }
inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kFilesystem ? "Filesystem" : "S3";
}

// An empty store of its own for one test: a temporary folder, or a fresh
// prefix in the test run's S3 bucket ($DAGVAULT_TEST_S3, set by
// tests/run.sh once radosgw is up; tests/s3/README.md). `skip` says why
// there is none.
struct TestStore {
  std::shared_ptr<const ObjectStore> store;
  std::shared_ptr<::dagvault::testing::TempDir> dir;  // filesystem only
  std::string location;
};
inline absl::StatusOr<TestStore> MakeTestStore(Backend backend, const std::string& tag) {
  TestStore t;
  if (backend == Backend::kFilesystem) {
    t.dir = std::make_shared<::dagvault::testing::TempDir>(tag);
    t.location = t.dir->Sub("repo");
    t.store = std::make_shared<FilesystemObjectStore>(t.location);
    return t;
  }
  const char* variable =
      backend == Backend::kS3Locked ? "DAGVAULT_TEST_S3_LOCKED" : "DAGVAULT_TEST_S3";
  const char* base = std::getenv(variable);
  if (base == nullptr || *base == '\0') {
    return absl::UnavailableError(absl::StrCat("no S3 test server: $", variable,
                                               " is not set (tests/run.sh starts radosgw)"));
  }
  // "s3://bucket?endpoint=..." → "s3://bucket/<tag>-<random>?endpoint=...".
  const std::string url = base;
  const size_t query = url.find('?');
  ASSIGN_OR_RETURN(std::string suffix, RandomHex(6));
  t.location = absl::StrCat(url.substr(0, query), "/", tag, "-", suffix,
                            query == std::string::npos ? "" : url.substr(query));
  ASSIGN_OR_RETURN(t.store, OpenObjectStore(t.location));
  return t;
}

inline dagvault::v1::Manifest Header(const std::string& unit) {
  dagvault::v1::Manifest m;
  m.set_unit(unit);
  m.set_type(dagvault::v1::FULL);
  m.set_source_node("node1");
  return m;
}

// A fresh repository on the backend the test is instantiated for (a
// temporary folder, or a prefix of the test run's S3 bucket), and a local
// src/ folder for the files to back up.
class RepositoryTest : public ::testing::TestWithParam<Backend> {
 protected:
  explicit RepositoryTest(const std::string& tag) : dir_(tag), tag_(tag) {}
  void SetUp() override {
    auto store = MakeTestStore(GetParam(), tag_);
    if (absl::IsUnavailable(store.status())) GTEST_SKIP() << store.status();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto repo = Repository::Init(store_.store, TestPassphrase(), FastInit());
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = std::make_unique<Repository>(*std::move(repo));
    ASSERT_TRUE(CreateDirectories(dir_.Sub("src")).ok());
  }

  // `check --read-data` finds no error (and, unless allowed, no warning:
  // a pack in no index is one).
  void ExpectCleanCheck(bool allow_warnings = false) {
    CheckOptions options;
    options.read_data = true;
    auto report = Check(*repo_, options);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->errors.empty()) << report->errors[0];
    if (!allow_warnings) {
      EXPECT_TRUE(report->warnings.empty()) << report->warnings[0];
    }
  }

  ::dagvault::testing::TempDir dir_;
  std::string tag_;
  TestStore store_;
  std::unique_ptr<Repository> repo_;
};

}  // namespace dagvault::repository::testing
