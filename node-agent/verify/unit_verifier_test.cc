// The inline consistency check on files built byte by byte from
// docs/formats.md: what passes, and for each kind of damage, the error
// that names it and no manifest. (The multi-process tests run it on real
// mailstored files.)
#include "node-agent/verify/unit_verifier.h"

#include <random>

#include "absl/base/internal/endian.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/evp.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node-agent/verify/unit_files_testing.h"
#include "repository/repository.h"

namespace dagvault::agent {
namespace {

using ::testing::HasSubstr;
namespace v1 = dagvault::v1;

using namespace unit_files;  // NOLINT: the unit's files, built byte by byte

class UnitVerifierTest : public ::testing::Test {
 protected:
  UnitVerifierTest() : dir_("verifier") {}

  void Add(const std::string& name, const std::string& role, const std::string& data,
           uint32_t generation = 0) {
    ASSERT_TRUE(CreateDirectories(DirName(dir_.Sub(name))).ok());
    ASSERT_TRUE(WriteFileAtomically(dir_.Sub(name), data).ok());
    files_.push_back({dir_.Sub(name), name, role, role == "log" ? "log" : "DB", generation});
    data_.push_back(data);
  }

  // A Full of one database and logs 5..7.
  void FullSet() {
    Add("DB.edb", "database", Database(64, 1));
    std::string link = Sha("generation 4");
    for (uint32_t g = 5; g <= 7; ++g) {
      const std::string log = Log(g, link);
      Add(absl::StrCat("logs/E01", g, ".log"), "log", log, g);
      link = Sha(log);
    }
  }

  UnitExpectations Expect(v1::BackupType type = v1::FULL) {
    UnitExpectations e;
    e.unit = "DB";
    e.type = type;
    e.log_signature = absl::BytesToHexString(kLogSig);
    e.database_signatures = {absl::BytesToHexString(kDbSig)};
    e.low_generation = 5;
    e.high_generation = 7;
    e.checkpoint_generation = 5;
    return e;
  }

  // Feeds every file in 1 MiB segments (as the repository does, in any
  // order) and then the manifest; returns the first error.
  absl::Status Run(const UnitExpectations& e, v1::Manifest* manifest) {
    std::vector<std::string> sources;
    for (const auto& f : files_) sources.push_back(f.path);
    auto v = UnitVerifier::Create(e, files_, sources);
    if (!v.ok()) return v.status();
    for (size_t i = files_.size(); i-- > 0;) {
      const std::string& d = data_[i];
      const size_t seg = files_[i].role == "log" ? d.size() : (1 << 20);
      for (size_t off = 0; off < d.size(); off += seg) {
        RETURN_IF_ERROR((*v)->OnSegment(i, off, absl::string_view(d).substr(off, seg)));
      }
      auto* f = manifest->add_files();
      f->set_sha256(Sha(d));
    }
    // The manifest's files are in the files' order.
    for (size_t i = 0; i < files_.size(); ++i) {
      manifest->mutable_files(static_cast<int>(i))->set_sha256(Sha(data_[i]));
    }
    return (*v)->BeforeCommit(manifest);
  }

  ::dagvault::testing::TempDir dir_;
  std::vector<repository::BackupFile> files_;
  std::vector<std::string> data_;
};

TEST_F(UnitVerifierTest, AWholeUnitPassesAndTheLogsLinkHashesGoIntoTheManifest) {
  FullSet();
  v1::Manifest m;
  ASSERT_TRUE(Run(Expect(), &m).ok()) << Run(Expect(), &m);
  EXPECT_EQ(m.files(1).link_hash(), Sha("generation 4"));
  EXPECT_EQ(m.files(2).link_hash(), Sha(data_[1]));
  EXPECT_THAT(m.labels().at("verified"), HasSubstr("pages=64 empty_pages=1 logs=3"));
}

TEST_F(UnitVerifierTest, ADamagedPageIsNamedByNumberAndOffset) {
  FullSet();
  data_[0][size_t{37} * kPage + 100] ^= 1;
  ASSERT_TRUE(WriteFileAtomically(files_[0].path, data_[0]).ok());
  v1::Manifest m;
  const absl::Status s = Run(Expect(), &m);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(
      std::string(s.message()),
      AllOf(HasSubstr("database file DB.edb"),
            HasSubstr(absl::StrCat("page 37 (offset ", 37 * kPage, "): checksum mismatch"))));
  // An Incremental checks the logs only.
  v1::Manifest incremental;
  EXPECT_TRUE(Run(Expect(v1::INCREMENTAL), &incremental).ok());
}

TEST_F(UnitVerifierTest, APageWrittenToTheWrongPlaceIsNamed) {
  FullSet();
  // Page 9's bytes where page 10 belongs: a valid checksum, the wrong number.
  std::memcpy(data_[0].data() + 10 * kPage, data_[0].data() + 9 * kPage, kPage);
  ASSERT_TRUE(WriteFileAtomically(files_[0].path, data_[0]).ok());
  v1::Manifest m;
  EXPECT_THAT(std::string(Run(Expect(), &m).message()),
              HasSubstr("page 10 (offset 81920): it holds page 9"));
}

// Sets header copy `n`'s state and required log range, with its checksum.
void SetRequiredLogs(std::string* db, uint32_t n, uint32_t state, uint32_t min, uint32_t max) {
  Put32(db, size_t{n} * kPage + 96, state);
  Put32(db, size_t{n} * kPage + 104, min);
  Put32(db, size_t{n} * kPage + 108, max);
  Put32(db, size_t{n} * kPage, Crc32c(db->data() + size_t{n} * kPage + 4, kPage - 4));
}

TEST_F(UnitVerifierTest, ADatabaseThatNeedsALogTheBackupLacksFailsVerification) {
  FullSet();
  // Attached (DirtyShutdown) and needing 5..7: the backup holds exactly those.
  for (uint32_t n : {0u, 1u}) SetRequiredLogs(&data_[0], n, 2, 5, 7);
  v1::Manifest m;
  ASSERT_TRUE(Run(Expect(), &m).ok()) << Run(Expect(), &m);

  // A header that names generation 8, a log the backup does not hold (a
  // flush that ran after the freeze's roll once wrote such headers).
  for (uint32_t n : {0u, 1u}) SetRequiredLogs(&data_[0], n, 2, 5, 8);
  v1::Manifest late;
  const absl::Status s = Run(Expect(), &late);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("database file DB.edb"),
                    HasSubstr("needs log generations 0x00000005 to 0x00000008"),
                    HasSubstr("the backup holds 0x00000005 to 0x00000007"),
                    HasSubstr("could not be restored")));
  // One needing a generation below the backup's first fails the same way.
  for (uint32_t n : {0u, 1u}) SetRequiredLogs(&data_[0], n, 2, 4, 7);
  v1::Manifest early;
  EXPECT_THAT(std::string(Run(Expect(), &early).message()),
              HasSubstr("needs log generations 0x00000004 to 0x00000007"));
  // A cleanly shut down database needs no logs at all.
  for (uint32_t n : {0u, 1u}) SetRequiredLogs(&data_[0], n, 3, 4, 9);
  v1::Manifest clean;
  EXPECT_TRUE(Run(Expect(), &clean).ok());
}

