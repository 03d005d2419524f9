#include "coordinator/selection/source_selection.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/copy_state.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

// The highest activation epoch any copy of the unit reports, and a node
// that reports it.
struct NewestEpoch {
  uint64_t epoch = 0;
  std::string node;
};

NewestEpoch NewestEpochOf(const std::vector<CopyView>& copies) {
  NewestEpoch newest;
  for (const CopyView& c : copies) {
    if (c.status.epoch() > newest.epoch) newest = {c.status.epoch(), c.status.node()};
  }
  return newest;
}

// Why `copy` cannot be the source under `policy`; empty when it can.
std::vector<std::string> Reasons(const CopyView& copy, const SelectionPolicy& policy,
                                 const NewestEpoch& newest) {
  const v1::CopyStatus& s = copy.status;
  const bool active = s.role() == v1::ACTIVE;
  std::vector<std::string> reasons;
  if (!copy.node_reporting) {
    reasons.push_back(copy.node_down_reason.empty()
                          ? std::string("ServiceDown: its agent does not report")
                          : absl::StrCat("ServiceDown: ", copy.node_down_reason));
    return reasons;  // what it last said is stale: nothing more is known
  }
  if (active && s.epoch() < newest.epoch) {
    // A later activation superseded it (a lossy failover while its server
    // was cut off or down, whose last report still stands): it steps down
    // once it learns of the new epoch, and its logs after the activation
    // point are not the unit's.
    reasons.push_back(absl::StrCat("an active copy superseded by a later activation (epoch ",
                                   s.epoch(), "; ", newest.node, " reports epoch ", newest.epoch,
                                   ")"));
  }
  if (active && policy.mode == SourceMode::kPassiveOnly) {
    reasons.push_back("the active copy, and the source mode is passive-only");
  }
  if (!active && policy.mode == SourceMode::kActiveOnly) {
    reasons.push_back("a passive copy, and the source mode is active-only");
  }
  const v1::CopyState wanted = active ? v1::MOUNTED : v1::HEALTHY;
  if (s.state() != wanted) {
    reasons.push_back(absl::StrCat(CopyStateName(s.state()),
                                   s.message().empty() ? "" : absl::StrCat(" (", s.message(), ")"),
                                   ", not ", CopyStateName(wanted)));
  }
  if (!active && s.replay_lag_seconds() > 0) {
    reasons.push_back(absl::StrCat("a lagged copy (replay lag ", s.replay_lag_seconds(), " s)"));
  }
  if (!active && s.copy_queue() > policy.max_copy_queue) {
    reasons.push_back(
        absl::StrCat("copy queue ", s.copy_queue(), " generations, over ", policy.max_copy_queue));
  }
  if (!active && s.replay_queue() > policy.max_replay_queue) {
    reasons.push_back(absl::StrCat("replay queue ", s.replay_queue(), " generations, over ",
                                   policy.max_replay_queue));
  }
  return reasons;
}

}  // namespace

absl::StatusOr<SourceMode> ParseSourceMode(absl::string_view name) {
  if (name == "passive-then-active" || name.empty()) return SourceMode::kPassiveThenActive;
  if (name == "passive-only") return SourceMode::kPassiveOnly;
  if (name == "active-only") return SourceMode::kActiveOnly;
  return absl::InvalidArgumentError(absl::StrCat(
      "source mode \"", name, "\" is not one of passive-then-active, passive-only, active-only"));
}

std::string SourceModeName(SourceMode mode) {
  switch (mode) {
    case SourceMode::kPassiveOnly:
      return "passive-only";
    case SourceMode::kActiveOnly:
      return "active-only";
    case SourceMode::kPassiveThenActive:
      break;
  }
  return "passive-then-active";
}

Selection SelectSource(const std::vector<CopyView>& copies, const SelectionPolicy& policy,
                       const SourceHistory& history) {
  Selection out;
  struct Scored {
    std::tuple<int, int, size_t, int, uint64_t, uint32_t, std::string> key;
    RankedCopy copy;
  };
  std::vector<Scored> scored;
  const NewestEpoch newest = NewestEpochOf(copies);
  for (const CopyView& c : copies) {
    std::vector<std::string> reasons = Reasons(c, policy, newest);
    const std::string& node = c.status.node();
    if (!reasons.empty()) {
      out.rejected.push_back({node, std::move(reasons)});
      continue;
    }
    const bool active = c.status.role() == v1::ACTIVE;
    const bool demoted = history.failed_last.count(node) > 0;
    const auto pref = std::find(policy.preferred.begin(), policy.preferred.end(), node);
    const size_t pref_rank = static_cast<size_t>(pref - policy.preferred.begin());
    const bool last_success =
        !history.last_success_node.empty() && node == history.last_success_node;
    std::vector<std::string> why = {active ? "the active copy" : "a Healthy passive copy"};
    if (pref != policy.preferred.end()) why.push_back(absl::StrCat("preferred #", pref_rank + 1));
    if (last_success) why.push_back("the server of the last successful backup");
    if (demoted) why.push_back("demoted: its last attempt failed");
    scored.push_back(
        {std::make_tuple(active ? 1 : 0, demoted ? 1 : 0, pref_rank, last_success ? 0 : 1,
                         uint64_t{c.status.replay_queue()} + c.status.copy_queue(),
                         c.status.activation_preference(), node),
         RankedCopy{node, active, absl::StrJoin(why, ", ")}});
  }
  std::sort(scored.begin(), scored.end(),
            [](const Scored& a, const Scored& b) { return a.key < b.key; });
  for (auto& s : scored) out.ranked.push_back(std::move(s.copy));
  return out;
}

std::string Selection::Explain(const std::string& unit, SourceMode mode) const {
  std::vector<std::string> parts;
  for (const RejectedCopy& r : rejected) {
    parts.push_back(absl::StrCat(r.node, ": ", absl::StrJoin(r.reasons, "; ")));
  }
  if (ranked.empty()) {
    return absl::StrCat(
        "no copy of ", unit, " qualifies as a backup source (mode ", SourceModeName(mode), ")",
        parts.empty() ? ": the unit has no copies" : ": ", absl::StrJoin(parts, "; "));
  }
  std::string text =
      absl::StrCat("source of ", unit, ": ", ranked.front().node, " (", ranked.front().why, ")");
  if (!parts.empty()) absl::StrAppend(&text, "; skipped ", absl::StrJoin(parts, "; "));
  return text;
}

}  // namespace dagvault::coordinator
