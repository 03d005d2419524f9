// The agent's link to the coordinator (agent.proto's Connect stream,
// docs/ha.md). It dials the configured coordinators, registers, sends a
// report every period, hands what comes back to the daemon, follows a
// standby's pointer to the leader at once, gives up a stream on which
// nothing is acknowledged (with several coordinators: a paused or cut-off
// leader keeps its connection open), and otherwise reconnects to the next
// configured address with backoff. It also bounds how fresh the node's
// leases can be: the coordinator renews them when it takes a report, so
// the send time of the newest acknowledged report does, which the
// daemon's fencing asks (LeaseMayHaveLapsed).
//
// The transport is a seam, as AgentChannel is on the coordinator's side:
// a CoordinatorDialer opens one CoordinatorStream per session. The gRPC
// one is MakeGrpcDialer; tests use FakeCoordinatorDialer
// (fake_coordinator_dialer.h).
#pragma once

#include <grpcpp/security/credentials.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/rate_limited_warning.h"
#include "dagvault/v1/agent.pb.h"
#include "dagvault/v1/options.pb.h"
#include "node-agent/daemon/coordinator_addresses.h"

namespace dagvault::agent {

// One session's stream. Write and Read are called from different threads
// (never two Writes at once); Cancel from any thread.
class CoordinatorStream {
 public:
  virtual ~CoordinatorStream() = default;
  virtual bool Write(const dagvault::v1::AgentMessage& m) = 0;
  // Blocks until a message arrives; false once the stream has ended.
  virtual bool Read(dagvault::v1::CoordinatorMessage* m) = 0;
  // Ends the stream: Read and Write return false from then on.
  virtual void Cancel() = 0;
  // Once Read has returned false: how the stream ended, and the leader a
  // standby named in its refusal ("" if none).
  virtual absl::Status Finish(std::string* leader) = 0;
};

class CoordinatorDialer {
 public:
  virtual ~CoordinatorDialer() = default;
  virtual std::unique_ptr<CoordinatorStream> Dial(const std::string& address) = 0;
};

// gRPC over the credentials given (mutual TLS in production), set up by
// CoordinatorChannelArguments (coordinator_channel_args.h): TCP finds a
// half-open connection within a report period and 5 s.
std::unique_ptr<CoordinatorDialer> MakeGrpcDialer(
    std::shared_ptr<grpc::ChannelCredentials> credentials);

class CoordinatorLink {
 public:
  struct Handlers {
    // The body of a report: copies, writers, running jobs, undelivered
    // results (its node and send time are already set).
    std::function<void(dagvault::v1::NodeReport*)> fill_report;
    // Assignments, cancels and result acks (not the registration or report
    // acks, which the link takes).
    std::function<void(const dagvault::v1::CoordinatorMessage&)> on_message;
    // The coordinator's answer to a registration: its timings.
    std::function<void(const dagvault::v1::Registered&)> on_registered;
  };

  // `config`: node, coordinator and more_coordinators, reconnect_min_ms and
  // reconnect_max_ms.
  CoordinatorLink(const dagvault::v1::AgentConfig& config, std::string agent_version,
                  std::string incarnation, CoordinatorDialer* dialer, Clock* clock,
                  Handlers handlers);

  // Dials, registers, reports and reconnects until `stop` is set and
  // Cancel() is called.
  void Run(const std::atomic<bool>* stop);
  // Ends the current stream.
  void Cancel();
  // Sends on the current stream; false when there is none or it broke.
  bool Write(const dagvault::v1::AgentMessage& m);
  // A few times a second (the daemon's monitor): with several coordinators,
  // gives up a stream that has not answered for the longer of three report
  // periods and a third of the lease: no registration since it was opened,
  // or no acknowledgement since the oldest report still unacknowledged was
  // written (counted from the write, so a report slow to gather does not
  // count against the coordinator).
  void CheckStall();
  // Whether the lease of a job whose assignment arrived at `received`
  // (monotonic) may have run out: neither its assignment nor the newest
  // acknowledged report is within the lease less a report period.
  bool LeaseMayHaveLapsed(absl::Duration received) const;

  absl::Duration lease_ttl() const;
  absl::Duration report_every() const;
  std::string Describe() const { return addresses_.Describe(); }

 private:
  // One session with addresses_.current(); `leader`: whom a standby named.
  absl::Status Session(const std::atomic<bool>* stop, bool* registered, std::string* leader);
  void SendReport();

  const std::string node_, agent_version_, incarnation_;
  CoordinatorDialer* dialer_;
  Clock* clock_;
  Handlers handlers_;
  const absl::Duration min_backoff_, max_backoff_;
  CoordinatorAddresses addresses_;  // the Run thread's
  const bool several_coordinators_;
  RateLimitedWarning warnings_{"agent"};

  mutable std::mutex mu_;
  CoordinatorStream* current_ = nullptr;  // guarded by mu_: to cancel it
  absl::Duration session_started_;        // guarded by mu_ (monotonic)
  bool abandoned_ = false;                // guarded by mu_
  bool registered_ = false;               // guarded by mu_: this session's
  // When the oldest report that asked for an acknowledgement (not
  // ack_optional) and has none yet was written (monotonic); infinite when
  // none waits.
  absl::Duration first_unacked_write_ = absl::InfiniteDuration();  // guarded by mu_
  // Reports written since the last acknowledgement, optional ones too.
  int unacked_reports_ = 0;  // guarded by mu_
  // The send time (monotonic) of the newest report acknowledged.
  absl::Duration last_acked_sent_;                  // guarded by mu_
  absl::Duration report_every_ = absl::Seconds(5);  // guarded by mu_
  absl::Duration lease_ttl_ = absl::Seconds(30);    // guarded by mu_

  std::mutex write_mu_;
  CoordinatorStream* writer_ = nullptr;  // guarded by write_mu_
};

}  // namespace dagvault::agent
