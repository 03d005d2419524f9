// The clock seam. Production code takes a Clock*; tests pass a FakeClock to
// control times written into headers and the passing of timeouts.
//
// Two readings, for two purposes:
//  - Now(): the wall clock, for times that are written down or shown
//    (headers, catalog rows, log lines). It can step backwards or forwards
//    (an operator, NTP, a VM resumed).
//  - Monotonic(): time since an arbitrary origin that only moves forward
//    at a steady rate, for every duration that decides something (lease
//    expiry, fencing, timeouts, lock freshness). A wall-clock step neither
//    expires anything early nor extends anything.
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
  // CLOCK_MONOTONIC for the real clock: only differences mean anything.
  virtual absl::Duration Monotonic() const = 0;
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
  absl::Duration Monotonic() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return monotonic_;
  }
  // Time passes: both readings move.
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
    monotonic_ += d;
  }
  // Someone sets the wall clock (either way): the monotonic reading stays.
  void StepWallClock(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  absl::Time now_;
  absl::Duration monotonic_ = absl::Hours(1);
};

}  // namespace dagvault
