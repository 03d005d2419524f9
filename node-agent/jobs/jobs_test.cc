// Backup and restore jobs against real mailstored daemons and a real
// repository: round trips to the end and to a middle generation, chains
// taken on several nodes, Differentials, Copies, the failures that must
// truncate nothing, and a Recovery Database restored beside production
// under load.
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node-agent/jobs/backup_job.h"
#include "node-agent/jobs/log_archive.h"
#include "node-agent/jobs/restore_job.h"
#include "node-agent/shadow/writer_shadow_session.h"
#include "repository/chain.h"
#include "repository/check.h"
#include "repository/repository_test_util.h"
#include "tests/mailstored/test_util.h"

namespace dagvault::agent {
namespace {

using ::dagvault::testing::Databases;
using ::dagvault::testing::FastLab;
using ::dagvault::testing::kNode1;
using ::dagvault::testing::kNode2;
using ::dagvault::testing::kNode3;
using ::dagvault::testing::MailstoredCluster;
using ::dagvault::testing::PutItems;
using ::dagvault::testing::UnitDigest;
using ::testing::HasSubstr;
namespace v1 = dagvault::v1;

class JobsTest : public ::testing::Test {
 protected:
  explicit JobsTest(mailstore::LabSpec spec = FastLab(/*lag_seconds=*/2))
      : cluster_(spec, "jobs") {}

  void SetUp() override {
    ASSERT_TRUE(cluster_.Start().ok());
    auto repo = repository::Repository::Init(cluster_.root() + "/repo",
                                             repository::testing::TestPassphrase(),
                                             repository::testing::FastInit());
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = std::make_unique<repository::Repository>(*std::move(repo));
    for (int i = 0; i < cluster_.size(); ++i) gates_.push_back(std::make_shared<std::mutex>());
  }

  std::unique_ptr<WriterShadowSession> Session(int node) {
    return std::make_unique<WriterShadowSession>(
        ConnectWriter(cluster_.node(node).config.writer_socket()), gates_[node]);
  }

  absl::StatusOr<BackupJobResult> Backup(int node, const std::string& unit, v1::BackupType type,
                                         uint32_t max_replay_queue = 50) {
    BackupJobSpec spec;
    spec.job = absl::StrCat("job", ++jobs_);
    spec.unit = unit;
    spec.type = type;
    spec.max_replay_queue = max_replay_queue;
    if (absl::Status s = FillBaseFromRepository(*repo_, &spec); !s.ok()) return s;
    auto session = Session(node);
    return RunBackupJob(*session, *copy_, *repo_, spec, nullptr, nullptr);
  }

  absl::StatusOr<RestoreJobResult> Restore(int node, const std::string& unit,
                                           uint32_t to_generation, const std::string& rdb,
                                           bool mount = true) {
    RestoreJobSpec spec;
    spec.target.job = absl::StrCat("job", ++jobs_);
    spec.target.unit = unit;
    spec.target.recovery_database = rdb;
    if (!rdb.empty()) spec.target.path = absl::StrCat(cluster_.root(), "/rdb/", rdb);
    spec.to_generation = to_generation;
    spec.mount = mount;
    auto chain = ChainFromRepository(*repo_, unit, to_generation);
    if (!chain.ok()) return chain.status();
    spec.chain = *std::move(chain);
    auto session = Session(node);
    return RunRestoreJob(*session, *repo_, spec, nullptr, nullptr);
  }

  void LoadAndRoll(const std::string& unit, uint64_t mailbox, uint64_t items = 40) {
    PutItems(cluster_, kNode1, unit, Databases(unit), mailbox, 0, items);
    ASSERT_TRUE(cluster_.RollLog(kNode1, unit).ok());
  }

  uint32_t Lowest(int node, const std::string& unit) {
    auto c = cluster_.Copy(node, unit);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? c->lowest_log_generation() : 0;
  }

  size_t Manifests() {
    auto ids = repo_->ListManifests();
    return ids.ok() ? ids->size() : 0;
  }

