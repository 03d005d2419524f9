// Which coordinator leads (docs/ha.md), for the command line: given several
// addresses it asks them all at once, so one coordinator that hangs (a
// paused process, a half-open connection) costs nothing while another
// answers; given one, it follows the refusal of a standby that names the
// leader.
#pragma once

#include <grpcpp/security/credentials.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dagvault::cli {

// Asks every address WhoLeads in parallel; the first decisive answer wins:
// a coordinator that leads (its address), a standby that names the leader
// (the leader's address), or a coordinator that answers but not this
// question (an older coordinator, or the caller refused: its address, so
// that the command's own call says why). Addresses that do not answer
// within `timeout` are given up on. UNAVAILABLE, naming what each address
// said, when no answer is decisive; then `standbys`, if given, gets the
// addresses that answered as standbys knowing no leader, in the order they
// answered (a standby still answers catalog reads, admin_service.cc).
absl::StatusOr<std::string> FindLeader(const std::vector<std::string>& addresses,
                                       const std::shared_ptr<grpc::ChannelCredentials>& creds,
                                       absl::Duration timeout = absl::Seconds(10),
                                       std::vector<std::string>* standbys = nullptr);

// The leader a standby's refusal names ("... the leader is at HOST:PORT"),
// if `s` is one.
std::optional<std::string> LeaderNamedIn(const absl::Status& s);

}  // namespace dagvault::cli
