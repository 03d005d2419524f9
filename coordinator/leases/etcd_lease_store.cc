#include "coordinator/leases/etcd_lease_store.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::coordinator {

absl::StatusOr<std::unique_ptr<EtcdLeaseStore>> EtcdLeaseStore::Open(EtcdClient* client,
                                                                     const std::string& prefix,
                                                                     Clock* clock) {
  const std::string normalized = NormalizedEtcdPrefix(prefix);
  std::unique_ptr<EtcdLeaseStore> store(new EtcdLeaseStore(client, normalized, clock));

  // The token base: written by the first coordinator ever to start on this
  // prefix, read by every later one.
  const std::string key = normalized + "token-base";
  etcdserverpb::TxnRequest txn;
  CompareCreateRevision(txn, key, 0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(absl::StrCat(std::max<int64_t>(1, absl::ToUnixMicros(clock->Now()))));
  txn.add_failure()->mutable_request_range()->set_key(key);
  ASSIGN_OR_RETURN(etcdserverpb::TxnResponse response, client->Txn(txn));
  std::string value = put->value();
  if (!response.succeeded()) {
    const auto& range = response.responses(0).response_range();
    if (range.kvs().empty()) {
      return absl::InternalError(absl::StrCat("etcd: ", key, " vanished while it was read"));
    }
    value = range.kvs(0).value();
  }
  if (!absl::SimpleAtoi(value, &store->token_base_) || store->token_base_ == 0) {
    return absl::DataLossError(absl::StrCat("etcd key ", key, " holds \"", value,
                                            "\", not the deployment's fencing-token base (a "
                                            "number); it was written by something else"));
  }
  return store;
}

absl::StatusOr<EtcdLeaseStore::Held> EtcdLeaseStore::Decode(const mvccpb::KeyValue& kv) const {
  Held held;
  held.create_revision = kv.create_revision();
  held.lease = kv.lease();
  if (!held.value.ParseFromString(kv.value())) {
    return absl::DataLossError(absl::StrCat("etcd key ", kv.key(),
                                            " does not hold a backup-in-progress lease (its value "
                                            "is not an EtcdUnitLease)"));
  }
  return held;
}

absl::StatusOr<std::optional<EtcdLeaseStore::Held>> EtcdLeaseStore::Read(const std::string& unit) {
  etcdserverpb::RangeRequest range;
  range.set_key(KeyOf(unit));
  ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, client_->Range(range));
  if (response.kvs().empty()) return std::optional<Held>();
  ASSIGN_OR_RETURN(Held held, Decode(response.kvs(0)));
  return std::optional<Held>(std::move(held));
}

LeaseRecord EtcdLeaseStore::RecordOf(const Held& held, absl::Time expires) const {
  LeaseRecord r;
  r.unit = held.value.unit();
  r.job = held.value.job();
  r.holder_node = held.value.holder_node();
  r.acquired = absl::FromUnixMicros(held.value.acquired_unix_micros());
  r.expires = expires;
  r.token = token_base_ + static_cast<uint64_t>(held.create_revision);
  return r;
}

std::string EtcdLeaseStore::DescribeHolder(const Held& held) {
  std::string expires = "expiry unknown";
  if (auto ttl = client_->TimeToLive(held.lease); ttl.ok()) {
    expires = absl::StrCat("expires ", FormatUtc(clock_->Now() + *ttl));
  }
  return absl::StrCat("job ", held.value.job(), " on ", held.value.holder_node(),
                      " holds its backup-in-progress lease (since ",
                      FormatUtc(absl::FromUnixMicros(held.value.acquired_unix_micros())), ", ",
                      expires, ")");
}

absl::Status EtcdLeaseStore::DeleteIfStill(const Held& held) {
  etcdserverpb::TxnRequest txn;
  const std::string key = KeyOf(held.value.unit());
  CompareCreateRevision(txn, key, held.create_revision);
  txn.add_success()->mutable_request_delete_range()->set_key(key);
  ASSIGN_OR_RETURN(etcdserverpb::TxnResponse response, client_->Txn(txn));
  (void)response;  // not succeeded: someone else's key now, or gone; either way not ours
  // The etcd lease held only this key; ending it now frees it at once
  // instead of at its TTL. It goes with its TTL anyway if this fails.
  if (absl::Status s = client_->Revoke(held.lease); !s.ok()) {
    logging::Get("coordinator.etcd")
        ->warn("unit {}: ending etcd lease {:x} of job {}: {}", held.value.unit(), held.lease,
               held.value.job(), s.message());
  }
  return absl::OkStatus();
}

