#include "coordinator/rpo/rpo.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

v1::Policy PolicyWithRpo(absl::Duration rpo) {
  v1::Policy p;
  p.set_name("nightly");
  p.add_units("DB02");
  p.set_full_schedule("0 1 * * *");
  p.set_rpo_seconds(absl::ToInt64Seconds(rpo));
  return p;
}

// A chain of a Full from node2 frozen `full_age` ago and an Incremental
// from node3 frozen `inc_age` ago.
v1::ShowChainsResponse Chain(absl::Duration full_age, absl::Duration inc_age) {
  v1::ShowChainsResponse r;
  v1::ChainInfo* c = r.add_chains();
  c->set_unit("DB02");
  c->mutable_full()->set_manifest("full-1");
  c->mutable_full()->set_source_node("node2");
  v1::CatalogBackup* inc = c->add_incrementals();
  inc->set_manifest("inc-1");
  inc->set_source_node("node3");
  v1::RestorePoint* p = c->add_restore_points();
  p->set_manifest("full-1");
  p->set_generation(10);
  p->set_time_us(absl::ToUnixMicros(kNow - full_age));
  p = c->add_restore_points();
  p->set_manifest("inc-1");
  p->set_generation(14);
  p->set_time_us(absl::ToUnixMicros(kNow - inc_age));
  return r;
}

TEST(RpoLevels, DefaultsFillInAndContradictionsAreRefusedByName) {
  auto l = RpoLevelsOf(PolicyWithRpo(absl::Hours(24)));
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->warning, absl::Hours(24));
  EXPECT_EQ(l->critical, absl::Hours(36));
  EXPECT_EQ(l->grace, absl::Minutes(144));

  v1::Policy p = PolicyWithRpo(absl::Hours(24));
  p.set_rpo_warning_seconds(20 * 3600);
  p.set_rpo_critical_seconds(30 * 3600);
  p.set_rpo_grace_seconds(600);
  l = RpoLevelsOf(p);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->warning, absl::Hours(20));
  EXPECT_EQ(l->critical, absl::Hours(30));
  EXPECT_EQ(l->grace, absl::Minutes(10));

  p.set_rpo_warning_seconds(40 * 3600);
  EXPECT_THAT(std::string(RpoLevelsOf(p).status().message()),
              HasSubstr("rpo_warning (1d 16h) is above rpo_critical (1d 6h)"));
  p = PolicyWithRpo(absl::Hours(1));
  p.set_rpo_grace_seconds(3600);
  EXPECT_THAT(std::string(RpoLevelsOf(p).status().message()),
              HasSubstr("rpo_grace (1h) must be shorter"));
  p = PolicyWithRpo(absl::ZeroDuration());
  p.set_rpo_critical_seconds(3600);
  EXPECT_THAT(std::string(RpoLevelsOf(p).status().message()), HasSubstr("need an rpo"));
}

TEST(RpoState, EntersPastLevelPlusGraceAndLeavesOnlyGraceBelowIt) {
  const RpoLevels l{absl::Hours(24), absl::Hours(24), absl::Hours(36), absl::Hours(1)};
  // Within the grace above the level: still ok.
  EXPECT_EQ(NextRpoState(v1::RPO_OK, absl::Hours(24) + absl::Minutes(30), l), v1::RPO_OK);
  EXPECT_EQ(NextRpoState(v1::RPO_OK, absl::Hours(25) + absl::Seconds(1), l), v1::RPO_WARNING);
  // Back just under the level (a restore point expired, then a newer one
  // wavers around it): warning holds until the grace below.
  EXPECT_EQ(NextRpoState(v1::RPO_WARNING, absl::Hours(24) - absl::Minutes(30), l), v1::RPO_WARNING);
  EXPECT_EQ(NextRpoState(v1::RPO_WARNING, absl::Hours(23) - absl::Seconds(1), l), v1::RPO_OK);
  // Critical the same way, and it falls to warning, not ok, in between.
  EXPECT_EQ(NextRpoState(v1::RPO_WARNING, absl::Hours(36) + absl::Minutes(59), l), v1::RPO_WARNING);
  EXPECT_EQ(NextRpoState(v1::RPO_WARNING, absl::Hours(37) + absl::Seconds(1), l), v1::RPO_CRITICAL);
  EXPECT_EQ(NextRpoState(v1::RPO_CRITICAL, absl::Hours(35) + absl::Minutes(1), l),
            v1::RPO_CRITICAL);
  EXPECT_EQ(NextRpoState(v1::RPO_CRITICAL, absl::Hours(30), l), v1::RPO_WARNING);
  // A fresh restore point clears everything at once.
  EXPECT_EQ(NextRpoState(v1::RPO_CRITICAL, absl::Minutes(5), l), v1::RPO_OK);
  // No restore point at all.
  EXPECT_EQ(NextRpoState(v1::RPO_OK, std::nullopt, l), v1::RPO_NEVER_BACKED_UP);
  // A first evaluation (a restarted coordinator) far past critical.
  EXPECT_EQ(NextRpoState(v1::RPO_STATE_UNSPECIFIED, absl::Hours(100), l), v1::RPO_CRITICAL);
}

