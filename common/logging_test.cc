#include "common/logging.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::logging {
namespace {

using ::testing::HasSubstr;

CliArgs Flags(const std::vector<std::string>& argv) {
  auto args = CliArgs::Parse(argv, {{"config", "log-file", "log-level"}, {}});
  EXPECT_TRUE(args.ok()) << args.status();
  return *args;
}

class LoggingTest : public ::testing::Test {
 protected:
  ~LoggingTest() override { Init({.level = "warn"}); }
  testing::TempDir dir_{"logging"};
};

TEST_F(LoggingTest, AnUnknownLevelIsAnErrorListingTheValidOnesNotSilence) {
  absl::Status s = TryInit({.level = "loud"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("\"loud\" is not a log level"));
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("valid levels: trace, debug, info, warn, error, critical, off"));
  // Logging was left as it was.
  EXPECT_TRUE(Get("logging.test")->should_log(spdlog::level::warn));
}

TEST_F(LoggingTest, ALogFileThatCannotBeOpenedIsAnErrorNamingIt) {
  const std::string missing = dir_.Sub("no/such/dir/daemon.log");
  absl::Status s = TryInit({.level = "info", .file = missing});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat("log file: open ", missing)));
  EXPECT_FALSE(PathExists(dir_.Sub("no"))) << "the missing folders were created";
  // A folder where the file should be.
  s = TryInit({.level = "info", .file = dir_.path()});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir_.path()));
}

TEST_F(LoggingTest, LinesGoToTheFileAtTheLevelAsked) {
  const std::string file = dir_.Sub("daemon.log");
  ASSERT_TRUE(TryInit({.level = "debug", .file = file}).ok());
  Get("logging.test")->debug("a debug line");
  Get("logging.test")->trace("a trace line");
  auto text = ReadFileToString(file);
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr("a debug line"));
  EXPECT_THAT(*text, ::testing::Not(HasSubstr("a trace line")));
}

TEST_F(LoggingTest, ADaemonsLevelComesFromItsFlagThenItsConfigurationAndErrorsNameTheField) {
  absl::Status s = InitDaemon(Flags({}), "/etc/dagvault/agent.conf", "verbose");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("/etc/dagvault/agent.conf: field 'log_level': \"verbose\" is not a log "
                        "level; valid levels: trace, debug, info, warn, error, critical, off"));
  // A bad field is an error even when the flag would override it.
  s = InitDaemon(Flags({"--log-level", "info"}), "agent.conf", "verbose");
  EXPECT_THAT(std::string(s.message()), HasSubstr("agent.conf: field 'log_level'"));
  s = InitDaemon(Flags({"--log-level", "chatty"}), "agent.conf", "info");
  EXPECT_THAT(std::string(s.message()), HasSubstr("--log-level: \"chatty\" is not a log level"));

  ASSERT_TRUE(InitDaemon(Flags({"--log-level", "error"}), "agent.conf", "debug").ok());
  EXPECT_FALSE(Get("logging.test")->should_log(spdlog::level::warn));
  ASSERT_TRUE(InitDaemon(Flags({}), "agent.conf", "debug").ok());
  EXPECT_TRUE(Get("logging.test")->should_log(spdlog::level::debug));
  ASSERT_TRUE(InitDaemon(Flags({}), "agent.conf", "").ok());
  EXPECT_TRUE(Get("logging.test")->should_log(spdlog::level::info));
  EXPECT_FALSE(Get("logging.test")->should_log(spdlog::level::debug));

  s = InitDaemon(Flags({"--log-file", dir_.Sub("absent/agent.log")}), "agent.conf", "");
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir_.Sub("absent/agent.log")));
}

}  // namespace
}  // namespace dagvault::logging
