// Leader election among coordinators in etcd (issue 18, docs/ha.md), by
// the transaction pattern of etcd's concurrency package: each candidate
// holds an etcd lease and tries to create the leader key with it, comparing
// create_revision == 0; whoever creates it leads until its lease ends. The
// key's create_revision is the leader's epoch: it only grows, and the
// catalog refuses writes from any epoch but the newest
// (Catalog::FenceWrites), so a deposed leader that wakes up cannot write.
//
// The leader counts its own deadline on the monotonic clock: the time it
// sent its last answered keep-alive plus the TTL etcd returned (etcd starts
// counting later, so etcd's expiry comes after it). It renews five times a
// TTL and stops acting a tenth of a TTL before the deadline (Patroni's
// rule: step down before the lease could have run out, not after), which
// is what Leading() answers. A leader that was paused past its deadline
// sees Leading() false the moment it runs again.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/etcd/etcd_client.h"

namespace dagvault::coordinator {

struct LeaderElectionOptions {
  std::string key;    // e.g. "/dagvault/leader"
  std::string value;  // what standbys read: this candidate's address
  absl::Duration ttl = absl::Seconds(5);
};

class LeaderElection {
 public:
  LeaderElection(EtcdClient* client, LeaderElectionOptions options);
  ~LeaderElection();

  // Waits until this candidate leads (returns its epoch) or `stop` is set
  // (Cancelled). While it waits, leader() names whoever leads.
  absl::StatusOr<int64_t> Campaign(const std::atomic<bool>* stop);

  // While leading: renews the lease, and returns when leadership is lost,
  // saying why (the lease expired or could not be renewed before the
  // deadline, or the key is gone or not ours), or OK when `stop` is set.
  absl::Status KeepLeading(const std::atomic<bool>* stop);

  // True only while leading and before the deadline's safety margin.
  bool Leading() const;
  int64_t epoch() const { return epoch_.load(); }

  // The leader's value as last read ("" when none was seen, or when etcd
  // could not be asked: who leads is then unknown).
  std::string leader() const;
  // When leader() is empty because etcd could not be asked: what it said.
  std::string NoLeaderReason() const;
  // Reads who leads now from etcd.
  absl::StatusOr<std::string> ReadLeader();

  // Gives leadership up at once (deletes the key if still ours, ends the
  // lease), so a standby takes over without waiting for the TTL.
  absl::Status Resign();

 private:
  bool TryToLead(absl::Duration sent, int64_t lease, absl::Duration ttl);
  // Campaigning failed on etcd: logged; when etcd did not answer
  // (unavailable, or out of time), who leads is unknown until it does.
  void Unreachable(const absl::Status& why);
  void SetDeadline(absl::Duration deadline);

  EtcdClient* client_;
  LeaderElectionOptions options_;
  std::atomic<int64_t> epoch_{0};  // 0: not leading
  std::atomic<int64_t> lease_{0};
  // Monotonic, in nanoseconds: stop acting at this time.
  std::atomic<int64_t> act_until_ns_{0};
  mutable std::mutex mu_;
  std::string leader_;            // guarded by mu_
  std::string no_leader_reason_;  // guarded by mu_
};

}  // namespace dagvault::coordinator
