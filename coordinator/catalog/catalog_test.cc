// The catalog's suite, run against both implementations: the embedded
// SQLite one, and PostgreSQL (the test run's private server,
// $DAGVAULT_TEST_POSTGRES, started by tests/run.sh; a database of its own
// per test). Then what only one of them has.
#include <sqlite3.h>

#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/job_state.h"
#include "common/testing/temp_dir.h"
#include "coordinator/catalog/open_catalog.h"
#include "coordinator/catalog/pg_connection.h"
#include "coordinator/catalog/postgres_catalog.h"
#include "coordinator/catalog/postgres_test_util.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

std::unique_ptr<SqliteCatalog> OpenOrDie(const std::string& path) {
  auto c = SqliteCatalog::Open(path);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

enum class Engine { kSqlite, kPostgres };

class CatalogTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override {
    if (GetParam() == Engine::kPostgres) {
      postgres_ = std::make_unique<testing::PostgresTestDatabase>();
      if (postgres_->conninfo().empty()) {
        GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set (tests/run.sh "
                        "starts one)";
      }
    }
  }
  // Opens the test's catalog; again after a close, it is a reopen.
  std::unique_ptr<Catalog> Open() {
    if (GetParam() == Engine::kSqlite) return OpenOrDie(dir_.Sub("catalog.db"));
    auto c = PostgresCatalog::Open(postgres_->conninfo());
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  ::dagvault::testing::TempDir dir_{"catalog"};
  std::unique_ptr<testing::PostgresTestDatabase> postgres_;
};

INSTANTIATE_TEST_SUITE_P(Engines, CatalogTest,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgres),
                         [](const ::testing::TestParamInfo<Engine>& param) {
                           return param.param == Engine::kSqlite ? "SQLite" : "PostgreSQL";
                         });

v1::CopyStatus CopyOf(const std::string& unit, const std::string& node, v1::Role role,
                      v1::CopyState state) {
  v1::CopyStatus c;
  c.set_unit(unit);
  c.set_node(node);
  c.set_role(role);
  c.set_state(state);
  return c;
}

TEST_P(CatalogTest, NodesAndCopiesSurviveAReopen) {
  {
    auto c = Open();
    ASSERT_TRUE(c->UpsertNode({"node1", "0.1.0", kT0, kT0 + absl::Seconds(5)}).ok());
    v1::CopyStatus a = CopyOf("DB02", "node1", v1::ACTIVE, v1::MOUNTED);
    const v1::CopyStatus b = CopyOf("SG01", "node1", v1::ACTIVE, v1::MOUNTED);
    ASSERT_TRUE(c->ReplaceCopiesOfNode("node1", {a, b}, kT0).ok());
    // A later report replaces the node's copies: SG01 moved away.
    a.set_copy_queue(3);
    ASSERT_TRUE(c->ReplaceCopiesOfNode("node1", {a}, kT0 + absl::Seconds(5)).ok());
  }
  auto c = Open();
  auto nodes = c->Nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].last_report, kT0 + absl::Seconds(5));
  auto copies = c->Copies();
  ASSERT_TRUE(copies.ok());
  ASSERT_EQ(copies->size(), 1u);
  EXPECT_EQ((*copies)[0].status.unit(), "DB02");
  EXPECT_EQ((*copies)[0].status.copy_queue(), 3u);
  EXPECT_EQ((*copies)[0].reported, kT0 + absl::Seconds(5));
}

