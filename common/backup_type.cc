#include "common/backup_type.h"

#include "absl/strings/ascii.h"

namespace dagvault {

std::string BackupTypeToken(dagvault::v1::BackupType type) {
  switch (type) {
    case dagvault::v1::FULL:
      return "full";
    case dagvault::v1::COPY:
      return "copy";
    case dagvault::v1::INCREMENTAL:
      return "incremental";
    case dagvault::v1::DIFFERENTIAL:
      return "differential";
    case dagvault::v1::LOG_ARCHIVE:
      return "log-archive";
    default:
      return "unspecified";
  }
}

std::string BackupTypeTitle(dagvault::v1::BackupType type) {
  if (type == dagvault::v1::LOG_ARCHIVE) return "Log archive";
  std::string name = BackupTypeToken(type);
  name[0] = absl::ascii_toupper(static_cast<unsigned char>(name[0]));
  return name;
}

}  // namespace dagvault
