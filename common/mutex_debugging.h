// One switch every long-running dagvault process flips at start.
#pragma once

#include "absl/synchronization/mutex.h"

namespace dagvault {

// Debian's abseil is built without NDEBUG, so absl::Mutex's deadlock
// detection is on: a lock-order graph updated on every lock of gRPC's
// mutexes. It took 12% of the coordinator's CPU at 10,000 agents and 19% of
// the benchmark's simulated fleet (perf). It is a debugging aid that changes
// no behaviour of a correct program, and our own code locks std::mutex,
// which it never watched. Call before any thread starts.
inline void TurnOffAbslDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace dagvault
