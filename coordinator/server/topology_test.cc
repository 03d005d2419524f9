// Topology: when a node's copies stop qualifying, and what the operator is
// told.
#include "coordinator/server/topology.h"

#include <set>
#include <string>

#include "common/testing/temp_dir.h"
#include "coordinator/catalog/sqlite_catalog.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;
using ::testing::HasSubstr;

class NullChannel : public AgentChannel {
 public:
  bool Send(const v1::CoordinatorMessage&) override { return true; }
};

v1::NodeReport ReportOf(const std::string& node) {
  v1::NodeReport r;
  r.set_node(node);
  v1::CopyStatus* c = r.add_copies();
  c->set_unit("DB02");
  c->set_node(node);
  c->set_role(v1::PASSIVE);
  c->set_state(v1::HEALTHY);
  return r;
}

// The agent of `node` connects (its channel discards what is sent).
void Connect(Topology& topology, const std::string& node,
             std::shared_ptr<AgentChannel> channel = std::make_shared<NullChannel>()) {
  v1::Register hello;
  hello.set_node(node);
  topology.Connected(hello, channel);
}

class TopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = SqliteCatalog::Open(dir_.Sub("catalog.db"));
    ASSERT_TRUE(c.ok());
    catalog_ = std::move(*c);
  }
  ::dagvault::testing::TempDir dir_{"topology"};
  std::unique_ptr<SqliteCatalog> catalog_;
};

TEST_F(TopologyTest, ANodeThatStopsReportingIsServiceDownAfterTheTimeout) {
  FakeClock clock(absl::Now());
  Topology topology(catalog_.get(), absl::Milliseconds(200), &clock);
  auto channel = std::make_shared<NullChannel>();
  Connect(topology, "node2", channel);
  topology.Report(ReportOf("node2"));
  ASSERT_EQ(topology.CopiesOf("DB02").size(), 1u);
  EXPECT_TRUE(topology.CopiesOf("DB02")[0].node_reporting);
  // A wall-clock step is not silence.
  clock.StepWallClock(absl::Hours(1));
  EXPECT_TRUE(topology.CopiesOf("DB02")[0].node_reporting);
  clock.StepWallClock(-absl::Hours(2));
  EXPECT_TRUE(topology.CopiesOf("DB02")[0].node_reporting);
  clock.Advance(absl::Milliseconds(300));
  const CopyView late = topology.CopiesOf("DB02")[0];
  EXPECT_FALSE(late.node_reporting);
  EXPECT_THAT(late.node_down_reason, HasSubstr("its agent stopped reporting; last report"));
  EXPECT_THAT(late.node_down_reason, HasSubstr("ServiceDown"));
  // The copy was written to the catalog with the first report.
  auto copies = catalog_->Copies();
  ASSERT_TRUE(copies.ok());
  EXPECT_EQ(copies->size(), 1u);
  // A disconnected agent's node is down at once.
  topology.Report(ReportOf("node2"));
  topology.Disconnected("node2", channel);
  EXPECT_THAT(topology.CopiesOf("DB02")[0].node_down_reason,
              HasSubstr("its agent is not connected"));
}

TEST_F(TopologyTest, AnAgentWhoseMailServerDoesNotAnswerKeepsItsCopiesButTheyDoNotQualify) {
  Topology topology(catalog_.get(), absl::Minutes(1));
  Connect(topology, "node2");
  topology.Report(ReportOf("node2"));
  v1::NodeReport empty;
  empty.set_node("node2");
  empty.set_writer_error("copy status: failed to connect to all addresses");
  topology.Report(empty);
  auto copies = topology.CopiesOf("DB02");
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_FALSE(copies[0].node_reporting);
  EXPECT_THAT(copies[0].node_down_reason, HasSubstr("the mail server does not answer"));
  v1::ClusterStatus status;
  topology.Describe({}, &status);
  ASSERT_EQ(status.copies_size(), 1);  // it needs attention, so it is listed
  EXPECT_EQ(status.copies_fine(), 0u);
  // It answers again.
  topology.Report(ReportOf("node2"));
  EXPECT_TRUE(topology.CopiesOf("DB02")[0].node_reporting);
}

