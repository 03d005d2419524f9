#include "coordinator/server/topology.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"

namespace dagvault::coordinator {
namespace {

namespace v1 = dagvault::v1;

// Queues and report times change with every report and only a restarted
// coordinator shows them from the catalog (until the agents' first
// reports), so they are refreshed seldom: at 10,000 nodes, once a minute
// was 5,000 copy rows a second.
constexpr absl::Duration kPersistAtLeastEvery = absl::Minutes(10);

// A copy `status` counts as fine when its node reports.
bool IsHealthy(const StoredCopies::Entry& c) {
  return c.state == dagvault::v1::HEALTHY || c.state == dagvault::v1::MOUNTED;
}

}  // namespace

absl::Status Topology::Load() {
  auto nodes = catalog_->Nodes();
  if (!nodes.ok()) return nodes.status();
  auto copies = catalog_->Copies();
  if (!copies.ok()) return copies.status();
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& n : *nodes) nodes_[n.name].record = n;
  std::map<std::string, CopyList> copies_of_node;
  for (const auto& c : *copies) {
    NodeState& n = nodes_[c.status.node()];
    n.record.name = c.status.node();
    *copies_of_node[c.status.node()].Add() = c.status;
    n.copies_reported = std::max(n.copies_reported, c.reported);
  }
  for (auto& [name, copies_there] : copies_of_node) {
    SetCopiesLocked(*nodes_.find(name), copies_there);
  }
  for (auto& [name, n] : nodes_) n.persisted = clock_->Now();
  return absl::OkStatus();
}

void Topology::Connected(const v1::Register& hello, const std::shared_ptr<AgentChannel>& channel) {
  const absl::Time now = clock_->Now();
  {
    std::lock_guard<std::mutex> l(mu_);
    NodeState& n = nodes_[hello.node()];
    n.record.name = hello.node();
    n.record.agent_version = hello.agent_version();
    n.record.registered = now;
    // Reporting again from its first report, not before: until then its
    // copies are as old as the last one.
    n.channel = channel;
    Catalog::NodeSnapshot& pending = pending_[hello.node()];
    pending.record = n.record;
  }
  if (!write_behind_.joinable()) Flush();
}

void Topology::Disconnected(const std::string& node, const std::shared_ptr<AgentChannel>& channel) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node);
  if (it != nodes_.end() && it->second.channel == channel) it->second.channel.reset();
}

void Topology::Report(const v1::NodeReport& report) {
  v1::NodeReport taken = report;
  Report(&taken);
}

void Topology::Report(v1::NodeReport* report_to_take) {
  const v1::NodeReport& report = *report_to_take;
  const absl::Time now = clock_->Now();
  const absl::Duration heard = clock_->Monotonic();
  bool persist = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    Node& node = *nodes_.try_emplace(report.node()).first;
    NodeState& n = node.second;
    n.record.name = report.node();
    n.record.last_report = now;
    n.heard = heard;
    if (report.copies_size() == 0 && !report.writer_error().empty()) {
      n.service_error = report.writer_error();
      return;  // nothing new to write: the last copies stand, marked down
    }
    n.service_error.clear();
    CopyList* copies = report_to_take->mutable_copies();
    const bool reshaped = SetCopiesLocked(node, *copies);
    n.copies_reported = now;
    if (reshaped || n.persist_again || now - n.persisted >= kPersistAtLeastEvery ||
        now < n.persisted) {
      persist = true;
      n.persist_again = false;
      n.persisted = now;
      Catalog::NodeSnapshot& pending = pending_[report.node()];
      pending.record = n.record;
      pending.copies.emplace(std::make_move_iterator(copies->begin()),
                             std::make_move_iterator(copies->end()));
      pending.reported = now;
    }
    // Freed, not cleared: a cleared list keeps its messages for the next
    // report to parse into, which at 10,000 agents was 8 KB per agent
    // (heap profile, docs/ha.md), and parsing into fresh ones costs little.
    CopyList().Swap(copies);
  }
  if (persist && !write_behind_.joinable()) Flush();
}

