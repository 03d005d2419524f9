#include "coordinator/cli/admin_commands.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <map>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/backup_type.h"
#include "common/certs.h"
#include "common/cli_args.h"
#include "common/command_line.h"
#include "common/copy_state.h"
#include "common/duration_text.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/job_state.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "coordinator/cli/audit_command.h"
#include "coordinator/cli/cli_output.h"
#include "coordinator/cli/console_command.h"
#include "coordinator/cli/dagvault_commands.h"
#include "coordinator/cli/leader_finder.h"
#include "coordinator/cli/repo_command.h"
#include "coordinator/cli/restore_commands.h"
#include "coordinator/cli/status_command.h"
#include "dagvault/v1/admin.grpc.pb.h"
#include "repository/cli_support.h"

namespace dagvault::cli {
namespace {

namespace v1 = dagvault::v1;
using repository::HumanBytes;

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v ? std::string(v) : fallback;
}

// The largest answer the command line takes from the coordinator.
constexpr int kMaxAdminAnswerBytes = 256 << 20;

struct Connection {
  std::unique_ptr<v1::CoordinatorAdmin::Stub> stub;
  std::string address;  // the one coordinator called
};

// Commands that only read the catalog, which a standby answers too
// (coordinator/server/admin_service.cc).
bool ReadsOnlyTheCatalog(const std::vector<std::string>& pos) {
  const std::string verb = pos.size() > 1 ? pos[1] : "";
  return (pos[0] == "backup" && verb == "list") || (pos[0] == "chain" && verb == "show") ||
         (pos[0] == "job" && (verb == "list" || verb == "show")) ||
         (pos[0] == "policy" && (verb == "list" || verb == "show")) ||
         (pos[0] == "audit" && verb == "list");
}

// `redirected`: the leader a standby named when the command's first call
// went to it, which the command is run again against. With several
// addresses and none leading, a command that only reads the catalog goes
// to a standby that answered, and `err` says so.
absl::StatusOr<Connection> Connect(const CliArgs& args,
                                   const std::optional<std::string>& redirected,
                                   std::ostream& err) {
  const std::string given =
      redirected ? *redirected : args.GetOr("coordinator", Env("DAGVAULT_COORDINATOR", ""));
  if (given.empty()) {
    return Usage(
        "which coordinator? give --coordinator HOST:PORT[,HOST:PORT...] or set "
        "$DAGVAULT_COORDINATOR");
  }
  const std::vector<std::string> addresses = absl::StrSplit(given, ',', absl::SkipWhitespace());
  v1::TlsFiles files;
  const std::string dir = args.GetOr("certs", Env("DAGVAULT_CERTS", ""));
  const std::string name = args.GetOr("cert-name", Env("DAGVAULT_CERT_NAME", "admin"));
  if (!dir.empty()) files = CertificateFiles(dir, name);
  // Only the coordinator's certificate, checked in the TLS handshake: a
  // node or an agent of the deployment answering at that address never
  // sees a request (issue 15).
  ASSIGN_OR_RETURN(auto creds, MakeChannelCredentials(files, args.Has("insecure-dev"),
                                                      absl::StrCat("coordinator ", given),
                                                      ExpectedPeer{.role = kRoleCoordinator}));
  // One coordinator: called directly (a standby's refusal names the
  // leader). Several: the one that leads.
  std::string leader = addresses.empty() ? given : addresses.front();
  if (addresses.size() > 1) {
    std::vector<std::string> standbys;
    absl::StatusOr<std::string> found = FindLeader(addresses, creds, absl::Seconds(10), &standbys);
    if (found.ok()) {
      leader = *found;
    } else if (ReadsOnlyTheCatalog(args.positional()) && !standbys.empty()) {
      leader = standbys.front();
      err << "dagvault: " << found.status().message() << "; reading the shared catalog through "
          << "the standby at " << leader << " (a running job's progress is as last catalogued)\n";
    } else {
      return found.status();
    }
  }
  // gRPC refuses answers over 4 MB by default; `status --copies` of
  // 10,000 nodes is 16 MB and `status --units` of 100,000 units more.
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(kMaxAdminAnswerBytes);
  return Connection{
      v1::CoordinatorAdmin::NewStub(grpc::CreateCustomChannel(leader, creds, channel_args)),
      leader};
}

// What a job is, in a few words: "Full backup of DB02", "restore of DB02".
std::string JobTitle(const v1::JobInfo& j) {
  if (j.kind() == v1::JOB_RESTORE) {
    if (j.plan().reseed()) {
      return absl::StrCat("reseed from the repository of ", j.unit(), " on ",
                          absl::StrJoin(j.plan().passive_nodes(), ", "));
    }
    if (j.plan().has_items()) return absl::StrCat("item-level restore of ", j.unit());
    if (j.plan().has_verification()) return absl::StrCat("restore verification of ", j.unit());
    return absl::StrCat(j.has_plan() ? "all-copies restore" : "restore", " of ", j.unit());
  }
  return absl::StrCat(BackupTypeTitle(j.type()), " backup of ", j.unit());
}

// An all-copies restore's steps, digests and next safe action.
void PrintPlan(const v1::RestorePlan& plan, std::ostream& out) {
  if (plan.has_items()) return PrintItemRestorePlan(plan, out);
  if (plan.has_verification()) return PrintVerificationPlan(plan, out);
  out << "  active copy: " << plan.active_node()
      << (plan.reseed() ? " (stays mounted); reseeded copy: " : "; passive copies: ")
      << (plan.passive_nodes().empty() ? std::string("(none)")
                                       : absl::StrJoin(plan.passive_nodes(), ", "))
      << "\n  chain: " << absl::StrJoin(plan.manifests(), ", ");
  if (plan.to_generation() != 0)
    out << absl::StrFormat(", to generation 0x%08X", plan.to_generation());
  if (plan.roll_forward()) out << ", rolled forward";
  if (plan.resumed() != 0) out << "; resumed " << plan.resumed() << " time(s)";
  out << "\n";
  for (const auto& step : plan.steps()) {
    out << absl::StrFormat("  %d. %-8s %s", step.number(), RestoreStepStateName(step.state()),
                           step.name());
    if (!step.nodes().empty()) out << " [" << absl::StrJoin(step.nodes(), ", ") << "]";
    out << "\n";
    if (!step.detail().empty()) out << "       " << step.detail() << "\n";
  }
  for (const auto& p : plan.progress()) {
    out << absl::StrFormat("  on %-8s step %d: %s (%s", p.node(), p.step(), p.operation(),
                           JobStateName(p.state()));
    if (p.bytes_total() > 0) {
      out << absl::StrFormat(", %.1f of %.1f MiB", p.bytes_done() / 1048576.0,
                             p.bytes_total() / 1048576.0);
    }
    out << ")\n";
  }
  for (const auto& f : plan.reseeded_from_active()) {
    out << "  " << f.node()
        << ": reseeded from the active copy, because its restore from the repository failed: "
        << f.reason() << "\n";
  }
  for (const auto& d : plan.digests()) {
    if (d.sha256().empty()) continue;
    out << absl::StrFormat("  digest %-8s %-10s %s (%d items, generation 0x%08X)\n", d.node(),
                           d.database(), d.sha256(), d.items(), d.generation());
  }
  if (!plan.next_action().empty()) out << "  next: " << plan.next_action() << "\n";
}

void PrintJob(const v1::JobInfo& j, std::ostream& out) {
  out << "job " << j.id() << ": " << JobTitle(j) << ", " << JobStateName(j.state()) << "\n";
  if (!j.reason().empty()) out << "  reason: " << j.reason() << "\n";
  if (j.has_plan()) {
    PrintPlan(j.plan(), out);
  } else {
    if (!j.manifest().empty()) out << "  backup: " << j.manifest() << "\n";
    out << "  source mode: " << j.source_mode();
    if (j.preferred_size() > 0) out << ", preferred " << absl::StrJoin(j.preferred(), ",");
    out << "\n";
  }
  for (const auto& a : j.attempts()) {
    out << "  attempt " << a.number() << " on " << a.node() << ": " << JobStateName(a.state());
    if (!a.writer_instance().empty()) out << " (" << a.writer_instance() << ")";
    out << ", started " << Time(a.started_us());
    if (a.ended_us() != 0) out << ", ended " << Time(a.ended_us());
    if (!a.reason().empty()) out << "\n    " << a.reason();
    out << "\n";
  }
  if (j.events_size() > 0) {
    out << "  events:\n";
    for (const auto& e : j.events()) {
      out << "    " << Time(e.time_us()) << "  "
          << absl::StrFormat("%-12s", JobStateName(e.state())) << " " << e.message() << "\n";
    }
  }
}

bool Ended(const v1::JobInfo& j) { return IsFinalJobState(j.state()); }

// Exit status of a job that has ended: ok only when it succeeded.
absl::Status Outcome(const v1::JobInfo& j) {
  if (j.state() == v1::JOB_SUCCEEDED || !Ended(j)) return absl::OkStatus();
  return absl::AbortedError(
      absl::StrCat("job ", j.id(), " ", JobStateName(j.state()), ": ", j.reason()));
}

// Follows a started job with --wait (progress on stderr, and where it goes
// on), then prints its record; the exit status is its outcome.
absl::Status FollowJob(v1::CoordinatorAdmin::Stub& stub, const v1::JobInfo& job,
                       const CliArgs& args, std::ostream& out, std::ostream& err);

absl::Status BackupStart(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out,
                         std::ostream& err) {
  v1::StartBackupRequest request;
  request.set_unit(args.GetOr("unit", ""));
  if (request.unit().empty()) return Usage("backup start: --unit U is required");
  auto type = repository::ParseBackupType(args.GetOr("type", "full"));
  if (!type.ok()) return Usage(std::string(type.status().message()));
  request.set_type(*type);
  request.set_source_mode(args.GetOr("source-mode", ""));
  for (const auto& p : args.GetAll("prefer")) {
    for (auto n : absl::StrSplit(p, ',', absl::SkipEmpty())) request.add_preferred(std::string(n));
  }
  auto cq = args.GetUint("max-copy-queue", 0), rq = args.GetUint("max-replay-queue", 0);
  if (!cq.ok() || !rq.ok()) return Usage(std::string((!cq.ok() ? cq : rq).status().message()));
  request.set_max_copy_queue(static_cast<uint32_t>(*cq));
  request.set_max_replay_queue(static_cast<uint32_t>(*rq));
  v1::JobInfo job;
  RETURN_IF_ERROR(FromGrpcStatus(stub.StartBackup(Context().get(), request, &job), "backup start"));
  return FollowJob(stub, job, args, out, err);
}

// `restore start`, `restore items` or `restore verify`, by `verb`.
absl::Status RestoreStart(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out,
                          std::ostream& err, const std::string& verb) {
  ASSIGN_OR_RETURN(v1::StartRestoreRequest request, verb == "items"    ? RestoreItemsRequest(args)
                                                    : verb == "verify" ? RestoreVerifyRequest(args)
                                                                       : RestoreStartRequest(args));
  v1::JobInfo job;
  RETURN_IF_ERROR(FromGrpcStatus(stub.StartRestore(Context().get(), request, &job),
                                 absl::StrCat("restore ", verb)));
  return FollowJob(stub, job, args, out, err);
}

absl::Status Reseed(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out,
                    std::ostream& err) {
  v1::StartReseedRequest request;
  request.set_unit(args.GetOr("unit", ""));
  request.set_node(args.GetOr("node", ""));
  if (request.unit().empty() || request.node().empty()) {
    return Usage("reseed: --unit U and --node N (the passive copy's node) are required");
  }
  request.set_force(args.Has("force"));
  v1::JobInfo job;
  RETURN_IF_ERROR(FromGrpcStatus(stub.StartReseed(Context().get(), request, &job), "reseed"));
  return FollowJob(stub, job, args, out, err);
}

absl::Status FollowJob(v1::CoordinatorAdmin::Stub& stub, const v1::JobInfo& job,
                       const CliArgs& args, std::ostream& out, std::ostream& err) {
  if (!args.Has("wait")) {
    if (args.Has("json")) {
      PrintJson(job, out);
    } else {
      PrintJob(job, out);
    }
    return Outcome(job);
  }
  if (!args.Has("json")) {
    out << "job " << job.id() << ": " << JobTitle(job)
        << (job.has_plan() && !job.plan().has_items() && !job.plan().has_verification()
                ? " (active copy on " + job.plan().active_node() + ")"
                : " on " + NodeOf(job))
        << "\n";
    if (!job.reason().empty()) out << "  " << job.reason() << "\n";
  }
  v1::JobInfo last = job;
  if (!Ended(job)) {
    auto context = Context(absl::Hours(24));
    v1::JobRequest watch;
    watch.set_job(job.id());
    auto reader = stub.WatchJob(context.get(), watch);
    repository::ProgressPrinter printer(err);
    std::string node = NodeOf(job);
    // Steps 3 and 5 run at once: each is announced once.
    std::set<uint32_t> shown_steps;
    for (v1::JobInfo j; reader->Read(&j);) {
      if (NodeOf(j) != node || j.attempts_size() != last.attempts_size()) {
        node = NodeOf(j);
        // A plan moves from node to node; a backup moves only to retry.
        if (!j.has_plan()) err << "\nretrying on " << node << "\n";
      }
      for (const auto& step : j.plan().steps()) {
        if (step.state() == v1::STEP_RUNNING && shown_steps.insert(step.number()).second) {
          err << "\nstep " << step.number() << ": " << step.name() << "\n";
        }
      }
      printer.Show(JobStateName(j.state()), j.bytes_done(), j.bytes_total(), j.bytes_per_second(),
                   "");
      last = j;
    }
    RETURN_IF_ERROR(FromGrpcStatus(reader->Finish(), "watching the job"));
  }
  v1::JobInfo detail;
  v1::JobRequest request_detail;
  request_detail.set_job(job.id());
  if (stub.GetJob(Context().get(), request_detail, &detail).ok()) last = detail;
  if (args.Has("json")) {
    PrintJson(last, out);
  } else {
    PrintJob(last, out);
  }
  return Outcome(last);
}

absl::Status BackupList(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out) {
  v1::ListBackupsRequest request;
  request.set_unit(args.GetOr("unit", ""));
  v1::ListBackupsResponse response;
  RETURN_IF_ERROR(
      FromGrpcStatus(stub.ListBackups(Context().get(), request, &response), "backup list"));
  if (args.Has("json")) {
    PrintJson(response, out);
    return absl::OkStatus();
  }
  Table t(
      {"BACKUP", "UNIT", "TYPE", "SOURCE", "GENERATIONS", "SIZE", "NEW", "FINISHED", "VERIFIED"});
  for (const auto& b : response.backups()) {
    t.Add({b.manifest(), b.unit(), BackupTypeTitle(b.type()), b.source_node(),
           absl::StrCat(Gen(b.low_generation()), "-", Gen(b.high_generation())),
           HumanBytes(b.logical_bytes()), HumanBytes(b.new_bytes()), Time(b.finished_us()),
           b.verified() ? "yes" : "no"});
  }
  t.Print(out);
  return absl::OkStatus();
}

absl::Status ChainShow(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out) {
  v1::ShowChainsRequest request;
  request.set_unit(args.GetOr("unit", ""));
  if (request.unit().empty()) return Usage("chain show: --unit U is required");
  v1::ShowChainsResponse response;
  RETURN_IF_ERROR(
      FromGrpcStatus(stub.ShowChains(Context().get(), request, &response), "chain show"));
  if (args.Has("json")) {
    PrintJson(response, out);
    return absl::OkStatus();
  }
  if (response.chains_size() == 0) out << "unit " << request.unit() << " has no chain\n";
  int n = 0;
  for (const auto& c : response.chains()) {
    out << "chain " << ++n << " of " << c.unit() << ": " << (c.broken() ? "BROKEN" : "valid")
        << "\n";
    Table t({"  PIECE", "BACKUP", "SOURCE", "GENERATIONS", "RESTORE POINT"});
    auto row = [&](const std::string& what, const v1::CatalogBackup& b) {
      t.Add({absl::StrCat("  ", what), b.manifest(), b.source_node(),
             absl::StrCat(Gen(b.low_generation()), "-", Gen(b.high_generation())),
             absl::StrCat(Gen(b.high_generation()), " at ", Time(b.started_us()))});
    };
    row("Full", c.full());
    for (const auto& b : c.incrementals()) row("Incremental", b);
    for (const auto& b : c.differentials()) row("Differential", b);
    t.Print(out);
    out << "  restore points:";
    for (const auto& p : c.restore_points()) {
      out << " " << Gen(p.generation())
          << (!p.has_verification()       ? ""
              : p.verification().passed() ? " (verified)"
                                          : " (VERIFICATION FAILED)");
    }
    out << "\n";
    for (const auto& v : c.verifications()) out << "  " << VerificationLine(v) << "\n";
    if (c.broken()) {
      out << "  broken at generation " << Gen(c.broken_at_generation()) << ": " << c.broken_reason()
          << "\n";
    }
    if (c.archived_segments() > 0) {
      out << "  archived logs: " << Gen(c.archived_low_generation()) << "-"
          << Gen(c.archived_high_generation()) << " in " << c.archived_segments()
          << " segment(s), the newest archived " << Time(c.archived_through_us())
          << "; every generation is a restore point\n";
    }
    if (c.archive_broken()) {
      out << "  archive stops at generation " << Gen(c.archive_broken_at_generation()) << ": "
          << c.archive_broken_reason() << "\n";
    }
  }
  out << "next Incremental: " << response.next_incremental() << "\n";
  return absl::OkStatus();
}

absl::Status Job(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out) {
  const auto& pos = args.positional();
  const std::string verb = pos.size() > 1 ? pos[1] : "";
  if (verb == "list") {
    v1::ListJobsRequest request;
    request.set_unit(args.GetOr("unit", ""));
    auto limit = args.GetUint("limit", 0);
    if (!limit.ok()) return Usage(std::string(limit.status().message()));
    request.set_limit(static_cast<uint32_t>(*limit));
    v1::ListJobsResponse response;
    RETURN_IF_ERROR(FromGrpcStatus(stub.ListJobs(Context().get(), request, &response), "job list"));
    if (args.Has("json")) {
      PrintJson(response, out);
      return absl::OkStatus();
    }
    Table t({"JOB", "UNIT", "TYPE", "NODE", "ATTEMPTS", "STATE", "CREATED", "REASON"});
    for (const auto& j : response.jobs()) {
      t.Add({j.id(), j.unit(), BackupTypeTitle(j.type()), NodeOf(j),
             absl::StrCat(j.attempts_size()), JobStateName(j.state()), Time(j.created_us()),
             j.reason().substr(0, 80)});
    }
    t.Print(out);
    return absl::OkStatus();
  }
  if ((verb != "show" && verb != "cancel") || pos.size() != 3) {
    return Usage("job: use job list, job show ID or job cancel ID");
  }
  v1::JobRequest request;
  request.set_job(pos[2]);
  v1::JobInfo job;
  grpc::Status s = verb == "show" ? stub.GetJob(Context().get(), request, &job)
                                  : stub.CancelJob(Context().get(), request, &job);
  RETURN_IF_ERROR(FromGrpcStatus(s, absl::StrCat("job ", verb)));
  if (verb == "cancel" && !args.Has("json") && !Ended(job)) {
    out << "cancel requested: " << NodeOf(job)
        << " stops the job and ends its writer session with failure (nothing is truncated); "
           "`dagvault job show "
        << job.id() << "` shows when it has\n";
  }
  if (args.Has("json")) {
    PrintJson(job, out);
  } else {
    PrintJob(job, out);
  }
  return absl::OkStatus();
}

std::string When(int64_t us) { return us == 0 ? "-" : Time(us); }

void PrintPolicy(const v1::PolicyInfo& info, std::ostream& out) {
  const v1::Policy& p = info.policy();
  out << "policy " << p.name() << ": units " << absl::StrJoin(p.units(), ", ") << "\n";
  auto schedule = [&](const char* what, const std::string& cron, int64_t next) {
    if (cron.empty()) return;
    out << "  " << what << " \"" << cron << "\", next " << When(next) << "\n";
  };
  schedule("full        ", p.full_schedule(), info.next_full_us());
  schedule("incremental ", p.incremental_schedule(), info.next_incremental_us());
  schedule("differential", p.differential_schedule(), info.next_differential_us());
  if (!p.verify_schedule().empty()) {
    out << "  verify       \"" << p.verify_schedule() << "\": "
        << (p.verify_random_point() ? "a random restore point" : "the newest restore point")
        << " on " << (p.verify_node().empty() ? std::string("a node chosen") : p.verify_node())
        << (p.verify_off_production() ? ", never a node with a mounted active copy" : "") << "\n";
  }
  out << "  source mode " << (p.source_mode().empty() ? "passive-then-active" : p.source_mode());
  if (p.preferred_size() > 0) out << ", preferred " << absl::StrJoin(p.preferred(), ",");
  out << "\n  retention: ";
  if (p.keep_chains() == 0 && p.keep_days() == 0) {
    out << "every chain is kept";
  } else {
    if (p.keep_chains() != 0) out << "the newest " << p.keep_chains() << " chains";
    if (p.keep_chains() != 0 && p.keep_days() != 0) out << ", and ";
    if (p.keep_days() != 0) out << "chains newer than " << p.keep_days() << " days";
  }
  if (p.archive_logs()) {
    out << "\n  closed logs archived as they close (from a copy chosen like a backup source)";
    if (p.archive_roll_seconds() != 0) {
      out << "; the open generation closed once its oldest record is "
          << DurationText(absl::Seconds(p.archive_roll_seconds())) << " old";
    }
  }
  out << "\n  at most " << (p.max_jobs_per_node() ? absl::StrCat(p.max_jobs_per_node()) : "any")
      << " jobs per node, " << (p.max_jobs() ? absl::StrCat(p.max_jobs()) : "any")
      << " in the deployment; priority " << p.priority() << "\n";
  auto level = [](uint64_t seconds, const char* otherwise) {
    return seconds == 0 ? std::string(otherwise) : DurationText(absl::Seconds(seconds));
  };
  if (p.rpo_seconds() == 0) {
    out << "  RPO: none\n";
  } else {
    out << "  RPO " << DurationText(absl::Seconds(p.rpo_seconds())) << ": warning past "
        << level(p.rpo_warning_seconds(), "the RPO") << ", critical past "
        << level(p.rpo_critical_seconds(), "1.5 times the RPO") << ", grace "
        << level(p.rpo_grace_seconds(), "a tenth of the warning level") << "\n";
  }
}

absl::Status Policy(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out) {
  const auto& pos = args.positional();
  const std::string verb = pos.size() > 1 ? pos[1] : "";
  if (verb == "set") {
    v1::Policy p;
    p.set_name(args.GetOr("name", ""));
    for (const auto& u : args.GetAll("unit")) {
      for (auto part : absl::StrSplit(u, ',', absl::SkipEmpty())) p.add_units(std::string(part));
    }
    p.set_full_schedule(args.GetOr("full", ""));
    p.set_incremental_schedule(args.GetOr("incremental", ""));
    p.set_differential_schedule(args.GetOr("differential", ""));
    p.set_source_mode(args.GetOr("source-mode", ""));
    for (const auto& n : args.GetAll("prefer")) {
      for (auto part : absl::StrSplit(n, ',', absl::SkipEmpty())) {
        p.add_preferred(std::string(part));
      }
    }
    struct Number {
      const char* flag;
      void (v1::Policy::*set)(uint32_t);
    };
    for (const Number& n : {Number{"keep-chains", &v1::Policy::set_keep_chains},
                            Number{"keep-days", &v1::Policy::set_keep_days},
                            Number{"max-jobs-per-node", &v1::Policy::set_max_jobs_per_node},
                            Number{"max-jobs", &v1::Policy::set_max_jobs},
                            Number{"max-copy-queue", &v1::Policy::set_max_copy_queue},
                            Number{"max-replay-queue", &v1::Policy::set_max_replay_queue},
                            Number{"verify-sample", &v1::Policy::set_verify_sample_items}}) {
      auto v = args.GetUint(n.flag, 0);
      if (!v.ok()) return Usage(std::string(v.status().message()));
      (p.*n.set)(static_cast<uint32_t>(*v));
    }
    struct Level {
      const char* flag;
      void (v1::Policy::*set)(uint64_t);
    };
    for (const Level& l : {Level{"rpo", &v1::Policy::set_rpo_seconds},
                           Level{"rpo-warning", &v1::Policy::set_rpo_warning_seconds},
                           Level{"rpo-critical", &v1::Policy::set_rpo_critical_seconds},
                           Level{"rpo-grace", &v1::Policy::set_rpo_grace_seconds}}) {
      auto text = args.Get(l.flag);
      if (!text) continue;
      auto d = ParseDurationText(*text);
      if (!d.ok()) return Usage(absl::StrCat("--", l.flag, ": ", d.status().message()));
      (p.*l.set)(static_cast<uint64_t>(absl::ToInt64Seconds(*d)));
    }
    p.set_verify_schedule(args.GetOr("verify", ""));
    p.set_verify_node(args.GetOr("verify-node", ""));
    p.set_verify_random_point(args.Has("verify-random"));
    p.set_verify_off_production(args.Has("verify-off-production"));
    p.set_archive_logs(args.Has("archive-logs") || args.Has("archive-roll"));
    if (auto roll = args.Get("archive-roll")) {
      auto d = ParseDurationText(*roll);
      if (!d.ok()) return Usage(absl::StrCat("--archive-roll: ", d.status().message()));
      p.set_archive_roll_seconds(static_cast<uint32_t>(absl::ToInt64Seconds(*d)));
    }
    if (auto pr = args.Get("priority")) {
      int priority = 0;
      if (!absl::SimpleAtoi(*pr, &priority)) {
        return Usage(absl::StrCat("--priority ", *pr, " is not a number"));
      }
      p.set_priority(priority);
    }
    v1::PolicyInfo info;
    RETURN_IF_ERROR(FromGrpcStatus(stub.SetPolicy(Context().get(), p, &info), "policy set"));
    if (args.Has("json")) {
      PrintJson(info, out);
    } else {
      PrintPolicy(info, out);
    }
    return absl::OkStatus();
  }
  if (verb == "list") {
    v1::ListPoliciesResponse response;
    RETURN_IF_ERROR(
        FromGrpcStatus(stub.ListPolicies(Context().get(), {}, &response), "policy list"));
    if (args.Has("json")) {
      PrintJson(response, out);
      return absl::OkStatus();
    }
    Table t({"POLICY", "UNITS", "NEXT FULL", "NEXT INCREMENTAL", "NEXT DIFFERENTIAL"});
    for (const auto& info : response.policies()) {
      const v1::Policy& p = info.policy();
      t.Add({p.name(), absl::StrJoin(p.units(), ","), When(info.next_full_us()),
             When(info.next_incremental_us()), When(info.next_differential_us())});
    }
    t.Print(out);
    return absl::OkStatus();
  }
  if ((verb == "show" || verb == "remove") && pos.size() == 3) {
    v1::PolicyRequest request;
    request.set_name(pos[2]);
    v1::PolicyInfo info;
    grpc::Status s = verb == "show" ? stub.GetPolicy(Context().get(), request, &info)
                                    : stub.RemovePolicy(Context().get(), request, &info);
    RETURN_IF_ERROR(FromGrpcStatus(s, absl::StrCat("policy ", verb)));
    if (args.Has("json")) {
      PrintJson(info, out);
    } else if (verb == "show") {
      PrintPolicy(info, out);
    } else {
      out << "policy " << pos[2] << " removed\n";
    }
    return absl::OkStatus();
  }
  return Usage("policy: use policy set, policy show NAME, policy list or policy remove NAME");
}

absl::Status CatalogRebuild(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args,
                            std::ostream& out) {
  if (args.positional().size() < 2 || args.positional()[1] != "rebuild") {
    return Usage("catalog: use catalog rebuild [--repo PATH]");
  }
  v1::RebuildCatalogRequest request;
  request.set_repository(args.GetOr("repo", ""));
  v1::RebuildCatalogResponse response;
  RETURN_IF_ERROR(
      FromGrpcStatus(stub.RebuildCatalog(Context(absl::Minutes(30)).get(), request, &response),
                     "catalog rebuild"));
  if (args.Has("json")) {
    PrintJson(response, out);
  } else {
    out << "catalog rebuilt: " << response.backups() << " backups of " << response.units_size()
        << " units (" << absl::StrJoin(response.units(), ", ") << ")\n";
  }
  return absl::OkStatus();
}

absl::Status Expire(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args, std::ostream& out) {
  v1::ExpireRequest request;
  request.set_dry_run(args.Has("dry-run"));
  v1::ExpireResponse response;
  RETURN_IF_ERROR(
      FromGrpcStatus(stub.Expire(Context(absl::Hours(2)).get(), request, &response), "expire"));
  if (args.Has("json")) {
    PrintJson(response, out);
    return absl::OkStatus();
  }
  if (response.expired().empty()) out << "no chain is past its policy's retention\n";
  for (const auto& e : response.expired()) {
    out << (response.dry_run() ? "would expire " : "expired ") << e.unit() << " chain "
        << absl::StrJoin(e.manifests(), ", ") << " (" << e.why() << ")\n";
  }
  if (!response.dry_run() && response.manifests_removed() + response.packs_removed() > 0) {
    out << "pruned: " << response.manifests_removed() << " manifest(s), "
        << response.packs_removed() << " pack(s); repository "
        << HumanBytes(response.bytes_before()) << " -> " << HumanBytes(response.bytes_after())
        << "\n";
  }
  return absl::OkStatus();
}

absl::Status Certs(const CliArgs& args, std::ostream& out) {
  const auto& pos = args.positional();
  const std::string verb = pos.size() > 1 ? pos[1] : "";
  const std::string dir = args.GetOr("dir", "");
  if (dir.empty()) return Usage("certs: --dir DIR is required");
  if (verb == "init") {
    CaRequest request{.dir = dir, .deployment = args.GetOr("deployment", "dagvault")};
    request.force = args.Has("force");
    RETURN_IF_ERROR(CreateCa(request));
    out << "created the deployment CA: " << JoinPath(dir, "ca.crt") << " and "
        << JoinPath(dir, "ca.key") << " (keep ca.key offline once the certificates are issued)\n";
    return absl::OkStatus();
  }
  if (verb == "issue") {
    CertRequest request{.dir = dir, .name = args.GetOr("name", ""), .role = args.GetOr("role", "")};
    if (request.name.empty() || request.role.empty()) {
      return Usage(
          "certs issue: --name NAME and --role node|coordinator|admin|operator|viewer are "
          "required");
    }
    for (const auto& s : args.GetAll("san")) {
      for (auto h : absl::StrSplit(s, ',', absl::SkipEmpty()))
        request.sans.push_back(std::string(h));
    }
    RETURN_IF_ERROR(IssueCertificate(request));
    out << "issued " << JoinPath(dir, request.name + ".crt") << " (CN=" << request.name << ", role "
        << request.role << ", subject alternative names " << request.name
        << (request.sans.empty() ? "" : ", ") << absl::StrJoin(request.sans, ", ")
        << ") and its key " << JoinPath(dir, request.name + ".key") << "\n";
    return absl::OkStatus();
  }
  return Usage("certs: use certs init or certs issue");
}

absl::Status Dispatch(const CliArgs& args, std::ostream& out, std::ostream& err,
                      const std::optional<std::string>& redirected = std::nullopt) {
  const auto& pos = args.positional();
  const std::string& command = pos[0];
  if (command == "certs") return Certs(args, out);
  // A missing address is a usage error (2); certificates that do not load
  // are a failure (1), like a coordinator that does not answer.
  auto connected = Connect(args, redirected, err);
  if (!connected.ok()) return connected.status();
  v1::CoordinatorAdmin::Stub& stub = *connected->stub;
  const std::string verb = pos.size() > 1 ? pos[1] : "";
  if (command == "status") return StatusCommand(stub, args, out);
  if (command == "backup" && verb == "start") return BackupStart(stub, args, out, err);
  if (command == "backup" && verb == "list") return BackupList(stub, args, out);
  if (command == "restore" && (verb == "start" || verb == "items" || verb == "verify")) {
    return RestoreStart(stub, args, out, err, verb);
  }
  if (command == "reseed") return Reseed(stub, args, out, err);
  if (command == "chain" && verb == "show") return ChainShow(stub, args, out);
  if (command == "job") return Job(stub, args, out);
  if (command == "catalog") return CatalogRebuild(stub, args, out);
  if (command == "expire") return Expire(stub, args, out);
  if (command == "policy") return Policy(stub, args, out);
  if (command == "audit") return AuditCommand(stub, args, out);
  if (command == "console") {
    return ConsoleCommand(stub, args, connected->address, out);
  }
  return Usage(absl::StrCat("unknown command: ", absl::StrJoin(pos, " ")));
}

// Passes everything to `target` and remembers whether anything was
// written: a command that printed its answer (`status --json` of a
// critical unit, the record of a failed job) has said it as data, and no
// second JSON object follows it.
class WrittenTo : public std::streambuf {
 public:
  explicit WrittenTo(std::ostream& target) : target_(target.rdbuf()) {}
  bool written() const { return written_; }