TEST_P(CatalogTest, ManyNodesAndTheirCopiesGoInOneWrite) {
  auto c = Open();
  const v1::CopyStatus a = CopyOf("DB02", "node1", v1::ACTIVE, v1::MOUNTED);
  ASSERT_TRUE(c->ReplaceCopiesOfNode("node2",
                                     {CopyOf("DB02", "node2", v1::PASSIVE, v1::HEALTHY),
                                      CopyOf("SG01", "node2", v1::PASSIVE, v1::HEALTHY)},
                                     kT0)
                  .ok());
  // node1 with its copy; node2's record alone (a registration) leaves its
  // copies as they are; node3 with none.
  std::vector<Catalog::NodeSnapshot> batch(3);
  batch[0].record = {"node1", "0.2.0", kT0, kT0 + absl::Seconds(5)};
  batch[0].copies = std::vector<v1::CopyStatus>{a};
  batch[0].reported = kT0 + absl::Seconds(5);
  batch[1].record = {"node2", "0.2.0", kT0 + absl::Seconds(1), kT0};
  batch[2].record = {"node3", "0.2.0", kT0, kT0};
  batch[2].copies = std::vector<v1::CopyStatus>{};
  ASSERT_TRUE(c->PutTopology(batch).ok());
  auto nodes = c->Nodes();
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 3u);
  EXPECT_EQ((*nodes)[0].agent_version, "0.2.0");
  EXPECT_EQ((*nodes)[1].registered, kT0 + absl::Seconds(1));
  auto copies = c->Copies();
  ASSERT_TRUE(copies.ok());
  ASSERT_EQ(copies->size(), 3u);  // node1's one, node2's two kept
  EXPECT_EQ((*copies)[0].status.node(), "node1");
  EXPECT_EQ((*copies)[0].reported, kT0 + absl::Seconds(5));
  EXPECT_TRUE(c->PutTopology({}).ok());
}

TEST_P(CatalogTest, OneLeasePerUnitNamingItsHolderUntilReleasedOrExpired) {
  auto c = Open();
  auto first = c->AcquireLease("DB02", "job-1", "node2", kT0, absl::Seconds(30));
  ASSERT_TRUE(first.ok()) << first.status();
  auto second =
      c->AcquireLease("DB02", "job-2", "node3", kT0 + absl::Seconds(1), absl::Seconds(30));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("job job-1 on node2 holds its backup-in-progress lease"));
  // Another unit is free; the holder may take its own lease again.
  EXPECT_TRUE(c->AcquireLease("SG01", "job-2", "node3", kT0, absl::Seconds(30)).ok());
  EXPECT_TRUE(c->AcquireLease("DB02", "job-1", "node2", kT0, absl::Seconds(30)).ok());

  // Renewal moves the expiry; past it, another job takes the lease over,
  // and the old holder's renewal is refused.
  ASSERT_TRUE(c->RenewLease("DB02", "job-1", kT0 + absl::Seconds(60)).ok());
  EXPECT_FALSE(
      c->AcquireLease("DB02", "job-2", "node3", kT0 + absl::Seconds(59), absl::Seconds(30)).ok());
  EXPECT_TRUE(
      c->AcquireLease("DB02", "job-2", "node3", kT0 + absl::Seconds(61), absl::Seconds(30)).ok());
  const absl::Status renewed = c->RenewLease("DB02", "job-1", kT0 + absl::Seconds(90));
  EXPECT_EQ(renewed.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(renewed.message()), HasSubstr("job job-1 no longer holds the lease"));

  // Release by a job that does not hold it changes nothing.
  ASSERT_TRUE(c->ReleaseLease("DB02", "job-1").ok());
  auto leases = c->Leases();
  ASSERT_TRUE(leases.ok());
  ASSERT_EQ(leases->size(), 2u);
  EXPECT_EQ((*leases)[0].job, "job-2");
  ASSERT_TRUE(c->ReleaseLease("DB02", "job-2").ok());
  EXPECT_TRUE(
      c->AcquireLease("DB02", "job-3", "node1", kT0 + absl::Seconds(62), absl::Seconds(30)).ok());
}

TEST_P(CatalogTest, FencingTokensOnlyGrowPerUnitAcrossReleasesAndReopens) {
  uint64_t last = 0;
  for (int round = 0; round < 2; ++round) {
    auto c = Open();
    for (int i = 0; i < 3; ++i) {
      const std::string job = absl::StrCat("job-", round, "-", i);
      auto lease = c->AcquireLease("DB02", job, "node2", kT0, absl::Seconds(30));
      ASSERT_TRUE(lease.ok()) << lease.status();
      EXPECT_GT(lease->token, last);
      last = lease->token;
      auto listed = c->Leases();
      ASSERT_TRUE(listed.ok() && listed->size() == 1u);
      EXPECT_EQ((*listed)[0].token, last);
      ASSERT_TRUE(c->ReleaseLease("DB02", job).ok());
    }
    // Another unit counts on its own.
    auto other =
        c->AcquireLease(absl::StrCat("SG0", round), "job-x", "node1", kT0, absl::Seconds(30));
    ASSERT_TRUE(other.ok());
    // A unit's first token is the wall clock in microseconds: a catalog
    // started afresh still issues tokens above the ones it lost.
    EXPECT_EQ(other->token, static_cast<uint64_t>(absl::ToUnixMicros(kT0)));
    ASSERT_TRUE(c->ReleaseLease(absl::StrCat("SG0", round), "job-x").ok());
  }
  EXPECT_EQ(last, static_cast<uint64_t>(absl::ToUnixMicros(kT0)) + 5);
}

