#include "coordinator/cli/audit_command.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "coordinator/cli/cli_output.h"

namespace dagvault::cli {

namespace v1 = dagvault::v1;

absl::Status AuditCommand(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args,
                          std::ostream& out) {
  const auto& pos = args.positional();
  if (pos.size() != 2 || pos[1] != "list") return Usage("audit: use audit list");
  v1::ListAuditRequest request;
  request.set_identity(args.GetOr("identity", ""));
  if (args.Has("limit")) {
    uint32_t limit = 0;
    if (!absl::SimpleAtoi(args.GetOr("limit", ""), &limit) || limit == 0) {
      return Usage(absl::StrCat("--limit \"", args.GetOr("limit", ""),
                                "\": a number of entries, at least 1"));
    }
    request.set_limit(limit);
  }
  v1::ListAuditResponse response;
  auto ctx = Context();
  if (grpc::Status s = stub.ListAudit(ctx.get(), request, &response); !s.ok()) {
    return FromGrpcStatus(s, "audit list");
  }
  if (args.Has("json")) {
    PrintJson(response, out);
    return absl::OkStatus();
  }
  Table table({"TIME", "WHO", "ROLE", "VIA", "ACTION", "TARGET", "RESULT"});
  for (const auto& e : response.entries()) {
    std::string result = e.allowed() ? e.result() : "REFUSED";
    if (!e.message().empty()) absl::StrAppend(&result, ": ", e.message());
    table.Add({Time(e.time_us()), e.identity().empty() ? "-" : e.identity(),
               e.role().empty() ? "-" : e.role(), e.via(), e.method(),
               e.target().empty() ? "-" : e.target(), result});
  }
  table.Print(out);
  return absl::OkStatus();
}

}  // namespace dagvault::cli
