// UnitHistoryCache: a unit's chains and jobs are read from the catalog
// again exactly when a write through the coordinator's catalog touched
// that unit, and every time on a standby.
#include "coordinator/server/unit_history_cache.h"

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/metrics/registry.h"
#include "common/testing/temp_dir.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

// A verified Full of `unit` covering generations 1 and 2.
BackupRecord FullOf(const std::string& unit, const std::string& manifest) {
  v1::Manifest m;
  m.set_id(manifest);
  m.set_unit(unit);
  m.set_type(v1::FULL);
  m.set_source_node("node2");
  m.set_log_signature("sig");
  m.add_database_signatures("dbsig");
  m.set_low_generation(1);
  m.set_high_generation(2);
  m.set_frozen_us(1'700'000'000'000'000);
  for (uint32_t g = 1; g <= 2; ++g) {
    v1::ManifestFile* f = m.add_files();
    f->set_name(absl::StrCat("logs/E0", g, ".log"));
    f->set_role("log");
    f->set_generation(g);
    f->set_sha256(std::string(32, static_cast<char>(g)));
    if (g > 1) f->set_link_hash(std::string(32, static_cast<char>(g - 1)));
  }
  v1::ManifestFile* db = m.add_files();
  db->set_name(unit + ".edb");
  db->set_role("database");
  BackupRecord r = BackupRecordOf(m);
  r.verified = true;
  return r;
}

JobRecord JobOf(const std::string& unit, const std::string& id, JobState state,
                const std::string& node) {
  JobRecord j;
  j.id = id;
  j.unit = unit;
  j.state = state;
  j.created = j.updated = absl::Now();
  JobAttempt a;
  a.number = 1;
  a.node = node;
  a.state = state;
  j.attempts.push_back(a);
  return j;
}

class UnitHistoryCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = SqliteCatalog::Open(dir_.Sub("catalog.db"));
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = std::make_unique<InstrumentedCatalog>(
        std::move(*c), &registry_.AddHistogram("catalog_seconds", "h", {1}),
        &registry_.AddCounter("catalog_errors_total", "h"));
    cache_ = std::make_unique<UnitHistoryCache>(catalog_.get());
  }

  // The unit's history, kept; and how many units the cache read for it.
  std::shared_ptr<const UnitHistory> Of(const std::string& unit, uint64_t* reads,
                                        bool keep = true) {
    const uint64_t before = cache_->reads();
    auto h = cache_->Of(unit, keep);
    EXPECT_TRUE(h.ok()) << h.status();
    *reads = cache_->reads() - before;
    return h.ok() ? *h : nullptr;
  }

  ::dagvault::testing::TempDir dir_{"unit_history"};
  metrics::Registry registry_;
  std::unique_ptr<InstrumentedCatalog> catalog_;
  std::unique_ptr<UnitHistoryCache> cache_;
};

TEST_F(UnitHistoryCacheTest, AUnitIsReadAgainOnlyAfterAWriteThatTouchesIt) {
  uint64_t reads = 0;
  EXPECT_EQ(Of("DB02", &reads)->chains.newest_restore_point_us, 0);
  EXPECT_EQ(reads, 1u);
  EXPECT_EQ(Of("SG01", &reads)->chains.newest_restore_point_us, 0);
  EXPECT_EQ(reads, 1u);
  // Nothing changed: both answered from memory.
  Of("DB02", &reads);
  EXPECT_EQ(reads, 0u);

  // A backup of DB02: DB02 is read again and shows it; SG01 is not.
  ASSERT_TRUE(catalog_->PutBackup(FullOf("DB02", "20260101T000000Z-0001")).ok());
  auto db02 = Of("DB02", &reads);
  EXPECT_EQ(reads, 1u);
  EXPECT_EQ(db02->chains.newest_restore_point_manifest, "20260101T000000Z-0001");
  EXPECT_GT(db02->chains.newest_full_us, 0);
  EXPECT_EQ(db02->chains.newest_full_us, db02->chains.newest_restore_point_us);
  EXPECT_EQ(db02->last_backup_job, nullptr);  // no job of DB02
  Of("SG01", &reads);
  EXPECT_EQ(reads, 0u);

  // A job of SG01: its newest backup job and its source history.
  ASSERT_TRUE(catalog_->CreateJob(JobOf("SG01", "job-1", JobState::kAssigned, "node3")).ok());
  auto sg01 = Of("SG01", &reads);
  EXPECT_EQ(reads, 1u);
  ASSERT_NE(sg01->last_backup_job, nullptr);
  EXPECT_EQ(sg01->last_backup_job->id, "job-1");
  JobRecord failed = JobOf("SG01", "job-1", JobState::kFailed, "node3");
  JobEvent event;
  event.state = JobState::kFailed;
  event.message = "the writer refused";
  ASSERT_TRUE(catalog_->UpdateJob(failed, event).ok());
  sg01 = Of("SG01", &reads);
  EXPECT_EQ(reads, 1u);
  EXPECT_EQ(sg01->last_backup_job->state, JobState::kFailed);
  EXPECT_EQ(sg01->sources.failed_last.count("node3"), 1u);
  Of("DB02", &reads);
  EXPECT_EQ(reads, 0u);

  // A chain break of DB02.
  ChainBreakRecord brk;
  brk.unit = "DB02";
  brk.after_manifest = "20260101T000000Z-0001";
  brk.generation = 3;
  brk.reason = "generation 3 is missing";
  brk.detected = absl::Now();
  ASSERT_TRUE(catalog_->PutChainBreak(brk).ok());
  Of("DB02", &reads);
  EXPECT_EQ(reads, 1u);

  // Expiry of DB02's backup: it is gone from the history.
  ASSERT_TRUE(
      catalog_->ExpireBackups({FullOf("DB02", "20260101T000000Z-0001")}, "retention", absl::Now())
          .ok());
  db02 = Of("DB02", &reads);
  EXPECT_EQ(reads, 1u);
  EXPECT_EQ(db02->chains.newest_restore_point_us, 0);
}