TEST(RpoState, WorstFirst) {
  EXPECT_GT(RpoSeverity(v1::RPO_STATE_UNSPECIFIED), RpoSeverity(v1::RPO_CRITICAL));  // unjudged
  EXPECT_GT(RpoSeverity(v1::RPO_CRITICAL), RpoSeverity(v1::RPO_NEVER_BACKED_UP));
  EXPECT_GT(RpoSeverity(v1::RPO_NEVER_BACKED_UP), RpoSeverity(v1::RPO_WARNING));
  EXPECT_GT(RpoSeverity(v1::RPO_WARNING), RpoSeverity(v1::RPO_NOT_SET));
  EXPECT_GT(RpoSeverity(v1::RPO_NOT_SET), RpoSeverity(v1::RPO_OK));
}

TEST(Protection, NewestRestorePointAndFullWithTheirAgesAndSources) {
  UnitFacts f;
  f.unit = "DB02";
  const v1::Policy policy = PolicyWithRpo(absl::Hours(26));
  f.policy = &policy;
  const v1::ShowChainsResponse chains = Chain(absl::Hours(30), absl::Hours(2));
  const ChainFacts chain_facts = ChainFactsOf(chains);
  f.chains = &chain_facts;
  f.next_source = "node2";
  f.next_source_why = "passive copy, Healthy";
  const v1::UnitProtection p = EvaluateProtection(f, kNow, v1::RPO_STATE_UNSPECIFIED);
  EXPECT_EQ(p.state(), v1::RPO_OK);
  EXPECT_EQ(p.reason(), "");
  EXPECT_EQ(p.policy(), "nightly");
  EXPECT_EQ(p.newest_restore_point_manifest(), "inc-1");
  EXPECT_EQ(p.newest_restore_point_node(), "node3");
  EXPECT_EQ(p.newest_restore_point_age_seconds(), 2 * 3600);
  EXPECT_EQ(p.newest_full_age_seconds(), 30 * 3600);
  EXPECT_EQ(p.rpo_seconds(), 26u * 3600);
  EXPECT_EQ(p.critical_seconds(), 39u * 3600);
  EXPECT_EQ(p.next_source(), "node2");
}

// With continuous log archiving, the newest archived generation is the
// newest restore point: the RPO follows the archive, and its lag is shown.
TEST(Protection, TheNewestArchivedGenerationIsTheNewestRestorePointAndItsLagIsShown) {
  UnitFacts f;
  f.unit = "DB02";
  const v1::Policy policy = PolicyWithRpo(absl::Minutes(5));
  f.policy = &policy;
  v1::ShowChainsResponse chains = Chain(absl::Hours(30), absl::Hours(2));
  v1::ChainInfo* c = chains.mutable_chains(0);
  c->set_archived_segments(3);
  c->set_archived_low_generation(15);
  c->set_archived_high_generation(20);
  c->set_archived_through_us(absl::ToUnixMicros(kNow - absl::Seconds(40)));
  c->set_archived_newest_manifest("archive-3");
  c->set_archived_source_node("node2");
  v1::RestorePoint* point = c->add_restore_points();
  point->set_manifest("archive-3");
  point->set_generation(20);
  point->set_time_us(c->archived_through_us());
  const ChainFacts chain_facts = ChainFactsOf(chains);
  f.chains = &chain_facts;
  const v1::UnitProtection p = EvaluateProtection(f, kNow, v1::RPO_STATE_UNSPECIFIED);
  EXPECT_EQ(p.state(), v1::RPO_OK) << p.reason();
  EXPECT_EQ(p.newest_restore_point_manifest(), "archive-3");
  EXPECT_EQ(p.newest_restore_point_node(), "node2");
  EXPECT_EQ(p.newest_restore_point_age_seconds(), 40);
  EXPECT_EQ(p.archived_through_generation(), 20u);
  EXPECT_EQ(p.archive_lag_seconds(), 40);
}