  std::string UnitDir(int node, const std::string& unit) {
    return cluster_.node(node).config.data_root() + "/" + unit;
  }

  MailstoredCluster cluster_;
  std::unique_ptr<repository::Repository> repo_;
  std::vector<std::shared_ptr<std::mutex>> gates_;
  std::unique_ptr<SnapshotProvider> copy_ = *MakeSnapshotProvider("copy");
  int jobs_ = 0;
};

TEST_F(JobsTest, AFullAndTwoIncrementalsRestoreToTheEndAndToAMiddleGeneration) {
  const std::string unit = "SG01";
  LoadAndRoll(unit, 1);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->writer_instance, kStoreWriter);
  EXPECT_EQ(full->snapshot_provider, "copy");
  EXPECT_GT(full->verified.pages, 0u);
  EXPECT_GT(full->freeze_window, absl::ZeroDuration());
  LoadAndRoll(unit, 2);
  const std::string at_first = UnitDigest(cluster_, kNode1, unit);
  auto first = Backup(kNode1, unit, v1::INCREMENTAL);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->low_generation, full->high_generation + 1);
  EXPECT_EQ(first->verified.pages, 0u);  // logs only
  LoadAndRoll(unit, 3);
  const std::string at_second = UnitDigest(cluster_, kNode1, unit);
  auto second = Backup(kNode1, unit, v1::INCREMENTAL);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->low_generation, first->high_generation + 1);
  ASSERT_NE(at_first, at_second);

  // The newest restore point, to the unit's own location.
  ASSERT_TRUE(cluster_.Admin(kNode1, "dismount", unit).ok());
  for (int node : {kNode2, kNode3}) ASSERT_TRUE(cluster_.Admin(node, "suspend", unit).ok());
  auto latest = Restore(kNode1, unit, 0, "");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->manifests.size(), 3u);
  EXPECT_TRUE(latest->recovery_database.empty());
  EXPECT_EQ(latest->last_generation, second->high_generation);
  ASSERT_TRUE(cluster_.WaitMounted(kNode1, unit).ok());
  EXPECT_EQ(UnitDigest(cluster_, kNode1, unit), at_second);

  // A middle generation, beside production.
  auto middle = Restore(kNode1, unit, first->high_generation, "SG01-PIT");
  ASSERT_TRUE(middle.ok()) << middle.status();
  EXPECT_EQ(middle->manifests.size(), 2u);
  EXPECT_EQ(middle->last_generation, first->high_generation);
  EXPECT_EQ(UnitDigest(cluster_, kNode1, unit, "SG01-PIT"), at_first);
  EXPECT_EQ(UnitDigest(cluster_, kNode1, unit), at_second);
}

TEST_F(JobsTest, AChainTakenOnThreeNodesRestoresOnTheFirst) {
  const std::string unit = "DB02";
  LoadAndRoll(unit, 1);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  LoadAndRoll(unit, 2);
  ASSERT_TRUE(cluster_.WaitConverged(kNode1, unit).ok());
  auto from_node2 = Backup(kNode2, unit, v1::INCREMENTAL);
  ASSERT_TRUE(from_node2.ok()) << from_node2.status();
  EXPECT_EQ(from_node2->writer_instance, kReplicationWriter);
  EXPECT_EQ(from_node2->node, "node2");
  LoadAndRoll(unit, 3);
  const std::string at_last = UnitDigest(cluster_, kNode1, unit);
  // node3 is the lagged copy: its replay queue is held on purpose, and it
  // must have copied everything node1 closed.
  auto node1 = cluster_.Copy(kNode1, unit);
  ASSERT_TRUE(node1.ok());
  ASSERT_TRUE(::dagvault::testing::WaitFor(
      [&] {
        auto c = cluster_.Copy(kNode3, unit);
        return c.ok() && c->last_inspected_generation() >= node1->last_log_generation() &&
               c->state() == v1::HEALTHY;
      },
      absl::Seconds(30)));
  auto from_node3 = Backup(kNode3, unit, v1::INCREMENTAL, /*max_replay_queue=*/1000);
  ASSERT_TRUE(from_node3.ok()) << from_node3.status();
  EXPECT_EQ(from_node3->node, "node3");
  EXPECT_EQ(from_node3->low_generation, from_node2->high_generation + 1);

  auto restored = Restore(kNode1, unit, 0, "DB02-MIXED");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->manifests,
            (std::vector<std::string>{full->manifest, from_node2->manifest, from_node3->manifest}));
  EXPECT_EQ(UnitDigest(cluster_, kNode1, unit, "DB02-MIXED"), at_last);
}