TEST_P(CatalogTest, JobHistoryRetentionRemovesOnlyOldFinishedJobsAndRecoveryReadsOnlyUnfinished) {
  auto c = Open();
  auto job = [&](const std::string& id, JobState state, absl::Time updated) {
    JobRecord j;
    j.id = id;
    j.unit = "DB02";
    j.state = state;
    j.created = j.updated = updated;
    JobAttempt a;
    a.node = "node2";
    a.state = state;
    j.attempts.push_back(a);
    ASSERT_TRUE(c->CreateJob(j).ok());
    ASSERT_TRUE(c->UpdateJob(j, JobEvent{updated, 1, state, "event"}).ok());
  };
  const absl::Time old = kT0 - absl::Hours(24 * 100);
  job("old-done", JobState::kSucceeded, old);
  job("old-failed", JobState::kFailed, old);
  job("old-running", JobState::kTransferring, old);  // a job never ends by age
  job("new-done", JobState::kSucceeded, kT0);
  job("new-running", JobState::kAssigned, kT0);

  auto unfinished = c->UnfinishedJobs();
  ASSERT_TRUE(unfinished.ok());
  std::vector<std::string> ids;
  for (const auto& j : *unfinished) ids.push_back(j.id);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre("old-running", "new-running"));

  for (const auto& [verification_job, age] :
       {std::pair<const char*, int>{"old-verify", 100}, {"new-verify", 1}}) {
    v1::RestoreVerification v;
    v.set_job(verification_job);
    v.set_unit("DB02");
    v.set_ended_us(absl::ToUnixMicros(kT0 - absl::Hours(24 * age)));
    ASSERT_TRUE(c->PutVerification(v).ok());
  }
  auto purged = c->PurgeFinishedJobs(kT0 - absl::Hours(24 * 90));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 2u);
  auto verifications = c->Verifications("DB02", 0);
  ASSERT_TRUE(verifications.ok());
  ASSERT_EQ(verifications->size(), 1u);
  EXPECT_EQ((*verifications)[0].job(), "new-verify");
  auto all = c->ListJobs("", 0);
  ASSERT_TRUE(all.ok());
  ids.clear();
  for (const auto& j : *all) ids.push_back(j.id);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre("old-running", "new-done", "new-running"));
  auto events = c->JobEvents("old-done");
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
  EXPECT_EQ(c->GetJob("old-failed").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(CatalogTest, JobsKeepTheirAttemptsAndEveryTransition) {
  {
    auto c = Open();
    JobRecord job;
    job.id = "job-1";
    job.unit = "DB02";
    job.type = v1::INCREMENTAL;
    job.source_mode = "passive-then-active";
    job.preferred = {"node3", "node2"};
    job.created = job.updated = kT0;
    ASSERT_TRUE(c->CreateJob(job).ok());
    job.state = JobState::kAssigned;
    job.attempts.push_back({1, "node2", "", JobState::kAssigned, kT0, absl::InfinitePast(), ""});
    ASSERT_TRUE(c->UpdateJob(job, {kT0 + absl::Seconds(1), 1, job.state, "source node2"}).ok());
    job.attempts[0].state = JobState::kFailed;
    job.attempts[0].ended = kT0 + absl::Seconds(40);
    job.attempts[0].reason = "the lease expired: node2 stopped reporting";
    job.attempts.push_back({2, "node3", "Exchange Replication Service", JobState::kSucceeded,
                            kT0 + absl::Seconds(41), kT0 + absl::Seconds(50), ""});
    job.state = JobState::kSucceeded;
    job.manifest = "m-1";
    ASSERT_TRUE(c->UpdateJob(job, {kT0 + absl::Seconds(50), 2, job.state, "done"}).ok());
  }
  auto c = Open();
  auto job = c->GetJob("job-1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state, JobState::kSucceeded);
  EXPECT_EQ(job->type, v1::INCREMENTAL);
  EXPECT_THAT(job->preferred, ElementsAre("node3", "node2"));
  ASSERT_EQ(job->attempts.size(), 2u);
  EXPECT_EQ(job->attempts[0].state, JobState::kFailed);
  EXPECT_THAT(job->attempts[0].reason, HasSubstr("lease expired"));
  EXPECT_EQ(job->attempts[1].node, "node3");
  auto events = c->JobEvents("job-1");
  ASSERT_TRUE(events.ok());
  std::vector<std::string> states;
  for (const auto& e : *events) states.push_back(JobStateName(e.state));
  EXPECT_THAT(states, ElementsAre("queued", "assigned", "succeeded"));
  EXPECT_EQ(c->GetJob("job-9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c->GetJob("").status().code(), absl::StatusCode::kNotFound);
  auto listed = c->ListJobs("DB02", 10);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
  EXPECT_TRUE(c->ListJobs("SG01", 10)->empty());
}

TEST_P(CatalogTest, BackupsKeepWhatChainsNeedAndARebuildReplacesThem) {
  auto c = Open();
  v1::Manifest m;
  m.set_id("20261122T100000Z-0001");
  m.set_unit("DB02");
  m.set_type(v1::FULL);
  m.set_source_node("node2");
  m.set_log_signature("LS");
  m.add_database_signatures("DS1");
  m.set_low_generation(5);
  m.set_high_generation(9);
  (*m.mutable_labels())["verified"] = "pages and logs";
  (*m.mutable_labels())["job"] = "job-1";
  auto* log = m.add_files();
  log->set_role("log");
  log->set_generation(9);
  log->set_link_hash("L");
  log->add_chunks()->set_length(100);
  ASSERT_TRUE(c->PutBackup(BackupRecordOf(m)).ok());
  auto backups = c->Backups("DB02");
  ASSERT_TRUE(backups.ok());
  ASSERT_EQ(backups->size(), 1u);
  const BackupRecord& b = (*backups)[0];
  EXPECT_TRUE(b.verified);
  EXPECT_EQ(b.job, "job-1");
  EXPECT_THAT(b.database_signatures, ElementsAre("DS1"));
  ASSERT_EQ(b.chain_summary.files_size(), 1u);
  EXPECT_EQ(b.chain_summary.files(0).link_hash(), "L");
  EXPECT_EQ(b.chain_summary.files(0).chunks_size(), 0) << "chunk lists stay in the repository";

  v1::Manifest other = m;
  other.set_id("20261122T110000Z-0002");
  other.set_unit("SG01");
  ASSERT_TRUE(c->ReplaceBackups({BackupRecordOf(other)}).ok());
  EXPECT_TRUE(c->Backups("DB02")->empty());
  EXPECT_EQ(c->Backups("")->size(), 1u);
}

TEST(SqliteCatalog, ACatalogFromANewerCoordinatorIsRefused) {
  ::dagvault::testing::TempDir dir("catalog");
  const std::string path = dir.Sub("catalog.db");
  ASSERT_NE(OpenOrDie(path), nullptr);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto c = SqliteCatalog::Open(path);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr(absl::StrCat("catalog ", path,
                                     " has schema version 99; this coordinator "
                                     "knows versions up to ",
                                     SqliteCatalog::SchemaVersion())));
}

TEST(SqliteCatalog, AnUnopenablePathIsNamed) {
  auto c = SqliteCatalog::Open("/nonexistent-dir/catalog.db");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("catalog /nonexistent-dir/catalog.db"));
}

TEST(JobStates, TheCatalogsStatesAreTheWiresInTheSameOrder) {
  for (int i = 0; i <= static_cast<int>(JobState::kCancelled); ++i) {
    const auto s = static_cast<JobState>(i);
    EXPECT_EQ(FromProto(ToProto(s)), s);
    EXPECT_EQ(JobStateName(s), ::dagvault::JobStateName(ToProto(s)));
  }
  EXPECT_EQ(FromProto(v1::JOB_STATE_UNSPECIFIED), JobState::kFailed);
}

TEST(JobStates, NamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(JobState::kCancelled); ++i) {
    const auto state = static_cast<JobState>(i);
    auto parsed = ParseJobState(JobStateName(state));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, state);
  }
  EXPECT_FALSE(ParseJobState("running").ok());
  EXPECT_TRUE(IsFinal(JobState::kCancelled));
  EXPECT_FALSE(IsFinal(JobState::kVerifying));
}

