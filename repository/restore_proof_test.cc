// The restore's proof on its own: files written by the test, segments
// marked written in any order, several threads folding them.
#include "repository/restore_proof.h"

#include <fcntl.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repository/crypto.h"

namespace dagvault::repository {
namespace {

using ::testing::HasSubstr;
constexpr uint64_t kSegment = RestoreProof::kSegment;

std::string Bytes(uint64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

ExpectedFileDigest TreeOf(absl::string_view data) {
  FileTreeDigest tree;
  tree.AddData(data);
  const Sha256Digest d = tree.Finish();
  return {true, std::string(d.begin(), d.end())};
}

ExpectedFileDigest PlainOf(absl::string_view data) {
  const Sha256Digest d = Sha256::Of(data);
  return {false, std::string(d.begin(), d.end())};
}

class RestoreProofTest : public ::testing::Test {
 protected:
  RestoreProofTest() : dir_("restore_proof") {}

  // A file on disk, and its target with the given expected digest. Until
  // Prove() writes `data` into it, the file holds other bytes of the same
  // size: a proof that read a segment before it was written would fail.
  RestoreProof::Target Put(const std::string& name, const std::string& data,
                           ExpectedFileDigest expected, bool out_of_cache) {
    const std::string path = dir_.Sub(name);
    std::string garbled = data;
    for (auto& c : garbled) c = static_cast<char>(~c);
    EXPECT_TRUE(WriteFileAtomically(path, garbled).ok());
    contents_[path] = data;
    return {path, name, data.size(), std::move(expected), out_of_cache};
  }

  // From another thread while the proof runs: writes each file's bytes
  // segment by segment in a shuffled order, each segment in two halves,
  // saying each half is written only once it is.
  absl::Status Prove(std::vector<RestoreProof::Target> targets, int threads) {
    std::vector<std::pair<size_t, uint64_t>> segments;
    std::vector<std::string> paths;
    std::vector<uint64_t> sizes;
    for (size_t i = 0; i < targets.size(); ++i) {
      paths.push_back(targets[i].path);
      sizes.push_back(targets[i].size);
      for (uint64_t off = 0; off < targets[i].size; off += kSegment) segments.push_back({i, off});
    }
    RestoreProof proof("m1", std::move(targets));
    for (const auto& [file, off] : segments) {
      proof.Expect(file, off, std::min(kSegment, sizes[file] - off));
    }
    std::shuffle(segments.begin(), segments.end(), std::mt19937_64(7));
    std::thread writer([&] {
      for (const auto& [file, off] : segments) {
        auto f = File::Open(paths[file], O_WRONLY);
        ASSERT_TRUE(f.ok()) << f.status();
        const std::string& data = contents_[paths[file]];
        const uint64_t n = std::min(kSegment, sizes[file] - off);
        for (const auto& [at, len] : {std::pair{off, n / 2}, std::pair{off + n / 2, n - n / 2}}) {
          ASSERT_TRUE(f->WriteAt(at, data.data() + at, len).ok());
          proof.Written(file, at, len);
        }
      }
    });
    absl::Status s = proof.Run(threads);
    writer.join();
    return s;
  }

  std::map<std::string, std::string> contents_;  // path → the bytes Prove() writes
  testing::TempDir dir_;
};

TEST_F(RestoreProofTest, FilesOfManySegmentsProveWhateverOrderTheyAreWrittenIn) {
  const std::string big = Bytes(9 * kSegment + 12345, 1);  // a short last leaf
  const std::string log = Bytes(3 * kSegment, 2);
  const std::string old = Bytes(2 * kSegment + 1, 3);
  for (int threads : {1, 2, 4}) {
    SCOPED_TRACE(threads);
    EXPECT_TRUE(
        Prove({Put("db.edb", big, TreeOf(big), true), Put("E00.log", log, TreeOf(log), false),
               Put("empty.edb", "", TreeOf(""), true), Put("old.edb", old, PlainOf(old), true)},
              threads)
            .ok());
  }
}

TEST_F(RestoreProofTest, ABadByteInALaterSegmentIsNamedWhicheverThreadFindsIt) {
  const std::string good = Bytes(8 * kSegment, 4);
  std::string bad = good;
  bad[5 * kSegment + 100] ^= 1;  // what the disk holds differs from what was backed up
  for (bool tree : {true, false}) {
    SCOPED_TRACE(tree);
    const absl::Status s = Prove({Put("ok.edb", good, TreeOf(good), true),
                                  Put("db.edb", bad, tree ? TreeOf(good) : PlainOf(good), true)},
                                 2);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_THAT(std::string(s.message()),
                HasSubstr(absl::StrCat("restore of manifest m1 file db.edb: the restored bytes ",
                                       tree ? "have the tree digest " : "hash to ")));
    EXPECT_THAT(std::string(s.message()), HasSubstr("; the file was not put in place"));
  }
}

TEST_F(RestoreProofTest, AFileShorterOnDiskThanWrittenIsNamed) {
  const std::string data = Bytes(2 * kSegment, 5);
  RestoreProof::Target t = Put("db.edb", data, TreeOf(data), true);
  ASSERT_TRUE(WriteFileAtomically(t.path, data.substr(0, kSegment + 4096)).ok());
  RestoreProof proof("m1", {t});
  proof.Expect(0, 0, data.size());
  proof.Written(0, 0, data.size());  // but the disk holds less
  const absl::Status s = proof.Run(2);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(absl::StrCat(t.path, ": 4096 bytes at offset ", kSegment, ", where ",
                                     kSegment, " were written")));
}

// The segments after the first are never written (their bytes on disk are
// wrong): the proof waits for them, and returns OK only once the restore
// aborts it, without having read them.
TEST_F(RestoreProofTest, AnAbortedRestoreStopsTheProofWithoutAnError) {
  const std::string data = Bytes(4 * kSegment, 6);
  RestoreProof proof("m1", {Put("db.edb", data, TreeOf(data), true)});
  proof.Expect(0, 0, data.size());
  auto f = File::Open(dir_.Sub("db.edb"), O_WRONLY);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(f->WriteAt(0, data.data(), kSegment).ok());
  proof.Written(0, 0, kSegment);  // the rest never comes: the restore failed
  std::atomic<bool> aborted{false};
  std::thread aborter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    aborted = true;
    proof.Abort();
  });
  EXPECT_TRUE(proof.Run(2).ok());
  EXPECT_TRUE(aborted);
  aborter.join();
}

}  // namespace
}  // namespace dagvault::repository