TEST_F(JobsTest, ABackupThatFailsVerificationTruncatesNothingAndRecordsNothing) {
  const std::string unit = "DB02";
  LoadAndRoll(unit, 1);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  LoadAndRoll(unit, 2);
  ASSERT_TRUE(cluster_.WaitConverged(kNode1, unit).ok());

  // One damaged .edb page on the source copy: the Full names it.
  const std::string edb = UnitDir(kNode2, unit) + "/DB02.edb";
  const uint64_t at = 3 * 8192 + 1000;  // page 3, the B-tree root, always written
  auto flip = [&] {
    std::fstream f(edb, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x40);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(&c, 1);
  };
  flip();
  auto damaged = Backup(kNode2, unit, v1::FULL);
  flip();  // so that replication goes on over a sound page
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(damaged.status().message()),
              AllOf(HasSubstr("nothing was truncated"),
                    HasSubstr("page 3 (offset 24576): checksum mismatch")));
  EXPECT_EQ(Manifests(), 1u);
  // The Full's truncation goes on as the copies replay, but nothing past
  // the last verified backup goes, on any copy: the failed one counts for
  // nothing. (Given time to show if it did.)
  absl::SleepFor(absl::Seconds(1));
  for (int node : {kNode1, kNode2, kNode3}) {
    EXPECT_LE(Lowest(node, unit), full->high_generation + 1) << "node " << node + 1;
  }
  // The snapshot folder went with the failure.
  for (const auto& e : std::filesystem::directory_iterator(UnitDir(kNode2, unit))) {
    EXPECT_FALSE(e.path().filename().string().starts_with(kSnapshotFolderPrefix)) << e.path();
  }

  // A successful Incremental truncates, once every copy has the logs.
  absl::SleepFor(absl::Seconds(1));  // the copies report their progress
  auto incremental = Backup(kNode1, unit, v1::INCREMENTAL);
  ASSERT_TRUE(incremental.ok()) << incremental.status();
  EXPECT_FALSE(incremental->truncated.empty());

  // One log gone from the source copy: the Incremental names it.
  LoadAndRoll(unit, 3);
  LoadAndRoll(unit, 4);
  ASSERT_TRUE(cluster_.WaitConverged(kNode1, unit).ok());
  const uint32_t missing = incremental->high_generation + 1;
  const std::string log = absl::StrFormat("%s/logs/E01%08X.log", UnitDir(kNode1, unit), missing);
  ASSERT_TRUE(PathExists(log)) << log;
  ASSERT_TRUE(RemoveDurably(log).ok());
  auto gap = Backup(kNode1, unit, v1::INCREMENTAL);
  ASSERT_FALSE(gap.ok());
  EXPECT_THAT(std::string(gap.status().message()),
              AllOf(HasSubstr("nothing was truncated"),
                    HasSubstr(absl::StrFormat("log generation 0x%08X", missing))));
  EXPECT_EQ(Manifests(), 2u);
  absl::SleepFor(absl::Seconds(1));
  // node1 lost generation `missing` by hand, so its lowest log says
  // nothing: its truncation bound does.
  auto active = cluster_.Copy(kNode1, unit);
  ASSERT_TRUE(active.ok());
  EXPECT_LE(active->truncatable_through(), incremental->high_generation);
  for (int node : {kNode2, kNode3}) {
    EXPECT_LE(Lowest(node, unit), incremental->high_generation + 1) << "node " << node + 1;
  }
}

