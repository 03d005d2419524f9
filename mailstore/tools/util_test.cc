// mailstore-util's commands, run in-process on real files.
#include "mailstore/tools/util.h"

#include <filesystem>
#include <sstream>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "common/text_config.h"
#include "gtest/gtest.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/engine_test_util.h"
#include "mailstore/format/log_format.h"

namespace dagvault::mailstore {
namespace {

using dagvault::testing::TempDir;
namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out, err;
};

Result Util(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunMailstoreUtil(args, out, err);
  return {code, out.str(), err.str()};
}

class UtilTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::MakeUnitConfig(dir_.Sub("unit"), 2, 64 << 10);
    config_.set_log_dir(dir_.Sub("unit/logs"));
    conf_path_ = dir_.Sub("unit.conf");
    ASSERT_TRUE(WriteFileAtomically(conf_path_, ToTextConfig(config_)).ok());
    Result r = Util({"create", "--config", conf_path_});
    ASSERT_EQ(r.code, 0) << r.err;
    r = Util({"fill", "--config", conf_path_, "--items", "400", "--size-mix", "1k:3,20k:1"});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  std::string Db(int i) const { return dir_.Sub("unit/db" + std::to_string(i) + ".edb"); }
  std::string Logs() const { return dir_.Sub("unit/logs"); }

  void Flip(const std::string& path, uint64_t offset) {
    auto f = File::Open(path, O_RDWR);
    ASSERT_TRUE(f.ok());
    char b;
    ASSERT_TRUE(f->ReadAt(offset, &b, 1).ok());
    b ^= 0x20;
    ASSERT_TRUE(f->WriteAt(offset, &b, 1).ok());
  }

  TempDir dir_{"util"};
  dagvault::v1::UnitConfig config_;
  std::string conf_path_;
};

TEST_F(UtilTest, CheckOfAHealthyUnitIsClean) {
  Result r = Util({"check", "--deep", dir_.Sub("unit"), Logs()});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("clean:"), std::string::npos);
  EXPECT_NE(r.out.find("MB/s"), std::string::npos);
  EXPECT_NE(r.out.find("200 items"), std::string::npos) << r.out;
}

TEST_F(UtilTest, CheckNamesADamagedPageAndExitsOne) {
  Flip(Db(0), 7 * 8192 + 3000);
  Result r = Util({"check", Db(0)});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("DAMAGED"), std::string::npos);
  EXPECT_NE(r.out.find("page 7 (offset 57344): checksum mismatch"), std::string::npos) << r.out;
}

TEST_F(UtilTest, CheckNamesAPageWrittenToTheWrongPlace) {
  // Copy page 6 over page 8: a valid page with the wrong number.
  auto f = File::Open(Db(0), O_RDWR);
  ASSERT_TRUE(f.ok());
  std::string page(8192, '\0');
  ASSERT_TRUE(f->ReadAt(6 * 8192, page.data(), page.size()).ok());
  ASSERT_TRUE(f->WriteAt(8 * 8192, page.data(), page.size()).ok());
  Result r = Util({"check", Db(0)});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("page 8 (offset 65536): holds page number 6"), std::string::npos) << r.out;
}

TEST_F(UtilTest, CheckFindsALostWriteOnlyByTheSpaceMap) {
  // Zero an allocated page: its checksum cannot catch this, the space map can.
  auto f = File::Open(Db(0), O_RDWR);
  ASSERT_TRUE(f.ok());
  std::string zeros(8192, '\0');
  ASSERT_TRUE(f->WriteAt(9 * 8192, zeros.data(), zeros.size()).ok());
  Result r = Util({"check", Db(0)});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("page 9 (offset 73728) is allocated but was never written"),
            std::string::npos)
      << r.out;
}

TEST_F(UtilTest, CheckNamesATruncatedDatabase) {
  fs::resize_file(Db(0), fs::file_size(Db(0)) - 100);
  Result r = Util({"check", Db(0)});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not a multiple of the page size"), std::string::npos) << r.out;
}

TEST_F(UtilTest, CheckNamesADamagedLogRecordByFileAndOffset) {
  const std::string log = Logs() + "/" + LogFileName("E00", 2);
  Flip(log, 4096 + 10);
  Result r = Util({"check", log});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("E0000000002.log"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("offset 4096: record checksum mismatch"), std::string::npos) << r.out;
}

TEST_F(UtilTest, CheckCoversTheBytesBetweenRecords) {
  const std::string log = Logs() + "/" + LogFileName("E00", 2);
  // Find a record whose length is not a multiple of 8, so it has padding.
  auto scan = ScanLogFile(log);
  ASSERT_TRUE(scan.ok());
  uint64_t padding = 0;
  for (const auto& rec : scan->records) {
    const uint32_t used = kRecordHeaderSize + rec.body_size;
    if (used < rec.space) {
      padding = rec.lsn.offset + used;
      break;
    }
  }
  ASSERT_NE(padding, 0u);
  Flip(log, padding);
  Result r = Util({"check", log});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("non-zero byte in the padding"), std::string::npos) << r.out;
}

