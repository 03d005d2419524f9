#include "mailstore/server/peers.h"

#include <grpcpp/create_channel.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace dagvault::mailstore {

namespace {

// Every node this one dials for replication, itself included, and where.
std::map<std::string, std::string> ReplicationAddresses(const NodeConfig& config) {
  std::map<std::string, std::string> addresses;
  addresses[config.node()] = config.proto.replication_listen();
  for (const auto& p : config.proto.peers()) addresses[p.node()] = p.replication_address();
  return addresses;
}

}  // namespace

absl::StatusOr<Peers::Credentials> Peers::MakeCredentials(const NodeConfig& config) {
  Credentials out;
  if (config.proto.insecure_dev()) {
    // Plain text checks no one: one set of credentials, one warning.
    ASSIGN_OR_RETURN(auto plain, MakeChannelCredentials(
                                     {}, true, absl::StrCat("replication from ", config.node()),
                                     ExpectedPeer{.role = kRoleNode}));
    for (const auto& [node, address] : ReplicationAddresses(config)) out[node] = plain;
    return out;
  }
  for (const auto& [node, address] : ReplicationAddresses(config)) {
    ASSIGN_OR_RETURN(out[node], MakeChannelCredentials(
                                    config.proto.replication_tls(), config.proto.insecure_dev(),
                                    absl::StrCat("replication from ", config.node(), " to ", node),
                                    ExpectedPeer{.role = kRoleNode, .common_name = node}));
  }
  return out;
}

Peers::Peers(const NodeConfig& config, Credentials credentials) {
  addresses_ = ReplicationAddresses(config);
  for (const auto& [node, address] : addresses_) {
    auto it = credentials.find(node);
    if (it == credentials.end() || it->second == nullptr) continue;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    // A peer that was down is retried within about a second, not after
    // gRPC's default backoff of up to two minutes: failover and seeding
    // wait on it. (The minimum backoff is left alone: gRPC also uses it as
    // the connect timeout, and a loaded node needs more than 100 ms.)
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    auto channel = grpc::CreateCustomChannel(address, it->second, args);
    stubs_[node] = dagvault::v1::Replication::NewStub(channel);
  }
}

absl::StatusOr<dagvault::v1::Replication::Stub*> Peers::Replication(const std::string& node) {
  auto it = stubs_.find(node);
  if (it == stubs_.end()) {
    return absl::NotFoundError(absl::StrCat("no peer named ", node, " in the configuration"));
  }
  return it->second.get();
}

std::unique_ptr<grpc::ClientContext> Peers::Context(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

std::unique_ptr<grpc::ClientContext> Peers::PatientContext(absl::Duration timeout) {
  auto context = Context(timeout);
  context->set_wait_for_ready(true);
  return context;
}

absl::StatusOr<dagvault::v1::CopyStatus> Peers::CopyStatus(const std::string& node,
                                                           const std::string& unit,
                                                           absl::Duration timeout) {
  auto stub = Replication(node);
  if (!stub.ok()) return stub.status();
  dagvault::v1::CopyStatusRequest request;
  request.set_unit(unit);
  dagvault::v1::CopyStatus response;
  // A caller that waits longer than the replication loop's pass also
  // waits for a channel that is between two connection attempts (a peer
  // that started a moment after this node), instead of failing at once.
  auto context = timeout > kShortCopyStatusTimeout ? PatientContext(timeout) : Context(timeout);
  grpc::Status s = (*stub)->GetCopyStatus(context.get(), request, &response);
  if (!s.ok()) return FromGrpcStatus(s, absl::StrCat(node, " GetCopyStatus(", unit, ")"));
  return response;
}

}  // namespace dagvault::mailstore
