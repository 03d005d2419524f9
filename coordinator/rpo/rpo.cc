#include "coordinator/rpo/rpo.h"

#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/duration_text.h"
#include "common/events.h"
#include "common/rpo_state.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

absl::StatusOr<RpoLevels> RpoLevelsOf(const v1::Policy& policy) {
  RpoLevels l;
  l.rpo = absl::Seconds(policy.rpo_seconds());
  if (policy.rpo_seconds() == 0) {
    if (policy.rpo_warning_seconds() != 0 || policy.rpo_critical_seconds() != 0 ||
        policy.rpo_grace_seconds() != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "policy \"", policy.name(), "\": rpo_warning, rpo_critical and rpo_grace need an rpo"));
    }
    return l;
  }
  l.warning =
      policy.rpo_warning_seconds() != 0 ? absl::Seconds(policy.rpo_warning_seconds()) : l.rpo;
  l.critical = policy.rpo_critical_seconds() != 0 ? absl::Seconds(policy.rpo_critical_seconds())
                                                  : l.rpo * 1.5;
  l.grace =
      policy.rpo_grace_seconds() != 0 ? absl::Seconds(policy.rpo_grace_seconds()) : l.warning / 10;
  if (l.warning > l.critical) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy \"", policy.name(), "\": rpo_warning (", DurationText(l.warning),
                     ") is above rpo_critical (", DurationText(l.critical), ")"));
  }
  if (l.grace >= l.warning) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy \"", policy.name(), "\": rpo_grace (", DurationText(l.grace),
                     ") must be shorter than the warning level (", DurationText(l.warning), ")"));
  }
  return l;
}

v1::RpoState NextRpoState(v1::RpoState previous, std::optional<absl::Duration> age,
                          const RpoLevels& l) {
  if (!age.has_value()) return v1::RPO_NEVER_BACKED_UP;
  const absl::Duration a = *age;
  switch (previous) {
    case v1::RPO_CRITICAL:
      if (a >= l.critical - l.grace) return v1::RPO_CRITICAL;
      return a >= l.warning - l.grace ? v1::RPO_WARNING : v1::RPO_OK;
    case v1::RPO_WARNING:
      if (a > l.critical + l.grace) return v1::RPO_CRITICAL;
      return a >= l.warning - l.grace ? v1::RPO_WARNING : v1::RPO_OK;
    default:  // ok, or nothing to hold on to
      if (a > l.critical + l.grace) return v1::RPO_CRITICAL;
      return a > l.warning + l.grace ? v1::RPO_WARNING : v1::RPO_OK;
  }
}

bool SurelyWithinRpo(absl::Duration age, const RpoLevels& levels) {
  // NextRpoState's lowest exit threshold: from any state, OK below it.
  return levels.rpo != absl::ZeroDuration() && age < levels.warning - levels.grace;
}

bool RpoTracker::WasWithinRpo(const std::string& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = last_.find(unit);
  return it == last_.end() || it->second == v1::RPO_OK;
}

std::vector<std::string> RpoTracker::UnitsLastOutsideRpo() {
  std::lock_guard<std::mutex> lock(mu_);
  return {last_outside_.begin(), last_outside_.end()};
}

int RpoSeverity(v1::RpoState state) {
  switch (state) {
    case v1::RPO_CRITICAL:
      return 4;
    case v1::RPO_NEVER_BACKED_UP:
      return 3;
    case v1::RPO_WARNING:
      return 2;
    case v1::RPO_NOT_SET:
      return 1;
    case v1::RPO_OK:
      return 0;
    default:  // unknown: its protection could not be judged
      return 5;
  }
}

namespace {

// The copy a backup was taken from, by its manifest.
std::string SourceOf(const v1::ChainInfo& chain, const std::string& manifest) {
  if (chain.full().manifest() == manifest) return chain.full().source_node();
  for (const auto& b : chain.incrementals()) {
    if (b.manifest() == manifest) return b.source_node();
  }
  for (const auto& b : chain.differentials()) {
    if (b.manifest() == manifest) return b.source_node();
  }
  if (chain.archived_newest_manifest() == manifest) return chain.archived_source_node();
  return "";
}

}  // namespace

