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
// Talking to a running mailstored (cmd_admin.cc, cmd_load.cc).
int CmdStatus(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdMount(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdDismount(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdSuspend(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdResume(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdActivate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdReseed(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdRoll(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdLoad(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int CmdLabConfig(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

}  // namespace dagvault::mailstore
