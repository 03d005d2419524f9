#include "coordinator/cli/dagvault_commands.h"

namespace dagvault::cli {
namespace {

using Kind = FlagSpec::Kind;

FlagSpec Text(std::string name, std::string value, std::string help) {
  return {.name = std::move(name), .help = std::move(help), .value_name = std::move(value)};
}
FlagSpec Bool(std::string name, std::string help) {
  return {.name = std::move(name), .help = std::move(help), .kind = Kind::kBool};
}
FlagSpec Number(std::string name, std::string help) {
  return {
      .name = std::move(name), .help = std::move(help), .kind = Kind::kNumber, .value_name = "N"};
}
FlagSpec Duration(std::string name, std::string help) {
  return {.name = std::move(name),
          .help = std::move(help),
          .kind = Kind::kDuration,
          .value_name = "DURATION"};
}
FlagSpec OneOf(std::string name, std::vector<std::string> choices, std::string help) {
  return {.name = std::move(name),
          .help = std::move(help),
          .value_name = "WORD",
          .choices = std::move(choices)};
}
FlagSpec Many(FlagSpec f) {
  f.repeatable = true;
  return f;
}

const std::vector<std::string> kTypes = {"full", "copy", "incremental", "differential"};
const std::vector<std::string> kSourceModes = {"passive-then-active", "passive-only",
                                               "active-only"};

FlagSpec Unit() { return Text("unit", "U", "the unit (a storage group or database)"); }

std::vector<FlagSpec> RepoSecret(std::vector<FlagSpec> more) {
  std::vector<FlagSpec> flags = {
      Text("repo", "PATH", "the repository"),
      Text("passphrase-file", "FILE", "the passphrase (or $DAGVAULT_PASSPHRASE)"),
      Text("key-file", "FILE", "a key file instead of a passphrase")};
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

ProgramSpec Build() {
  ProgramSpec p;
  p.name = "dagvault";
  p.description = "dagvault: the operator's command line for a deployment (docs/deployment.md)";
  p.footer =
      "Reaching the coordinator: --coordinator HOST:PORT ($DAGVAULT_COORDINATOR) and a "
      "person's certificate: --certs DIR with DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key "
      "($DAGVAULT_CERTS), NAME from --cert-name ($DAGVAULT_CERT_NAME, default admin). Its role "
      "(viewer, operator, admin) decides what it may do (docs/security.md). --json prints the "
      "answer, and any error, as JSON. Exit codes: 0 ok, 1 failed, 2 usage.";
  p.global_flags = {
      Text("coordinator", "HOST:PORT", "the coordinator ($DAGVAULT_COORDINATOR)"),
      Text("certs", "DIR", "the certificates' folder ($DAGVAULT_CERTS)"),
      Text("cert-name", "NAME", "whose certificate in it ($DAGVAULT_CERT_NAME, default admin)"),
      Bool("insecure-dev", "plain text, for a development coordinator only"),
      Bool("json", "print the answer (or the error) as JSON"),
  };
  const FlagSpec wait = Bool("wait", "follow the job to its end, with progress on stderr");
  // A restore point, for the commands that restore one (restore items,
  // restore verify): the newest at or before a generation or a time.
  const FlagSpec to_generation = {.name = "to-generation",
                                  .help = "the newest restore point at or before generation G",
                                  .kind = Kind::kGeneration,
                                  .value_name = "G"};
  const FlagSpec to_time =
      Text("to-time", "TIME", "the newest restore point frozen at or before TIME");
  const std::vector<FlagSpec> restore_target = {
      Text("to", "latest", "the newest restore point (the default)"),
      {.name = "to-generation",
       .help = "the newest restore point at or before generation G; "
               "replay stops at G",
       .kind = Kind::kGeneration,
       .value_name = "G"},
      Text("to-time", "TIME",
           "the newest restore point frozen at or before TIME "
           "(\"YYYY-MM-DD HH:MM:SS\" UTC or RFC 3339)"),
      Bool("roll-forward", "also replay the logs still on the active server"),
      Bool("force-overwrite-different-database",
           "restore over database files that carry another database's signature"),
      wait,
      Text("rdb", "NAME", "restore beside production as this Recovery Database"),
      Text("node", "N", "the node to restore on (with --rdb, or alone: its Store writer only)"),
      Text("path", "DIR", "where the Recovery Database goes (with --rdb)"),
      Bool("no-mount", "leave the Recovery Database dismounted"),
  };
  p.commands = {
      {{"status"},
       "units outside their RPO and why, nodes, copies that need attention, leases, jobs; exit 1 "
       "when a unit is critical or was never backed up under an RPO",
       {Bool("units", "every unit, not only those outside their RPO"),
        Bool("copies", "every copy, not only those that need attention (and every node)"),
        Bool("nodes", "every node, not only those not reporting"),
        Bool("leader", "only which coordinator leads (docs/ha.md)"), Unit()}},
      {{"backup", "start"},
       "start a backup",
       {Unit(), OneOf("type", kTypes, "full (the default), copy, incremental, differential"),
        OneOf("source-mode", kSourceModes, "which copies may be read"),
        Many(Text("prefer", "NODE,...", "nodes to prefer, in order")),
        Number("max-copy-queue", "a passive copy qualifies up to this copy queue (default 10)"),
        Number("max-replay-queue", "... and this replay queue (default 10)"), wait}},
      {{"backup", "list"}, "the catalogued backups", {Unit()}},
      {{"restore", "start"},
       "restore every copy (a re-run resumes a stopped restore), or beside production with --rdb",
       [&] {
         std::vector<FlagSpec> f = {Unit()};
         f.insert(f.end(), restore_target.begin(), restore_target.end());
         return f;
       }()},
      {{"restore", "items"},
       "get a mailbox's items back from a restore point (through a Recovery Database that is "
       "removed after): into production, or exported to files",
       {Unit(), Text("mailbox", "M", "the mailbox"),
        Many(Text("item", "I,...", "these items only (default: every item of the mailbox)")),
        Text("database", "D", "the mailbox's database (default: every database of the unit)"),
        to_generation, to_time,
        Bool("into-production", "copy them into the unit's mounted active copy"),
        Text("target-mailbox", "M2", "into this mailbox instead (with --into-production)"),
        OneOf("conflict", {"skip", "keep-both", "overwrite"},
              "when the item number holds other mail (default skip)"),
        Text("export", "DIR", "write them as files to DIR on the restoring node"),
        Text("node", "N", "restore on this node (default: a healthy passive copy's)"), wait}},
      {{"restore", "verify"},
       "prove a restore point restores: restored as a Recovery Database, checked, mounted, read, "
       "removed; the result is recorded per restore point (chain show)",
       {Unit(), to_generation, to_time,
        Bool("random", "a restore point chosen at random among the unit's"),
        Text("node", "N", "verify on this node (default: one without a mounted active copy first)"),
        Bool("off-production", "never on a node with a mounted active copy"),
        Number("sample", "items read by key (default 32)"), wait}},
      {{"reseed"},
       "rebuild a failed or diverged passive copy from the repository (not from the active copy)",
       {Unit(), Text("node", "N", "the passive copy's node"),
        Bool("force", "also a Healthy copy (it is discarded and rebuilt)"), wait}},
      {{"chain", "show"}, "chains, restore points and breaks", {Unit()}},
      {{"policy", "set"},
       "create or replace a backup policy (cron: 5 fields, UTC)",
       {Text("name", "P", "the policy"),
        Many(Unit()),
        Text("full", "CRON", "when Fulls run"),
        Text("incremental", "CRON", "when Incrementals run"),
        Text("differential", "CRON", "when Differentials run"),
        OneOf("source-mode", kSourceModes, "which copies may be read"),
        Many(Text("prefer", "NODE,...", "nodes to prefer, in order")),
        Number("keep-chains", "keep the newest N chains"),
        Number("keep-days", "and every chain younger than D days"),
        Number("max-jobs-per-node", "running backups at once per node"),
        Number("max-jobs", "running backups at once in the deployment"),
        Text("priority", "P", "higher first (may be negative)"),
        Duration("rpo", "how old the newest restore point may be (26h, 1d 12h)"),
        Duration("rpo-warning", "warning past this (default: the RPO)"),
        Duration("rpo-critical", "critical past this (default: 1.5 x the RPO)"),
        Duration("rpo-grace", "grace on entering a state (default: a tenth of warning)"),
        Text("verify", "CRON", "when restore verifications run (docs/operator-guide.md)"),
        Text("verify-node", "N", "the node they run on (default: one chosen per verification)"),
        Bool("verify-random", "verify a random restore point, not the newest"),
        Bool("verify-off-production", "never verify on a node with a mounted active copy"),
        Number("verify-sample", "items read by key per database (default 32)"),
        Bool("archive-logs",
             "archive every closed log generation as it closes (restore points between "
             "backups)"),
        Duration("archive-roll",
                 "with --archive-logs: close the open generation once its oldest record is this "
                 "old (30s, 5m)")}},
      {{"policy", "show"}, "one policy and its next runs", {}, {"NAME"}},
      {{"policy", "list"}, "every policy", {}},
      {{"policy", "remove"}, "remove a policy", {}, {"NAME"}},
      {{"job", "list"}, "jobs, newest first", {Unit(), Number("limit", "at most N (default 50)")}},
      {{"job", "show"}, "one job: attempts, plan, events", {}, {"ID"}},
      {{"job", "cancel"}, "ask the running attempt's node to stop", {}, {"ID"}},
      {{"catalog", "rebuild"},
       "the backup records from the repository's manifests",
       {Text("repo", "PATH", "the repository (default: the coordinator's)")}},
      {{"expire"},
       "expire the chains past their policy's retention, then prune",
       {Bool("dry-run", "say what would expire; change nothing")}},
      {{"audit", "list"},
       "who did what through the admin API and the console, and every call refused",
       {Text("identity", "NAME", "one person's only"), Number("limit", "at most N (default 100)")}},
      {{"console", "login"},
       "a token for the web console, signed in as this certificate's person",
       {Duration("ttl", "how long it lives (default 8h, at most 24h)")}},
      {{"certs", "init"},
       "create the deployment's CA",
       {Text("dir", "DIR", "where the CA goes"),
        Text("deployment", "NAME", "in the CA's name (default dagvault)"),
        Bool("force", "replace an existing CA (every certificate must be reissued)")}},
      {{"certs", "issue"},
       "issue a certificate signed by the CA",
       {Text("dir", "DIR", "where the CA is"), Text("name", "NAME", "the holder"),
        OneOf("role", {"node", "coordinator", "admin", "operator", "viewer"}, "what it is"),
        Many(Text("san", "HOST,...", "addresses its clients dial")),
        Number("days", "validity (default 825)")}},
      {{"completion", "bash"}, "print a bash completion script for dagvault", {}},
      {{"repo", "init"},
       "create a repository",
       RepoSecret({Number("zstd-level", "compression level"),
                   Number("lock-stale-seconds", "when a lock not refreshed is stale (600)"),
                   Number("object-lock-days",
                          "S3 Object Lock: each backup immutable this many days (0: off)")})},
      {{"repo", "key", "list"}, "list the key slots", RepoSecret({})},
      {{"repo", "key", "add"},
       "add a key slot",
       RepoSecret({Text("new-passphrase-file", "FILE", "the new passphrase"),
                   Text("new-key-file", "FILE", "or a new key file")})},
      {{"repo", "key", "remove"}, "remove a key slot (never the last)", RepoSecret({}), {"SLOT"}},
      {{"repo", "backup"},
       "back up files",
       RepoSecret({Unit(), Many(Text("file", "ROLE:PATH[:NAME]", "a file to back up")),
                   OneOf("type", kTypes, "the backup type"),
                   Text("source-node", "N", "the node it came from"),
                   Text("base", "auto|none|MANIFEST", "what an Incremental follows"),
                   Number("workers", "transfer threads"),
                   Many(Text("label", "KEY=VALUE", "a label on the manifest")),
                   Text("writer-instance", "NAME", "the writer it came through")})},
      {{"repo", "restore"},
       "restore a backup's files",
       RepoSecret({Text("to", "DIR", "where the files go"),
                   Many(Text("file", "NAME", "only these files")),
                   Bool("overwrite", "replace existing files"), Number("workers", "threads")}),
       {"ID"}},
      {{"repo", "ls"}, "list manifests", RepoSecret({Unit()})},
      {{"repo", "show"}, "one manifest and its files", RepoSecret({}), {"ID"}},
      {{"repo", "stats"}, "stored and logical bytes, dedup and compression", RepoSecret({})},
      {{"repo", "check"},
       "verify the repository's structure",
       RepoSecret({Bool("read-data", "also decrypt and hash every chunk")})},
      {{"repo", "prune"},
       "remove what no kept manifest needs",
       RepoSecret({Many(Text("keep-manifests", "ID,...", "the manifests to keep")),
                   Text("repack-below", "FRACTION", "repack packs below this fraction live"),
                   Number("pack-grace", "seconds: younger packs stay")})},
  };
  return p;
}

}  // namespace

const ProgramSpec& DagvaultProgram() {
  static const ProgramSpec* program = new ProgramSpec(Build());
  return *program;
}

}  // namespace dagvault::cli