ChainFacts ChainFactsOf(const v1::ShowChainsResponse& chains) {
  ChainFacts f;
  for (const auto& chain : chains.chains()) {
    for (const auto& point : chain.restore_points()) {
      if (point.time_us() > f.newest_restore_point_us) {
        f.newest_restore_point_us = point.time_us();
        f.newest_restore_point_manifest = point.manifest();
        f.newest_restore_point_node = SourceOf(chain, point.manifest());
      }
      if (point.manifest() == chain.full().manifest() && point.time_us() > f.newest_full_us) {
        f.newest_full_us = point.time_us();
      }
    }
  }
  if (chains.chains_size() > 0 && chains.chains(chains.chains_size() - 1).archived_segments() > 0) {
    const v1::ChainInfo& newest = chains.chains(chains.chains_size() - 1);
    f.newest_chain_archives = true;
    f.archived_high_generation = newest.archived_high_generation();
    f.archived_through_us = newest.archived_through_us();
  }
  return f;
}

namespace {

bool Finished(JobState s) {
  return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled;
}

}  // namespace

v1::UnitProtection EvaluateProtection(const UnitFacts& facts, absl::Time now,
                                      v1::RpoState previous) {
  v1::UnitProtection p;
  p.set_unit(facts.unit);
  p.set_evaluated_us(absl::ToUnixMicros(now));
  if (facts.policy) p.set_policy(facts.policy->name());

  // The newest restore point of any valid chain, and the newest Full.
  static const ChainFacts kNoChains;
  const ChainFacts& chains = facts.chains ? *facts.chains : kNoChains;
  if (chains.newest_restore_point_us > 0) {
    p.set_newest_restore_point_us(chains.newest_restore_point_us);
    p.set_newest_restore_point_manifest(chains.newest_restore_point_manifest);
    p.set_newest_restore_point_node(chains.newest_restore_point_node);
  }
  if (chains.newest_full_us > 0) p.set_newest_full_us(chains.newest_full_us);
  auto age_of = [&](int64_t us) {
    return std::max<int64_t>(0, absl::ToInt64Seconds(now - absl::FromUnixMicros(us)));
  };
  std::optional<absl::Duration> age;
  if (p.newest_restore_point_us() != 0) {
    p.set_newest_restore_point_age_seconds(age_of(p.newest_restore_point_us()));
    age = absl::Seconds(p.newest_restore_point_age_seconds());
  }
  if (p.newest_full_us() != 0) p.set_newest_full_age_seconds(age_of(p.newest_full_us()));
  if (chains.newest_chain_archives) {
    p.set_archived_through_generation(chains.archived_high_generation);
    p.set_archived_through_us(chains.archived_through_us);
    p.set_archive_lag_seconds(age_of(chains.archived_through_us));
  }

  if (facts.last_job) {
    const JobRecord& j = *facts.last_job;
    p.set_last_job(j.id);
    p.set_last_job_state(ToProto(j.state));
    if (j.state == JobState::kFailed || j.state == JobState::kCancelled) {
      p.set_last_job_reason(j.reason);
    }
    p.set_last_job_updated_us(absl::ToUnixMicros(j.updated));
  }
  p.set_next_source(facts.next_source);
  p.set_next_source_why(facts.next_source_why);

  std::vector<std::string> why;
  if (!facts.policy) {
    p.set_state(v1::RPO_NOT_SET);
    why.push_back(absl::StrCat("no policy covers ", facts.unit,
                               ": it is backed up only when someone starts a backup"));
  } else {
    auto levels = RpoLevelsOf(*facts.policy);
    if (!levels.ok()) {
      // A stored policy was validated; one from an older coordinator may
      // not be: say so rather than guess.
      p.set_state(v1::RPO_NOT_SET);
      why.push_back(std::string(levels.status().message()));
    } else if (levels->rpo == absl::ZeroDuration()) {
      p.set_state(v1::RPO_NOT_SET);
      why.push_back(absl::StrCat("policy ", facts.policy->name(), " sets no RPO"));
    } else {
      p.set_rpo_seconds(absl::ToInt64Seconds(levels->rpo));
      p.set_warning_seconds(absl::ToInt64Seconds(levels->warning));
      p.set_critical_seconds(absl::ToInt64Seconds(levels->critical));
      p.set_grace_seconds(absl::ToInt64Seconds(levels->grace));
      p.set_state(NextRpoState(previous, age, *levels));
      if (p.state() == v1::RPO_NEVER_BACKED_UP) {
        why.push_back("no verified restore point");
      } else if (p.state() != v1::RPO_OK) {
        why.push_back(absl::StrCat("the newest restore point is ", DurationText(*age), " old (RPO ",
                                   DurationText(levels->rpo), ")"));
      }
    }
  }
  if (p.state() != v1::RPO_OK) {
    if (facts.last_job) {
      const JobRecord& j = *facts.last_job;
      if (!Finished(j.state)) {
        why.push_back(absl::StrCat("backup job ", j.id, " is ", JobStateName(j.state)));
      } else if (j.state != JobState::kSucceeded) {
        why.push_back(absl::StrCat("the last backup, job ", j.id, ", ", JobStateName(j.state), ": ",
                                   j.reason));
      }
    }
    if (!facts.queued_waiting_for.empty()) {
      why.push_back(absl::StrCat("a queued backup waits for ", facts.queued_waiting_for));
    }
    if (facts.next_source.empty() && !facts.next_source_why.empty()) {
      why.push_back(facts.next_source_why);
    }
  }
  p.set_reason(absl::StrJoin(why, "; "));
  return p;
}

