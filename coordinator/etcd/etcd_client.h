// A client of etcd's v3 gRPC API (issue 18), generated from etcd's own
// .proto files (proto/CMakeLists.txt); no third-party etcd client.
//
// It speaks to one member at a time and moves to the next when a call
// fails with UNAVAILABLE (the member is down, or has no leader) or runs out
// of its share of the time: a call tries the members in turn until
// `request_timeout` has passed, so one slow or partitioned member costs at
// most a third of it. Every call carries the `hasleader` metadata, so a
// member cut off from the etcd leader answers at once with "no leader"
// instead of serving a stale read or renewing a lease on its own.
//
// A call that failed may still have been applied (the answer was lost).
// Callers only send transactions that compare first (a create compares
// create_revision == 0, an update or delete compares the holder's
// create_revision), so a retried one fails its comparison instead of
// acting twice; they read what is there to tell "mine after all" from
// "someone else's".
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "dagvault/v1/admin.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace dagvault::coordinator {

// The end of the key range holding every key that starts with `prefix`
// (etcd's range_end convention: the prefix with its last byte plus one).
std::string PrefixRangeEnd(const std::string& prefix);

// The prefix every key of a deployment starts with: `prefix` ending in
// "/", or "/dagvault/" when empty (EtcdConfig.prefix).
std::string NormalizedEtcdPrefix(const std::string& prefix);

// Adds to `txn` the comparison "key's create_revision == revision" (0: the
// key does not exist), the guard of every create, update and delete.
void CompareCreateRevision(etcdserverpb::TxnRequest& txn, const std::string& key, int64_t revision);

class EtcdClient {
 public:
  // Channels to every endpoint (lazily connected: a member that is down
  // now is tried when its turn comes). InvalidArgument without endpoints or
  // when TLS files cannot be read.
  // Times are real: requests go over a real network, so the client reads
  // RealClock() whatever clock its user keeps.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Connect(
      const dagvault::v1::EtcdConfig& config);

  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request);

  struct Granted {
    int64_t id = 0;
    absl::Duration ttl;
  };
  // A lease of `ttl` (rounded up to whole seconds; etcd may raise it to
  // its minimum).
  absl::StatusOr<Granted> Grant(absl::Duration ttl);
  // OK also when the lease is already gone.
  absl::Status Revoke(int64_t id);

  // One keep-alive on a LeaseKeepAlive stream. The answer is the lease's
  // remaining TTL and the deadline the holder may count on: the monotonic
  // time the request was sent plus that TTL (the member's clock starts
  // later, so the holder's deadline comes first). NotFound when the lease
  // has expired or was revoked.
  struct KeptAlive {
    absl::Duration ttl;
    absl::Duration deadline;  // on RealClock()->Monotonic()
  };
  absl::StatusOr<KeptAlive> KeepAlive(int64_t id);
  // The remaining TTL; NotFound when the lease is gone.
  absl::StatusOr<absl::Duration> TimeToLive(int64_t id);

  // One member's status (tests find the etcd leader with it).
  absl::StatusOr<etcdserverpb::StatusResponse> MemberStatus(size_t endpoint);

  const std::vector<std::string>& endpoints() const { return endpoints_; }
  absl::Duration request_timeout() const { return request_timeout_; }

 private:
  // One channel to a member and its stubs. Replaced whole when the
  // channel is stuck in TRANSIENT_FAILURE: gRPC's pick_first would wait for
  // a DNS re-resolution (tens of seconds) before it dialled a restarted
  // member again.
  struct Connection {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  };
  struct Member {
    std::string address;
    std::shared_ptr<Connection> connection;  // guarded by EtcdClient::mu_
  };

  explicit EtcdClient(absl::Duration request_timeout)
      : clock_(RealClock()), request_timeout_(request_timeout) {}

  std::shared_ptr<Connection> Dial(const std::string& address) const;
  std::shared_ptr<Connection> ConnectionOf(size_t member);
  // After a call on `used` failed as unreachable: a fresh connection if that
  // one has given up for now.
  void Redial(size_t member, const std::shared_ptr<Connection>& used);

  // Runs `call` on the current member, and on the next ones while it fails
  // with UNAVAILABLE or DEADLINE_EXCEEDED, until the request's time is up.
  // The error names the members tried and what each said.
  absl::Status Call(const std::string& what,
                    const std::function<grpc::Status(Connection&, grpc::ClientContext&)>& call);

  Clock* clock_;
  absl::Duration request_timeout_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::vector<std::string> endpoints_;
  std::mutex mu_;
  std::vector<Member> members_;  // the vector is fixed after Connect
  size_t current_ = 0;           // guarded by mu_: the member that answered last
};

}  // namespace dagvault::coordinator
