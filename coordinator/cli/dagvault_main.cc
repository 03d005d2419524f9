// dagvault: the operator's command line. Today it has the repository's
// commands (`dagvault repo ...`); the coordinator's come with it.
#include <iostream>

#include "common/logging.h"
#include "coordinator/cli/repo_command.h"

int main(int argc, char** argv) {
  // Results go to stdout; warnings (a stale lock broken, say) to stderr.
  dagvault::logging::Init({.level = "warn"});
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] != "repo") {
    std::cerr << "usage: dagvault repo COMMAND ... (dagvault repo help for the commands)\n";
    return 2;
  }
  args.erase(args.begin());
  return dagvault::cli::RunRepoCommand(args, std::cout, std::cerr);
}