v1::UnitProtection RpoTracker::Evaluate(const UnitFacts& facts, absl::Time now) {
  return Evaluate(facts, now, nullptr, false);
}

v1::UnitProtection RpoTracker::Evaluate(UnitFacts facts, absl::Time now,
                                        const NextSourceFn& next_source, bool always) {
  v1::RpoState previous;
  v1::UnitProtection p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = last_.find(facts.unit);
    previous = it == last_.end() ? v1::RPO_STATE_UNSPECIFIED : it->second;
    p = EvaluateProtection(facts, now, previous);
    if (next_source && (always || p.state() != v1::RPO_OK)) {
      std::tie(facts.next_source, facts.next_source_why) = next_source();
      p = EvaluateProtection(facts, now, previous);
    }
    last_[facts.unit] = p.state();
    if (p.state() == v1::RPO_OK) {
      last_outside_.erase(facts.unit);
    } else {
      last_outside_.insert(facts.unit);
    }
  }
  if (p.state() == previous) return p;
  const bool breached = p.state() == v1::RPO_WARNING || p.state() == v1::RPO_CRITICAL ||
                        p.state() == v1::RPO_NEVER_BACKED_UP;
  const bool was_breached = previous == v1::RPO_WARNING || previous == v1::RPO_CRITICAL ||
                            previous == v1::RPO_NEVER_BACKED_UP;
  const events::Fields fields = {
      {"unit", p.unit()},
      {"policy", p.policy()},
      {"state", RpoStateName(p.state())},
      {"previous", RpoStateName(previous)},
      {"age_seconds", absl::StrCat(p.newest_restore_point_age_seconds())},
      {"manifest", p.newest_restore_point_manifest()}};
  if (breached) {
    events::Emit(
        "coordinator.rpo", p.state() == v1::RPO_WARNING ? spdlog::level::warn : spdlog::level::err,
        events::EventId::kRpoBreached,
        absl::StrCat("unit ", p.unit(), " is ", RpoStateName(p.state()), ": ", p.reason()), fields);
  } else if (was_breached && p.state() == v1::RPO_OK) {
    events::Emit("coordinator.rpo", spdlog::level::info, events::EventId::kRpoRecovered,
                 absl::StrCat("unit ", p.unit(), " is within its RPO again (newest restore point ",
                              p.newest_restore_point_manifest(), ")"),
                 fields);
  }
  return p;
}

}  // namespace dagvault::coordinator