TEST_F(TopologyTest, AUnitsCopiesFollowTheReportsThatNameThem) {
  FakeClock clock(absl::Now());
  Topology topology(catalog_.get(), absl::Seconds(10), &clock);
  for (const std::string node : {"node1", "node2"}) {
    Connect(topology, node);
    topology.Report(ReportOf(node));
  }
  EXPECT_EQ(topology.CopiesOf("DB02").size(), 2u);
  EXPECT_EQ(*topology.Units(), std::vector<std::string>{"DB02"});
  // node1's copy moves to SG01 (reseeded as another unit's copy, say).
  v1::NodeReport moved = ReportOf("node1");
  moved.mutable_copies(0)->set_unit("SG01");
  topology.Report(moved);
  ASSERT_EQ(topology.CopiesOf("DB02").size(), 1u);
  EXPECT_EQ(topology.CopiesOf("DB02")[0].status.node(), "node2");
  ASSERT_EQ(topology.CopiesOf("SG01").size(), 1u);
  EXPECT_EQ(topology.CopiesOf("SG01")[0].status.node(), "node1");
  EXPECT_EQ(*topology.Units(), (std::vector<std::string>{"DB02", "SG01"}));
  // node2 reports no copy at all: DB02 is no longer known.
  v1::NodeReport empty;
  empty.set_node("node2");
  topology.Report(empty);
  EXPECT_TRUE(topology.CopiesOf("DB02").empty());
  EXPECT_FALSE(topology.UnitKnown("DB02"));
  EXPECT_TRUE(topology.UnitKnown("SG01"));
  // node1 alone holds SG01 and DB09, and names them in another order: the
  // index drops both and takes them again, and each copy keeps its own.
  moved.mutable_copies(0)->set_copy_queue(7);
  v1::CopyStatus* db09 = moved.add_copies();
  *db09 = moved.copies(0);
  db09->set_unit("DB09");
  db09->set_copy_queue(9);
  topology.Report(moved);
  std::swap(*moved.mutable_copies(0), *moved.mutable_copies(1));
  topology.Report(moved);
  ASSERT_EQ(topology.CopiesOf("SG01").size(), 1u);
  EXPECT_EQ(topology.CopiesOf("SG01")[0].status.copy_queue(), 7u);
  ASSERT_EQ(topology.CopiesOf("DB09").size(), 1u);
  EXPECT_EQ(topology.CopiesOf("DB09")[0].status.copy_queue(), 9u);
  EXPECT_EQ(topology.AllCopies().at("DB09").at(0).status.unit(), "DB09");
  moved.mutable_copies()->DeleteSubrange(1, 1);  // SG01 goes
  topology.Report(moved);
  EXPECT_FALSE(topology.UnitKnown("SG01"));
  EXPECT_EQ(*topology.Units(), std::vector<std::string>{"DB09"});

  // A restarted coordinator loads the same index from the catalog.
  Topology loaded(catalog_.get(), absl::Seconds(10), &clock);
  ASSERT_TRUE(loaded.Load().ok());
  EXPECT_EQ(*loaded.Units(), std::vector<std::string>{"DB09"});
  ASSERT_EQ(loaded.CopiesOf("DB09").size(), 1u);
  EXPECT_EQ(loaded.CopiesOf("DB09")[0].status.copy_queue(), 9u);
}

TEST_F(TopologyTest, AUnitNamedTwiceInOneReportLeavesTheIndexWhole) {
  FakeClock clock(absl::Now());
  Topology topology(catalog_.get(), absl::Seconds(10), &clock);
  Connect(topology, "node1");
  Connect(topology, "node2");
  // node2 holds DB07, so that the index is not empty when DB02 leaves it
  // (a lookup in an empty map reads no name).
  v1::NodeReport db07 = ReportOf("node2");
  db07.mutable_copies(0)->set_unit("DB07");
  topology.Report(db07);
  // An agent (older, or broken) lists DB02 twice; node1 alone holds it.
  v1::NodeReport twice = ReportOf("node1");
  *twice.add_copies() = twice.copies(0);
  twice.mutable_copies(1)->set_copy_queue(5);
  topology.Report(twice);
  ASSERT_EQ(topology.CopiesOf("DB02").size(), 2u);
  EXPECT_EQ(topology.CopiesOf("DB02")[1].status.copy_queue(), 5u);
  // Its next report names another unit: DB02 leaves the index once, and
  // the name both entries pointed at is not read after it is freed. Run
  // under valgrind, this test showed such reads while every entry was
  // looked up.
  v1::NodeReport moved = ReportOf("node1");
  moved.mutable_copies(0)->set_unit("SG01");
  topology.Report(moved);
  EXPECT_FALSE(topology.UnitKnown("DB02"));
  EXPECT_EQ(*topology.Units(), (std::vector<std::string>{"DB07", "SG01"}));
  // The same with another node still holding the unit: it stays, with
  // that node's copy only.
  topology.Report(twice);
  topology.Report(ReportOf("node2"));
  topology.Report(moved);
  ASSERT_EQ(topology.CopiesOf("DB02").size(), 1u);
  EXPECT_EQ(topology.CopiesOf("DB02")[0].status.node(), "node2");
  EXPECT_EQ(*topology.Units(), (std::vector<std::string>{"DB02", "SG01"}));
  EXPECT_FALSE(topology.UnitKnown("DB07"));
}