absl::StatusOr<LeaseRecord> EtcdLeaseStore::Acquire(const std::string& unit, const std::string& job,
                                                    const std::string& holder_node,
                                                    absl::Duration ttl) {
  ASSIGN_OR_RETURN(EtcdClient::Granted granted, client_->Grant(EtcdTtl(ttl)));
  const absl::Time now = clock_->Now();
  dagvault::v1::EtcdUnitLease value;
  value.set_unit(unit);
  value.set_job(job);
  value.set_holder_node(holder_node);
  value.set_acquired_unix_micros(absl::ToUnixMicros(now));
  const std::string key = KeyOf(unit);

  auto give_up = [&](absl::Status why) {
    (void)client_->Revoke(granted.id);
    return why;
  };
  // Twice at most: when `job` itself holds the unit (a retry of the job on
  // another node), its old key goes first and the new one gets a new
  // create_revision, so the old attempt's token is superseded.
  for (int round = 0; round < 2; ++round) {
    etcdserverpb::TxnRequest txn;
    CompareCreateRevision(txn, key, 0);
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value.SerializeAsString());
    put->set_lease(granted.id);
    txn.add_failure()->mutable_request_range()->set_key(key);
    auto response = client_->Txn(txn);
    if (!response.ok()) {
      return give_up(Annotate(response.status(),
                              absl::StrCat("taking the backup-in-progress lease of unit ", unit)));
    }
    if (response->succeeded()) {
      Held held;
      held.create_revision = response->header().revision();
      held.lease = granted.id;
      held.value = value;
      return RecordOf(held, now + granted.ttl);
    }
    const auto& range = response->responses(0).response_range();
    if (range.kvs().empty()) continue;  // released in between: try again
    auto existing = Decode(range.kvs(0));
    if (!existing.ok()) return give_up(existing.status());
    if (existing->lease == granted.id) {
      // This very request, applied once already and retried after its
      // answer was lost.
      return RecordOf(*existing, now + granted.ttl);
    }
    if (existing->value.job() != job || round > 0) {
      return give_up(absl::FailedPreconditionError(
          absl::StrCat("unit ", unit,
                       absl::StartsWith(existing->value.job(), "restore")  ? " is being restored"
                       : absl::StartsWith(existing->value.job(), "reseed") ? " is being reseeded"
                                                                           : " is being backed up",
                       ": ", DescribeHolder(*existing))));
    }
    if (absl::Status s = DeleteIfStill(*existing); !s.ok()) return give_up(s);
  }
  return give_up(absl::AbortedError(
      absl::StrCat("unit ", unit, ": its backup-in-progress lease changed hands while job ", job,
                   " took it; try again")));
}

absl::Status EtcdLeaseStore::Renew(const std::string& unit, const std::string& job,
                                   absl::Duration ttl) {
  (void)ttl;
  ASSIGN_OR_RETURN(std::optional<Held> held, Read(unit));
  if (!held.has_value() || held->value.job() != job) {
    return absl::NotFoundError(absl::StrCat(
        "job ", job, " no longer holds the backup-in-progress lease of unit ", unit, " (",
        held.has_value() ? absl::StrCat("job ", held->value.job(), " does") : "no job does", ")"));
  }
  auto kept = client_->KeepAlive(held->lease);
  if (absl::IsNotFound(kept.status())) {
    return absl::NotFoundError(absl::StrCat("the backup-in-progress lease of unit ", unit,
                                            " held by job ", job, " has expired in etcd"));
  }
  return kept.status();
}

absl::Status EtcdLeaseStore::Release(const std::string& unit, const std::string& job) {
  ASSIGN_OR_RETURN(std::optional<Held> held, Read(unit));
  if (!held.has_value() || held->value.job() != job) return absl::OkStatus();
  return DeleteIfStill(*held);
}

absl::StatusOr<std::vector<LeaseRecord>> EtcdLeaseStore::List() {
  etcdserverpb::RangeRequest range;
  range.set_key(prefix_ + "leases/");
  range.set_range_end(PrefixRangeEnd(range.key()));
  ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, client_->Range(range));
  std::vector<LeaseRecord> out;
  const absl::Time now = clock_->Now();
  for (const mvccpb::KeyValue& kv : response.kvs()) {
    ASSIGN_OR_RETURN(Held held, Decode(kv));
    auto ttl = client_->TimeToLive(held.lease);
    if (absl::IsNotFound(ttl.status())) continue;  // expiring as we read
    if (!ttl.ok()) return ttl.status();
    out.push_back(RecordOf(held, now + *ttl));
  }
  return out;
}

}  // namespace dagvault::coordinator
