// Backup-in-progress leases (DESIGN.md §5, §8), behind a seam: today the
// catalog keeps them (CatalogLeaseStore); an etcd-backed store can take its
// place for a highly available coordinator.
//
// A lease names the unit, the job that holds it and the node it runs on,
// and carries the unit's fencing token: a number greater than that of
// every earlier lease of the unit. Every assignment carries it to the
// agent and the writer, and mailstored refuses a token lower than the
// highest it has seen for the unit, so an agent acting on a superseded
// assignment can never start a writer session.
//
// Expiry is the holder's business: the coordinator decides when a lease
// has run out on its own monotonic clock (JobManager). The store's copy of
// the expiry is a wall time for people, and for a coordinator that
// restarts (which gives every lease one more period).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/catalog/catalog.h"

namespace dagvault::coordinator {

class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  // Takes the unit's lease for `job` (again, if it holds it: with a new
  // token). FailedPrecondition naming the holder when another job holds it.
  virtual absl::StatusOr<LeaseRecord> Acquire(const std::string& unit, const std::string& job,
                                              const std::string& holder_node,
                                              absl::Duration ttl) = 0;
  // NotFound when `job` no longer holds the unit's lease.
  virtual absl::Status Renew(const std::string& unit, const std::string& job,
                             absl::Duration ttl) = 0;
  // Releases it if `job` holds it; otherwise does nothing.
  virtual absl::Status Release(const std::string& unit, const std::string& job) = 0;
  virtual absl::StatusOr<std::vector<LeaseRecord>> List() = 0;
};

// Leases in the coordinator's catalog (one table row per unit, and the
// unit's last token in another, written in one transaction).
class CatalogLeaseStore : public LeaseStore {
 public:
  CatalogLeaseStore(Catalog* catalog, Clock* clock) : catalog_(catalog), clock_(clock) {}
  absl::StatusOr<LeaseRecord> Acquire(const std::string& unit, const std::string& job,
                                      const std::string& holder_node, absl::Duration ttl) override {
    return catalog_->AcquireLease(unit, job, holder_node, clock_->Now(), ttl);
  }
  absl::Status Renew(const std::string& unit, const std::string& job, absl::Duration ttl) override {
    return catalog_->RenewLease(unit, job, clock_->Now() + ttl);
  }
  absl::Status Release(const std::string& unit, const std::string& job) override {
    return catalog_->ReleaseLease(unit, job);
  }
  absl::StatusOr<std::vector<LeaseRecord>> List() override { return catalog_->Leases(); }

 private:
  Catalog* catalog_;
  Clock* clock_;
};

}  // namespace dagvault::coordinator
