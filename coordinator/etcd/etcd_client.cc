#include "coordinator/etcd/etcd_client.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/tls.h"

namespace dagvault::coordinator {
namespace {

constexpr absl::Duration kDefaultRequestTimeout = absl::Seconds(5);

// A member's share of one request: a third of it, and at least a second
// (a linearizable call on a healthy cluster takes milliseconds; one that
// takes longer is on a member that cannot reach its leader).
absl::Duration AttemptBudget(absl::Duration request_timeout) {
  return std::max(request_timeout / 3, absl::Seconds(1));
}

bool TryNextMember(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

std::string PrefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key (etcd's "from key" form)
}

std::string NormalizedEtcdPrefix(const std::string& prefix) {
  std::string normalized = prefix.empty() ? "/dagvault/" : prefix;
  if (normalized.back() != '/') normalized += '/';
  return normalized;
}

void CompareCreateRevision(etcdserverpb::TxnRequest& txn, const std::string& key,
                           int64_t revision) {
  etcdserverpb::Compare* c = txn.add_compare();
  c->set_key(key);
  c->set_target(etcdserverpb::Compare::CREATE);
  c->set_result(etcdserverpb::Compare::EQUAL);
  c->set_create_revision(revision);
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Connect(
    const dagvault::v1::EtcdConfig& config) {
  if (config.endpoints().empty()) {
    return absl::InvalidArgumentError(
        "etcd: no endpoints (etcd.endpoints: HOST:PORT of each member)");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (config.ca_file().empty()) {
    logging::Get("coordinator.etcd")
        ->warn(
            "etcd {}: plain text, no TLS (etcd.ca_file is not set): anyone on the network "
            "can read and change the leases; use TLS in production",
            absl::StrJoin(config.endpoints(), ","));
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    auto ca = ReadPemFile(config.ca_file(), "etcd.ca_file");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (!config.cert_file().empty() || !config.key_file().empty()) {
      auto cert = ReadPemFile(config.cert_file(), "etcd.cert_file");
      if (!cert.ok()) return cert.status();
      auto key = ReadPemFile(config.key_file(), "etcd.key_file");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  const absl::Duration timeout = config.request_timeout_ms() > 0
                                     ? absl::Milliseconds(config.request_timeout_ms())
                                     : kDefaultRequestTimeout;
  std::unique_ptr<EtcdClient> client(new EtcdClient(timeout));
  for (const std::string& endpoint : config.endpoints()) {
    if (endpoint.empty() || endpoint.find(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("etcd.endpoints: \"", endpoint, "\" is not HOST:PORT"));
    }
    client->endpoints_.push_back(endpoint);
    client->members_.push_back(Member{endpoint, nullptr});
  }
  client->credentials_ = credentials;
  for (size_t i = 0; i < client->members_.size(); ++i) {
    client->members_[i].connection = client->Dial(client->members_[i].address);
  }
  return client;
}

std::shared_ptr<EtcdClient::Connection> EtcdClient::Dial(const std::string& address) const {
  grpc::ChannelArguments args;
  // A member that went away during a call is noticed within seconds, not
  // at the next TCP timeout. Only during calls: etcd's server refuses
  // pings on an idle connection (--grpc-keepalive-min-time, no
  // PermitWithoutStream).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Its own connection, not one shared with an earlier channel to the
  // same member (which is what Redial replaces).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto c = std::make_shared<Connection>();
  c->channel = grpc::CreateCustomChannel(address, credentials_, args);
  c->kv = etcdserverpb::KV::NewStub(c->channel);
  c->lease = etcdserverpb::Lease::NewStub(c->channel);
  c->maintenance = etcdserverpb::Maintenance::NewStub(c->channel);
  return c;
}

std::shared_ptr<EtcdClient::Connection> EtcdClient::ConnectionOf(size_t member) {
  std::lock_guard<std::mutex> l(mu_);
  return members_[member].connection;
}

void EtcdClient::Redial(size_t member, const std::shared_ptr<Connection>& used) {
  if (used->channel->GetState(false) != GRPC_CHANNEL_TRANSIENT_FAILURE) return;
  auto fresh = Dial(members_[member].address);
  std::lock_guard<std::mutex> l(mu_);
  if (members_[member].connection == used) members_[member].connection = std::move(fresh);
}

absl::Status EtcdClient::Call(
    const std::string& what,
    const std::function<grpc::Status(Connection&, grpc::ClientContext&)>& call) {
  const absl::Duration start = clock_->Monotonic();
  const absl::Duration end = start + request_timeout_;
  size_t index;
  {
    std::lock_guard<std::mutex> l(mu_);
    index = current_;
  }
  // Each member's last answer, in the configured order: the error names
  // every member once however many rounds were tried.
  std::vector<std::string> last_answer(members_.size());
  absl::Duration pause = absl::Milliseconds(50);
  for (size_t attempt = 0;; ++attempt) {
    const absl::Duration left = end - clock_->Monotonic();
    if (left <= absl::ZeroDuration() && attempt > 0) break;
    const size_t member = index % members_.size();
    const std::string& address = members_[member].address;
    std::shared_ptr<Connection> connection = ConnectionOf(member);
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + std::min(std::max(left, absl::Milliseconds(100)),
                                                  AttemptBudget(request_timeout_))));
    context.AddMetadata("hasleader", "true");
    const grpc::Status status = call(*connection, context);
    if (status.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      current_ = member;
      return absl::OkStatus();
    }
    last_answer[member] = absl::StrCat(address, ": ", status.error_message());
    if (!TryNextMember(status.error_code())) {
      return absl::Status(
          static_cast<absl::StatusCode>(status.error_code()),
          absl::StrCat("etcd ", what, " at ", address, ": ", status.error_message()));
    }
    Redial(member, connection);
    ++index;
    // Once round every member, then pause before going round again (a
    // cluster electing a leader answers "no leader" for about a second).
    if ((attempt + 1) % members_.size() == 0) {
      if (clock_->Monotonic() + pause >= end) break;
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(pause));
      pause = std::min(pause * 2, absl::Milliseconds(500));
    }
  }
  std::vector<std::string> tried;
  for (std::string& a : last_answer) {
    if (!a.empty()) tried.push_back(std::move(a));
  }
  return absl::UnavailableError(absl::StrCat("etcd ", what, ": no member answered within ",
                                             absl::FormatDuration(request_timeout_), " (",
                                             absl::StrJoin(tried, "; "), ")"));
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::Range(
    const etcdserverpb::RangeRequest& request) {
  etcdserverpb::RangeResponse response;
  absl::Status s = Call("Range", [&](Connection& m, grpc::ClientContext& c) {
    response.Clear();
    return m.kv->Range(&c, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& request) {
  etcdserverpb::TxnResponse response;
  absl::Status s = Call("Txn", [&](Connection& m, grpc::ClientContext& c) {
    response.Clear();
    return m.kv->Txn(&c, request, &response);
  });
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<EtcdClient::Granted> EtcdClient::Grant(absl::Duration ttl) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(ttl)))));
  etcdserverpb::LeaseGrantResponse response;
  absl::Status s = Call("LeaseGrant", [&](Connection& m, grpc::ClientContext& c) {
    response.Clear();
    return m.lease->LeaseGrant(&c, request, &response);
  });
  if (!s.ok()) return s;
  if (!response.error().empty()) {
    return absl::UnavailableError(absl::StrCat("etcd LeaseGrant: ", response.error()));
  }
  return Granted{response.id(), absl::Seconds(response.ttl())};
}

absl::Status EtcdClient::Revoke(int64_t id) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(id);
  etcdserverpb::LeaseRevokeResponse response;
  absl::Status s = Call("LeaseRevoke", [&](Connection& m, grpc::ClientContext& c) {
    return m.lease->LeaseRevoke(&c, request, &response);
  });
  // "requested lease not found": gone already, which is what was asked.
  if (absl::IsNotFound(s)) return absl::OkStatus();
  return s;
}

absl::StatusOr<EtcdClient::KeptAlive> EtcdClient::KeepAlive(int64_t id) {
  etcdserverpb::LeaseKeepAliveResponse response;
  absl::Duration sent;
  absl::Status s = Call("LeaseKeepAlive", [&](Connection& m, grpc::ClientContext& c) {
    response.Clear();
    sent = clock_->Monotonic();
    auto stream = m.lease->LeaseKeepAlive(&c);
    etcdserverpb::LeaseKeepAliveRequest request;
    request.set_id(id);
    if (stream->Write(request)) {
      stream->WritesDone();
      if (!stream->Read(&response)) response.Clear();
    }
    grpc::Status status = stream->Finish();
    if (status.ok() && response.id() == 0 && response.ttl() == 0) {
      // The stream closed without an answer.
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the keep-alive stream closed unanswered");
    }
    return status;
  });
  if (!s.ok()) return s;
  if (response.ttl() <= 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd lease ", absl::Hex(id), " has expired or was revoked"));
  }
  const absl::Duration ttl = absl::Seconds(response.ttl());
  return KeptAlive{ttl, sent + ttl};
}

absl::StatusOr<absl::Duration> EtcdClient::TimeToLive(int64_t id) {
  etcdserverpb::LeaseTimeToLiveRequest request;
  request.set_id(id);
  etcdserverpb::LeaseTimeToLiveResponse response;
  absl::Status s = Call("LeaseTimeToLive", [&](Connection& m, grpc::ClientContext& c) {
    response.Clear();
    return m.lease->LeaseTimeToLive(&c, request, &response);
  });
  if (!s.ok()) return s;
  if (response.ttl() < 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd lease ", absl::Hex(id), " has expired or was revoked"));
  }
  return absl::Seconds(response.ttl());
}

absl::StatusOr<etcdserverpb::StatusResponse> EtcdClient::MemberStatus(size_t endpoint) {
  if (endpoint >= members_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("no etcd endpoint ", endpoint));
  }
  std::shared_ptr<Connection> m = ConnectionOf(endpoint);
  const std::string& address = members_[endpoint].address;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + AttemptBudget(request_timeout_)));
  etcdserverpb::StatusResponse response;
  grpc::Status status = m->maintenance->Status(&context, etcdserverpb::StatusRequest(), &response);
  if (!status.ok()) {
    Redial(endpoint, m);
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                        absl::StrCat("etcd Status at ", address, ": ", status.error_message()));
  }
  return response;
}

}  // namespace dagvault::coordinator
