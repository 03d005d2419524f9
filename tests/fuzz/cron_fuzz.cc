// Cron expressions (coordinator/schedule/cron.h): CronSchedule::Parse, and
// Next from a time the input chooses between 1970 and about 2400. The next
// firing is a whole minute strictly after the start, matches, and no
// earlier minute after the start matches.
//
// Input: eight bytes for the start time, then the expression.
#include <cstring>
#include <string>

#include "coordinator/schedule/cron.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {

int FuzzCron(const uint8_t* data, size_t size) {
  if (size < 8 || size > 8 + 512) return 0;
  uint64_t raw;
  std::memcpy(&raw, data, 8);
  const std::string text(reinterpret_cast<const char*>(data + 8), size - 8);
  auto schedule = coordinator::CronSchedule::Parse(text);
  if (!schedule.ok()) return 0;
  FUZZ_CHECK(schedule->text() == text);
  // Seconds from 1970 to about 2400, not always on a minute.
  const absl::Time after = absl::FromUnixSeconds(static_cast<int64_t>(raw % 13569465600ull));
  const absl::Time next = schedule->Next(after);
  if (next == absl::InfiniteFuture()) return 0;
  FUZZ_CHECK(next > after);
  FUZZ_CHECK(next - after <= absl::Hours(24 * 366 * 5 + 24));
  FUZZ_CHECK(absl::ToUnixSeconds(next) % 60 == 0);
  FUZZ_CHECK(schedule->Matches(next));
  // The minutes just before it do not match (a bounded look back).
  absl::Time t = next - absl::Minutes(1);
  for (int i = 0; i < 200 && t > after; ++i, t -= absl::Minutes(1)) {
    FUZZ_CHECK(!schedule->Matches(t));
  }
  FUZZ_CHECK(schedule->Next(next - absl::Seconds(1)) == next);
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzCron)