TEST_F(UnitHistoryCacheTest, WritesThatReachEveryUnitReadThemAllAgain) {
  uint64_t reads = 0;
  Of("DB02", &reads);
  Of("SG01", &reads);
  // A catalog rebuild replaces every unit's backups.
  ASSERT_TRUE(catalog_->ReplaceBackups({FullOf("SG01", "20260101T000000Z-0002")}).ok());
  Of("DB02", &reads);
  EXPECT_EQ(reads, 1u);
  EXPECT_EQ(Of("SG01", &reads)->chains.newest_restore_point_manifest, "20260101T000000Z-0002");
  EXPECT_EQ(reads, 1u);
  // Job history retention.
  ASSERT_TRUE(catalog_->PurgeFinishedJobs(absl::Now()).ok());
  Of("DB02", &reads);
  EXPECT_EQ(reads, 1u);
}

TEST_F(UnitHistoryCacheTest, AStandbyReadsEveryTime) {
  // The leader writes the shared catalog behind this process's back: here,
  // straight into the catalog the cache's InstrumentedCatalog wraps, as
  // another process would.
  auto other = SqliteCatalog::Open(dir_.Sub("catalog.db"));
  ASSERT_TRUE(other.ok()) << other.status();
  uint64_t reads = 0;
  Of("DB02", &reads, /*keep=*/false);
  ASSERT_TRUE((*other)->PutBackup(FullOf("DB02", "20260101T000000Z-0003")).ok());
  auto db02 = Of("DB02", &reads, /*keep=*/false);
  EXPECT_EQ(reads, 1u);
  EXPECT_EQ(db02->chains.newest_restore_point_manifest, "20260101T000000Z-0003");
  Of("DB02", &reads, /*keep=*/false);
  EXPECT_EQ(reads, 1u);
}

TEST(UnitsWrittenSince, NamesEveryUnitWrittenOrSaysItNoLongerKnows) {
  // What `status` reads again instead of every unit's version: each unit
  // written after a reading, up to the version it returns, or nullopt.
  ::dagvault::testing::TempDir dir("units_written");
  metrics::Registry registry;
  auto inner = SqliteCatalog::Open(dir.Sub("catalog.db"));
  ASSERT_TRUE(inner.ok()) << inner.status();
  InstrumentedCatalog catalog(std::move(*inner),
                              &registry.AddHistogram("catalog_seconds", "h", {1}),
                              &registry.AddCounter("catalog_errors_total", "h"),
                              /*recent_unit_writes=*/3);
  std::vector<std::string> written;
  const uint64_t start = catalog.UnitsVersion();
  EXPECT_EQ(catalog.UnitsWrittenSince(start, &written), start);
  EXPECT_TRUE(written.empty());

  // Writes to two units, one of them twice.
  ASSERT_TRUE(catalog.PutBackup(FullOf("DB02", "20260101T000000Z-0001")).ok());
  ASSERT_TRUE(catalog.CreateJob(JobOf("SG01", "job-1", JobState::kAssigned, "node3")).ok());
  ASSERT_TRUE(catalog.CreateJob(JobOf("DB02", "job-2", JobState::kAssigned, "node2")).ok());
  const uint64_t after_three = catalog.UnitsVersion();
  EXPECT_GT(after_three, start);
  EXPECT_EQ(catalog.UnitsWrittenSince(start, &written), after_three);
  EXPECT_EQ(std::set<std::string>(written.begin(), written.end()),
            (std::set<std::string>{"DB02", "SG01"}));
  // From a later reading, only what came after it.
  written.clear();
  const uint64_t after_one = start + 1;
  EXPECT_EQ(catalog.UnitsWrittenSince(after_one, &written), after_three);
  EXPECT_EQ(std::set<std::string>(written.begin(), written.end()),
            (std::set<std::string>{"DB02", "SG01"}));

  // A fourth write: the first is forgotten (3 remembered), so a reading
  // from before it can no longer be answered; one from after it can.
  ASSERT_TRUE(catalog.CreateJob(JobOf("MB07", "job-3", JobState::kAssigned, "node1")).ok());
  written.clear();
  EXPECT_EQ(catalog.UnitsWrittenSince(start, &written), std::nullopt);
  EXPECT_EQ(catalog.UnitsWrittenSince(after_three, &written), catalog.UnitsVersion());
  EXPECT_EQ(written, (std::vector<std::string>{"MB07"}));
  // The oldest reading still answered: the three remembered writes.
  written.clear();
  EXPECT_EQ(catalog.UnitsWrittenSince(after_one, &written), catalog.UnitsVersion());
  EXPECT_EQ(written, (std::vector<std::string>{"MB07", "DB02", "SG01"}));  // newest first

  // A write that reaches every unit (a catalog rebuild): nobody can be
  // told which units changed.
  const uint64_t before_rebuild = catalog.UnitsVersion();
  ASSERT_TRUE(catalog.ReplaceBackups({FullOf("SG01", "20260101T000000Z-0002")}).ok());
  written.clear();
  EXPECT_EQ(catalog.UnitsWrittenSince(before_rebuild, &written), std::nullopt);
  EXPECT_EQ(catalog.UnitsWrittenSince(catalog.UnitsVersion(), &written), catalog.UnitsVersion());
  EXPECT_TRUE(written.empty());
}

