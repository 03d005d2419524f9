#include "node-agent/local/local_commands.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/backup_type.h"
#include "common/cli_args.h"
#include "common/interrupt.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "node-agent/jobs/backup_job.h"
#include "node-agent/jobs/restore_job.h"
#include "node-agent/shadow/writer_shadow_session.h"
#include "repository/chain.h"
#include "repository/cli_support.h"

namespace dagvault::agent {
namespace {

namespace v1 = dagvault::v1;
using repository::HumanBytes;
using repository::ProgressPrinter;

std::string Gen(uint32_t g) { return absl::StrFormat("0x%08X", g); }

std::string WriterSocket(const CliArgs& args) {
  if (auto s = args.Get("writer-socket")) return *s;
  if (const char* env = std::getenv("DAGVAULT_WRITER_SOCKET"); env != nullptr && *env) return env;
  return "/run/mailstored/writer.sock";
}

std::string JobName(const CliArgs& args, const std::string& what) {
  if (auto j = args.Get("job")) return *j;
  return absl::StrCat("local-", what, "-",
                      absl::FormatTime("%Y%m%dT%H%M%S", absl::Now(), absl::UTCTimeZone()));
}

// A job's progress, drawn by the printer.
ProgressFn ShowOn(ProgressPrinter& printer) {
  return [&printer](const JobProgress& p) {
    printer.Show(p.phase, p.bytes_done, p.bytes_total, p.bytes_per_second, p.current_file);
  };
}

// What crashed jobs left on this node goes before a new job starts. A
// failure here does not stop the job: its own unit is swept again once the
// writer grants it.
void SweepAtStart(ShadowSession& session) {
  auto log = logging::Get("agent");
  auto removed = SweepLeftoverSnapshots(session);
  if (!removed.ok()) {
    log->warn("could not look for snapshot folders left by crashed jobs: {}",
              removed.status().ToString());
    return;
  }
  for (const auto& folder : *removed) {
    log->warn("removed snapshot folder {}, left by a job that did not finish", folder);
  }
}

void Put(google::protobuf::Struct* s, const std::string& key, const std::string& value) {
  (*s->mutable_fields())[key].set_string_value(value);
}
void Put(google::protobuf::Struct* s, const std::string& key, double value) {
  (*s->mutable_fields())[key].set_number_value(value);
}
void Put(google::protobuf::Struct* s, const std::string& key, absl::Duration d) {
  Put(s, key, absl::ToDoubleMilliseconds(d));
}

std::string ToJson(const google::protobuf::Struct& s) {
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(s, &json);
  return json;
}

// `*started` is set once the job runs: an error before it is a usage error.
absl::Status Backup(const CliArgs& args, std::ostream& out, std::ostream& err, bool* started) {
  BackupJobSpec spec;
  spec.job = JobName(args, "backup");
  spec.unit = args.GetOr("unit", "");
  if (spec.unit.empty()) return absl::InvalidArgumentError("backup: --unit U is required");
  if (!args.Has("type")) return absl::InvalidArgumentError("backup: --type T is required");
  ASSIGN_OR_RETURN(spec.type, repository::ParseBackupType(*args.Get("type")));
  ASSIGN_OR_RETURN(uint64_t copy_queue, args.GetUint("max-copy-queue", spec.max_copy_queue));
  ASSIGN_OR_RETURN(uint64_t replay_queue, args.GetUint("max-replay-queue", spec.max_replay_queue));
  spec.max_copy_queue = static_cast<uint32_t>(copy_queue);
  spec.max_replay_queue = static_cast<uint32_t>(replay_queue);
  ASSIGN_OR_RETURN(uint64_t workers, args.GetUint("workers", 0));
  ASSIGN_OR_RETURN(uint64_t freeze_timeout, args.GetUint("freeze-timeout-seconds", 20));
  ASSIGN_OR_RETURN(auto provider, MakeSnapshotProvider(args.GetOr("snapshot", "auto")));
  *started = true;
  ASSIGN_OR_RETURN(repository::Repository repo, repository::OpenRepositoryFromArgs(args));
  RETURN_IF_ERROR(FillBaseFromRepository(repo, &spec));

  WriterSessionOptions session_options;
  session_options.freeze_timeout = absl::Seconds(static_cast<int64_t>(freeze_timeout));
  WriterShadowSession session(ConnectWriter(WriterSocket(args)), std::make_shared<std::mutex>(),
                              session_options);
  SweepAtStart(session);
  repository::TransferControl control;
  // SIGINT or SIGTERM cancels the job: it stops within a segment, ends the
  // writer session with failure and removes what it made.
  ScopedInterruptFlag interrupt(&control.cancel);
  BackupJobOptions options;
  options.repository.workers = static_cast<int>(workers);
  absl::StatusOr<BackupJobResult> r;
  {
    ProgressPrinter printer(err);
    r = RunBackupJob(session, *provider, repo, spec, &control, ShowOn(printer), options);
  }
  RETURN_IF_ERROR(r.status());
  if (args.Has("json")) {
    google::protobuf::Struct j;
    Put(&j, "job", r->job);
    Put(&j, "unit", r->unit);
    Put(&j, "type", BackupTypeTitle(r->type));
    Put(&j, "manifest", r->manifest);
    Put(&j, "base_manifest", r->base_manifest);
    Put(&j, "node", r->node);
    Put(&j, "writer_instance", r->writer_instance);
    Put(&j, "low_generation", r->low_generation);
    Put(&j, "high_generation", r->high_generation);
    Put(&j, "snapshot_provider", r->snapshot_provider);
    Put(&j, "freeze_window_ms", r->freeze_window);
    Put(&j, "writer_frozen_for_ms", r->writer_frozen_for);
    Put(&j, "transfer_ms", r->transfer);
    Put(&j, "elapsed_ms", r->elapsed);
    Put(&j, "logical_bytes", static_cast<double>(r->logical_bytes));
    Put(&j, "new_bytes", static_cast<double>(r->new_bytes));
    Put(&j, "stored_bytes", static_cast<double>(r->stored_bytes));
    Put(&j, "verified_pages", static_cast<double>(r->verified.pages));
    Put(&j, "verified_logs", static_cast<double>(r->verified.logs));
    Put(&j, "transfer_cpu_ms", r->transfer_cpu);
    Put(&j, "check_cpu_ms", r->verified.cpu);
    auto* truncated = (*j.mutable_fields())["truncated"].mutable_list_value();
    for (uint32_t g : r->truncated) truncated->add_values()->set_number_value(g);
    auto* warnings = (*j.mutable_fields())["warnings"].mutable_list_value();
    for (const auto& w : r->warnings) warnings->add_values()->set_string_value(w);
    out << ToJson(j) << "\n";
    return absl::OkStatus();
  }
  const double seconds = std::max(1e-6, absl::ToDoubleSeconds(r->transfer));
  out << BackupTypeTitle(r->type) << " backup of " << r->unit << " from " << r->node << " ("
      << r->writer_instance << "): manifest " << r->manifest << "\n"
      << "  generations   " << Gen(r->low_generation) << " to " << Gen(r->high_generation) << "\n"
      << "  freeze window " << absl::FormatDuration(r->freeze_window) << " ("
      << r->snapshot_provider << " snapshot)\n"
      << "  read          " << HumanBytes(r->logical_bytes) << " in "
      << absl::FormatDuration(absl::Trunc(r->transfer, absl::Milliseconds(1))) << " ("
      << HumanBytes(static_cast<uint64_t>(static_cast<double>(r->logical_bytes) / seconds))
      << "/s), " << HumanBytes(r->new_bytes) << " new, " << HumanBytes(r->stored_bytes)
      << " stored\n"
      << "  verified      " << r->verified.pages << " pages, " << r->verified.logs << " logs, in "
      << absl::FormatDuration(absl::Trunc(r->verified.cpu, absl::Milliseconds(1)))
      << " of CPU (the transfer used "
      << absl::FormatDuration(absl::Trunc(r->transfer_cpu, absl::Milliseconds(1))) << ")\n"
      << "  truncated     "
      << (r->truncated.empty()
              ? std::string("nothing on this node")
              : absl::StrCat(r->truncated.size(), " logs on this node (", Gen(r->truncated.front()),
                             " to ", Gen(r->truncated.back()), ")"))
      << "\n";
  for (const auto& w : r->warnings) out << "  warning: " << w << "\n";
  return absl::OkStatus();
}

absl::Status Restore(const CliArgs& args, std::ostream& out, std::ostream& err, bool* started) {
  RestoreJobSpec spec;
  spec.target.job = JobName(args, "restore");
  spec.target.unit = args.GetOr("unit", "");
  if (spec.target.unit.empty()) return absl::InvalidArgumentError("restore: --unit U is required");
  spec.target.recovery_database = args.GetOr("rdb", "");
  spec.target.path = args.GetOr("path", "");
  if (spec.target.recovery_database.empty() != spec.target.path.empty()) {
    return absl::InvalidArgumentError("restore: --rdb NAME and --path DIR go together");
  }
  spec.target.refuse_if_mounted = args.Has("refuse-if-mounted");
  spec.target.force_overwrite_different_database = args.Has("force-overwrite-different-database");
  ASSIGN_OR_RETURN(uint64_t to, args.GetUint("to-generation", 0));
  spec.to_generation = static_cast<uint32_t>(to);
  spec.roll_forward = args.Has("roll-forward");
  spec.mount = args.Has("mount");
  ASSIGN_OR_RETURN(uint64_t workers, args.GetUint("workers", 0));
  *started = true;
  ASSIGN_OR_RETURN(repository::Repository repo, repository::OpenRepositoryFromArgs(args));
  ASSIGN_OR_RETURN(spec.chain, ChainFromRepository(repo, spec.target.unit, spec.to_generation));

  WriterShadowSession session(ConnectWriter(WriterSocket(args)), std::make_shared<std::mutex>());
  SweepAtStart(session);
  repository::TransferControl control;
  // SIGINT or SIGTERM cancels the job: it stops within a segment, ends the
  // writer session with failure and removes what it made.
  ScopedInterruptFlag interrupt(&control.cancel);
  RestoreJobOptions options;
  options.workers = static_cast<int>(workers);
  absl::StatusOr<RestoreJobResult> r;
  {
    ProgressPrinter printer(err);
    r = RunRestoreJob(session, repo, spec, &control, ShowOn(printer), options);
  }
  RETURN_IF_ERROR(r.status());
  if (args.Has("json")) {
    google::protobuf::Struct j;
    Put(&j, "job", r->job);
    Put(&j, "unit", r->unit);
    auto* manifests = (*j.mutable_fields())["manifests"].mutable_list_value();
    for (const auto& m : r->manifests) manifests->add_values()->set_string_value(m);
    Put(&j, "recovery_database", r->recovery_database);
    Put(&j, "system_dir", r->system_dir);
    Put(&j, "message", r->message);
    Put(&j, "files", static_cast<double>(r->files));
    Put(&j, "bytes", static_cast<double>(r->bytes));
    Put(&j, "last_generation", r->last_generation);
    Put(&j, "transfer_ms", r->transfer);
    Put(&j, "replay_ms", r->replay);
    Put(&j, "elapsed_ms", r->elapsed);
    out << ToJson(j) << "\n";
    return absl::OkStatus();
  }
  out << "restored unit " << r->unit
      << (r->recovery_database.empty()
              ? std::string(" to its own location")
              : absl::StrCat(" as recovery database ", r->recovery_database))
      << " at " << r->system_dir << "\n"
      << "  from          " << absl::StrJoin(r->manifests, ", ") << "\n"
      << "  written       " << r->files << " files, " << HumanBytes(r->bytes) << " in "
      << absl::FormatDuration(absl::Trunc(r->transfer, absl::Milliseconds(1))) << "\n"
      << "  replayed      through generation " << Gen(r->last_generation) << " in "
      << absl::FormatDuration(absl::Trunc(r->replay, absl::Milliseconds(1))) << "\n";
  if (!r->message.empty()) out << "  note          " << r->message << "\n";
  return absl::OkStatus();
}

absl::Status List(const CliArgs& args, std::ostream& out) {
  ASSIGN_OR_RETURN(repository::Repository repo, repository::OpenRepositoryFromArgs(args));
  ASSIGN_OR_RETURN(std::vector<std::string> ids, repo.ListManifests());
  std::vector<v1::Manifest> manifests;
  std::set<std::string> units;
  for (const auto& id : ids) {
    ASSIGN_OR_RETURN(v1::Manifest m, repo.ReadManifest(id));
    if (args.Has("unit") && m.unit() != *args.Get("unit")) continue;
    units.insert(m.unit());
    // The block maps are not needed here, and can be large.
    for (auto& f : *m.mutable_files()) f.clear_block_map();
    manifests.push_back(std::move(m));
  }
  google::protobuf::Struct j;
  auto* jbackups = (*j.mutable_fields())["backups"].mutable_list_value();
  auto* jchains = (*j.mutable_fields())["chains"].mutable_list_value();
  if (!args.Has("json")) {
    out << absl::StrFormat("%-6s %-12s %-33s %-8s %-8s %-21s %-19s %10s\n", "UNIT", "TYPE", "ID",
                           "NODE", "COPY", "GENERATIONS", "TAKEN (UTC)", "SIZE");
  }
  for (const auto& m : manifests) {
    const std::string gens = absl::StrCat(Gen(m.low_generation()), "-", Gen(m.high_generation()));
    if (args.Has("json")) {
      auto* b = jbackups->add_values()->mutable_struct_value();
      Put(b, "unit", m.unit());
      Put(b, "type", BackupTypeTitle(m.type()));
      Put(b, "id", m.id());
      Put(b, "source_node", m.source_node());
      Put(b, "source_copy", m.source_copy());
      Put(b, "low_generation", m.low_generation());
      Put(b, "high_generation", m.high_generation());
      Put(b, "taken", repository::HumanTime(m.frozen_us() != 0 ? m.frozen_us() : m.started_us()));
      Put(b, "logical_bytes", static_cast<double>(m.logical_bytes()));
      continue;
    }
    out << absl::StrFormat(
        "%-6s %-12s %-33s %-8s %-8s %-21s %-19s %10s\n", m.unit(), BackupTypeTitle(m.type()),
        m.id(), m.source_node(), m.source_copy(), gens,
        repository::HumanTime(m.frozen_us() != 0 ? m.frozen_us() : m.started_us()),
        HumanBytes(m.logical_bytes()));
  }
  if (!args.Has("json")) out << "\n";
  for (const auto& unit : units) {
    for (const auto& c : repository::AssembleChains(manifests, unit)) {
      std::vector<std::string> points = {Gen(c.full->high_generation())};
      for (const auto* i : c.incrementals) points.push_back(Gen(i->high_generation()));
      for (const auto* d : c.differentials) points.push_back(Gen(d->high_generation()) + "(d)");
      if (args.Has("json")) {
        auto* jc = jchains->add_values()->mutable_struct_value();
        Put(jc, "unit", unit);
        Put(jc, "full", c.full->id());
        Put(jc, "high_generation", c.high_generation());
        auto* p = (*jc->mutable_fields())["restore_points"].mutable_list_value();
        for (const auto& s : points) p->add_values()->set_string_value(s);
        if (c.broken) {
          Put(jc, "broken_at", c.broken->generation);
          Put(jc, "broken_because", c.broken->reason);
        }
        continue;
      }
      out << "chain of " << unit << " from Full " << c.full->id() << ": "
          << 1 + c.incrementals.size() + c.differentials.size()
          << " backups, restore points at generations " << absl::StrJoin(points, ", ") << "\n";
      if (c.broken) out << "  BROKEN: " << c.broken->reason << "\n";
    }
  }
  if (args.Has("json")) out << ToJson(j) << "\n";
  return absl::OkStatus();
}

ProgramSpec BuildAgentProgram() {
  using Kind = FlagSpec::Kind;
  auto text = [](std::string n, std::string v, std::string h) {
    return FlagSpec{.name = std::move(n), .help = std::move(h), .value_name = std::move(v)};
  };
  auto flag = [](std::string n, std::string h) {
    return FlagSpec{.name = std::move(n), .help = std::move(h), .kind = Kind::kBool};
  };
  auto number = [](std::string n, std::string h) {
    return FlagSpec{
        .name = std::move(n), .help = std::move(h), .kind = Kind::kNumber, .value_name = "N"};
  };
  const std::vector<FlagSpec> common = {
      text("unit", "U", "the unit"),
      text("repo", "PATH", "the repository"),
      text("passphrase-file", "FILE", "its passphrase (or $DAGVAULT_PASSPHRASE)"),
      text("key-file", "FILE", "or a key file"),
      text("writer-socket", "PATH",
           "the writer ($DAGVAULT_WRITER_SOCKET, else /run/mailstored/writer.sock)"),
      number("workers", "transfer threads (0: one per core)"),
      text("job", "NAME", "the job's name in the writer and the manifest"),
  };
  ProgramSpec p;
  p.name = "dagvault-agent";
  p.description =
      "dagvault-agent: the node agent. With --config FILE, the daemon that takes jobs from the "
      "coordinator; with a command, one job on this node and no coordinator (local mode).";
  p.footer =
      "--json prints the result (or the error) as one JSON object. Exit codes: 0 ok, 1 the "
      "job failed, 2 usage.";
  p.command_optional = true;
  p.global_flags = {text("config", "FILE", "run the daemon with this configuration"),
                    flag("insecure-dev", "plain text to the coordinator: development only"),
                    text("log-file", "FILE", "the daemon's log, besides stderr"),
                    text("log-level", "LEVEL", "trace, debug, info, warn, error"),
                    flag("json", "print the result as JSON")};
  std::vector<FlagSpec> backup = common;
  backup.push_back(FlagSpec{.name = "type",
                            .help = "the backup type",
                            .value_name = "WORD",
                            .choices = {"full", "copy", "incremental", "differential"}});
  backup.push_back(FlagSpec{.name = "snapshot",
                            .help = "the snapshot provider",
                            .value_name = "WORD",
                            .choices = {"auto", "reflink", "copy"}});
  backup.push_back(number("max-copy-queue", "the copy qualifies up to this copy queue"));
  backup.push_back(number("max-replay-queue", "... and this replay queue"));
  backup.push_back(number("freeze-timeout-seconds", "the writer's freeze limit"));
  std::vector<FlagSpec> restore = common;
  restore.push_back(FlagSpec{.name = "to-generation",
                             .help = "stop replay at generation G (decimal or 0x hex)",
                             .kind = Kind::kGeneration,
                             .value_name = "G"});
  restore.push_back(text("rdb", "NAME", "restore as this Recovery Database"));
  restore.push_back(text("path", "DIR", "where the Recovery Database goes"));
  restore.push_back(flag("mount", "mount once replayed"));
  restore.push_back(flag("roll-forward", "also replay the logs still on this server"));
  restore.push_back(flag("refuse-if-mounted", "refuse if the unit is mounted here"));
  restore.push_back(
      flag("force-overwrite-different-database", "restore over files of another database"));
  p.commands = {
      {{"backup"}, "back up a unit of this node into the repository", backup},
      {{"restore"}, "restore a unit of this node from the repository", restore},
      {{"list"},
       "the backups, chains and restore points",
       {text("repo", "PATH", "the repository"),
        text("passphrase-file", "FILE", "its passphrase (or $DAGVAULT_PASSPHRASE)"),
        text("key-file", "FILE", "or a key file"), text("unit", "U", "one unit only")}},
      {{"completion", "bash"}, "print a bash completion script for dagvault-agent", {}},
  };
  return p;
}

}  // namespace

const ProgramSpec& AgentProgram() {
  static const ProgramSpec* program = new ProgramSpec(BuildAgentProgram());
  return *program;
}

int RunLocalCommand(const CliArgs& parsed, std::ostream& out, std::ostream& err) {
  const CliArgs* args = &parsed;
  const std::string& command = args->positional()[0];
  absl::Status s;
  bool started = false;
  if (command == "backup") {
    s = Backup(*args, out, err, &started);
  } else if (command == "restore") {
    s = Restore(*args, out, err, &started);
  } else if (command == "list") {
    started = args->Has("repo");
    s = List(*args, out);
  } else {
    err << "dagvault-agent: unknown command " << command << " (see dagvault-agent --help)\n";
    return 2;
  }
  if (!s.ok()) {
    if (args->Has("json")) {
      google::protobuf::Struct j;
      Put(&j, "error", std::string(s.message()));
      Put(&j, "code", absl::StatusCodeToString(s.code()));
      out << ToJson(j) << "\n";
    }
    err << "dagvault-agent " << command << ": " << s.message() << "\n";
    return !started && s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace dagvault::agent
