#include "mailstore/tools/util.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace dagvault::mailstore {
namespace {

struct Command {
  int (*run)(const std::vector<std::string>&, std::ostream&, std::ostream&);
  const char* synopsis;
};

const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"header",
       {CmdHeader, "header FILE.edb [--json]              print every header field (eseutil /mh)"}},
      {"check",
       {CmdCheck,
        "check [--deep] FILE|DIR...            verify pages, log records, checkpoints (eseutil "
        "/k)"}},
      {"logs",
       {CmdLogs,
        "logs DIR [--prefix E00] [--json]      list generations, signatures, links, gaps (eseutil "
        "/ml)"}},
      {"recover",
       {CmdRecover,
        "recover --system DIR --logs DIR --db FILE... [--to-generation G] [--hard]\n"
        "                                        soft or hard recovery (eseutil /r)"}},
      {"digest",
       {CmdDigest,
        "digest --db FILE... [--json]          SHA-256 over all items of consistent databases\n"
        "  digest --server ADDR --unit U [--database D]\n"
        "                                        the same, from a running mailstored's copy"}},
      {"create",
       {CmdCreate,
        "create --config UNIT.conf             create a unit's databases and first log"}},
      {"fill",
       {CmdFill,
        "fill --config UNIT.conf --items N [--size-mix MIX] [--mailboxes M] [--threads T]\n"
        "                                        write items directly into a stopped unit"}},
      {"bench",
       {CmdBench,
        "bench [--size-mix MIX] [--items N] [--threads T] [--check-gib G]\n"
        "                                        commit and check throughput"}},
      {"status",
       {CmdStatus,
        "status [--server ADDR] [--unit U] [--json]\n"
        "                                        units, copies, states, queues, backups in "
        "progress"}},
      {"mount", {CmdMount, "mount --unit U [--server ADDR]       mount the active copy"}},
      {"dismount", {CmdDismount, "dismount --unit U [--server ADDR]    dismount the active copy"}},
      {"suspend",
       {CmdSuspend,
        "suspend --unit U [--server ADDR]     suspend replication to that node's copy"}},
      {"resume",
       {CmdResume, "resume --unit U [--server ADDR]      resume replication to that node's copy"}},
      {"activate",
       {CmdActivate,
        "activate --unit U --node N [--lossy] [--server ADDR]\n"
        "                                        switchover to N (or lossy activation of N)"}},
      {"reseed",
       {CmdReseed,
        "reseed --unit U [--server ADDR]      discard that node's copy and seed it anew"}},
      {"roll",
       {CmdRoll, "roll --unit U [--server ADDR]        close the active copy's log generation"}},
      {"load",
       {CmdLoad,
        "load --unit U [--mailboxes M] [--size-mix MIX] [--rate OPS] [--duration S] [--threads T]\n"
        "     [--reads F] [--server ADDR] [--json]\n"
        "                                        put items through the store API; print ops/s, "
        "MB/s"}},
      {"lab-config",
       {CmdLabConfig,
        "lab-config --dir DIR [--nodes N] [--lag-seconds S] [--log-size B] [--certs DIR]\n"
        "                                        write the configs of an N-node lab"}},
  };
  return *commands;
}

void Usage(std::ostream& out) {
  out << "usage: mailstore-util COMMAND [ARGS]\n\ncommands:\n";
  for (const auto& [name, command] : Commands()) out << "  " << command.synopsis << "\n";
  out << "\nADDR is a mailstored store address (HOST:PORT); MAILSTORE_SERVER sets the default.\n"
         "exit codes: 0 ok, 1 failure or damage found, 2 usage error\n"
         "see docs/mailstore-util.md\n";
}

}  // namespace

int RunMailstoreUtil(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    Usage(args.empty() ? err : out);
    return args.empty() ? kExitUsage : kExitOk;
  }
  auto it = Commands().find(args[0]);
  if (it == Commands().end()) {
    err << "mailstore-util: unknown command \"" << args[0] << "\"\n\n";
    Usage(err);
    return kExitUsage;
  }
  return it->second.run(std::vector<std::string>(args.begin() + 1, args.end()), out, err);
}

}  // namespace dagvault::mailstore