TEST(Protection, SaysWhyAUnitIsOutsideItsRpo) {
  UnitFacts f;
  f.unit = "DB02";
  const v1::Policy policy = PolicyWithRpo(absl::Hours(24));
  f.policy = &policy;
  ChainFacts chain_facts = ChainFactsOf(Chain(absl::Hours(60), absl::Hours(50)));
  f.chains = &chain_facts;
  JobRecord failed;
  failed.id = "j-17";
  failed.state = JobState::kFailed;
  failed.reason = "no copy of DB02 qualifies";
  failed.updated = kNow - absl::Hours(1);
  f.last_job = &failed;
  f.next_source_why = "no copy of DB02 qualifies (mode passive-only): node2: Suspended";
  v1::UnitProtection p = EvaluateProtection(f, kNow, v1::RPO_OK);
  EXPECT_EQ(p.state(), v1::RPO_CRITICAL);
  EXPECT_THAT(p.reason(), HasSubstr("the newest restore point is 2d 2h old (RPO 1d)"));
  EXPECT_THAT(p.reason(), HasSubstr("the last backup, job j-17, failed: no copy of DB02"));
  EXPECT_THAT(p.reason(), HasSubstr("node2: Suspended"));
  EXPECT_EQ(p.last_job_state(), v1::JOB_FAILED);

  // Never backed up, a backup running.
  chain_facts = ChainFacts();
  JobRecord running;
  running.id = "j-18";
  running.state = JobState::kTransferring;
  f.last_job = &running;
  f.next_source = "node2";
  p = EvaluateProtection(f, kNow, v1::RPO_OK);
  EXPECT_EQ(p.state(), v1::RPO_NEVER_BACKED_UP);
  EXPECT_THAT(p.reason(), HasSubstr("no verified restore point; backup job j-18 is transferring"));

  // No policy; a policy without an RPO.
  f.policy = nullptr;
  p = EvaluateProtection(f, kNow, v1::RPO_OK);
  EXPECT_EQ(p.state(), v1::RPO_NOT_SET);
  EXPECT_THAT(p.reason(), HasSubstr("no policy covers DB02"));
  const v1::Policy no_rpo = PolicyWithRpo(absl::ZeroDuration());
  f.policy = &no_rpo;
  p = EvaluateProtection(f, kNow, v1::RPO_OK);
  EXPECT_EQ(p.state(), v1::RPO_NOT_SET);
  EXPECT_THAT(p.reason(), HasSubstr("policy nightly sets no RPO"));
}

TEST(Protection, TheTrackerHoldsAStateAcrossEvaluations) {
  RpoTracker tracker;
  UnitFacts f;
  f.unit = "DB02";
  const v1::Policy policy = PolicyWithRpo(absl::Hours(24));  // grace 2h24m
  f.policy = &policy;
  ChainFacts chain_facts = ChainFactsOf(Chain(absl::Hours(90), absl::Hours(27)));
  f.chains = &chain_facts;
  EXPECT_EQ(tracker.Evaluate(f, kNow).state(), v1::RPO_WARNING);
  // The newest restore point expires; an older-looking one from a rebuilt
  // catalog puts the age just under the level: still warning.
  chain_facts = ChainFactsOf(Chain(absl::Hours(90), absl::Hours(23)));
  EXPECT_EQ(tracker.Evaluate(f, kNow).state(), v1::RPO_WARNING);
  // A fresh backup: ok.
  chain_facts = ChainFactsOf(Chain(absl::Hours(90), absl::Minutes(1)));
  EXPECT_EQ(tracker.Evaluate(f, kNow).state(), v1::RPO_OK);
  // Another unit starts from nothing.
  f.unit = "SG01";
  chain_facts = ChainFactsOf(Chain(absl::Hours(90), absl::Hours(23)));
  EXPECT_EQ(tracker.Evaluate(f, kNow).state(), v1::RPO_OK);
}

