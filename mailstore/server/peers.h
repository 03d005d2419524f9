// Clients of the other mailstored nodes' replication services.
#pragma once

#include <grpcpp/security/credentials.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dagvault/v1/replication.grpc.pb.h"
#include "mailstore/server/config.h"

namespace dagvault::mailstore {

class Peers {
 public:
  // Channel credentials per node of the configuration (this node's and its
  // peers'): mutual TLS with this node's certificate, where the server must
  // present the certificate of the node the channel is meant for (role
  // node, that node's name), so a log, a seed or a backup session never
  // goes to another holder of a deployment certificate (issue 15). Plain
  // text in a development lab (common/tls.h).
  using Credentials = std::map<std::string, std::shared_ptr<grpc::ChannelCredentials>>;
  static absl::StatusOr<Credentials> MakeCredentials(const NodeConfig& config);

  // `credentials` from MakeCredentials; a node without any has no stub.
  Peers(const NodeConfig& config, Credentials credentials);

  // The replication stub for a node (this node included, over loopback).
  absl::StatusOr<dagvault::v1::Replication::Stub*> Replication(const std::string& node);
  // A client context with a deadline, for calls to peers.
  static std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(5));
  // The same, but the call waits (up to the deadline) for a connection to
  // a peer that is reconnecting, e.g. one that restarted a moment ago,
  // instead of failing at once. For the calls of a backup session, which
  // should not fail because a channel is between two connection attempts.
  static std::unique_ptr<grpc::ClientContext> PatientContext(
      absl::Duration timeout = absl::Seconds(10));

  // A copy's status. The short default suits the replication loop, which
  // asks again on its next pass; a caller that decides on the answer once
  // passes a longer timeout, and then also waits through the channel's
  // reconnection backoff.
  static constexpr absl::Duration kShortCopyStatusTimeout = absl::Seconds(2);
  absl::StatusOr<dagvault::v1::CopyStatus> CopyStatus(
      const std::string& node, const std::string& unit,
      absl::Duration timeout = kShortCopyStatusTimeout);

 private:
  std::map<std::string, std::string> addresses_;
  std::map<std::string, std::unique_ptr<dagvault::v1::Replication::Stub>> stubs_;
};

}  // namespace dagvault::mailstore