void Topology::Flush() {
  std::map<std::string, Catalog::NodeSnapshot> batch;
  {
    std::lock_guard<std::mutex> l(mu_);
    batch.swap(pending_);
  }
  if (batch.empty()) return;
  std::vector<Catalog::NodeSnapshot> nodes;
  nodes.reserve(batch.size());
  for (auto& [name, snapshot] : batch) nodes.push_back(std::move(snapshot));
  absl::Status s = catalog_->PutTopology(nodes);
  if (s.ok()) return;
  // The catalog's nodes and copies are only what a restarted coordinator
  // shows until agents report again: no decision rests on them, so this is
  // not a fail-stop. The nodes are written again with their next report.
  logging::Get("coordinator")
      ->error("catalog: {} nodes and their copies: {}; written again with their next report",
              nodes.size(), s);
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& n : nodes) nodes_[n.record.name].persist_again = true;
}

void Topology::StartWriteBehind(absl::Duration every) {
  write_behind_ = std::thread([this, every] {
    std::unique_lock<std::mutex> l(write_behind_mu_);
    while (!stopping_) {
      write_behind_cv_.wait_for(l, absl::ToChronoMilliseconds(every), [&] { return stopping_; });
      l.unlock();
      Flush();
      l.lock();
    }
  });
}

Topology::~Topology() {
  if (write_behind_.joinable()) {
    {
      std::lock_guard<std::mutex> l(write_behind_mu_);
      stopping_ = true;
    }
    write_behind_cv_.notify_all();
    write_behind_.join();
  }
  Flush();
}

bool Topology::ReportingLocked(const NodeState& n, absl::Duration now) const {
  return n.channel != nullptr && now - n.heard <= node_timeout_ && n.service_error.empty();
}

std::string Topology::DownReasonLocked(const NodeState& n, absl::Duration now) const {
  if (!n.service_error.empty() && n.channel != nullptr) {
    return absl::StrCat("its agent reports but the mail server does not answer (", n.service_error,
                        "): ServiceDown");
  }
  if (n.heard == -absl::InfiniteDuration()) {
    return n.record.last_report == absl::InfinitePast()
               ? "its agent has not reported since the coordinator started"
               : absl::StrCat(
                     "its agent has not reported since the coordinator started (last "
                     "report before that ",
                     FormatUtc(n.record.last_report), "): ServiceDown");
  }
  std::string why =
      n.channel == nullptr ? "its agent is not connected" : "its agent stopped reporting";
  return absl::StrCat(why, "; last report ", FormatUtc(n.record.last_report), " (",
                      absl::FormatDuration(absl::Trunc(now - n.heard, absl::Seconds(1))),
                      " ago): ServiceDown");
}

bool Topology::Reporting(const std::string& node) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node);
  return it != nodes_.end() && ReportingLocked(it->second, clock_->Monotonic());
}

std::shared_ptr<AgentChannel> Topology::ChannelOf(const std::string& node) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : it->second.channel;
}

absl::Time Topology::LastReport(const std::string& node) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = nodes_.find(node);
  return it == nodes_.end() ? absl::InfinitePast() : it->second.record.last_report;
}

bool Topology::SetCopiesLocked(Node& node, const CopyList& copies) {
  NodeState& n = node.second;
  // A node reports the same units over and over: the index changes only
  // when they do, and the catalog is written at once only when a copy's
  // role or state does.
  bool same_roles = true;
  const bool same_units =
      std::equal(n.copies.begin(), n.copies.end(), copies.begin(), copies.end(),
                 [&same_roles](const StoredCopies::Entry& a, const v1::CopyStatus& b) {
                   same_roles = same_roles && a.role == b.role() && a.state == b.state();
                   return *a.unit == b.unit();
                 });
  std::vector<const std::string*> units;
  units.reserve(static_cast<size_t>(copies.size()));
  if (same_units) {
    for (const auto& c : n.copies) units.push_back(c.unit);
  } else {
    units_.reset();
    // Each name once: a unit the last report named twice has two entries
    // pointing at one name, which erasing its index entry frees.
    std::vector<const std::string*> old_units;
    old_units.reserve(n.copies.size());
    for (const auto& c : n.copies) old_units.push_back(c.unit);
    std::sort(old_units.begin(), old_units.end(), std::less<const std::string*>());
    old_units.erase(std::unique(old_units.begin(), old_units.end()), old_units.end());
    for (const std::string* unit : old_units) {
      auto it = nodes_of_unit_.find(*unit);
      if (it == nodes_of_unit_.end()) continue;
      it->second.erase(&node);
      if (it->second.empty()) nodes_of_unit_.erase(it);
    }
    // The old entries' unit names may be gone now: only the new ones are
    // read from here on.
    for (const auto& c : copies) {
      auto it = nodes_of_unit_.try_emplace(c.unit()).first;
      it->second.insert(&node);
      units.push_back(&it->first);
    }
  }
  n.copies.Assign(copies, units);
  n.healthy_copies = static_cast<int>(std::count_if(n.copies.begin(), n.copies.end(), IsHealthy));
  return !same_units || !same_roles;
}