TEST_P(CatalogTest, PoliciesArePutWholeListedByNameAndRemoved) {
  {
    auto c = Open();
    v1::Policy p;
    p.set_name("nightly");
    p.add_units("DB02");
    p.set_full_schedule("0 1 * * sun");
    ASSERT_TRUE(c->PutPolicy(p).ok());
    p.set_name("hourly");
    p.set_incremental_schedule("0 * * * *");
    ASSERT_TRUE(c->PutPolicy(p).ok());
    p.set_keep_chains(3);
    ASSERT_TRUE(c->PutPolicy(p).ok());  // replaces "hourly"
  }
  auto c = Open();
  auto policies = c->Policies();
  ASSERT_TRUE(policies.ok()) << policies.status();
  ASSERT_EQ(policies->size(), 2u);
  EXPECT_EQ((*policies)[0].name(), "hourly");
  EXPECT_EQ((*policies)[0].keep_chains(), 3u);
  EXPECT_EQ((*policies)[1].name(), "nightly");
  ASSERT_TRUE(c->RemovePolicy("hourly").ok());
  EXPECT_EQ(c->Policies()->size(), 1u);
}

TEST_P(CatalogTest, TheAuditLogListsNewestFirstByPersonAndSurvivesAReopen) {
  {
    auto c = Open();
    for (int i = 0; i < 3; ++i) {
      v1::AuditEntry e;
      e.set_time_us(absl::ToUnixMicros(kT0) + i);
      e.set_identity(i == 1 ? "vera" : "otto");
      e.set_method(i == 1 ? "StartBackup" : "CancelJob");
      e.set_allowed(i != 1);
      ASSERT_TRUE(c->AppendAudit(e).ok());
    }
  }
  auto c = Open();
  auto all = c->AuditEntries(10, "");
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].time_us(), absl::ToUnixMicros(kT0) + 2);  // newest first
  auto vera = c->AuditEntries(10, "vera");
  ASSERT_TRUE(vera.ok());
  ASSERT_EQ(vera->size(), 1u);
  EXPECT_FALSE((*vera)[0].allowed());
  EXPECT_EQ((*vera)[0].method(), "StartBackup");
  auto one = c->AuditEntries(1, "");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
}

