// dagvault-agent's local mode: one job on this node, with no coordinator,
// for standalone servers and for debugging (node-agent/README.md).
//
//   dagvault-agent backup  --unit U --type T --repo PATH
//   dagvault-agent restore --unit U --repo PATH [--to-generation G]
//                          [--rdb NAME --path DIR] [--mount] [--roll-forward]
//   dagvault-agent list    --repo PATH [--unit U]
//
// Progress goes to stderr: a bar on a terminal, a plain line every few
// seconds otherwise. The result goes to stdout, as text or, with --json,
// as one JSON object. Exit codes: 0 ok, 1 the job failed, 2 usage.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "common/cli_args.h"
#include "common/command_line.h"

namespace dagvault::agent {

// Every command and flag of dagvault-agent (the daemon's --config and the
// local commands), for the parser, --help and bash completion.
const ProgramSpec& AgentProgram();

// A local command as parsed: positional()[0] is backup, restore or list.
int RunLocalCommand(const CliArgs& args, std::ostream& out, std::ostream& err);

}  // namespace dagvault::agent
