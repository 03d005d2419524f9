// `dagvault repo ...`: the repository's commands, working on a path with no
// coordinator (docs/repository.md).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/cli_args.h"

namespace dagvault::cli {

// `dagvault repo ...`, parsed (dagvault_commands.cc): positional()[0] is
// the command (init, key, backup, ...). `*clean` is false when check found
// errors. An InvalidArgument error is a usage error (exit 2).
absl::Status RunRepoCommand(const CliArgs& args, std::ostream& out, bool* clean);

}  // namespace dagvault::cli
