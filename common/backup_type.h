// The names of a backup type (DESIGN.md §5): the lower-case token the
// writer records in database headers and backup-in-progress state and
// parses back, and the capitalised name people read in messages.
#pragma once

#include <string>

#include "dagvault/v1/writer.pb.h"

namespace dagvault {

// "full", "copy", "incremental", "differential"; "unspecified" otherwise.
std::string BackupTypeToken(dagvault::v1::BackupType type);
// "Full", "Copy", "Incremental", "Differential".
std::string BackupTypeTitle(dagvault::v1::BackupType type);

}  // namespace dagvault
