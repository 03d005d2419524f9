// `dagvault repo ...`: the repository's commands, working on a path with no
// coordinator (docs/repository.md).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace dagvault::cli {

// argv without "dagvault repo". Returns the exit code: 0 success, 1 a
// failure (or check found errors), 2 a usage error.
int RunRepoCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

}  // namespace dagvault::cli
