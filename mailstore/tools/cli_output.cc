#include "mailstore/tools/cli_output.h"

#include "google/protobuf/util/json_util.h"
#include "mailstore/tools/util.h"

namespace dagvault::mailstore {

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

int UsageError(std::ostream& err, const absl::Status& status, const char* command) {
  err << "mailstore-util " << command << ": " << status.message() << "\n";
  return kExitUsage;
}

}  // namespace dagvault::mailstore
