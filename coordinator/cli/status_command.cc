#include "coordinator/cli/status_command.h"

#include <algorithm>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/backup_type.h"
#include "common/copy_state.h"
#include "common/duration_text.h"
#include "common/grpc_status.h"
#include "common/job_state.h"
#include "common/rpo_state.h"
#include "common/status_macros.h"
#include "coordinator/cli/cli_output.h"
#include "repository/cli_support.h"

namespace dagvault::cli {
namespace {

namespace v1 = dagvault::v1;
using repository::HumanBytes;

// Critical, never backed up under an RPO, or not judged at all.
bool Failing(v1::RpoState s) {
  return s == v1::RPO_CRITICAL || s == v1::RPO_NEVER_BACKED_UP || s == v1::RPO_STATE_UNSPECIFIED;
}

std::string Age(int64_t us, int64_t age_seconds) {
  return us == 0 ? "-" : DurationText(absl::Seconds(age_seconds));
}

// The exit status: a failure naming the units that are critical or were
// never backed up under an RPO.
absl::Status Verdict(const v1::ClusterStatus& status) {
  std::vector<std::string> failing;
  for (const auto& u : status.units()) {
    if (Failing(u.state()))
      failing.push_back(absl::StrCat(u.unit(), " (", RpoStateName(u.state()), ")"));
  }
  if (failing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      failing.size() == 1 ? "1 unit is outside its RPO: "
                          : absl::StrCat(failing.size(), " units are outside their RPO: "),
      absl::StrJoin(failing, ", ")));
}

// The units outside their RPO (every unit with `all`), worst first (the
// coordinator's order), each with why; then a count.
void PrintUnits(const v1::ClusterStatus& status, bool all, std::ostream& out) {
  Table t({"UNIT", "RPO STATE", "NEWEST RESTORE POINT", "AGE", "FROM", "NEWEST FULL", "RPO",
           "POLICY", "NEXT SOURCE"});
  std::vector<const v1::UnitProtection*> shown;
  for (const auto& u : status.units()) {
    if (!all && u.state() == v1::RPO_OK) continue;
    shown.push_back(&u);
    t.Add({u.unit(), RpoStateName(u.state()), Time(u.newest_restore_point_us()),
           Age(u.newest_restore_point_us(), u.newest_restore_point_age_seconds()),
           u.newest_restore_point_node().empty() ? "-" : u.newest_restore_point_node(),
           Age(u.newest_full_us(), u.newest_full_age_seconds()),
           u.rpo_seconds() == 0 ? "-" : DurationText(absl::Seconds(u.rpo_seconds())),
           u.policy().empty() ? "-" : u.policy(),
           u.next_source().empty() ? "none" : u.next_source()});
  }
  if (!shown.empty()) {
    t.Print(out);
    for (const auto* u : shown) {
      if (!u->reason().empty()) out << "  " << u->unit() << ": " << u->reason() << "\n";
      if (u->archived_through_us() != 0) {
        out << "  " << u->unit() << ": logs archived through generation "
            << absl::StrFormat("0x%08X", u->archived_through_generation()) << ", "
            << Age(u->archived_through_us(), u->archive_lag_seconds()) << " ago\n";
      }
    }
  }
  const uint32_t ok = status.units_within_rpo();
  out << "units: " << ok << " of " << status.units_total() << " within their RPO";
  if (!all && ok > 0) out << " (--units lists them)";
  out << "\n\n";
}

}  // namespace

