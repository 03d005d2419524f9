#include "coordinator/cli/console_command.h"

#include "absl/strings/str_cat.h"
#include "common/duration_text.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "coordinator/cli/cli_output.h"

namespace dagvault::cli {

namespace v1 = dagvault::v1;

absl::Status ConsoleCommand(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args,
                            const std::string& coordinator_address, std::ostream& out) {
  const auto& pos = args.positional();
  if (pos.size() != 2 || pos[1] != "login") return Usage("console: use console login");
  v1::ConsoleTokenRequest request;
  if (args.Has("ttl")) {
    auto ttl = ParseDurationText(args.GetOr("ttl", ""));
    if (!ttl.ok()) return Usage(absl::StrCat("--ttl: ", ttl.status().message()));
    request.set_ttl_seconds(static_cast<uint64_t>(absl::ToInt64Seconds(*ttl)));
  }
  v1::ConsoleToken token;
  auto ctx = Context();
  RETURN_IF_ERROR(
      FromGrpcStatus(stub.CreateConsoleToken(ctx.get(), request, &token), "console login"));
  // The console listens on the coordinator's host, on its own port.
  std::string host = coordinator_address.substr(0, coordinator_address.rfind(':'));
  const std::string url = absl::StrCat("https://", host, ":", token.console_port(),
                                       "/#/overview?token=", token.token());
  if (args.Has("json")) {
    PrintJson(token, out);
    return absl::OkStatus();
  }
  out << "Open this address in a browser that trusts the deployment CA (ca.crt):\n\n  " << url
      << "\n\nIt signs you in as " << token.identity() << " (" << token.role() << ") until "
      << Time(token.expires_us())
      << ". The token is a password: do not share it. A browser with your certificate\n"
      << "needs no token: https://" << host << ":" << token.console_port() << "/\n";
  return absl::OkStatus();
}

}  // namespace dagvault::cli
