#include "common/copy_state.h"

namespace dagvault {

std::string CopyStateName(dagvault::v1::CopyState state) {
  namespace v1 = dagvault::v1;
  switch (state) {
    case v1::MOUNTED:
      return "Mounted";
    case v1::DISMOUNTED:
      return "Dismounted";
    case v1::HEALTHY:
      return "Healthy";
    case v1::INITIALIZING:
      return "Initializing";
    case v1::RESYNCHRONIZING:
      return "Resynchronizing";
    case v1::SUSPENDED:
      return "Suspended";
    case v1::FAILED:
      return "Failed";
    case v1::FAILED_AND_SUSPENDED:
      return "FailedAndSuspended";
    case v1::SERVICE_DOWN:
      return "ServiceDown";
    default:
      return "Unknown";
  }
}

}  // namespace dagvault
