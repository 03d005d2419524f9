// The operator's names of RPO states ("ok", "warning", "critical", "never
// backed up", "not set"): one spelling for the coordinator and the CLI.
#pragma once

#include <string>

#include "dagvault/v1/admin.pb.h"

namespace dagvault {

std::string RpoStateName(dagvault::v1::RpoState state);

}  // namespace dagvault
