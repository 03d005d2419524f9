// mailstore-util: the eseutil analogue. Every command is a function that
// takes its arguments and output streams and returns the exit code:
// 0 success, 1 failure or damage found, 2 usage error.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace dagvault::mailstore {

int RunMailstoreUtil(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Individual commands (args exclude the command name).
int CmdHeader(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdCheck(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdLogs(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdRecover(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdDigest(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdCreate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdFill(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdBench(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

}  // namespace dagvault::mailstore
