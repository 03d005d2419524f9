// Backup-in-progress leases in etcd (issue 18, docs/ha.md).
//
// A unit's lease is the key <prefix>leases/<unit>, attached to an etcd
// lease of its own and created by a transaction that compares
// create_revision == 0, so two coordinators can never both hold it. Its
// create_revision is the fencing token's core: the token is the
// deployment's token base plus it. Renewal keeps the etcd lease alive (on
// a LeaseKeepAlive stream with `hasleader`); release and re-acquisition
// compare the holder's create_revision and never delete by key alone.
//
// The token base is written once per deployment, at the first start on an
// empty prefix: the wall clock in microseconds then. The catalog's tokens
// are never below the wall clock in microseconds either
// (SqliteCatalog::AcquireLease), so a deployment that moves its leases
// from the catalog to etcd, or onto a new etcd cluster, keeps issuing
// tokens above every token mailstored has seen (revisions grow by far less
// than a million a second).
//
// Expiry: the coordinator still decides on its own monotonic clock when a
// job has stopped reporting (JobManager); etcd lets the key go when the
// keep-alives stop. The etcd lease is granted a third longer than the
// coordinator's period, so it outlives the coordinator's own deadline
// (renewals are written once a third of a period, JobManager::RenewLocked)
// and a live coordinator always releases first. A coordinator that died
// leaves the key for at most that TTL, plus up to one more TTL when the
// etcd leader changes meanwhile (etcd gives every lease its full TTL again
// on a new leader): docs/ha.md.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "coordinator/etcd/etcd_client.h"
#include "coordinator/leases/lease_store.h"
#include "dagvault/v1/admin.pb.h"

namespace dagvault::coordinator {

class EtcdLeaseStore : public LeaseStore {
 public:
  // Reads the deployment's token base under `prefix` (writing it the first
  // time). `clock` gives the wall times shown to people.
  static absl::StatusOr<std::unique_ptr<EtcdLeaseStore>> Open(EtcdClient* client,
                                                              const std::string& prefix,
                                                              Clock* clock);

  absl::StatusOr<LeaseRecord> Acquire(const std::string& unit, const std::string& job,
                                      const std::string& holder_node, absl::Duration ttl) override;
  // Keeps the unit's etcd lease alive (its TTL was fixed when it was
  // acquired; `ttl` is not used). NotFound when `job` no longer holds the
  // unit or its etcd lease has expired.
  absl::Status Renew(const std::string& unit, const std::string& job, absl::Duration ttl) override;
  absl::Status Release(const std::string& unit, const std::string& job) override;
  absl::StatusOr<std::vector<LeaseRecord>> List() override;

  uint64_t token_base() const { return token_base_; }
  // The etcd TTL of a lease the coordinator keeps for `ttl`.
  static absl::Duration EtcdTtl(absl::Duration ttl) { return ttl + ttl / 3; }

 private:
  struct Held {
    int64_t create_revision = 0;
    int64_t lease = 0;
    dagvault::v1::EtcdUnitLease value;
  };

  EtcdLeaseStore(EtcdClient* client, std::string prefix, Clock* clock)
      : client_(client), prefix_(std::move(prefix)), clock_(clock) {}

  std::string KeyOf(const std::string& unit) const { return prefix_ + "leases/" + unit; }
  absl::StatusOr<Held> Decode(const mvccpb::KeyValue& kv) const;
  // The unit's lease as etcd has it now; nullopt when none.
  absl::StatusOr<std::optional<Held>> Read(const std::string& unit);
  LeaseRecord RecordOf(const Held& held, absl::Time expires) const;
  // "job J on N holds its backup-in-progress lease (since T, expires T2)".
  std::string DescribeHolder(const Held& held);
  // Deletes the key if it still has `held`'s create_revision, and ends its
  // etcd lease.
  absl::Status DeleteIfStill(const Held& held);

  EtcdClient* client_;
  std::string prefix_;
  Clock* clock_;
  uint64_t token_base_ = 0;
};

}  // namespace dagvault::coordinator
