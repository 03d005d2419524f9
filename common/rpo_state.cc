#include "common/rpo_state.h"

namespace dagvault {

std::string RpoStateName(dagvault::v1::RpoState state) {
  switch (state) {
    case dagvault::v1::RPO_OK:
      return "ok";
    case dagvault::v1::RPO_WARNING:
      return "warning";
    case dagvault::v1::RPO_CRITICAL:
      return "critical";
    case dagvault::v1::RPO_NEVER_BACKED_UP:
      return "never backed up";
    case dagvault::v1::RPO_NOT_SET:
      return "not set";
    default:
      return "unknown";  // not judged (an error says why)
  }
}

}  // namespace dagvault
