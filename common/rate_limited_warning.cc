#include "common/rate_limited_warning.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace dagvault {

RateLimitedWarning::RateLimitedWarning(std::string logger, absl::Duration window, Clock* clock,
                                       Sink sink)
    : window_(window), clock_(clock), sink_(std::move(sink)) {
  if (!sink_) {
    sink_ = [logger](const std::string& m) { logging::Get(logger)->warn("{}", m); };
  }
}

void RateLimitedWarning::Warn(const std::string& message) {
  std::string line;
  {
    std::lock_guard<std::mutex> l(mu_);
    const absl::Time now = clock_->Now();
    if (message == last_ && now - logged_ < window_) {
      ++suppressed_;
      return;
    }
    line = message == last_ && suppressed_ > 0
               ? absl::StrCat(message, " (repeated ", suppressed_, " times since ",
                              FormatUtc(logged_), ")")
               : message;
    last_ = message;
    logged_ = now;
    suppressed_ = 0;
  }
  sink_(line);
}

void RateLimitedWarning::Reset() {
  std::lock_guard<std::mutex> l(mu_);
  last_.clear();
  suppressed_ = 0;
}

}  // namespace dagvault
