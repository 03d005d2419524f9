// dagvault-agent: the node agent. Today it runs one job in local mode
// (node-agent/local/local_commands.h); the daemon that takes jobs from the
// coordinator comes with it.
#include <iostream>

#include "common/interrupt.h"
#include "common/logging.h"
#include "node-agent/local/local_commands.h"

int main(int argc, char** argv) {
  // Before any thread starts, so that Ctrl-C cancels a job instead of
  // killing the process (common/interrupt.h).
  dagvault::InstallInterruptHandler();
  // Results go to stdout, progress and warnings to stderr.
  dagvault::logging::Init({.level = "warn"});
  return dagvault::agent::RunLocalCommand(std::vector<std::string>(argv + 1, argv + argc),
                                          std::cout, std::cerr);
}