TEST_F(TopologyTest, AReportHandedOverLeavesItsCopiesEmptyAndTheNewestStateShown) {
  FakeClock clock(absl::Now());
  Topology topology(catalog_.get(), absl::Seconds(10), &clock);
  Connect(topology, "node1");
  // The stream's message is reused for the next report, as gRPC parses
  // each one into the same object.
  v1::NodeReport incoming = ReportOf("node1");
  topology.Report(&incoming);
  EXPECT_EQ(incoming.copies_size(), 0);
  ASSERT_EQ(topology.CopiesOf("DB02").size(), 1u);
  const auto units = topology.Units();
  // The same unit, newer figures, parsed into the message that got the
  // old copies back: the topology shows the newer ones, and the list of
  // units is the same object.
  v1::NodeReport newer = ReportOf("node1");
  newer.mutable_copies(0)->set_copy_queue(7);
  ASSERT_TRUE(incoming.ParseFromString(newer.SerializeAsString()));
  topology.Report(&incoming);
  ASSERT_EQ(topology.CopiesOf("DB02").size(), 1u);
  EXPECT_EQ(topology.CopiesOf("DB02")[0].status.copy_queue(), 7u);
  EXPECT_EQ(topology.Units(), units);
  // Another unit in the same message object: the index follows.
  v1::NodeReport moved = ReportOf("node1");
  moved.mutable_copies(0)->set_unit("SG01");
  ASSERT_TRUE(incoming.ParseFromString(moved.SerializeAsString()));
  topology.Report(&incoming);
  EXPECT_NE(topology.Units(), units);
  EXPECT_EQ(*topology.Units(), std::vector<std::string>{"SG01"});
  EXPECT_FALSE(topology.UnitKnown("DB02"));
  ASSERT_EQ(topology.CopiesOf("SG01").size(), 1u);
  EXPECT_EQ(topology.CopiesOf("SG01")[0].status.node(), "node1");
}

TEST_F(TopologyTest, StatusCountsEveryCopyAndListsOnlyThoseNotFineUnlessAsked) {
  FakeClock clock(absl::Now());
  Topology topology(catalog_.get(), absl::Seconds(10), &clock);
  // node1: two fine copies; node2: one fine, one failed; node3: one fine
  // copy on a node that stops reporting.
  for (const std::string node : {"node1", "node2", "node3"}) {
    Connect(topology, node);
    v1::NodeReport r = ReportOf(node);
    v1::CopyStatus* second = r.add_copies();
    *second = r.copies(0);
    second->set_unit("SG01");
    if (node == "node1") second->set_state(v1::MOUNTED);
    if (node == "node2") second->set_state(v1::FAILED);
    if (node == "node3") r.mutable_copies()->RemoveLast();
    topology.Report(r);
  }
  clock.Advance(absl::Seconds(8));
  for (const std::string node : {"node1", "node2"}) {
    v1::NodeReport r = ReportOf(node);
    v1::CopyStatus* second = r.add_copies();
    *second = r.copies(0);
    second->set_unit("SG01");
    if (node == "node1") second->set_state(v1::MOUNTED);
    if (node == "node2") second->set_state(v1::FAILED);
    topology.Report(r);
  }
  clock.Advance(absl::Seconds(4));  // node3 has been silent for 12 s

  auto listed = [](const v1::ClusterStatus& s) {
    std::set<std::string> out;
    for (const auto& c : s.copies()) out.insert(c.status().node() + "/" + c.status().unit());
    return out;
  };
  v1::ClusterStatus status;
  topology.Describe({}, &status);
  EXPECT_EQ(status.nodes_total(), 3u);
  EXPECT_EQ(status.nodes_reporting(), 2u);
  ASSERT_EQ(status.nodes_size(), 1);  // the reporting nodes are only counted
  EXPECT_EQ(status.nodes(0).node(), "node3");
  EXPECT_EQ(status.copies_total(), 5u);
  EXPECT_EQ(status.copies_fine(), 3u);  // node1's two, node2's DB02
  EXPECT_EQ(listed(status), (std::set<std::string>{"node2/SG01", "node3/DB02"}));

  v1::ClusterStatusRequest all;
  all.set_all_copies(true);
  status.Clear();
  topology.Describe(all, &status);
  EXPECT_EQ(status.copies_fine(), 3u);
  EXPECT_EQ(listed(status).size(), 5u);
  EXPECT_EQ(status.nodes_size(), 3);  // every copy: every node

  v1::ClusterStatusRequest every_node;
  every_node.set_all_nodes(true);
  status.Clear();
  topology.Describe(every_node, &status);
  EXPECT_EQ(status.nodes_size(), 3);
  EXPECT_EQ(listed(status), (std::set<std::string>{"node2/SG01", "node3/DB02"}));

  v1::ClusterStatusRequest one;
  one.set_unit("SG01");
  status.Clear();
  topology.Describe(one, &status);
  EXPECT_EQ(status.copies_total(), 5u);
  EXPECT_EQ(listed(status), (std::set<std::string>{"node1/SG01", "node2/SG01"}));

  // node1, all fine so far, has a copy fail: it is counted and listed.
  v1::NodeReport failing = ReportOf("node1");
  *failing.add_copies() = failing.copies(0);
  failing.mutable_copies(1)->set_unit("SG01");
  failing.mutable_copies(1)->set_state(v1::FAILED);
  topology.Report(failing);
  status.Clear();
  topology.Describe({}, &status);
  EXPECT_EQ(status.copies_fine(), 2u);
  EXPECT_EQ(listed(status), (std::set<std::string>{"node1/SG01", "node2/SG01", "node3/DB02"}));
  v1::NodeReport fine_again = ReportOf("node1");
  *fine_again.add_copies() = fine_again.copies(0);
  fine_again.mutable_copies(1)->set_unit("SG01");
  topology.Report(fine_again);

  // node2's copy is reseeded: it is fine again and no longer listed.
  v1::NodeReport healed = ReportOf("node2");
  *healed.add_copies() = healed.copies(0);
  healed.mutable_copies(1)->set_unit("SG01");
  topology.Report(healed);
  status.Clear();
  topology.Describe({}, &status);
  EXPECT_EQ(status.copies_fine(), 4u);
  EXPECT_EQ(listed(status), (std::set<std::string>{"node3/DB02"}));
}

