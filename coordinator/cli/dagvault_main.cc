// dagvault: the operator's command line. Its commands are declared in
// coordinator/cli/dagvault_commands.cc; admin_commands.h runs them.
#include <iostream>

#include "common/logging.h"
#include "coordinator/cli/admin_commands.h"

int main(int argc, char** argv) {
  // Results go to stdout; warnings (a stale lock broken, say) to stderr.
  dagvault::logging::Init({.level = "warn"});
  return dagvault::cli::RunAdminCommand(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                        std::cerr);
}