TEST_P(CatalogTest, RestoreVerificationsAreKeptPerJobAndListedNewestFirstPerUnit) {
  {
    auto c = Open();
    for (int i = 0; i < 3; ++i) {
      v1::RestoreVerification v;
      v.set_job(absl::StrCat("restore-", i));
      v.set_unit(i == 1 ? "DB02" : "SG01");
      v.set_ended_us(absl::ToUnixMicros(kT0) + i);
      v.set_passed(i != 2);
      ASSERT_TRUE(c->PutVerification(v).ok());
    }
    // A job's record written again replaces it (a result re-sent).
    v1::RestoreVerification again;
    again.set_job("restore-2");
    again.set_unit("SG01");
    again.set_ended_us(absl::ToUnixMicros(kT0) + 2);
    again.set_passed(false);
    again.add_problems("database MDB01A: page 7: bad checksum");
    ASSERT_TRUE(c->PutVerification(again).ok());
  }
  auto c = Open();
  auto sg01 = c->Verifications("SG01", 0);
  ASSERT_TRUE(sg01.ok()) << sg01.status();
  ASSERT_EQ(sg01->size(), 2u);
  EXPECT_EQ((*sg01)[0].job(), "restore-2");
  EXPECT_FALSE((*sg01)[0].passed());
  ASSERT_EQ((*sg01)[0].problems_size(), 1);
  EXPECT_EQ((*sg01)[1].job(), "restore-0");
  auto one = c->Verifications("SG01", 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  auto db02 = c->Verifications("DB02", 0);
  ASSERT_TRUE(db02.ok());
  ASSERT_EQ(db02->size(), 1u);
  EXPECT_TRUE((*db02)[0].passed());
  auto none = c->Verifications("DB09", 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(OpenCatalog, ASettingNamesItsEngineAndNoPasswordIsShown) {
  EXPECT_FALSE(IsPostgresCatalog("/var/lib/dagvault/catalog.db"));
  EXPECT_TRUE(IsPostgresCatalog("postgresql://dagvault@db1/dagvault"));
  EXPECT_TRUE(IsPostgresCatalog("host=db1 dbname=dagvault user=dagvault"));
  EXPECT_EQ(CatalogForDisplay("/var/lib/dagvault/catalog.db"), "/var/lib/dagvault/catalog.db");
  EXPECT_EQ(CatalogForDisplay("host=db1 dbname=dagvault password=s3cret user=dv"),
            "host=db1 dbname=dagvault password=*** user=dv");
  EXPECT_EQ(CatalogForDisplay("host=db1 dbname=d password = 'two words' user=dv"),
            "host=db1 dbname=d password=*** user=dv");
  EXPECT_EQ(CatalogForDisplay("postgresql://dv:s3cret@db1:5432/dagvault?sslmode=require"),
            "postgresql://dv:***@db1:5432/dagvault?sslmode=require");
  EXPECT_EQ(CatalogForDisplay("postgresql://db1/dagvault?user=dv&password=s3cret&x=1"),
            "postgresql://db1/dagvault?user=dv&password=***&x=1");
  // Forms that leaked before a review: no dbname, & and escaped spaces in
  // a key=value password, a URI given as the dbname.
  EXPECT_TRUE(IsPostgresCatalog("host=db1 user=dv password=s3cret"));
  EXPECT_EQ(CatalogForDisplay("host=db1 user=dv password=p&ss"), "host=db1 user=dv password=***");
  EXPECT_EQ(CatalogForDisplay("host=db1 password=a\\ b user=dv"), "host=db1 password=*** user=dv");
  EXPECT_EQ(CatalogForDisplay("dbname=postgresql://u:pw@h/db"), "dbname=postgresql://u:***@h/db");
  // A string libpq cannot parse is refused without quoting it.
  auto bad = PostgresCatalog::Open("host=db1 password='unterminated s3cret");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), Not(HasSubstr("s3cret")));
  // An SQLite path is opened as one, and named when it cannot be.
  auto c = OpenCatalog("/nonexistent-dir/catalog.db");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("catalog /nonexistent-dir/catalog.db"));
}

