// The operator's names of copy states, in Exchange's spelling ("Healthy",
// "FailedAndSuspended"): one spelling for mailstore-util, the coordinator
// and the CLI.
#pragma once

#include <string>

#include "dagvault/v1/mailstored.pb.h"

namespace dagvault {

std::string CopyStateName(dagvault::v1::CopyState state);

}  // namespace dagvault