absl::Status StatusCommand(v1::CoordinatorAdmin::Stub& stub, const CliArgs& args,
                           std::ostream& out) {
  if (args.Has("leader")) {
    v1::LeaderInfo who;
    RETURN_IF_ERROR(
        FromGrpcStatus(stub.WhoLeads(Context().get(), v1::WhoLeadsRequest(), &who), "coordinator"));
    if (args.Has("json")) {
      PrintJson(who, out);
    } else {
      out << "leader: " << (who.leader().empty() ? std::string("none") : who.leader());
      if (who.epoch() != 0) out << " (epoch " << who.epoch() << ")";
      if (!who.no_leader_reason().empty()) out << " (" << who.no_leader_reason() << ")";
      out << "\n";
    }
    return absl::OkStatus();
  }
  v1::ClusterStatusRequest request;
  request.set_all_copies(args.Has("copies"));
  request.set_unit(args.GetOr("unit", ""));
  request.set_all_units(args.Has("units"));
  request.set_all_nodes(args.Has("nodes"));
  v1::ClusterStatus status;
  RETURN_IF_ERROR(FromGrpcStatus(stub.GetStatus(Context().get(), request, &status), "coordinator"));
  const absl::Status verdict = Verdict(status);
  if (args.Has("json")) {
    PrintJson(status, out);
    return verdict;
  }
  PrintUnits(status, args.Has("units") || !request.unit().empty(), out);
  Table nodes({"NODE", "AGENT", "LAST REPORT", "STATE"});
  for (const auto& n : status.nodes()) {
    nodes.Add({n.node(), n.agent_version().empty() ? "-" : n.agent_version(),
               Time(n.last_report_us()), n.reporting() ? "reporting" : n.down_reason()});
  }
  if (status.nodes_size() > 0) nodes.Print(out);
  // A coordinator older than the counts lists every node and counts none:
  // the count is then the list's.
  const bool counted = status.nodes_total() > 0;
  const uint32_t nodes_total =
      counted ? status.nodes_total() : static_cast<uint32_t>(status.nodes_size());
  const uint32_t nodes_reporting =
      counted ? status.nodes_reporting()
              : static_cast<uint32_t>(std::count_if(status.nodes().begin(), status.nodes().end(),
                                                    [](const auto& n) { return n.reporting(); }));
  const uint32_t nodes_hidden =
      nodes_total - std::min(nodes_total, static_cast<uint32_t>(status.nodes_size()));
  out << "nodes: " << nodes_reporting << " of " << nodes_total << " reporting";
  if (nodes_hidden > 0) {
    out << "; " << nodes_hidden << " of those not listed (--nodes lists every node)";
  }
  out << "\n\n";
  Table copies({"UNIT", "NODE", "ROLE", "STATE", "COPY Q", "REPLAY Q", "LAG", "LAST LOG"});
  std::vector<v1::CopyInfo> sorted(status.copies().begin(), status.copies().end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return std::tie(a.status().unit(), a.status().node()) <
           std::tie(b.status().unit(), b.status().node());
  });
  for (const auto& c : sorted) {
    const auto& s = c.status();
    copies.Add({s.unit(), s.node(), s.role() == v1::ACTIVE ? "active" : "passive",
                c.node_reporting() ? CopyStateName(s.state()) : "ServiceDown",
                absl::StrCat(s.copy_queue()), absl::StrCat(s.replay_queue()),
                s.replay_lag_seconds() == 0 ? "-" : absl::StrCat(s.replay_lag_seconds(), "s"),
                Gen(s.last_log_generation())});
  }
  if (!sorted.empty()) copies.Print(out);
  const uint32_t hidden = status.copies_total() - static_cast<uint32_t>(status.copies_size());
  out << "copies: " << status.copies_fine() << " of " << status.copies_total()
      << " Healthy or Mounted";
  if (hidden > 0) out << "; " << hidden << " of those not listed (--copies lists every copy)";
  out << "\n\n";
  if (status.leases_size() == 0) {
    out << "leases: none\n";
  } else {
    Table leases({"LEASE ON", "JOB", "HOLDER", "SINCE", "EXPIRES"});
    for (const auto& l : status.leases()) {
      leases.Add({l.unit(), l.job(), l.holder_node(), Time(l.acquired_us()), Time(l.expires_us())});
    }
    leases.Print(out);
  }
  if (status.running_size() == 0) {
    out << "running jobs: none\n";
  } else {
    out << "\n";
    Table jobs({"JOB", "UNIT", "TYPE", "NODE", "STATE", "PROGRESS", "RATE"});
    for (const auto& j : status.running()) {
      jobs.Add({j.id(), j.unit(), BackupTypeTitle(j.type()), NodeOf(j), JobStateName(j.state()),
                Progress(j),
                j.bytes_per_second() > 0
                    ? absl::StrCat(HumanBytes(static_cast<uint64_t>(j.bytes_per_second())), "/s")
                    : "-"});
    }
    jobs.Print(out);
  }
  if (status.queued_size() > 0) {
    out << "\n";
    Table queued({"QUEUED", "TYPE", "POLICY", "PRIORITY", "DUE", "WAITING FOR"});
    for (const auto& q : status.queued()) {
      queued.Add({q.unit(), BackupTypeTitle(q.type()), q.policy(), absl::StrCat(q.priority()),
                  Time(q.due_us()), q.waiting_for()});
    }
    queued.Print(out);
  }
  return verdict;
}

}  // namespace dagvault::cli
