// The clock seam. Production code takes a Clock*; tests pass a FakeClock to
// control times written into headers and the passing of timeouts.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dagvault {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  int64_t NowMicros() const { return absl::ToUnixMicros(Now()); }
};

// The process-wide real clock.
Clock* RealClock();

// CPU time used so far by the calling thread, and by the whole process:
// what a stage of a job cost, apart from the waiting (a benchmark's figure,
// steadier than wall time on a shared machine).
absl::Duration ThreadCpuTime();
absl::Duration ProcessCpuTime();

// "2026-11-22 12:09:00 UTC": times in messages and tables for people.
std::string FormatUtc(absl::Time t);

class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}
  absl::Time Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  absl::Time now_;
};

}  // namespace dagvault