TEST_F(TopologyTest, ACopysNewRoleOrStateIsWrittenAtOnceItsFiguresOnlyEveryTenMinutes) {
  FakeClock clock(absl::Now());
  Topology topology(catalog_.get(), absl::Seconds(10), &clock);  // no write-behind: at once
  Connect(topology, "node1");
  topology.Report(ReportOf("node1"));
  auto stored = [&]() {
    auto copies = catalog_->Copies();
    EXPECT_TRUE(copies.ok()) << copies.status();
    return copies.ok() && copies->size() == 1 ? (*copies)[0].status : v1::CopyStatus();
  };
  EXPECT_EQ(stored().state(), v1::HEALTHY);
  // Only its figures change: not written.
  v1::NodeReport r = ReportOf("node1");
  r.mutable_copies(0)->set_copy_queue(7);
  topology.Report(r);
  EXPECT_EQ(stored().copy_queue(), 0u);
  // Its state changes: written at once, with the figures.
  r.mutable_copies(0)->set_state(v1::FAILED);
  topology.Report(r);
  EXPECT_EQ(stored().state(), v1::FAILED);
  EXPECT_EQ(stored().copy_queue(), 7u);
  // Its role changes: written at once.
  r.mutable_copies(0)->set_role(v1::ACTIVE);
  topology.Report(r);
  EXPECT_EQ(stored().role(), v1::ACTIVE);
  // Unchanged for ten minutes: its figures are refreshed.
  r.mutable_copies(0)->set_copy_queue(9);
  topology.Report(r);
  EXPECT_EQ(stored().copy_queue(), 7u);
  clock.Advance(absl::Minutes(10));
  topology.Report(r);
  EXPECT_EQ(stored().copy_queue(), 9u);
}

TEST_F(TopologyTest, WrittenBehindTheReportsInOneWriteARound) {
  FakeClock clock(absl::Now());
  auto topology = std::make_unique<Topology>(catalog_.get(), absl::Seconds(10), &clock);
  topology->StartWriteBehind(absl::Hours(1));  // only the explicit flushes below
  for (const std::string node : {"node1", "node2"}) {
    Connect(*topology, node);
    topology->Report(ReportOf(node));
  }
  // In memory at once, in the catalog with the next round.
  EXPECT_EQ(topology->CopiesOf("DB02").size(), 2u);
  auto copies = catalog_->Copies();
  ASSERT_TRUE(copies.ok());
  EXPECT_TRUE(copies->empty());
  topology->Flush();
  copies = catalog_->Copies();
  ASSERT_TRUE(copies.ok());
  EXPECT_EQ(copies->size(), 2u);
  // What is pending at the end is written when the topology goes.
  v1::NodeReport moved = ReportOf("node1");
  moved.mutable_copies(0)->set_unit("SG01");
  topology->Report(moved);
  topology.reset();
  Topology loaded(catalog_.get(), absl::Seconds(10), &clock);
  ASSERT_TRUE(loaded.Load().ok());
  EXPECT_EQ(*loaded.Units(), (std::vector<std::string>{"DB02", "SG01"}));
}

}  // namespace
}  // namespace dagvault::coordinator
