// Commands that talk to a running mailstored over its store and admin API:
// status, mount, dismount, suspend, resume, activate, reseed, roll, and
// digest --server.
#include <grpcpp/create_channel.h>

#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli_args.h"
#include "common/grpc_status.h"
#include "dagvault/v1/store.grpc.pb.h"
#include "mailstore/format/types.h"
#include "mailstore/tools/admin_client.h"
#include "mailstore/tools/cli_output.h"
#include "mailstore/tools/util.h"

namespace dagvault::mailstore {

namespace v1 = dagvault::v1;

std::shared_ptr<grpc::Channel> ServerChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

absl::StatusOr<std::string> ServerAddress(const CliArgs& args) {
  if (auto s = args.Get("server")) return *s;
  if (const char* env = std::getenv("MAILSTORE_SERVER"); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  return absl::InvalidArgumentError(
      "--server HOST:PORT (a mailstored store address) is required, or set MAILSTORE_SERVER");
}

std::unique_ptr<grpc::ClientContext> ClientContext(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

std::string FormatStatus(const v1::StatusResponse& status) {
  std::ostringstream out;
  out << "status as seen by " << status.node() << "\n";
  for (const auto& u : status.units()) {
    out << "\nunit " << u.unit();
    if (u.recovery_database()) out << " (recovery database)";
    out << "  active on " << (u.active_node().empty() ? "?" : u.active_node());
    if (u.circular_logging()) out << "  circular logging";
    out << "\n";
    if (u.has_backup_in_progress()) {
      const auto& b = u.backup_in_progress();
      out << "  backup in progress: " << b.type() << " of the "
          << (b.holder_role() == v1::PASSIVE ? "passive" : "active") << " copy on "
          << b.holder_node() << ", started " << FormatTimeMicros(b.started_us()) << ", session "
          << b.session() << "\n";
    }
    out << absl::StrFormat("  %-8s %-7s %-18s %5s %6s %8s %10s %10s %10s %10s\n", "COPY", "ROLE",
                           "STATE", "LAG", "COPYQ", "REPLAYQ", "INSPECTED", "REPLAYED",
                           "CHECKPOINT", "LOWEST");
    for (const auto& c : u.copies()) {
      const char* role = c.role() == v1::ACTIVE    ? "active"
                         : c.role() == v1::PASSIVE ? "passive"
                                                   : "-";
      out << absl::StrFormat(
          "  %-8s %-7s %-18s %4us %6u %8u %10s %10s %10s %10s\n", c.node(), role,
          CopyStateName(c.state()), c.replay_lag_seconds(), c.copy_queue(), c.replay_queue(),
          GenerationHex(c.last_inspected_generation()), GenerationHex(c.last_replayed_generation()),
          GenerationHex(c.checkpoint_generation()), GenerationHex(c.lowest_log_generation()));
      if (!c.message().empty()) out << "           " << c.message() << "\n";
    }
    // Why logs are (not) going away: the first thing to read when they
    // pile up.
    for (const auto& c : u.copies()) {
      if (c.role() != v1::ACTIVE || c.truncation_held_by().empty()) continue;
      out << "  truncation: "
          << (c.truncatable_through() == 0
                  ? std::string("no log may go yet")
                  : absl::StrFormat("logs through 0x%08X may go", c.truncatable_through()))
          << "; held by " << c.truncation_held_by() << "\n";
    }
  }
  return out.str();
}

namespace {

int Fail(std::ostream& err, const char* command, const absl::Status& status) {
  err << "mailstore-util " << command << ": " << status.message() << "\n";
  return kExitFailure;
}

// mount, dismount, suspend, resume, reseed, roll: one unit, one call.
int UnitCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                const char* command,
                grpc::Status (v1::Admin::Stub::*call)(grpc::ClientContext*, const v1::UnitRequest&,
                                                      v1::AdminResponse*)) {
  auto parsed = CliArgs::Parse(args, {{"server", "unit"}, {}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), command);
  auto address = ServerAddress(*parsed);
  if (!address.ok()) return UsageError(err, address.status(), command);
  if (!parsed->Has("unit")) {
    return UsageError(err, absl::InvalidArgumentError("--unit UNIT is required"), command);
  }
  auto stub = v1::Admin::NewStub(ServerChannel(*address));
  v1::UnitRequest request;
  request.set_unit(*parsed->Get("unit"));
  v1::AdminResponse response;
  auto context = ClientContext(absl::Minutes(10));
  absl::Status s = FromGrpcStatus((stub.get()->*call)(context.get(), request, &response), *address);
  if (!s.ok()) return Fail(err, command, s);
  out << response.message() << "\n";
  return kExitOk;
}

}  // namespace

int CmdStatus(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{"server", "unit"}, {"json"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "status");
  auto address = ServerAddress(*parsed);
  if (!address.ok()) return UsageError(err, address.status(), "status");
  auto stub = v1::Admin::NewStub(ServerChannel(*address));
  v1::StatusRequest request;
  request.set_unit(parsed->GetOr("unit", ""));
  v1::StatusResponse response;
  auto context = ClientContext(absl::Seconds(30));
  absl::Status s = FromGrpcStatus(stub->Status(context.get(), request, &response), *address);
  if (!s.ok()) return Fail(err, "status", s);
  out << (parsed->Has("json") ? ToJson(response) + "\n" : FormatStatus(response));
  return kExitOk;
}

int CmdMount(const std::vector<std::string>& a, std::ostream& o, std::ostream& e) {
  return UnitCommand(a, o, e, "mount", &v1::Admin::Stub::Mount);
}
int CmdDismount(const std::vector<std::string>& a, std::ostream& o, std::ostream& e) {
  return UnitCommand(a, o, e, "dismount", &v1::Admin::Stub::Dismount);
}
int CmdSuspend(const std::vector<std::string>& a, std::ostream& o, std::ostream& e) {
  return UnitCommand(a, o, e, "suspend", &v1::Admin::Stub::Suspend);
}
int CmdResume(const std::vector<std::string>& a, std::ostream& o, std::ostream& e) {
  return UnitCommand(a, o, e, "resume", &v1::Admin::Stub::Resume);
}
int CmdReseed(const std::vector<std::string>& a, std::ostream& o, std::ostream& e) {
  return UnitCommand(a, o, e, "reseed", &v1::Admin::Stub::Reseed);
}
int CmdRoll(const std::vector<std::string>& a, std::ostream& o, std::ostream& e) {
  return UnitCommand(a, o, e, "roll", &v1::Admin::Stub::RollLog);
}

int CmdActivate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto parsed = CliArgs::Parse(args, {{"server", "unit", "node"}, {"lossy"}});
  if (!parsed.ok()) return UsageError(err, parsed.status(), "activate");
  auto address = ServerAddress(*parsed);
  if (!address.ok()) return UsageError(err, address.status(), "activate");
  if (!parsed->Has("unit") || !parsed->Has("node")) {
    return UsageError(err, absl::InvalidArgumentError("--unit UNIT and --node NODE are required"),
                      "activate");
  }
  auto stub = v1::Admin::NewStub(ServerChannel(*address));
  v1::ActivateRequest request;
  request.set_unit(*parsed->Get("unit"));
  request.set_node(*parsed->Get("node"));
  request.set_lossy(parsed->Has("lossy"));
  v1::AdminResponse response;
  auto context = ClientContext(absl::Minutes(10));
  absl::Status s = FromGrpcStatus(stub->Activate(context.get(), request, &response), *address);
  if (!s.ok()) return Fail(err, "activate", s);
  out << response.message() << "\n";
  return kExitOk;
}

int CmdServerDigest(const CliArgs& parsed, std::ostream& out, std::ostream& err) {
  auto address = ServerAddress(parsed);
  if (!address.ok()) return UsageError(err, address.status(), "digest");
  if (!parsed.Has("unit")) {
    return UsageError(err, absl::InvalidArgumentError("--unit UNIT is required with --server"),
                      "digest");
  }
  const std::string unit = *parsed.Get("unit");
  auto stub = v1::Admin::NewStub(ServerChannel(*address));
  std::vector<std::string> databases = parsed.GetAll("database");
  if (databases.empty()) {
    // Every database of the unit.
    v1::StatusRequest request;
    request.set_unit(unit);
    v1::StatusResponse status;
    auto context = ClientContext(absl::Seconds(30));
    absl::Status s = FromGrpcStatus(stub->Status(context.get(), request, &status), *address);
    if (!s.ok()) return Fail(err, "digest", s);
    if (status.units_size() == 0) {
      return Fail(err, "digest",
                  absl::NotFoundError(absl::StrCat("no unit ", unit, " on ", status.node())));
    }
    for (const auto& db : status.units(0).databases()) databases.push_back(db);
  }
  v1::DigestReport report;
  std::ostringstream text;
  for (const auto& db : databases) {
    v1::DigestRequest request;
    request.set_unit(unit);
    request.set_database(db);
    v1::DigestResponse response;
    auto context = ClientContext(absl::Minutes(30));
    absl::Status s = FromGrpcStatus(stub->Digest(context.get(), request, &response), *address);
    if (!s.ok()) return Fail(err, "digest", s);
    auto* info = report.add_databases();
    info->set_file(absl::StrCat(unit, "/", db));
    info->set_sha256(response.sha256());
    info->set_items(response.items());
    info->set_value_bytes(response.value_bytes());
    text << response.sha256() << "  " << response.items() << " items  " << response.value_bytes()
         << " bytes  " << unit << "/" << db << "  at generation "
         << GenerationHex(response.generation()) << "\n";
  }
  out << (parsed.Has("json") ? ToJson(report) + "\n" : text.str());
  return kExitOk;
}

}  // namespace dagvault::mailstore
