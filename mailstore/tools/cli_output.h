// Output helpers shared by mailstore-util's commands.
#pragma once

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace dagvault::mailstore {

// Pretty JSON with the .proto field names and every field present, for
// --json output that scripts can rely on.
std::string ToJson(const google::protobuf::Message& message);

// Prints "mailstore-util COMMAND: message" and returns the usage exit code.
int UsageError(std::ostream& err, const absl::Status& status, const char* command);

}  // namespace dagvault::mailstore
