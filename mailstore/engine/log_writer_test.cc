// LogWriter once its stream is closed: nothing more is written, and a
// file is never created again over a generation's records (the race fixed
// in Engine::RollLog, where a replica's roll after a dismount's Close
// recreated the closed log, is refused here too).
#include "mailstore/engine/log_writer.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "mailstore/format/log_format.h"

namespace dagvault::mailstore {

// Reaches what no caller can: the writer's open file.
class LogWriterTestPeer {
 public:
  // The file closed under a writer that still takes records, as the
  // dismount's Close left it for the racing roll before the fix.
  static absl::Status CloseFileOnly(LogWriter& writer) { return writer.file_.Close(); }
};

namespace {

constexpr char kPrefix[] = "E00";

class LogWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LogStreamOptions options;
    options.dir = dir_.path();
    options.prefix = kPrefix;
    options.file_size = kMinLogFileSize;
    options.signature.random[0] = 7;
    options.signature.created_us = 1;
    auto writer = LogWriter::Start(options, 5, std::nullopt);
    ASSERT_TRUE(writer.ok()) << writer.status();
    writer_ = std::move(*writer);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(AppendOne().ok());
    ASSERT_TRUE(writer_->Flush().ok());
  }

  absl::Status AppendOne() {
    std::vector<PendingRecord> records(1);
    records[0].type = RecordType::kStart;
    records[0].head = "a record of the test";
    auto appended = writer_->Append(records);
    if (!appended.ok()) return appended.status();
    return writer_->WaitDurable(appended->end);
  }

  std::string CurrentLogPath() const { return JoinPath(dir_.path(), CurrentLogName(kPrefix)); }
  std::string ClosedLogPath(Generation g) const {
    return JoinPath(dir_.path(), LogFileName(kPrefix, g));
  }
  static std::string Bytes(const std::string& path) {
    auto bytes = ReadFileToString(path);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : "";
  }

  testing::TempDir dir_{"log_writer"};
  std::unique_ptr<LogWriter> writer_;
};

TEST_F(LogWriterTest, AfterCloseAppendAndRollAreRefusedAndTheLogKeepsItsRecords) {
  ASSERT_TRUE(writer_->Close().ok());
  const std::string closed = Bytes(CurrentLogPath());

  const absl::Status appended = AppendOne();
  EXPECT_EQ(appended.code(), absl::StatusCode::kFailedPrecondition) << appended;
  EXPECT_NE(appended.message().find("log stream E00 in " + dir_.path() + " is closed"),
            std::string::npos)
      << appended;
  const absl::Status rolled = writer_->Roll();
  EXPECT_EQ(rolled.code(), absl::StatusCode::kFailedPrecondition) << rolled;
  EXPECT_EQ(writer_->SealAndClose().code(), absl::StatusCode::kFailedPrecondition);

  EXPECT_EQ(Bytes(CurrentLogPath()), closed);
  EXPECT_FALSE(PathExists(ClosedLogPath(5)));
  EXPECT_TRUE(writer_->Close().ok()) << "closing again does nothing";
}

TEST_F(LogWriterTest, AfterSealAndCloseNoSuccessorIsStarted) {
  ASSERT_TRUE(writer_->SealAndClose().ok());
  ASSERT_TRUE(PathExists(ClosedLogPath(5)));
  const std::string sealed = Bytes(ClosedLogPath(5));

  EXPECT_EQ(writer_->Roll().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AppendOne().code(), absl::StatusCode::kFailedPrecondition);

  EXPECT_EQ(Bytes(ClosedLogPath(5)), sealed);
  EXPECT_FALSE(PathExists(CurrentLogPath()));
  EXPECT_FALSE(PathExists(ClosedLogPath(6)));
}

TEST_F(LogWriterTest, RecordsContinuingAGenerationWhoseFileIsNotOpenAreRefused) {
  const std::string before = Bytes(CurrentLogPath());
  ASSERT_TRUE(LogWriterTestPeer::CloseFileOnly(*writer_).ok());

  const absl::Status rolled = writer_->Roll();
  EXPECT_EQ(rolled.code(), absl::StatusCode::kInternal) << rolled;
  EXPECT_NE(rolled.message().find("log generation 5 of E00"), std::string::npos) << rolled;
  EXPECT_NE(rolled.message().find("refusing to create its file again"), std::string::npos)
      << rolled;
  // The writer has failed: the unit must be recovered, and its log is whole.
  EXPECT_FALSE(writer_->health().ok());
  EXPECT_EQ(Bytes(CurrentLogPath()), before);
  EXPECT_FALSE(PathExists(ClosedLogPath(5)));
}

}  // namespace
}  // namespace dagvault::mailstore