TEST_F(JobsTest, DifferentialsAndACopyLeaveTheChainAndTheLogsAlone) {
  const std::string unit = "DB02";
  LoadAndRoll(unit, 1);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  LoadAndRoll(unit, 2);
  auto copy = Backup(kNode2, unit, v1::COPY);
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_TRUE(copy->truncated.empty());
  // The Copy compared its blocks with the Full: same databases.
  EXPECT_EQ(copy->base_manifest, full->manifest);
  auto first = Backup(kNode1, unit, v1::DIFFERENTIAL);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->low_generation, full->high_generation + 1);
  EXPECT_TRUE(first->truncated.empty());
  LoadAndRoll(unit, 3);
  const std::string at_second = UnitDigest(cluster_, kNode1, unit);
  auto second = Backup(kNode1, unit, v1::DIFFERENTIAL);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->low_generation, full->high_generation + 1);
  EXPECT_TRUE(second->truncated.empty());

  auto restored = Restore(kNode2, unit, 0, "DB02-DIFF");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->manifests, (std::vector<std::string>{full->manifest, second->manifest}));
  EXPECT_EQ(UnitDigest(cluster_, kNode2, unit, "DB02-DIFF"), at_second);
}

TEST_F(JobsTest, ARecoveryDatabaseIsRestoredWhileProductionTakesLoad) {
  const std::string unit = "DB02";
  LoadAndRoll(unit, 1, 60);
  const std::string at_full = UnitDigest(cluster_, kNode1, unit);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  auto before = cluster_.Digest(kNode1, unit, unit);
  ASSERT_TRUE(before.ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  std::thread load([&] {
    for (uint64_t item = 0; !stop && item < 400; ++item) {
      if (!cluster_.Put(kNode1, unit, unit, 9, item, ::dagvault::testing::ItemValue(9, item)).ok())
        break;
      ++written;
    }
  });
  auto restored = Restore(kNode1, unit, 0, "DB02-BESIDE");
  stop = true;
  load.join();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(UnitDigest(cluster_, kNode1, unit, "DB02-BESIDE"), at_full);
  ASSERT_GT(written.load(), 0u);
  // Production holds what it held and exactly what its own load wrote.
  auto after = cluster_.Digest(kNode1, unit, unit);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->items(), before->items() + written.load());
  for (uint64_t item = 0; item < written.load(); ++item) {
    auto got = cluster_.Get(kNode1, unit, unit, 9, item);
    ASSERT_TRUE(got.ok() && got->has_value()) << item;
    EXPECT_EQ(**got, ::dagvault::testing::ItemValue(9, item));
  }
}

TEST_F(JobsTest, ARestoreIsRefusedThroughThePassiveCopyAndForABrokenChain) {
  const std::string unit = "DB02";
  LoadAndRoll(unit, 1);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  auto passive = Restore(kNode2, unit, 0, "");
  ASSERT_FALSE(passive.ok());
  EXPECT_THAT(std::string(passive.status().message()),
              AllOf(HasSubstr("is passive"),
                    HasSubstr("goes through the Store writer of the active copy")));
  // A chain whose pieces do not join is refused before anything is written.
  auto manifest = repo_->ReadManifest(full->manifest);
  ASSERT_TRUE(manifest.ok());
  v1::Manifest stranger = *manifest;
  stranger.set_type(v1::INCREMENTAL);
  stranger.set_low_generation(full->high_generation + 5);
  stranger.set_high_generation(full->high_generation + 6);
  RestoreJobSpec spec;
  spec.target.unit = unit;
  spec.target.recovery_database = "DB02-NEVER";
  spec.target.path = cluster_.root() + "/rdb/never";
  spec.chain = {*manifest, stranger};
  auto session = Session(kNode1);
  auto refused = RunRestoreJob(*session, *repo_, spec, nullptr, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr(absl::StrFormat("the chain breaks at generation 0x%08X",
                                        full->high_generation + 1)));
  EXPECT_FALSE(PathExists(spec.target.path));
}

