#include "common/text_config.h"

#include "dagvault/v1/mailstore.pb.h"
#include "gtest/gtest.h"

namespace dagvault {
namespace {

using dagvault::v1::UnitConfig;

TEST(TextConfig, ParsesValidConfig) {
  UnitConfig config;
  absl::Status s = ParseTextConfig(R"(
      name: "sg1" mode: STORAGE_GROUP log_prefix: "E00" system_dir: "/data/sg1"
      databases { name: "mb1" path: "mb1.edb" }
      databases { name: "mb2" path: "mb2.edb" }
  )",
                                   "unit.conf", &config);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(config.databases_size(), 2);
  EXPECT_EQ(config.mode(), UnitConfig::STORAGE_GROUP);
}

TEST(TextConfig, UnknownFieldNamesFileLineAndColumn) {
  UnitConfig config;
  absl::Status s = ParseTextConfig("name: \"u\"\n  lgo_prefix: \"E00\"\n", "unit.conf", &config);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unit.conf:2:"), std::string::npos) << s;
  EXPECT_NE(s.message().find("lgo_prefix"), std::string::npos) << s;
}

TEST(TextConfig, MissingRequiredFieldsAreListedByPath) {
  UnitConfig config;
  absl::Status s = ParseTextConfig(R"(
      name: "sg1" mode: DATABASE system_dir: "/d"
      databases { path: "mb1.edb" }
  )",
                                   "unit.conf", &config);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("field 'log_prefix' is required"), std::string::npos) << s;
  EXPECT_NE(s.message().find("field 'databases[0].name' is required"), std::string::npos) << s;
}

TEST(TextConfig, BadEnumValueIsNamed) {
  UnitConfig config;
  absl::Status s = ParseTextConfig("mode: MIRRORED\n", "u.conf", &config);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("MIRRORED"), std::string::npos) << s;
}

TEST(TextConfig, ABadValueShowsItsLineSoTheFieldIsNamed) {
  UnitConfig config;
  absl::Status s = ParseTextConfig("name: \"u\"\nlog_file_size: \"big\"\n", "unit.conf", &config);
  ASSERT_FALSE(s.ok());
  // The parser says only what it expected; the quoted line names the field.
  EXPECT_NE(s.message().find("unit.conf:2:16: Expected integer"), std::string::npos) << s;
  EXPECT_NE(s.message().find("\n    log_file_size: \"big\"\n                   ^"),
            std::string::npos)
      << s;
}

TEST(TextConfig, LoadNamesMissingFile) {
  UnitConfig config;
  absl::Status s = LoadTextConfig("/nonexistent/unit.conf", &config);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent/unit.conf"), std::string::npos);
}

}  // namespace
}  // namespace dagvault
