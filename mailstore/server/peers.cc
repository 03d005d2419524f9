#include "mailstore/server/peers.h"

#include <grpcpp/create_channel.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace dagvault::mailstore {

Peers::Peers(const NodeConfig& config, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  addresses_[config.node()] = config.proto.replication_listen();
  for (const auto& p : config.proto.peers()) addresses_[p.node()] = p.replication_address();
  for (const auto& [node, address] : addresses_) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    // A peer that was down is retried within about a second, not after
    // gRPC's default backoff of up to two minutes: failover and seeding
    // wait on it. (The minimum backoff is left alone: gRPC also uses it as
    // the connect timeout, and a loaded node needs more than 100 ms.)
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    auto channel = grpc::CreateCustomChannel(address, credentials, args);
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
