#include "coordinator/schedule/policy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

v1::Policy Nightly() {
  v1::Policy p;
  p.set_name("nightly");
  p.add_units("DB02");
  p.add_units("SG01");
  p.set_full_schedule("0 1 * * sun");
  p.set_incremental_schedule("0 1 * * mon-sat");
  return p;
}

std::string Why(const v1::Policy& p, const std::vector<v1::Policy>& others = {}) {
  return std::string(ValidatePolicy(p, others).message());
}

TEST(Policy, AGoodPolicyPassesAndSaysWhenItRunsNext) {
  ASSERT_TRUE(ValidatePolicy(Nightly(), {}).ok());
  // Sunday 2026-11-22 at 12:00: the next Incremental is Monday 01:00, the
  // next Full Sunday 29th 01:00.
  absl::Time noon;
  std::string error;
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M", "2026-11-22 12:00", &noon, &error));
  const v1::PolicyInfo info = DescribePolicy(Nightly(), noon);
  EXPECT_EQ(absl::FormatTime("%a %d %H:%M", absl::FromUnixMicros(info.next_full_us()),
                             absl::UTCTimeZone()),
            "Sun 29 01:00");
  EXPECT_EQ(absl::FormatTime("%a %d %H:%M", absl::FromUnixMicros(info.next_incremental_us()),
                             absl::UTCTimeZone()),
            "Mon 23 01:00");
  EXPECT_EQ(info.next_differential_us(), 0);
}

TEST(Policy, EachProblemIsNamed) {
  v1::Policy p = Nightly();
  p.clear_units();
  EXPECT_THAT(Why(p), HasSubstr("it covers no unit"));
  p = Nightly();
  p.clear_full_schedule();
  p.clear_incremental_schedule();
  EXPECT_THAT(Why(p), HasSubstr("it has no schedule"));
  p = Nightly();
  p.set_incremental_schedule("0 1 * * funday");
  EXPECT_THAT(Why(p),
              HasSubstr("--incremental: schedule \"0 1 * * funday\": field 5 (day of week)"));
  p = Nightly();
  p.set_source_mode("passive-sometimes");
  EXPECT_THAT(Why(p), HasSubstr("passive-sometimes"));
  v1::Policy other = Nightly();
  other.set_name("hourly");
  other.clear_units();
  other.add_units("SG01");
  EXPECT_THAT(Why(Nightly(), {other}),
              HasSubstr("unit SG01 is already in policy \"hourly\"; a unit follows one policy"));
  // Replacing a policy is not a conflict with itself.
  EXPECT_TRUE(ValidatePolicy(Nightly(), {Nightly()}).ok());
}

// How long a backup must stay restorable (the Object Lock date): keep_days
// plus the longest gap between Fulls plus a day.
TEST(Policy, ABackupIsKeptForTheRetentionAndTheGapBetweenFulls) {
  absl::Time noon;
  std::string error;
  ASSERT_TRUE(absl::ParseTime("%Y-%m-%d %H:%M", "2026-11-22 12:00", &noon, &error));
  const absl::Duration day = absl::Hours(24);
  v1::Policy weekly = Nightly();
  weekly.set_keep_days(30);
  EXPECT_EQ(BackupRetention(weekly, noon), 30 * day + 7 * day + day);
  // Fulls on the 1st of each month: the longest gap is 31 days.
  v1::Policy monthly = weekly;
  monthly.set_full_schedule("0 2 1 * *");
  EXPECT_EQ(BackupRetention(monthly, noon), 30 * day + 31 * day + day);
  // Fulls every six hours: the gap is small, the retention rules.
  v1::Policy often = weekly;
  often.set_full_schedule("0 */6 * * *");
  EXPECT_EQ(BackupRetention(often, noon), 30 * day + absl::Hours(6) + day);
  // No Full schedule: the gap is not known; keep_days and the day.
  v1::Policy incremental_only = weekly;
  incremental_only.clear_full_schedule();
  EXPECT_EQ(BackupRetention(incremental_only, noon), 31 * day);
  // Kept by count or for good: no date follows (the repository's applies).
  v1::Policy by_count = weekly;
  by_count.set_keep_days(0);
  by_count.set_keep_chains(4);
  EXPECT_EQ(BackupRetention(by_count, noon), absl::ZeroDuration());
  // A unit takes its own policy's; one in no policy none.
  by_count.clear_units();
  by_count.add_units("DB05");
  EXPECT_EQ(UnitBackupRetention({by_count, monthly}, "SG01", noon), 62 * day);
  EXPECT_EQ(UnitBackupRetention({by_count, monthly}, "DB05", noon), absl::ZeroDuration());
  EXPECT_EQ(UnitBackupRetention({by_count, monthly}, "DB09", noon), absl::ZeroDuration());
}

}  // namespace
}  // namespace dagvault::coordinator