TEST_F(UtilTest, CheckNamesADamagedCheckpointCopy) {
  const std::string chk = dir_.Sub("unit/E00.chk");
  Flip(chk, 4096 + 60);
  Result r = Util({"check", chk});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("copy 1 (offset 4096): checksum mismatch"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the other copy is intact"), std::string::npos) << r.out;
}

TEST_F(UtilTest, CheckRefusesMissingPathsAsUsage) {
  Result r = Util({"check", dir_.Sub("nope.edb")});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nope.edb"), std::string::npos);
}

TEST_F(UtilTest, LogsListsTheStreamAndReportsAGap) {
  Result r = Util({"logs", Logs()});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("stream is continuous"), std::string::npos);
  fs::remove(Logs() + "/" + LogFileName("E00", 3));
  r = Util({"logs", Logs(), "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("\"missing_generations\": [\n  3\n ]"), std::string::npos) << r.out;
  r = Util({"logs", Logs()});
  EXPECT_NE(r.out.find("MISSING generation 0x00000003 (E0000000003.log)"), std::string::npos)
      << r.out;
}

TEST_F(UtilTest, HeaderPrintsEveryFieldAndJson) {
  Result r = Util({"header", Db(1)});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* field :
       {"State:", "CleanShutdown", "Log required:", "Log committed:", "Last consistent:",
        "DB signature:", "Log signature:", "Previous full:", "Previous incremental:",
        "Previous differential:", "Previous copy:", "Shadow copies:"}) {
    EXPECT_NE(r.out.find(field), std::string::npos) << field;
  }
  r = Util({"header", Db(1), "--json"});
  ASSERT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("\"state\": \"CleanShutdown\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"database_name\": \"db1\""), std::string::npos) << r.out;
}

TEST_F(UtilTest, DigestIsStableAndRefusesAnInconsistentDatabase) {
  Result a = Util({"digest", "--db", Db(0)});
  Result b = Util({"digest", Db(0), "--json"});
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0);
  const std::string hex = a.out.substr(0, 64);
  EXPECT_NE(b.out.find(hex), std::string::npos);
  EXPECT_NE(a.out.find("200 items"), std::string::npos) << a.out;
  {
    auto e = Engine::Open(config_);  // marks the databases dirty; then "crash"
    ASSERT_TRUE(e.ok());
  }
  Result dirty = Util({"digest", "--db", Db(0)});
  EXPECT_EQ(dirty.code, 1);
  EXPECT_NE(dirty.err.find("run mailstore-util recover first"), std::string::npos) << dirty.err;
  Result rec = Util(
      {"recover", "--system", dir_.Sub("unit"), "--logs", Logs(), "--db", Db(0), "--db", Db(1)});
  ASSERT_EQ(rec.code, 0) << rec.out << rec.err;
  EXPECT_NE(rec.out.find("soft recovery"), std::string::npos) << rec.out;
  Result after = Util({"digest", "--db", Db(0)});
  EXPECT_EQ(after.out.substr(0, 64), hex);
}

TEST_F(UtilTest, RecoverRefusalSaysNothingWasWritten) {
  fs::remove(Logs() + "/" + LogFileName("E00", 2));
  Result r = Util({"recover", "--logs", Logs(), "--db", Db(0), "--db", Db(1), "--hard",
                   "--to-generation", "4"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nothing was written"), std::string::npos) << r.err;
}

TEST_F(UtilTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Util({}).code, 2);
  EXPECT_EQ(Util({"frobnicate"}).code, 2);
  EXPECT_EQ(Util({"check", "--bogus", "x"}).code, 2);
  EXPECT_EQ(Util({"recover", "--db", Db(0), "--logs", Logs(), "--to-generation", "ten"}).code, 2);
  Result r = Util({"fill", "--config", conf_path_, "--size-mix", "huge"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("size mix"), std::string::npos);
  EXPECT_EQ(Util({"help"}).code, 0);
}

TEST_F(UtilTest, CreateNamesTheBadConfigurationField) {
  ASSERT_TRUE(WriteFileAtomically(dir_.Sub("bad.conf"), "name: \"x\"\nmode: DATABASE\n").ok());
  Result r = Util({"create", "--config", dir_.Sub("bad.conf")});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("field 'log_prefix' is required"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("field 'system_dir' is required"), std::string::npos) << r.err;
}

TEST_F(UtilTest, BenchRunsAndPrintsFigures) {
  Result r = Util({"bench", "--dir", dir_.path(), "--size-mix", "4k", "--items", "300", "--threads",
                   "2", "--check-gib", "0.01"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("items/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check "), std::string::npos) << r.out;
}

}  // namespace
}  // namespace dagvault::mailstore