TEST(Protection, SurelyWithinItsRpoOnlyBelowEveryExitThreshold) {
  auto levels = RpoLevelsOf(PolicyWithRpo(absl::Hours(24)));  // grace 2h24m
  ASSERT_TRUE(levels.ok());
  // Below warning - grace: ok from any state, so NextRpoState agrees.
  const absl::Duration below = absl::Hours(21);
  EXPECT_TRUE(SurelyWithinRpo(below, *levels));
  for (v1::RpoState from : {v1::RPO_STATE_UNSPECIFIED, v1::RPO_OK, v1::RPO_WARNING,
                            v1::RPO_CRITICAL, v1::RPO_NEVER_BACKED_UP}) {
    EXPECT_EQ(NextRpoState(from, below, *levels), v1::RPO_OK) << from;
  }
  // In the hysteresis band a warning holds: not sure.
  EXPECT_FALSE(SurelyWithinRpo(absl::Hours(22), *levels));
  EXPECT_EQ(NextRpoState(v1::RPO_WARNING, absl::Hours(22), *levels), v1::RPO_WARNING);
  // No RPO: nothing is sure.
  auto none = RpoLevelsOf(PolicyWithRpo(absl::ZeroDuration()));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(SurelyWithinRpo(absl::Minutes(1), *none));

  const v1::ShowChainsResponse chains = Chain(absl::Hours(30), absl::Hours(2));
  ASSERT_TRUE(ChainFactsOf(chains).NewestRestorePoint().has_value());
  EXPECT_EQ(*ChainFactsOf(chains).NewestRestorePoint(), kNow - absl::Hours(2));
  EXPECT_FALSE(ChainFactsOf(v1::ShowChainsResponse()).NewestRestorePoint().has_value());
}

TEST(Protection, TheTrackerSaysWhetherAUnitWasWithinItsRpo) {
  RpoTracker tracker;
  UnitFacts f;
  f.unit = "DB02";
  const v1::Policy policy = PolicyWithRpo(absl::Hours(24));
  f.policy = &policy;
  ChainFacts chain_facts = ChainFactsOf(Chain(absl::Hours(90), absl::Hours(27)));
  f.chains = &chain_facts;
  EXPECT_TRUE(tracker.WasWithinRpo("DB02"));  // never judged
  EXPECT_EQ(tracker.Evaluate(f, kNow).state(), v1::RPO_WARNING);
  // A unit in warning is judged in full again (its recovery is an event).
  EXPECT_FALSE(tracker.WasWithinRpo("DB02"));
  EXPECT_EQ(tracker.UnitsLastOutsideRpo(), std::vector<std::string>{"DB02"});
  chain_facts = ChainFactsOf(Chain(absl::Hours(90), absl::Minutes(1)));
  int asked = 0;
  auto source = [&asked]() {
    ++asked;
    return std::make_pair(std::string("node2"), std::string("passive copy, Healthy"));
  };
  v1::UnitProtection p = tracker.Evaluate(f, kNow, source, /*always=*/false);
  EXPECT_EQ(p.state(), v1::RPO_OK);
  EXPECT_EQ(asked, 0);  // within its RPO: where it would read from is not asked
  EXPECT_TRUE(tracker.WasWithinRpo("DB02"));
  EXPECT_TRUE(tracker.UnitsLastOutsideRpo().empty());
  p = tracker.Evaluate(f, kNow, source, /*always=*/true);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(p.next_source(), "node2");
  // Outside its RPO, the source is asked for: the reason names it.
  chain_facts = ChainFactsOf(Chain(absl::Hours(90), absl::Hours(80)));
  p = tracker.Evaluate(
      f, kNow, []() { return std::make_pair(std::string(), std::string("no copy qualifies")); },
      /*always=*/false);
  EXPECT_EQ(p.state(), v1::RPO_CRITICAL);
  EXPECT_THAT(p.reason(), HasSubstr("no copy qualifies"));
}

}  // namespace
}  // namespace dagvault::coordinator
