#include "common/clock.h"

#include <time.h>

namespace dagvault {
namespace {
class RealClockImpl : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Duration Monotonic() const override { return ReadClock(CLOCK_MONOTONIC); }

  static absl::Duration ReadClock(clockid_t id) {
    timespec ts{};
    if (clock_gettime(id, &ts) != 0) return absl::ZeroDuration();
    return absl::DurationFromTimespec(ts);
  }
};

absl::Duration CpuClock(clockid_t id) { return RealClockImpl::ReadClock(id); }
}  // namespace

Clock* RealClock() {
  static RealClockImpl* clock = new RealClockImpl();
  return clock;
}

absl::Duration ThreadCpuTime() { return CpuClock(CLOCK_THREAD_CPUTIME_ID); }
absl::Duration ProcessCpuTime() { return CpuClock(CLOCK_PROCESS_CPUTIME_ID); }

std::string FormatUtc(absl::Time t) {
  if (t == absl::InfinitePast()) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone());
}

}  // namespace dagvault