TEST(KeptPolicies, ReadAgainExactlyAfterAPolicyWriteThroughThisCatalog) {
  // What the leader's scheduler (every second) and each assignment read
  // instead of parsing every policy again.
  ::dagvault::testing::TempDir dir("kept_policies");
  metrics::Registry registry;
  auto inner = SqliteCatalog::Open(dir.Sub("catalog.db"));
  ASSERT_TRUE(inner.ok()) << inner.status();
  InstrumentedCatalog catalog(std::move(*inner),
                              &registry.AddHistogram("catalog_seconds", "h", {1}),
                              &registry.AddCounter("catalog_errors_total", "h"));
  auto names = [](const std::shared_ptr<const std::vector<v1::Policy>>& policies) {
    std::vector<std::string> out;
    for (const auto& p : *policies) out.push_back(absl::StrCat(p.name(), ":", p.units_size()));
    return out;
  };
  auto first = catalog.KeptPolicies();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE((*first)->empty());

  v1::Policy gold;
  gold.set_name("gold");
  gold.add_units("DB01");
  ASSERT_TRUE(catalog.PutPolicy(gold).ok());
  auto after_put = catalog.KeptPolicies();
  ASSERT_TRUE(after_put.ok()) << after_put.status();
  EXPECT_EQ(names(*after_put), (std::vector<std::string>{"gold:1"}));
  // No write since: the same list, not read again.
  auto again = catalog.KeptPolicies();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), after_put->get());

  gold.add_units("DB02");
  ASSERT_TRUE(catalog.PutPolicy(gold).ok());
  auto changed = catalog.KeptPolicies();
  ASSERT_TRUE(changed.ok());
  EXPECT_EQ(names(*changed), (std::vector<std::string>{"gold:2"}));
  // A reader of the older list keeps it whole.
  EXPECT_EQ(names(*after_put), (std::vector<std::string>{"gold:1"}));

  ASSERT_TRUE(catalog.RemovePolicy("gold").ok());
  auto removed = catalog.KeptPolicies();
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE((*removed)->empty());

  // Another process's write is not seen: only the leader, the catalog's
  // one writer, may use this (Policies() reads it).
  auto other = SqliteCatalog::Open(dir.Sub("catalog.db"));
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->PutPolicy(gold).ok());
  auto kept = catalog.KeptPolicies();
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE((*kept)->empty());
  auto read = catalog.Policies();
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->size(), 1u);
}

TEST(SourceHistoryOf, TheNewestAttemptOnEachNodeDecides) {
  // Newest first: node2 failed last, node3 succeeded last after failing.
  std::vector<JobRecord> jobs = {JobOf("DB02", "j3", JobState::kFailed, "node2"),
                                 JobOf("DB02", "j2", JobState::kSucceeded, "node3"),
                                 JobOf("DB02", "j1", JobState::kFailed, "node3")};
  const SourceHistory h = SourceHistoryOf(jobs);
  EXPECT_EQ(h.last_success_node, "node3");
  EXPECT_EQ(h.failed_last, (std::set<std::string>{"node2"}));
}

}  // namespace
}  // namespace dagvault::coordinator