 protected:
  int overflow(int c) override {
    written_ = true;
    return c == EOF ? 0 : target_->sputc(static_cast<char>(c));
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    written_ |= n > 0;
    return target_->sputn(s, n);
  }
  int sync() override { return target_->pubsync(); }

 private:
  std::streambuf* target_;
  bool written_ = false;
};

}  // namespace

int RunAdminCommand(const std::vector<std::string>& argv, std::ostream& real_out,
                    std::ostream& err) {
  const bool json = std::find(argv.begin(), argv.end(), "--json") != argv.end();
  WrittenTo written(real_out);
  std::ostream out(&written);
  // Exit code and message of a failure, on stderr; and under --json, as
  // JSON on stdout (a script reads stdout only) unless the command has
  // already printed its answer there.
  auto report = [&](const std::string& command, const absl::Status& s, int code) {
    out.flush();
    err << "dagvault" << (command.empty() ? "" : " " + command) << ": " << s.message() << "\n";
    if (json && !written.written()) PrintJsonError(s, code, out);
    return code;
  };
  if (absl::Status s = repository::RefusePassphraseArgument(argv, "dagvault"); !s.ok()) {
    return report("", s, 2);
  }
  auto parsed = ParseCommandLine(DagvaultProgram(), argv, out);
  if (!parsed.ok()) return report("", parsed.status(), 2);
  if (parsed->help_shown) return 0;
  const CliArgs& args = parsed->args;
  const auto& pos = args.positional();
  if (pos[0] == "completion") {
    out << BashCompletion(DagvaultProgram());
    return 0;
  }
  if (pos[0] == "repo") {
    bool clean = true;
    const CliArgs repo_args = args.WithoutFirstPositional();
    absl::Status s = RunRepoCommand(repo_args, out, &clean);
    if (!s.ok()) {
      return report(absl::StrCat("repo ", repo_args.positional()[0]), s,
                    s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1);
    }
    return clean ? 0 : 1;
  }
  ResetCallsMade();
  absl::Status s = Dispatch(args, out, err);
  // A standby refuses every call before it does anything, naming the
  // leader: when that was the command's first call and nothing is printed
  // yet, running the whole command again against the leader is safe. A
  // refusal later in a command (the leader changed under it) is reported:
  // what the earlier calls did is not repeated.
  if (const auto leader = LeaderNamedIn(s); leader && CallsMade() == 1 && !written.written()) {
    err << "dagvault: " << s.message() << "; calling it\n";
    s = Dispatch(args, out, err, leader);
  }
  if (IsUsage(s)) {
    return report(pos[0],
                  absl::InvalidArgumentError(
                      absl::StrCat(s.message(), " (see dagvault ", pos[0], " --help)")),
                  2);
  }
  if (!s.ok()) return report(pos[0], s, 1);
  return 0;
}

}  // namespace dagvault::cli