// A reseed from the repository: the chain restored into a suspended
// passive copy while the active copy runs on, once the copy's writer has
// found the chain's last generation in the active copy's stream.
TEST_F(JobsTest, APassiveCopyIsRestoredWhileTheActiveRunsOnWhenTheChainJoinsItsStream) {
  const std::string unit = "DB02";
  LoadAndRoll(unit, 1);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  LoadAndRoll(unit, 2);  // the active copy runs on
  ASSERT_TRUE(cluster_.Admin(kNode2, "suspend", unit).ok());
  RestoreJobSpec spec;
  spec.target.job = "reseed-1";
  spec.target.unit = unit;
  spec.target.passive_copy = true;
  spec.join_active_stream = true;
  auto chain = ChainFromRepository(*repo_, unit, 0);
  ASSERT_TRUE(chain.ok()) << chain.status();
  spec.chain = *chain;

  // A chain whose last log is not the one the active copy's stream goes on
  // from (its digest differs) is refused by the writer, naming the
  // generation, before anything is replaced.
  const std::string before = UnitDigest(cluster_, kNode2, unit);
  RestoreJobSpec other_stream = spec;
  for (auto& f : *other_stream.chain.back().mutable_files()) {
    if (f.role() == "log" && f.generation() == full->high_generation) {
      f.set_sha256(std::string(32, '\xab'));
    }
  }
  auto refused = RunRestoreJob(*Session(kNode2), *repo_, other_stream, nullptr, nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("no chain joins the active copy's current log stream"),
                    HasSubstr(absl::StrFormat("the streams diverged at generation 0x%08X",
                                              full->high_generation + 1))));
  EXPECT_EQ(UnitDigest(cluster_, kNode2, unit), before);

  auto restored = RunRestoreJob(*Session(kNode2), *repo_, spec, nullptr, nullptr);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->last_generation, full->high_generation);
  ASSERT_TRUE(cluster_.Admin(kNode2, "resume", unit).ok());
  ASSERT_TRUE(cluster_.WaitConverged(kNode1, unit).ok());
  EXPECT_EQ(UnitDigest(cluster_, kNode2, unit), UnitDigest(cluster_, kNode1, unit));
}

