// What the coordinator knows of the deployment (DESIGN.md §2): the nodes
// whose agents are connected, and every copy with its state and queues as
// its node last reported it. Kept in memory, written to the catalog when a
// copy's role or state changes (and every ten minutes otherwise), so that
// 10,000 agents reporting every 5 s do not mean 2,000 writes a second.
//
// A node that has not reported for the node timeout is ServiceDown: its
// copies keep their last report for the operator, but do not qualify as
// backup sources.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "coordinator/catalog/catalog.h"
#include "coordinator/selection/source_selection.h"
#include "coordinator/server/stored_copies.h"
#include "dagvault/v1/admin.pb.h"
#include "dagvault/v1/agent.pb.h"

namespace dagvault::coordinator {

// One connected agent's stream, for the coordinator's messages to it.
class AgentChannel {
 public:
  virtual ~AgentChannel() = default;
  // False when the stream is gone.
  virtual bool Send(const dagvault::v1::CoordinatorMessage& message) = 0;
};

class Topology {
 public:
  using CopyList = google::protobuf::RepeatedPtrField<dagvault::v1::CopyStatus>;

  // Whether a node reports is decided on `clock`'s monotonic reading; its
  // wall time is only shown and written down.
  Topology(Catalog* catalog, absl::Duration node_timeout, Clock* clock = RealClock())
      : catalog_(catalog), node_timeout_(node_timeout), clock_(clock) {}
  // Writes what is still pending.
  ~Topology();

  // Nodes and copies go to the catalog from a thread of their own, in one
  // transaction every `every`, instead of from the report that changed
  // them: at 10,000 nodes, two commits per report serialised every agent's
  // handling on the catalog. Without it (tests), each change is written at
  // once. A crash loses at most `every` of changes, which the agents'
  // next reports bring back (the catalog's copies are only what a
  // restarted coordinator shows until then).
  void StartWriteBehind(absl::Duration every);
  // Writes the pending changes now.
  void Flush();

  // Loads the nodes and copies the catalog remembers (all silent until
  // their agents report again).
  absl::Status Load();

  void Connected(const dagvault::v1::Register& hello, const std::shared_ptr<AgentChannel>& channel);
  // Only if `channel` is still the node's (a reconnect may have replaced it).
  void Disconnected(const std::string& node, const std::shared_ptr<AgentChannel>& channel);
  void Report(const dagvault::v1::NodeReport& report);
  // The same, taking the copies out of *report (its copies field is left
  // empty): the agents' streams hand over what they parsed, and no copy is
  // made of 30 copies 2,000 times a second.
  void Report(dagvault::v1::NodeReport* report);

  // Reporting: connected and heard from within the node timeout.
  bool Reporting(const std::string& node) const;
  std::shared_ptr<AgentChannel> ChannelOf(const std::string& node) const;
  absl::Time LastReport(const std::string& node) const;

  bool UnitKnown(const std::string& unit) const;
  // Every unit some node reports a copy of, in order. The same object
  // until the set of units changes: `status` asks at every call, and
  // reuses what it derived from it while the pointer is the same.
  std::shared_ptr<const std::vector<std::string>> Units() const;
  // Every copy of `unit`, for source selection.
  std::vector<CopyView> CopiesOf(const std::string& unit) const;
  // Every unit's copies, for selecting sources for all units at once.
  std::map<std::string, std::vector<CopyView>> AllCopies() const;

  // The nodes and the copies `request` asks for, and counts of all
  // (proto/dagvault/v1/admin.proto).
  void Describe(const dagvault::v1::ClusterStatusRequest& request,
                dagvault::v1::ClusterStatus* status) const;

 private:
  struct NodeState {
    NodeRecord record;
    std::shared_ptr<AgentChannel> channel;
    // In their wire form (stored_copies.h): at 10,000 agents, parsed ones
    // were the largest part of the leader's memory that was its own.
    StoredCopies copies;
    // How many of `copies` are Healthy or Mounted: `status` counts every
    // node's fine copies and lists only the others.
    int healthy_copies = 0;
    absl::Time copies_reported = absl::InfinitePast();
    // Monotonic: when its last report arrived (-inf: not since start).
    absl::Duration heard = -absl::InfiniteDuration();
    // The agent reports but its mailstored does not answer: the copies keep
    // their last state for the operator and do not qualify.
    std::string service_error;
    // The last write of its copies to the catalog failed: the next report
    // writes them whatever changed.
    bool persist_again = false;
    absl::Time persisted = absl::InfinitePast();
  };
  // nodes_ never drops a node, so pointers to its elements stay valid.
  using Node = std::map<std::string, NodeState>::value_type;
  struct ByNodeName {
    bool operator()(const Node* a, const Node* b) const { return a->first < b->first; }
  };

  // Stores the node's copies (`copies` itself is left as it is) and keeps
  // nodes_of_unit_ true. Whether a copy's unit, role or state changed
  // (what is written to the catalog at once).
  bool SetCopiesLocked(Node& node, const CopyList& copies);
  // `now` is the monotonic reading.
  bool ReportingLocked(const NodeState& n, absl::Duration now) const;
  std::string DownReasonLocked(const NodeState& n, absl::Duration now) const;
  CopyView ViewLocked(const NodeState& n, const StoredCopies::Entry& c, absl::Duration now) const;

  Catalog* catalog_;
  const absl::Duration node_timeout_;
  Clock* const clock_;
  mutable std::mutex mu_;
  std::map<std::string, NodeState> nodes_;
  // Which nodes hold a copy of each unit: CopiesOf reads a unit's few nodes,
  // not every node's copies (100,000 units on 10,000 nodes). Its keys are
  // the unit names the nodes' StoredCopies point to.
  std::map<std::string, std::set<const Node*, ByNodeName>> nodes_of_unit_;
  // Guarded by mu_: the keys of nodes_of_unit_, built when asked for after
  // they changed (null until then).
  mutable std::shared_ptr<const std::vector<std::string>> units_;
  // Guarded by mu_: what the catalog has yet to get, by node.
  std::map<std::string, Catalog::NodeSnapshot> pending_;
  std::mutex write_behind_mu_;
  std::condition_variable write_behind_cv_;
  bool stopping_ = false;  // guarded by write_behind_mu_
  std::thread write_behind_;
};

}  // namespace dagvault::coordinator
