// Picking ports for processes a test or a lab starts on this machine.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dagvault {

// Ports that were free a moment ago on `host`, an IPv4 address (each bound
// to port 0, then released together, so they differ from each other).
absl::StatusOr<std::vector<int>> PickFreePorts(const std::string& host, int count);

}  // namespace dagvault
