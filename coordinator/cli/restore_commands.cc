#include "coordinator/cli/restore_commands.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/job_state.h"
#include "common/status_macros.h"
#include "coordinator/cli/cli_output.h"

namespace dagvault::cli {
namespace {

namespace v1 = dagvault::v1;

// --to latest, --to-generation G or --to-time T, at most one.
absl::Status ParseRestorePoint(const CliArgs& args, const std::string& command,
                               v1::StartRestoreRequest* request) {
  if (args.Has("to") && args.GetOr("to", "") != "latest") {
    return Usage(
        absl::StrCat(command, ": --to takes only latest; use --to-generation G or --to-time T"));
  }
  if (args.Has("to") + args.Has("to-generation") + args.Has("to-time") > 1) {
    return Usage(
        absl::StrCat(command, ": give one of --to latest, --to-generation G, --to-time T"));
  }
  if (auto g = args.Get("to-generation")) {
    uint32_t generation = 0;
    const bool hex = absl::StartsWith(*g, "0x") || absl::StartsWith(*g, "0X");
    if (!(hex ? absl::SimpleHexAtoi(g->substr(2), &generation)
              : absl::SimpleAtoi(*g, &generation)) ||
        generation == 0) {
      return Usage(absl::StrCat(command, ": --to-generation ", *g,
                                " is not a generation (decimal, or hex with 0x)"));
    }
    request->set_to_generation(generation);
  }
  if (auto t = args.Get("to-time")) {
    absl::Time time;
    std::string error;
    if (!absl::ParseTime("%Y-%m-%d %H:%M:%S", *t, absl::UTCTimeZone(), &time, &error) &&
        !absl::ParseTime(absl::RFC3339_full, *t, &time, &error)) {
      return Usage(absl::StrCat(command, ": --to-time \"", *t,
                                "\" is not \"YYYY-MM-DD HH:MM:SS\" (UTC) or RFC 3339"));
    }
    request->set_to_time_us(absl::ToUnixMicros(time));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ParseNumber(const std::string& command, const std::string& flag,
                                     const std::string& text) {
  uint64_t n = 0;
  if (!absl::SimpleAtoi(text, &n)) {
    return Usage(absl::StrCat(command, ": --", flag, " ", text, " is not a number"));
  }
  return n;
}

}  // namespace

absl::StatusOr<v1::StartRestoreRequest> RestoreStartRequest(const CliArgs& args) {
  v1::StartRestoreRequest request;
  request.set_unit(args.GetOr("unit", ""));
  if (request.unit().empty()) return Usage("restore start: --unit U is required");
  request.set_recovery_database(args.GetOr("rdb", ""));
  request.set_node(args.GetOr("node", ""));
  request.set_path(args.GetOr("path", ""));
  RETURN_IF_ERROR(ParseRestorePoint(args, "restore start", &request));
  request.set_roll_forward(args.Has("roll-forward"));
  request.set_mount(!args.Has("no-mount"));
  request.set_force_overwrite_different_database(args.Has("force-overwrite-different-database"));
  return request;
}

absl::StatusOr<v1::StartRestoreRequest> RestoreItemsRequest(const CliArgs& args) {
  const std::string command = "restore items";
  v1::StartRestoreRequest request;
  request.set_unit(args.GetOr("unit", ""));
  if (request.unit().empty()) return Usage("restore items: --unit U is required");
  if (!args.Has("mailbox")) return Usage("restore items: --mailbox M is required");
  request.set_node(args.GetOr("node", ""));
  RETURN_IF_ERROR(ParseRestorePoint(args, command, &request));
  v1::ItemRestore* items = request.mutable_items();
  ASSIGN_OR_RETURN(uint64_t mailbox, ParseNumber(command, "mailbox", args.GetOr("mailbox", "")));
  items->mutable_selection()->set_mailbox(mailbox);
  items->mutable_selection()->set_database(args.GetOr("database", ""));
  for (const std::string& list : args.GetAll("item")) {
    for (absl::string_view one : absl::StrSplit(list, ',', absl::SkipEmpty())) {
      ASSIGN_OR_RETURN(uint64_t item, ParseNumber(command, "item", std::string(one)));
      items->mutable_selection()->add_items(item);
    }
  }
  const bool into = args.Has("into-production"), to_files = args.Has("export");
  if (into == to_files) {
    return Usage("restore items: give either --into-production or --export DIR");
  }
  items->set_into_production(into);
  items->set_export_dir(args.GetOr("export", ""));
  if (auto target = args.Get("target-mailbox")) {
    if (!into) return Usage("restore items: --target-mailbox goes with --into-production");
    ASSIGN_OR_RETURN(uint64_t m, ParseNumber(command, "target-mailbox", *target));
    items->set_other_mailbox(true);
    items->set_target_mailbox(m);
  }
  if (auto rule = args.Get("conflict")) {
    if (!into) return Usage("restore items: --conflict goes with --into-production");
    if (*rule == "skip") {
      items->set_conflict(v1::ITEM_CONFLICT_SKIP);
    } else if (*rule == "keep-both") {
      items->set_conflict(v1::ITEM_CONFLICT_KEEP_BOTH);
    } else if (*rule == "overwrite") {
      items->set_conflict(v1::ITEM_CONFLICT_OVERWRITE);
    } else {
      return Usage(absl::StrCat("restore items: --conflict ", *rule,
                                " is not skip, keep-both or overwrite"));
    }
  }
  return request;
}

void PrintItemRestorePlan(const v1::RestorePlan& plan, std::ostream& out) {
  const v1::ItemRestore& items = plan.items();
  const v1::ItemSelection& s = items.selection();
  out << "  items: mailbox " << s.mailbox();
  if (!s.database().empty()) out << " of database " << s.database();
  out << (s.items().empty() ? std::string(", every item")
                            : absl::StrCat(", item(s) ", absl::StrJoin(s.items(), ", ")));
  if (items.into_production()) {
    out << "; into production";
    if (items.other_mailbox()) out << ", mailbox " << items.target_mailbox();
    out << " (if the item number holds other mail: "
        << (items.conflict() == v1::ITEM_CONFLICT_KEEP_BOTH   ? "keep both"
            : items.conflict() == v1::ITEM_CONFLICT_OVERWRITE ? "overwrite"
                                                              : "skip")
        << ")";
  } else {
    out << "; exported to " << items.export_dir();
  }
  out << "\n  on " << plan.active_node() << ", from " << absl::StrJoin(plan.manifests(), ", ")
      << "\n";
  for (const auto& step : plan.steps()) {
    out << absl::StrFormat("  %d. %-8s %s\n", step.number(), RestoreStepStateName(step.state()),
                           step.name());
    if (!step.detail().empty()) out << "       " << step.detail() << "\n";
  }
  if (plan.has_item_result()) {
    const v1::ItemCounts& c = plan.item_result().counts();
    out << "  found " << c.found() << ", copied " << c.copied() << ", skipped as existing "
        << c.skipped_existing() << ", already there " << c.skipped_identical() << ", overwritten "
        << c.overwritten() << ", kept both " << c.kept_both() << ", exported " << c.exported()
        << absl::StrFormat(", %.1f MiB\n", c.bytes() / 1048576.0);
    if (!plan.item_result().export_index().empty()) {
      out << "  index: " << plan.item_result().export_index() << "\n";
    }
  }
  if (!plan.next_action().empty()) out << "  next: " << plan.next_action() << "\n";
}

absl::StatusOr<v1::StartRestoreRequest> RestoreVerifyRequest(const CliArgs& args) {
  const std::string command = "restore verify";
  v1::StartRestoreRequest request;
  request.set_unit(args.GetOr("unit", ""));
  if (request.unit().empty()) return Usage("restore verify: --unit U is required");
  request.set_node(args.GetOr("node", ""));
  RETURN_IF_ERROR(ParseRestorePoint(args, command, &request));
  v1::VerifyRestore* verify = request.mutable_verify();
  verify->set_requested(true);
  verify->set_random_point(args.Has("random"));
  verify->set_off_production(args.Has("off-production"));
  if (auto n = args.Get("sample")) {
    ASSIGN_OR_RETURN(uint64_t sample, ParseNumber(command, "sample", *n));
    verify->set_sample_items(static_cast<uint32_t>(sample));
  }
  return request;
}

std::string VerificationLine(const v1::RestoreVerification& v) {
  uint64_t items = 0;
  for (const auto& d : v.databases()) items += d.items();
  std::string line = absl::StrFormat(
      "%s %s, generation %s, on %s at %s (%.1f s): ",
      v.passed()         ? "verified"
      : v.inconclusive() ? "INCONCLUSIVE"
                         : "FAILED",
      v.manifests().empty() ? std::string("-") : v.manifests(v.manifests_size() - 1),
      Gen(v.generation()), v.node(), Time(v.ended_us()), (v.ended_us() - v.started_us()) / 1e6);
  if (v.passed()) {
    absl::StrAppend(&line, v.files(), " files (",
                    absl::StrFormat("%.1f MiB", v.bytes() / 1048576.0),
                    ") matched their backups' digests, ", v.databases_size(),
                    " database(s) sound, ", items, " items read");
  } else {
    absl::StrAppend(&line, v.problems().empty() ? std::string("?") : v.problems(0));
    if (v.problems_size() > 1) absl::StrAppend(&line, " (and ", v.problems_size() - 1, " more)");
  }
  return line;
}

void PrintVerificationPlan(const v1::RestorePlan& plan, std::ostream& out) {
  const v1::RestoreVerification& v = plan.verification();
  out << "  restore verification of " << v.unit() << " on " << v.node() << ", from "
      << absl::StrJoin(v.manifests(), ", ") << ", to generation " << Gen(v.generation())
      << (v.random_point() ? " (chosen at random)" : "") << "\n";
  for (const auto& step : plan.steps()) {
    out << absl::StrFormat("  %d. %-8s %s\n", step.number(), RestoreStepStateName(step.state()),
                           step.name());
    if (!step.detail().empty()) out << "       " << step.detail() << "\n";
  }
  if (v.ended_us() == 0) return;
  for (const auto& d : v.databases()) {
    out << absl::StrFormat(
        "  database %s: %u pages checked, %u items (%.1f MiB), digest %s, %u "
        "read by key%s\n",
        d.database(), d.pages(), d.items(), d.value_bytes() / 1048576.0,
        d.sha256().empty() ? std::string("-") : d.sha256().substr(0, 16), d.sampled_items(),
        d.problems().empty() ? "" : ": DAMAGED");
  }
  out << absl::StrFormat("  restore %.1f s, checks %.1f s\n", v.restore_us() / 1e6,
                         v.check_us() / 1e6);
  out << "  "
      << (v.passed()         ? "PASSED"
          : v.inconclusive() ? "INCONCLUSIVE (it proved nothing either way; run it again)"
                             : "FAILED")
      << "\n";
  for (const auto& p : v.problems()) out << "    " << p << "\n";
}

}  // namespace dagvault::cli
