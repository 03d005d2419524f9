// dagvault: the operator's command line (coordinator/cli/admin_commands.h
// for the coordinator's commands, repo_command.h for the repository's).
#include <iostream>

#include "common/logging.h"
#include "coordinator/cli/admin_commands.h"
#include "coordinator/cli/repo_command.h"

int main(int argc, char** argv) {
  // Results go to stdout; warnings (a stale lock broken, say) to stderr.
  dagvault::logging::Init({.level = "warn"});
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "repo") {
    args.erase(args.begin());
    return dagvault::cli::RunRepoCommand(args, std::cout, std::cerr);
  }
  return dagvault::cli::RunAdminCommand(args, std::cout, std::cerr);
}