// --- PostgreSQL only ---

TEST(PostgresCatalog, ACatalogFromANewerCoordinatorIsRefusedNamingIt) {
  testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  ASSERT_TRUE(PostgresCatalog::Open(db.conninfo()).ok());
  auto raw = db.Connect();
  ASSERT_NE(raw, nullptr);
  ASSERT_TRUE(raw->Exec("UPDATE catalog_schema SET version = 99").ok());
  auto c = PostgresCatalog::Open(db.conninfo());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      std::string(c.status().message()),
      HasSubstr(absl::StrCat("has schema version 99; this coordinator knows versions up to ",
                             PostgresCatalog::SchemaVersion())));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(raw->name()));
}

// Coordinators that start together migrate a new catalog once (an advisory
// lock): every one opens it, and the schema is whole.
TEST(PostgresCatalog, CoordinatorsStartingTogetherMigrateOnce) {
  testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  std::vector<std::thread> threads;
  std::vector<absl::Status> opened(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] { opened[i] = PostgresCatalog::Open(db.conninfo()).status(); });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : opened) EXPECT_TRUE(s.ok()) << s;
  auto raw = db.Connect();
  ASSERT_NE(raw, nullptr);
  auto v = raw->Exec("SELECT version FROM catalog_schema");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->rows(), 1);
  EXPECT_EQ(v->Int(0, 0), PostgresCatalog::SchemaVersion());
}

