#include "coordinator/schedule/policy.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "coordinator/rpo/rpo.h"
#include "coordinator/schedule/cron.h"
#include "coordinator/selection/source_selection.h"

namespace dagvault::coordinator {

namespace v1 = dagvault::v1;

absl::Status ValidatePolicy(const v1::Policy& p, const std::vector<v1::Policy>& others) {
  auto invalid = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("policy \"", p.name(), "\": ", why));
  };
  if (p.name().empty()) return absl::InvalidArgumentError("a policy needs a name (--name)");
  if (p.units_size() == 0) return invalid("it covers no unit (--unit U, repeated for a group)");
  if (p.full_schedule().empty() && p.incremental_schedule().empty() &&
      p.differential_schedule().empty()) {
    return invalid("it has no schedule (--full, --incremental or --differential, in cron syntax)");
  }
  for (const auto& [flag, text] :
       {std::pair<const char*, const std::string&>{"--full", p.full_schedule()},
        {"--incremental", p.incremental_schedule()},
        {"--differential", p.differential_schedule()},
        {"--verify", p.verify_schedule()}}) {
    if (text.empty()) continue;
    auto parsed = CronSchedule::Parse(text);
    if (!parsed.ok()) return invalid(absl::StrCat(flag, ": ", parsed.status().message()));
  }
  if (!p.source_mode().empty()) {
    if (auto mode = ParseSourceMode(p.source_mode()); !mode.ok()) {
      return invalid(std::string(mode.status().message()));
    }
  }
  if (p.verify_schedule().empty() && (!p.verify_node().empty() || p.verify_random_point() ||
                                      p.verify_off_production() || p.verify_sample_items() != 0)) {
    return invalid("the verify_* settings need a verify schedule (--verify, in cron syntax)");
  }
  if (auto levels = RpoLevelsOf(p); !levels.ok()) return levels.status();
  std::set<std::string> mine(p.units().begin(), p.units().end());
  for (const auto& other : others) {
    if (other.name() == p.name()) continue;
    for (const auto& unit : other.units()) {
      if (mine.count(unit) != 0) {
        return invalid(absl::StrCat("unit ", unit, " is already in policy \"", other.name(),
                                    "\"; a unit follows one policy"));
      }
    }
  }
  return absl::OkStatus();
}

v1::StartBackupRequest BackupRequestOf(const v1::Policy& policy, const std::string& unit,
                                       v1::BackupType type) {
  v1::StartBackupRequest request;
  request.set_unit(unit);
  request.set_type(type);
  request.set_source_mode(policy.source_mode());
  *request.mutable_preferred() = policy.preferred();
  request.set_max_copy_queue(policy.max_copy_queue());
  request.set_max_replay_queue(policy.max_replay_queue());
  return request;
}

absl::Duration BackupRetention(const v1::Policy& policy, absl::Time now) {
  if (policy.keep_days() == 0) return absl::ZeroDuration();
  const absl::Duration day = absl::Hours(24);
  absl::Duration longest_gap = absl::ZeroDuration();
  if (auto full = CronSchedule::Parse(policy.full_schedule());
      !policy.full_schedule().empty() && full.ok()) {
    // The firings of a year (at most a thousand: a schedule that fires
    // more often has short gaps anyway) show its longest gap.
    absl::Time t = full->Next(now);
    for (int i = 0; i < 1000 && t < now + 400 * day; ++i) {
      const absl::Time next = full->Next(t);
      if (next == absl::InfiniteFuture()) break;
      longest_gap = std::max(longest_gap, next - t);
      t = next;
    }
  }
  return day * static_cast<double>(policy.keep_days()) + longest_gap + day;
}

absl::Duration UnitBackupRetention(const std::vector<v1::Policy>& policies, const std::string& unit,
                                   absl::Time now) {
  for (const auto& p : policies) {
    for (const auto& u : p.units()) {
      if (u == unit) return BackupRetention(p, now);
    }
  }
  return absl::ZeroDuration();
}

v1::PolicyInfo DescribePolicy(const v1::Policy& policy, absl::Time now) {
  v1::PolicyInfo info;
  *info.mutable_policy() = policy;
  auto next = [&](const std::string& text) -> int64_t {
    if (text.empty()) return 0;
    auto s = CronSchedule::Parse(text);
    if (!s.ok()) return 0;
    const absl::Time t = s->Next(now);
    return t == absl::InfiniteFuture() ? 0 : absl::ToUnixMicros(t);
  };
  info.set_next_full_us(next(policy.full_schedule()));
  info.set_next_incremental_us(next(policy.incremental_schedule()));
  info.set_next_differential_us(next(policy.differential_schedule()));
  return info;
}

}  // namespace dagvault::coordinator
