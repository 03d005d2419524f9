// Command lines with subcommands on CLI11 (Debian's libcli11-dev), declared
// once as a table: `dagvault` and `dagvault-agent` describe their commands
// with CommandSpec, and get from it
//   - flags scoped to their subcommand: an unknown or misplaced flag is a
//     usage error that names it (exit 2);
//   - `--help` at every level, and `help [COMMAND...]`, with usage
//     generated from the table;
//   - validators: a flag's allowed values, numbers, durations
//     ("26h", "1d 12h") and generations (decimal or 0x hex), checked
//     before anything runs;
//   - a bash completion script (`dagvault completion bash`) from the same
//     table.
// The handlers read what was parsed as a CliArgs (common/cli_args.h):
// positional() is the command path, then the command's positional
// arguments; flags by name.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/cli_args.h"

namespace dagvault {

struct FlagSpec {
  enum class Kind { kText, kBool, kNumber, kDuration, kGeneration };
  std::string name;  // without "--"
  std::string help;
  Kind kind = Kind::kText;
  std::string value_name = "VALUE";  // in the usage: --unit U
  std::vector<std::string> choices;  // the allowed values, if a fixed set
  bool repeatable = false;           // may be given more than once
  bool required = false;
};

struct CommandSpec {
  std::vector<std::string> path;  // {"backup", "start"}
  std::string help;
  std::vector<FlagSpec> flags;
  // Required positional arguments by name ("ID"), then optional ones
  // ending in "?" ("SLOT?").
  std::vector<std::string> positionals;
};

struct ProgramSpec {
  std::string name;                    // "dagvault"
  std::string description;             // first line of --help
  std::string footer;                  // after the list of commands
  std::vector<FlagSpec> global_flags;  // allowed before or after any command
  // The program may run with no command (dagvault-agent --config FILE).
  bool command_optional = false;
  std::vector<CommandSpec> commands;
};

// What a command line asked for.
struct ParsedCommand {
  CliArgs args;
  bool help_shown = false;  // --help or help: printed, nothing to run (exit 0)
};

// Parses `argv` (without the program's name). A usage error is an
// InvalidArgument naming the flag or command at fault, with a pointer to
// --help; --help prints to `out`.
absl::StatusOr<ParsedCommand> ParseCommandLine(const ProgramSpec& program,
                                               const std::vector<std::string>& argv,
                                               std::ostream& out);

// A failure under --json, as one line: {"error": {"code": "NOT_FOUND",
// "message": "...", "exit_code": 1}}. Printed on stdout (where a script
// reads the answer), besides the message on stderr.
std::string JsonErrorLine(const absl::Status& status, int exit_code);

// A bash completion script for `program`: commands, their flags, and the
// allowed values of flags that have them.
std::string BashCompletion(const ProgramSpec& program);

}  // namespace dagvault
