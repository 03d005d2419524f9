// Cron schedules for backup policies (issue 7): the five classic fields,
//
//   minute hour day-of-month month day-of-week
//   0      1    *            *     sun          every Sunday at 01:00
//   */15   *    *            *     *            every quarter hour
//   30     2    1-7          *     mon          (day 1-7 OR Monday, as cron)
//
// with `*`, numbers, names (jan..dec, sun..sat), lists `a,b`, ranges `a-b`
// and steps `*/n`, `a-b/n`. Day-of-week 0 and 7 are Sunday. As in cron, when
// both day fields are restricted a day matches either. Times are UTC.
#pragma once

#include <bitset>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace dagvault::coordinator {

class CronSchedule {
 public:
  // Errors name the field and the token at fault: `field 3 (day of month):
  // "32" is outside 1-31`.
  static absl::StatusOr<CronSchedule> Parse(const std::string& text);

  // The first minute strictly after `after` that matches; InfiniteFuture if
  // none within five years (e.g. "0 0 30 2 *").
  absl::Time Next(absl::Time after) const;
  bool Matches(absl::Time minute) const;
  const std::string& text() const { return text_; }

 private:
  // Both day fields, with cron's either-or when both are restricted.
  bool DayMatches(absl::CivilDay day) const;

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1..31
  std::bitset<13> months_;   // 1..12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool days_restricted_ = false;
  bool weekdays_restricted_ = false;
};

}  // namespace dagvault::coordinator
