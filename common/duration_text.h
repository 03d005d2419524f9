// Durations as operators write and read them: "26h", "1d 12h", "90m",
// "45s" (policy levels such as --rpo, ages in `dagvault status`).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dagvault {

// The largest unit and the next one, rounded down (a zero second unit is
// left out): "2d 3h", 26 hours is "1d 2h", "5h 12m", "3m 20s", "42s", "0s";
// 1 day and 30 minutes is "1d".
std::string DurationText(absl::Duration d);

// One or more <number><unit>, unit d, h, m or s, optionally separated by
// spaces: "26h", "1d12h", "1h 30m". Positive only. The error names the text
// and what it expected.
absl::StatusOr<absl::Duration> ParseDurationText(absl::string_view text);

}  // namespace dagvault