TEST_F(UnitVerifierTest, ALogProblemIsNamedByGeneration) {
  struct Case {
    std::string what;
    std::function<void(std::vector<std::string>*)> damage;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"a flipped record byte", [](auto* d) { (*d)[2][4096 + 30] ^= 1; },
       "(generation 0x00000006): record at offset 4096: checksum mismatch"},
      {"an unsealed log", [](auto* d) { (*d)[2] = Log(6, Sha((*d)[1]), false); },
       "(generation 0x00000006): not sealed"},
      {"bytes after the seal", [](auto* d) { (*d)[2][kLogSize - 1] = 1; },
       "(generation 0x00000006): bytes after the Seal record"},
      {"a damaged header", [](auto* d) { (*d)[3][100] ^= 1; },
       "(generation 0x00000007): header checksum mismatch"},
      {"a log of another stream", [](auto* d) { (*d)[3] = Log(7, "", true); },
       "(generation 0x00000007) does not link to generation 0x00000006: its link hash is absent"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    files_.clear();
    data_.clear();
    FullSet();
    c.damage(&data_);
    for (size_t i = 0; i < files_.size(); ++i) {
      ASSERT_TRUE(WriteFileAtomically(files_[i].path, data_[i]).ok());
    }
    v1::Manifest m;
    const absl::Status s = Run(Expect(), &m);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.expected));
  }
}

TEST_F(UnitVerifierTest, AnIncrementalMustJoinTheBackupItFollows) {
  FullSet();
  UnitExpectations e = Expect(v1::INCREMENTAL);
  e.join_generation = 4;
  e.join_sha256 = Sha("generation 4");
  v1::Manifest m;
  EXPECT_TRUE(Run(e, &m).ok());
  e.join_sha256 = Sha("another generation 4");
  m.Clear();
  EXPECT_THAT(std::string(Run(e, &m).message()),
              AllOf(HasSubstr("log generation 0x00000005 does not join the backup this one "
                              "follows"),
                    HasSubstr("take a Full")));
  e.join_generation = 3;
  m.Clear();
  EXPECT_THAT(std::string(Run(e, &m).message()),
              HasSubstr("ends at generation 0x00000003 and this one begins at 0x00000005"));
}

TEST_F(UnitVerifierTest, AFailedJoinCarriesTheGenerationWhereTheChainBreaks) {
  FullSet();  // logs 5..7
  UnitExpectations e = Expect(v1::INCREMENTAL);
  // The backup followed ends at 4 and 5 does not link to it: broken at 5.
  e.join_generation = 4;
  e.join_sha256 = Sha("another generation 4");
  v1::Manifest m;
  absl::Status s = Run(e, &m);
  EXPECT_EQ(ChainBreakGenerationOf(s), 5u) << s;
  // A gap: the chain ends at 3, these logs begin at 5.
  e.join_generation = 3;
  m.Clear();
  s = Run(e, &m);
  EXPECT_EQ(ChainBreakGenerationOf(s), 4u) << s;
  // The chain reaches 7 and its logs of 6 and 7 differ from these (a lossy
  // activation went on from 5): broken where they first differ, at 6.
  e.join_generation = 7;
  e.join_sha256 = Sha("the old stream's 7");
  e.chain_log_sha256 = {{5, Sha(data_[1])}, {6, Sha("the old stream's 6")}, {7, e.join_sha256}};
  m.Clear();
  s = Run(e, &m);
  EXPECT_THAT(std::string(s.message()), HasSubstr("the log stream diverged"));
  EXPECT_EQ(ChainBreakGenerationOf(s), 6u) << s;
  // Other failures carry none.
  EXPECT_EQ(ChainBreakGenerationOf(absl::DataLossError("page 3")), 0u);
}

TEST_F(UnitVerifierTest, TheFrozenGenerationsMustAllBeThere) {
  FullSet();
  files_.erase(files_.begin() + 2);  // generation 6
  data_.erase(data_.begin() + 2);
  v1::Manifest m;
  EXPECT_THAT(std::string(Run(Expect(), &m).message()),
              HasSubstr("log generation 0x00000006 is missing from the backup"));
}

}  // namespace
}  // namespace dagvault::agent