// Closed logs archived from a passive copy as segments after the Full
// (issue 19 §1): each verified and joined to the chain, a restore point at
// every archived generation; a gap, a missing log or a damaged one is
// refused, naming it, and nothing is written.
TEST_F(JobsTest, ClosedLogsAreArchivedFromAPassiveCopyAndRestoreToAnArchivedGeneration) {
  const std::string unit = "DB02";
  LoadAndRoll(unit, 1);
  auto full = Backup(kNode1, unit, v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  LoadAndRoll(unit, 2);
  const std::string at_first = UnitDigest(cluster_, kNode1, unit);
  auto active = cluster_.Copy(kNode1, unit);
  ASSERT_TRUE(active.ok());
  const uint32_t first = active->last_log_generation();
  LoadAndRoll(unit, 3);
  ASSERT_TRUE(cluster_.WaitConverged(kNode1, unit).ok());
  active = cluster_.Copy(kNode1, unit);
  ASSERT_TRUE(active.ok());
  const uint32_t second = active->last_log_generation();
  ASSERT_GT(second, first);

  // Where node2's copy keeps its logs, as its writer says.
  auto metadata = Session(kNode2)->Metadata();
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  LogArchiveSpec spec;
  spec.unit = unit;
  spec.node = "node2";
  spec.source_copy = "passive";
  for (const auto& w : metadata->writers()) {
    for (const auto& u : w.units()) {
      if (u.unit() == unit) {
        spec.log_dir = u.log_dir();
        spec.log_prefix = u.log_prefix();
      }
    }
  }
  ASSERT_FALSE(spec.log_dir.empty());

  auto base = ArchiveBaseFromRepository(*repo_, unit);
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(base->high_generation, full->high_generation);
  const size_t before = Manifests();
  // A gap after the chain's end is refused before anything is read.
  spec.low_generation = base->high_generation + 2;
  spec.high_generation = first;
  auto gap = ArchiveLogs(*repo_, spec, *base);
  EXPECT_EQ(gap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(gap.status().message()), HasSubstr("would be in no backup"));
  // A generation not closed here yet.
  spec.low_generation = base->high_generation + 1;
  spec.high_generation = second + 5;
  auto missing = ArchiveLogs(*repo_, spec, *base);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr(absl::StrFormat("log generation 0x%08X", second + 1)));
  // A damaged copy of a log: the verification names it.
  const std::string damaged_dir = cluster_.root() + "/damaged";
  ASSERT_TRUE(CreateDirectories(damaged_dir).ok());
  const std::string name = absl::StrFormat("%s%08X.log", spec.log_prefix, first);
  for (uint32_t g = base->high_generation + 1; g <= first; ++g) {
    const std::string each = absl::StrFormat("%s%08X.log", spec.log_prefix, g);
    auto bytes = ReadFileToString(JoinPath(spec.log_dir, each));
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    if (g == first) (*bytes)[bytes->size() / 3] ^= 0x5a;
    ASSERT_TRUE(WriteFileAtomically(JoinPath(damaged_dir, each), *bytes).ok());
  }
  LogArchiveSpec damaged = spec;
  damaged.log_dir = damaged_dir;
  damaged.high_generation = first;
  auto refused = ArchiveLogs(*repo_, damaged, *base);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr(name));
  EXPECT_EQ(Manifests(), before) << "nothing was written";

  // Two segments, each continuing the one before.
  spec.low_generation = base->high_generation + 1;
  spec.high_generation = first;
  auto one = ArchiveLogs(*repo_, spec, *base);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->summary.type(), v1::LOG_ARCHIVE);
  base = ArchiveBaseFromRepository(*repo_, unit);
  ASSERT_TRUE(base.ok());
  EXPECT_EQ(base->manifest, one->summary.id());
  spec.low_generation = first + 1;
  spec.high_generation = second;
  auto two = ArchiveLogs(*repo_, spec, *base);
  ASSERT_TRUE(two.ok()) << two.status();
  auto manifests = repo_->ReadManifestsOfUnit(unit);
  ASSERT_TRUE(manifests.ok());
  const auto chains = repository::AssembleChains(*manifests, unit);
  ASSERT_EQ(chains.size(), 1u);
  EXPECT_EQ(chains[0].archived.size(), 2u);
  EXPECT_EQ(chains[0].high_generation(), second);

  // A restore to the first archived generation, beside production.
  auto restored = Restore(kNode3, unit, first, "DB02-ARCHIVED");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->last_generation, first);
  EXPECT_EQ(UnitDigest(cluster_, kNode3, unit, "DB02-ARCHIVED"), at_first);
}

class CircularJobsTest : public JobsTest {
 protected:
  static mailstore::LabSpec Circular() {
    mailstore::LabSpec spec = FastLab(0);
    spec.nodes = 2;
    spec.circular_logging = true;
    return spec;
  }
  CircularJobsTest() : JobsTest(Circular()) {}
};

TEST_F(CircularJobsTest, CircularLoggingTakesFullsAndRefusesAnIncremental) {
  LoadAndRoll("DB02", 1);
  auto full = Backup(kNode1, "DB02", v1::FULL);
  ASSERT_TRUE(full.ok()) << full.status();
  auto refused = Backup(kNode1, "DB02", v1::INCREMENTAL);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("circular logging"), HasSubstr("only Full and Copy")));
  EXPECT_EQ(Manifests(), 1u);
}

}  // namespace
}  // namespace dagvault::agent
