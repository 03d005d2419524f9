#include "common/duration_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dagvault {
namespace {

using ::testing::HasSubstr;

TEST(DurationText, ShowsTheTwoLargestUnits) {
  EXPECT_EQ(DurationText(absl::ZeroDuration()), "0s");
  EXPECT_EQ(DurationText(absl::Seconds(42)), "42s");
  EXPECT_EQ(DurationText(absl::Seconds(200)), "3m 20s");
  EXPECT_EQ(DurationText(absl::Minutes(312)), "5h 12m");
  EXPECT_EQ(DurationText(absl::Hours(26)), "1d 2h");
  EXPECT_EQ(DurationText(absl::Hours(48) + absl::Minutes(5)), "2d");
  EXPECT_EQ(DurationText(absl::Hours(2)), "2h");
  EXPECT_EQ(DurationText(absl::Milliseconds(1500)), "1s");
  EXPECT_EQ(DurationText(-absl::Minutes(2)), "-2m");
}

TEST(DurationText, ParsesWhatOperatorsWrite) {
  EXPECT_EQ(*ParseDurationText("26h"), absl::Hours(26));
  EXPECT_EQ(*ParseDurationText("1d12h"), absl::Hours(36));
  EXPECT_EQ(*ParseDurationText("1h 30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDurationText("45s"), absl::Seconds(45));
  EXPECT_EQ(*ParseDurationText(DurationText(absl::Hours(26))), absl::Hours(26));
}

TEST(DurationText, RefusesWhatIsNotADurationAndSaysWhy) {
  for (const char* text : {"", "  ", "26", "h", "5x", "0h", "-3h", "1.5h"}) {
    auto parsed = ParseDurationText(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_THAT(std::string(parsed.status().message()),
                HasSubstr(absl::StrCat("\"", text, "\" is not a duration")));
  }
  EXPECT_THAT(std::string(ParseDurationText("26").status().message()), HasSubstr("needs a unit"));
  EXPECT_THAT(std::string(ParseDurationText("0h").status().message()), HasSubstr("more than zero"));
}

}  // namespace
}  // namespace dagvault
