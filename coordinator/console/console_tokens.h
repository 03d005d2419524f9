// Short-lived bearer tokens for the web console (`dagvault console login`):
// a person who has a certificate on the command line, but none in the
// browser, gets a token that carries their own name and role, never more.
//
// Only a token's SHA-256 is kept, in memory: a coordinator restart ends
// every session (log in again), and nothing on disk or in a log line can
// be replayed. Lifetimes run on the monotonic clock, so a clock step
// neither ends nor extends them.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/tls.h"

namespace dagvault::coordinator {

class ConsoleTokens {
 public:
  static constexpr absl::Duration kDefaultTtl = absl::Hours(8);
  static constexpr absl::Duration kMaxTtl = absl::Hours(24);

  explicit ConsoleTokens(Clock* clock = RealClock()) : clock_(clock) {}

  struct Issued {
    std::string token;  // 43 characters of base64url (32 random bytes)
    absl::Time expires;
  };
  // A token for `person` (authenticated, with a person's role), living
  // `ttl` (0: the default; longer than kMaxTtl is refused).
  absl::StatusOr<Issued> Issue(const PeerIdentity& person, absl::Duration ttl);

  // Who holds `token`, if it is one of ours and has not expired.
  std::optional<PeerIdentity> Lookup(const std::string& token);

 private:
  struct Entry {
    PeerIdentity person;
    absl::Duration expires_at;  // monotonic
  };
  Clock* const clock_;
  std::mutex mu_;
  std::map<std::string, Entry> by_hash_;  // hex SHA-256 of the token → holder
};

}  // namespace dagvault::coordinator
