// Every command, flag and validator of `dagvault` in one table
// (common/command_line.h): the parser, `--help`, and the bash completion
// come from it.
#pragma once

#include "common/command_line.h"

namespace dagvault::cli {

const ProgramSpec& DagvaultProgram();

}  // namespace dagvault::cli
