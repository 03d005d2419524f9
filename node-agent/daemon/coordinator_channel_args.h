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
  // The keepalive time, 30 s, stays well above the two report periods
  // between the leader's acknowledgements (10 s at the default period; it
  // acknowledges every other report, NodeReport.ack_optional): a ping
  // costs the leader a read, a write and two wake-ups.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // No bandwidth-delay probes: gRPC pings after data arrives to size its
  // flow-control window for bulk transfers, and this channel carries none
  // (reports, assignments, results; backup data goes to the repository).
  // Each probe would cost the leader a read, a write and two wake-ups.
  // The window stays at HTTP/2's 64 KB. Most messages here are far below
  // it; a larger one (a job's result listing hundreds of logs, an
  // assignment naming a long base) still passes: a reader waiting for a
  // message opens the window to its size, at one round trip's cost
  // (common/tls_front_test.cc sends 3 MB each way with probes off).
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  return args;
}

}  // namespace dagvault::agent
