#include "coordinator/schedule/cron.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

using ::testing::HasSubstr;

absl::Time At(const std::string& text) {
  absl::Time t;
  std::string error;
  EXPECT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M", text, absl::UTCTimeZone(), &t, &error)) << error;
  return t;
}

std::string Fmt(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M %a", t, absl::UTCTimeZone());
}

absl::Time Next(const std::string& schedule, const std::string& after) {
  auto s = CronSchedule::Parse(schedule);
  EXPECT_TRUE(s.ok()) << s.status();
  return s->Next(At(after));
}

TEST(Cron, TheUsualSchedulesFireWhenCronWould) {
  // 2026-11-22 is a Sunday.
  EXPECT_EQ(Fmt(Next("0 1 * * sun", "2026-11-22 00:30")), "2026-11-22 01:00 Sun");
  EXPECT_EQ(Fmt(Next("0 1 * * sun", "2026-11-22 01:00")), "2026-11-29 01:00 Sun");
  EXPECT_EQ(Fmt(Next("*/15 * * * *", "2026-11-22 10:07")), "2026-11-22 10:15 Sun");
  EXPECT_EQ(Fmt(Next("30 2 * * 1-5", "2026-11-22 10:00")), "2026-11-23 02:30 Mon");
  EXPECT_EQ(Fmt(Next("0 0 1 jan *", "2026-11-22 10:00")), "2027-01-01 00:00 Fri");
  EXPECT_EQ(Fmt(Next("0 0 29 2 *", "2026-03-01 00:00")), "2028-02-29 00:00 Tue");
  EXPECT_EQ(Fmt(Next("* * * * *", "2026-11-22 23:59")), "2026-11-23 00:00 Mon");
  EXPECT_EQ(Fmt(Next("0 12 * * 7", "2026-11-23 00:00")), "2026-11-29 12:00 Sun");  // 7 is Sunday
  EXPECT_EQ(Fmt(Next("5,10-20/5 3 * * *", "2026-11-22 03:11")), "2026-11-22 03:15 Sun");
}

TEST(Cron, BothDayFieldsRestrictedMatchEither) {
  // The 1st, or any Monday.
  EXPECT_EQ(Fmt(Next("0 0 1 * mon", "2026-11-22 00:00")), "2026-11-23 00:00 Mon");
  EXPECT_EQ(Fmt(Next("0 0 1 * mon", "2026-11-24 00:00")), "2026-11-30 00:00 Mon");
  EXPECT_EQ(Fmt(Next("0 0 1 * mon", "2026-11-30 00:00")), "2026-12-01 00:00 Tue");
}

TEST(Cron, AScheduleThatNeverFiresSaysSo) {
  EXPECT_EQ(Next("0 0 30 2 *", "2026-01-01 00:00"), absl::InfiniteFuture());
}

TEST(Cron, ErrorsNameTheFieldAndTheToken) {
  EXPECT_THAT(std::string(CronSchedule::Parse("0 1 * *").status().message()),
              HasSubstr("has 4 fields; a schedule has five"));
  EXPECT_THAT(std::string(CronSchedule::Parse("0 1 32 * *").status().message()),
              HasSubstr("field 3 (day of month): \"32\" is outside 1-31"));
  EXPECT_THAT(std::string(CronSchedule::Parse("0 25 * * *").status().message()),
              HasSubstr("field 2 (hour): \"25\" is outside 0-23"));
  EXPECT_THAT(std::string(CronSchedule::Parse("0 1 * foo *").status().message()),
              HasSubstr("field 4 (month): \"foo\" is not a number or a name"));
  EXPECT_THAT(std::string(CronSchedule::Parse("*/0 * * * *").status().message()),
              HasSubstr("field 1 (minute): \"*/0\" has a step that is not a positive number"));
  EXPECT_THAT(std::string(CronSchedule::Parse("0 5-2 * * *").status().message()),
              HasSubstr("field 2 (hour): \"5-2\" is a range that runs backwards"));
}

}  // namespace
}  // namespace dagvault::coordinator
