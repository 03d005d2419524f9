// Loading configuration written in protobuf text format.
//
// Errors name the file, line and column of a syntax error or unknown field,
// and the path of a missing required field ("units[1].log_prefix"), so an
// operator knows exactly what to fix. Fields marked [(dagvault.v1.required) =
// true] in the .proto must be set.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace dagvault {

// Parses `text` into `out`. `source` names the input in error messages.
absl::Status ParseTextConfig(absl::string_view text, absl::string_view source,
                             google::protobuf::Message* out);

// Reads and parses the file at `path`.
absl::Status LoadTextConfig(const std::string& path, google::protobuf::Message* out);

// Checks every field marked required, recursively. Returns one
// InvalidArgument error listing each missing field by its path.
absl::Status CheckRequiredFields(const google::protobuf::Message& message,
                                 absl::string_view source);

// Renders a message in text format (for writing example configurations).
std::string ToTextConfig(const google::protobuf::Message& message);

}  // namespace dagvault
