// Named crash points compiled into the daemons and tools, so that tests can
// kill a process at an exact step ("log.roll.after_seal") instead of hoping a
// random kill lands there; and fail points, which return an error there
// instead (bottom of this file).
//
// A point fires when the process was configured with its name, either by
// the DAGVAULT_CRASH_AT environment variable or by ConfigureCrashPoint()
// (daemons expose it as a flag). "name@N" fires on the N-th hit (default 1).
// Firing sends SIGKILL to the process itself: no destructors, no flushing,
// the same as kill -9 from outside.
//
// The same points can instead be slowed, so that a test acts while a step
// is under way (sends SIGINT in the middle of a transfer): with
// DAGVAULT_DELAY_AT="name:MS[,name2:MS2...]" or ConfigureDelayPoint(),
// every hit of the point sleeps MS milliseconds.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dagvault {

absl::Status ConfigureCrashPoint(absl::string_view spec);

// "name:MS"; an empty spec disarms.
absl::Status ConfigureDelayPoint(absl::string_view spec);

void CrashPoint(absl::string_view name);

// A point that fails instead of killing: with DAGVAULT_FAIL_AT="name" (or
// ConfigureFailPoint), FailPoint(name) returns an Internal error naming it,
// every time; otherwise OK. For failures no real fault makes on demand (a
// folder's fsync failing after a rename).
absl::Status ConfigureFailPoint(absl::string_view name);
absl::Status FailPoint(absl::string_view name);

// True if the next CrashPoint(name) call will kill the process: lets a test
// build a state no real crash leaves on purpose, such as half of a page
// written, just before the kill.
bool CrashPointWillFire(absl::string_view name);

}  // namespace dagvault

#define DAGVAULT_CRASH_POINT(name) ::dagvault::CrashPoint(name)
