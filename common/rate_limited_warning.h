// A warning that repeats while a condition lasts (a coordinator unreachable
// for an hour, a mail server that does not answer) is logged once a minute
// with a count, not at every retry, so the log stays readable at 3 a.m.
#pragma once

#include <functional>
#include <mutex>
#include <string>

#include "absl/time/time.h"
#include "common/clock.h"

namespace dagvault {

class RateLimitedWarning {
 public:
  using Sink = std::function<void(const std::string&)>;
  // `sink` defaults to the named logger's warn().
  explicit RateLimitedWarning(std::string logger, absl::Duration window = absl::Minutes(1),
                              Clock* clock = RealClock(), Sink sink = nullptr);

  // Logs `message` unless it is the one logged last, less than the window
  // ago; a repeat after the window says how many were held back.
  void Warn(const std::string& message);
  // The condition ended (e.g. reconnected): the next warning is logged.
  void Reset();

 private:
  const absl::Duration window_;
  Clock* clock_;
  Sink sink_;
  std::mutex mu_;
  std::string last_;
  absl::Time logged_ = absl::InfinitePast();
  int suppressed_ = 0;
};

}  // namespace dagvault
