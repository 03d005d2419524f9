// dagvault: the operator's command line. Its commands are declared in
// coordinator/cli/dagvault_commands.cc; admin_commands.h runs them.
#include <grpc/support/log.h>

#include <cstdlib>
#include <iostream>

#include "common/logging.h"
#include "coordinator/cli/admin_commands.h"

int main(int argc, char** argv) {
  // Results go to stdout; warnings (a stale lock broken, say) to stderr.
  dagvault::logging::Init({.level = "warn"});
  // gRPC's own log lines (a probe cancelled once another coordinator
  // answered, say) are noise on an operator's terminal: every failure
  // reaches the command as a status that it explains. GRPC_VERBOSITY or
  // GRPC_TRACE brings them back for debugging.
  if (std::getenv("GRPC_VERBOSITY") == nullptr && std::getenv("GRPC_TRACE") == nullptr) {
    gpr_set_log_function([](gpr_log_func_args*) {});
  }
  return dagvault::cli::RunAdminCommand(std::vector<std::string>(argv + 1, argv + argc), std::cout,
                                        std::cerr);
}
