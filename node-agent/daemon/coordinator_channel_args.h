// How an agent's gRPC channel to a coordinator is set up. One function,
// so that the benchmark's simulated agents (tests/bench) load the leader
// the way real ones do.
#pragma once

#include <grpcpp/support/channel_arguments.h>

namespace dagvault::agent {

inline grpc::ChannelArguments CoordinatorChannelArguments() {
  grpc::ChannelArguments args;
  // A half-open connection is found by TCP: with a keepalive time set,
  // gRPC gives the socket a TCP_USER_TIMEOUT of the keepalive timeout, so
  // a report whose bytes the coordinator's kernel has not acknowledged
  // within 5 s ends the connection, and the agent writes one every period.
  // Pings are only for a link that carries nothing for 30 s: a ping costs
  // the leader a read, a write and two wake-ups, and it acknowledges only
  // every other report (NodeReport.ack_optional), so a shorter time would
  // ping every 10 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

}  // namespace dagvault::agent
