// The operator's commands against a running coordinator (docs/operations.md):
//
//   dagvault status
//   dagvault backup start --unit U [--type T] [--source-mode M] [--prefer N,...] [--wait]
//   dagvault backup list [--unit U]
//   dagvault chain show --unit U
//   dagvault job list [--unit U] | job show ID | job cancel ID
//   dagvault catalog rebuild [--repo PATH]
//   dagvault certs init --dir DIR | certs issue --dir DIR --name N --role R
//
// Tables for people, --json for scripts. Exit codes: 0 ok, 1 the operation
// failed (a refused start, a job that failed), 2 usage.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace dagvault::cli {

// argv without "dagvault"; argv[0] is the command (status, backup, ...).
int RunAdminCommand(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err);

}  // namespace dagvault::cli
