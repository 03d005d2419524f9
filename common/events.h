// Events an operator acts on, with stable ids (docs/events.md): a job
// failed, a unit left its RPO, a chain broke, a lease expired, a copy was
// skipped, a call was refused. Each is one log line that carries its id
// and fields, e.g.
//
//   job backup-20261203T101500-1a2b failed: ... [DV1001 job_failed unit=db1 job=... node=node2]
//
// so that a log search or a SIEM rule matches the id, never the wording.
// Under systemd (JOURNAL_STREAM names stderr), or where DAGVAULT_JOURNAL_SOCKET
// names a socket, the event also goes to the journal over its native
// protocol with structured fields: MESSAGE_ID (one per event, fixed
// forever), DAGVAULT_EVENT (DV1001), DAGVAULT_EVENT_NAME, PRIORITY and one
// DAGVAULT_<FIELD> per field, so `journalctl DAGVAULT_UNIT=db1` or
// `journalctl MESSAGE_ID=...` finds them. Under systemd the stderr line is
// then left out (journald would otherwise keep it twice).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "spdlog/common.h"

namespace dagvault::events {

// Never renumber or reuse one: alert rules and log searches depend on them.
enum class EventId : int {
  kJobFailed = 1001,
  kRpoBreached = 1002,
  kRpoRecovered = 1003,
  kChainBroken = 1004,
  kLeaseExpired = 1005,
  kCopySkipped = 1006,
  kAccessRefused = 1007,
  kAdminAction = 1008,
  kAuditWriteFailed = 1009,
  kVerificationFailed = 1010,
};

// "DV1001".
std::string Code(EventId id);
// "job_failed".
absl::string_view Name(EventId id);
// The journal's MESSAGE_ID: 32 hex digits, fixed per event.
absl::string_view MessageId(EventId id);

using Fields = std::vector<std::pair<std::string, std::string>>;

// Logs `message` on logger `component` at `level`, with the event's id
// and `fields` (keys in lower case: unit, node, job, ...), and sends it
// to the journal as described above.
void Emit(absl::string_view component, spdlog::level::level_enum level, EventId id,
          const std::string& message, const Fields& fields);

// The journal's native datagram for an event (exposed for tests):
// KEY=value lines, with the length-prefixed form for values that hold a
// newline.
std::string JournalDatagram(spdlog::level::level_enum level, EventId id, const std::string& message,
                            const Fields& fields, absl::string_view identifier);

}  // namespace dagvault::events