bool Topology::UnitKnown(const std::string& unit) const {
  std::lock_guard<std::mutex> l(mu_);
  return nodes_of_unit_.count(unit) != 0;
}

std::shared_ptr<const std::vector<std::string>> Topology::Units() const {
  std::lock_guard<std::mutex> l(mu_);
  if (!units_) {
    auto units = std::make_shared<std::vector<std::string>>();
    units->reserve(nodes_of_unit_.size());
    for (const auto& [unit, nodes] : nodes_of_unit_) units->push_back(unit);
    units_ = std::move(units);
  }
  return units_;
}

CopyView Topology::ViewLocked(const NodeState& n, const StoredCopies::Entry& c,
                              absl::Duration now) const {
  CopyView v;
  n.copies.DecodeInto(c, &v.status);
  v.node_reporting = ReportingLocked(n, now);
  if (!v.node_reporting) v.node_down_reason = DownReasonLocked(n, now);
  return v;
}

std::vector<CopyView> Topology::CopiesOf(const std::string& unit) const {
  const absl::Duration now = clock_->Monotonic();
  std::lock_guard<std::mutex> l(mu_);
  std::vector<CopyView> out;
  auto nodes = nodes_of_unit_.find(unit);
  if (nodes == nodes_of_unit_.end()) return out;
  for (const Node* node : nodes->second) {
    const NodeState& n = node->second;
    for (const auto& c : n.copies) {
      if (c.unit == &nodes->first) out.push_back(ViewLocked(n, c, now));
    }
  }
  return out;
}

std::map<std::string, std::vector<CopyView>> Topology::AllCopies() const {
  const absl::Duration now = clock_->Monotonic();
  std::lock_guard<std::mutex> l(mu_);
  std::map<std::string, std::vector<CopyView>> out;
  for (const auto& [name, n] : nodes_) {
    for (const auto& c : n.copies) out[*c.unit].push_back(ViewLocked(n, c, now));
  }
  return out;
}

void Topology::Describe(const v1::ClusterStatusRequest& request, v1::ClusterStatus* status) const {
  const absl::Duration now = clock_->Monotonic();
  std::lock_guard<std::mutex> l(mu_);
  const bool every_node = request.all_nodes() || request.all_copies();
  status->set_nodes_total(static_cast<uint32_t>(nodes_.size()));
  for (const auto& [name, n] : nodes_) {
    const bool reporting = ReportingLocked(n, now);
    if (reporting) status->set_nodes_reporting(status->nodes_reporting() + 1);
    if (every_node || !reporting) {
      v1::NodeInfo* info = status->add_nodes();
      info->set_node(name);
      info->set_reporting(reporting);
      if (n.record.last_report != absl::InfinitePast()) {
        info->set_last_report_us(absl::ToUnixMicros(n.record.last_report));
      }
      info->set_agent_version(n.record.agent_version);
      if (!reporting) info->set_down_reason(DownReasonLocked(n, now));
    }
    status->set_copies_total(status->copies_total() + static_cast<uint32_t>(n.copies.size()));
    if (reporting)
      status->set_copies_fine(status->copies_fine() + static_cast<uint32_t>(n.healthy_copies));
    // Only copies that are not fine are listed unless asked for: at 10,000
    // nodes, most have none, and their copies are not walked.
    if (!request.all_copies() && request.unit().empty() && reporting &&
        static_cast<size_t>(n.healthy_copies) == n.copies.size()) {
      continue;
    }
    for (const auto& c : n.copies) {
      const bool fine = reporting && IsHealthy(c);
      if (!request.all_copies() && *c.unit != request.unit() && fine) continue;
      if (!request.unit().empty() && *c.unit != request.unit()) continue;
      v1::CopyInfo* copy = status->add_copies();
      n.copies.DecodeInto(c, copy->mutable_status());
      copy->set_node_reporting(reporting);
      if (n.copies_reported != absl::InfinitePast()) {
        copy->set_reported_us(absl::ToUnixMicros(n.copies_reported));
      }
    }
  }
}

}  // namespace dagvault::coordinator