// Two coordinators (two connections) take the lease of one unit at the
// same moment, many times over: SERIALIZABLE lets exactly one win each
// time, the other is told who holds it, and the lease is the winner's.
TEST(PostgresCatalog, RacingAcquisitionsOfOneUnitLeaveExactlyOneHolder) {
  testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  auto a = PostgresCatalog::Open(db.conninfo());
  auto b = PostgresCatalog::Open(db.conninfo());
  ASSERT_TRUE(a.ok() && b.ok());
  for (int round = 0; round < 20; ++round) {
    const std::string unit = absl::StrCat("DB", round);
    absl::StatusOr<LeaseRecord> got[2];
    std::thread ta(
        [&] { got[0] = (*a)->AcquireLease(unit, "job-a", "node1", kT0, absl::Hours(1)); });
    std::thread tb(
        [&] { got[1] = (*b)->AcquireLease(unit, "job-b", "node2", kT0, absl::Hours(1)); });
    ta.join();
    tb.join();
    ASSERT_NE(got[0].ok(), got[1].ok())
        << "round " << round << ": " << got[0].status() << " / " << got[1].status();
    const int winner = got[0].ok() ? 0 : 1;
    EXPECT_EQ(got[1 - winner].status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(got[1 - winner].status().message()),
                HasSubstr(absl::StrCat("job ", winner == 0 ? "job-a" : "job-b")));
    auto leases = (*a)->Leases();
    ASSERT_TRUE(leases.ok());
    bool found = false;
    for (const auto& l : *leases) {
      if (l.unit != unit) continue;
      found = true;
      EXPECT_EQ(l.job, winner == 0 ? "job-a" : "job-b");
      EXPECT_EQ(l.token, got[winner]->token);
    }
    EXPECT_TRUE(found) << unit;
  }
}

// Two coordinators on one catalog: once a newer leader has fenced it, the
// older one's writes are refused (in the same transaction as the write),
// naming both epochs, and it cannot fence it back.
TEST(PostgresCatalog, ADeposedLeaderWritesNothingOnceANewerOneHasFencedTheCatalog) {
  testing::PostgresTestDatabase db;
  if (db.conninfo().empty()) GTEST_SKIP() << "no PostgreSQL: $DAGVAULT_TEST_POSTGRES is not set";
  auto old_leader = PostgresCatalog::Open(db.conninfo());
  auto new_leader = PostgresCatalog::Open(db.conninfo());
  ASSERT_TRUE(old_leader.ok() && new_leader.ok());
  ASSERT_TRUE((*old_leader)->FenceWrites(5).ok());
  JobRecord job;
  job.id = "job-1";
  job.unit = "DB01";
  job.type = v1::FULL;
  job.created = job.updated = kT0;
  ASSERT_TRUE((*old_leader)->CreateJob(job).ok());

  ASSERT_TRUE((*new_leader)->FenceWrites(7).ok());
  absl::Status refused = (*old_leader)->UpdateJob(job, JobEvent{kT0, 1, JobState::kFailed, "x"});
  ASSERT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("this coordinator led as epoch 5, but a newer leader (epoch 7) has taken "
                        "over; it writes nothing more"));
  EXPECT_EQ(
      (*old_leader)->AcquireLease("DB02", "job-2", "node1", kT0, absl::Hours(1)).status().code(),
      absl::StatusCode::kFailedPrecondition);
  absl::Status back = (*old_leader)->FenceWrites(6);
  ASSERT_EQ(back.code(), absl::StatusCode::kFailedPrecondition) << back;
  EXPECT_THAT(std::string(back.message()), HasSubstr("a newer leader (epoch 7)"));
  // Reads still work (a standby may serve them); the new leader writes.
  auto read = (*old_leader)->GetJob("job-1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->state, job.state) << "the refused update left nothing";
  EXPECT_TRUE((*new_leader)->UpdateJob(job, JobEvent{kT0, 1, JobState::kFailed, "y"}).ok());
  // Re-fencing with its own epoch (a restart of the same leader) is fine.
  EXPECT_TRUE((*new_leader)->FenceWrites(7).ok());
}

TEST(SqliteCatalog, RefusesToBeFencedSinceCoordinatorsCannotShareIt) {
  ::dagvault::testing::TempDir dir("catalog");
  auto catalog = OpenOrDie(dir.Sub("catalog.db"));
  ASSERT_NE(catalog, nullptr);
  absl::Status s = catalog->FenceWrites(3);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("PostgreSQL"));
}

TEST(PostgresCatalog, AServerThatIsNotThereIsNamed) {
  pg::ConnectionOptions brief;
  brief.reconnect_for = absl::Milliseconds(200);
  auto c = PostgresCatalog::Open("host=127.0.0.1 port=1 dbname=dagvault", brief);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("cannot connect"));
}

}  // namespace
}  // namespace dagvault::coordinator
