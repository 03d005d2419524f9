#include "common/clock.h"

namespace dagvault {
namespace {
class RealClockImpl : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};
}  // namespace

Clock* RealClock() {
  static RealClockImpl* clock = new RealClockImpl();
  return clock;
}

}  // namespace dagvault
