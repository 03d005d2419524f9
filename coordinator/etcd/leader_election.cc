#include "coordinator/etcd/leader_election.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::coordinator {
namespace {

void Nap(absl::Duration d, const std::atomic<bool>* stop) {
  const absl::Duration end = RealClock()->Monotonic() + d;
  while (!*stop && RealClock()->Monotonic() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

LeaderElection::LeaderElection(EtcdClient* client, LeaderElectionOptions options)
    : client_(client), options_(std::move(options)) {}

LeaderElection::~LeaderElection() = default;

bool LeaderElection::Leading() const {
  return epoch_.load() != 0 &&
         absl::ToInt64Nanoseconds(RealClock()->Monotonic()) < act_until_ns_.load();
}

void LeaderElection::SetDeadline(absl::Duration deadline) {
  act_until_ns_.store(absl::ToInt64Nanoseconds(deadline - options_.ttl / 10));
}

std::string LeaderElection::leader() const {
  std::lock_guard<std::mutex> l(mu_);
  return leader_;
}

std::string LeaderElection::NoLeaderReason() const {
  std::lock_guard<std::mutex> l(mu_);
  return no_leader_reason_;
}

void LeaderElection::Unreachable(const absl::Status& why) {
  logging::Get("coordinator.election")->warn("campaigning: {}", why.message());
  // Only silence makes who leads unknown; an answer (a lease not found,
  // say) does not.
  if (!absl::IsUnavailable(why) && !absl::IsDeadlineExceeded(why)) return;
  std::lock_guard<std::mutex> l(mu_);
  leader_.clear();
  no_leader_reason_ = absl::StrCat("etcd does not answer: ", why.message());
}

absl::StatusOr<std::string> LeaderElection::ReadLeader() {
  etcdserverpb::RangeRequest range;
  range.set_key(options_.key);
  ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, client_->Range(range));
  std::string value = response.kvs().empty() ? "" : response.kvs(0).value();
  std::lock_guard<std::mutex> l(mu_);
  leader_ = value;
  no_leader_reason_.clear();
  return value;
}

bool LeaderElection::TryToLead(absl::Duration sent, int64_t lease, absl::Duration ttl) {
  etcdserverpb::TxnRequest txn;
  CompareCreateRevision(txn, options_.key, 0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(options_.key);
  put->set_value(options_.value);
  put->set_lease(lease);
  txn.add_failure()->mutable_request_range()->set_key(options_.key);
  auto response = client_->Txn(txn);
  if (!response.ok()) {
    Unreachable(response.status());
    return false;
  }
  int64_t epoch = 0;
  std::string value = options_.value;
  if (response->succeeded()) {
    epoch = response->header().revision();
  } else {
    const auto& kvs = response->responses(0).response_range().kvs();
    if (kvs.empty()) return false;
    value = kvs[0].value();
    // Ours already: a retried request whose first answer was lost.
    if (kvs[0].lease() == lease) epoch = kvs[0].create_revision();
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    leader_ = value;
    no_leader_reason_.clear();
  }
  if (epoch == 0) return false;
  SetDeadline(sent + ttl);
  epoch_.store(epoch);
  return true;
}

absl::StatusOr<int64_t> LeaderElection::Campaign(const std::atomic<bool>* stop) {
  auto log = logging::Get("coordinator.election");
  std::string last_seen;
  while (!*stop) {
    // A lease of our own, kept alive while we wait.
    if (lease_.load() == 0) {
      const absl::Duration sent = RealClock()->Monotonic();
      auto granted = client_->Grant(options_.ttl);
      if (!granted.ok()) {
        Unreachable(granted.status());
        Nap(options_.ttl / 5, stop);
        continue;
      }
      lease_.store(granted->id);
      if (TryToLead(sent, granted->id, granted->ttl)) return epoch_.load();
    } else {
      auto kept = client_->KeepAlive(lease_.load());
      if (!kept.ok()) {
        if (absl::IsNotFound(kept.status())) {
          lease_.store(0);  // it expired while etcd was away: take another
          log->warn("campaigning: {}", kept.status().message());
        } else {
          Unreachable(kept.status());
        }
        Nap(options_.ttl / 5, stop);
        continue;
      }
      if (TryToLead(kept->deadline - kept->ttl, lease_.load(), kept->ttl)) return epoch_.load();
    }
    if (const std::string now = leader(); now != last_seen) {
      log->info("standing by: {} leads", now.empty() ? std::string("nobody yet") : now);
      last_seen = now;
    }
    // Poll: a leader that died frees the key when its lease ends; a tenth
    // of a TTL between looks bounds how late a standby notices.
    Nap(options_.ttl / 10, stop);
  }
  return absl::CancelledError("stopped while campaigning");
}

absl::Status LeaderElection::KeepLeading(const std::atomic<bool>* stop) {
  const absl::Duration every = options_.ttl / 5;
  while (!*stop) {
    Nap(every, stop);
    if (*stop) break;
    if (!Leading()) {
      epoch_.store(0);
      return absl::AbortedError(
          "the leader lease's deadline passed before it could be renewed (was this process "
          "paused?)");
    }
    auto kept = client_->KeepAlive(lease_.load());
    if (absl::IsNotFound(kept.status())) {
      epoch_.store(0);
      return absl::AbortedError("the leader lease expired in etcd");
    }
    if (!kept.ok()) {
      logging::Get("coordinator.election")
          ->warn("renewing the leader lease: {}; retrying until its deadline",
                 kept.status().message());
      continue;
    }
    // The key must still be ours: same lease, same epoch.
    etcdserverpb::RangeRequest range;
    range.set_key(options_.key);
    auto read = client_->Range(range);
    if (!read.ok()) continue;  // the deadline decides
    if (read->kvs().empty() || read->kvs(0).create_revision() != epoch_.load()) {
      epoch_.store(0);
      return absl::AbortedError(absl::StrCat(
          "the leader key ", options_.key, " is no longer this coordinator's (",
          read->kvs().empty() ? std::string("deleted") : "now " + read->kvs(0).value(), ")"));
    }
    SetDeadline(kept->deadline);
  }
  return absl::OkStatus();
}

absl::Status LeaderElection::Resign() {
  const int64_t epoch = epoch_.exchange(0);
  act_until_ns_.store(0);
  const int64_t lease = lease_.exchange(0);
  if (epoch != 0) {
    etcdserverpb::TxnRequest txn;
    CompareCreateRevision(txn, options_.key, epoch);
    txn.add_success()->mutable_request_delete_range()->set_key(options_.key);
    RETURN_IF_ERROR(client_->Txn(txn).status());
  }
  if (lease != 0) return client_->Revoke(lease);
  return absl::OkStatus();
}

}  // namespace dagvault::coordinator
