#include "common/events.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"

namespace dagvault::events {
namespace {

struct EventInfo {
  EventId id;
  const char* name;
  const char* message_id;
};

constexpr EventInfo kEvents[] = {
    {EventId::kJobFailed, "job_failed", "a3df055de4b9407092cc5441fee66d3e"},
    {EventId::kRpoBreached, "rpo_breached", "c91850cc48f34bcf83b9223e3857aef0"},
    {EventId::kRpoRecovered, "rpo_recovered", "65822fd752ac4b67b2a6fcd11e793f12"},
    {EventId::kChainBroken, "chain_broken", "c500f22b6c6e49729cc72f0e90a08e6e"},
    {EventId::kLeaseExpired, "lease_expired", "2780db2900c049e191a31c1a229e7fa6"},
    {EventId::kCopySkipped, "copy_skipped", "3a8c0281000e48aba9cea09c14c6b70b"},
    {EventId::kAccessRefused, "access_refused", "d35887a07f2d4b038b01157584427e97"},
    {EventId::kAdminAction, "admin_action", "dd7a5677855b4aea9e92ce8c8724366a"},
    {EventId::kAuditWriteFailed, "audit_write_failed", "01cd8c6a6c534b3cb5c544e26ae40f40"},
    {EventId::kVerificationFailed, "restore_verification_failed",
     "6b0e41f2d8a94c7fb3e5a0c29d17e854"},
};

const EventInfo& InfoOf(EventId id) {
  for (const EventInfo& e : kEvents) {
    if (e.id == id) return e;
  }
  return kEvents[0];  // unreachable: every id is in the table (events_test)
}

// syslog priorities, as the journal's PRIORITY field takes them.
int PriorityOf(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;
    case spdlog::level::err:
      return 3;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::info:
      return 6;
    default:
      return 7;
  }
}

void AppendField(std::string* out, absl::string_view key, absl::string_view value) {
  if (value.find('\n') == absl::string_view::npos) {
    absl::StrAppend(out, key, "=", value, "\n");
    return;
  }
  // The binary form: KEY, newline, the length as 64-bit little-endian, the
  // value, newline.
  absl::StrAppend(out, key, "\n");
  uint64_t n = value.size();
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  absl::StrAppend(out, value, "\n");
}

// A journal field name: upper-case letters, digits and '_'.
std::string JournalKey(absl::string_view key) {
  std::string out = "DAGVAULT_";
  for (char c : key) {
    out.push_back(absl::ascii_isalnum(static_cast<unsigned char>(c))
                      ? absl::ascii_toupper(static_cast<unsigned char>(c))
                      : '_');
  }
  return out;
}

// Whether stderr is the journal's stream: JOURNAL_STREAM names its device
// and inode, and they are stderr's (not a redirection made since).
bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

// Where to send native journal entries, or empty: DAGVAULT_JOURNAL_SOCKET,
// else journald's socket when stderr goes to the journal.
std::string JournalSocket() {
  if (const char* s = std::getenv("DAGVAULT_JOURNAL_SOCKET"); s != nullptr && *s != '\0') {
    return s;
  }
  if (StderrIsJournal()) return "/run/systemd/journal/socket";
  return "";
}

bool SendDatagram(const std::string& path, const std::string& datagram) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const ssize_t n = sendto(fd, datagram.data(), datagram.size(), MSG_NOSIGNAL,
                           reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  close(fd);
  return n == static_cast<ssize_t>(datagram.size());
}

std::string ProgramName() {
  char buf[256];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "dagvault";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string Code(EventId id) { return absl::StrCat("DV", static_cast<int>(id)); }

absl::string_view Name(EventId id) { return InfoOf(id).name; }

absl::string_view MessageId(EventId id) { return InfoOf(id).message_id; }

std::string JournalDatagram(spdlog::level::level_enum level, EventId id, const std::string& message,
                            const Fields& fields, absl::string_view identifier) {
  std::string out;
  AppendField(&out, "MESSAGE", message);
  AppendField(&out, "PRIORITY", absl::StrCat(PriorityOf(level)));
  AppendField(&out, "MESSAGE_ID", MessageId(id));
  AppendField(&out, "SYSLOG_IDENTIFIER", identifier);
  AppendField(&out, "DAGVAULT_EVENT", Code(id));
  AppendField(&out, "DAGVAULT_EVENT_NAME", Name(id));
  for (const auto& [key, value] : fields) AppendField(&out, JournalKey(key), value);
  return out;
}

void Emit(absl::string_view component, spdlog::level::level_enum level, EventId id,
          const std::string& message, const Fields& fields) {
  const std::string socket = JournalSocket();
  bool journaled = false;
  if (!socket.empty()) {
    static const std::string* program = new std::string(ProgramName());
    journaled = SendDatagram(socket, JournalDatagram(level, id, message, fields, *program));
  }
  // When stderr goes to the journal too, one entry is enough.
  if (journaled && StderrIsJournal()) return;
  std::string tail = absl::StrCat(" [", Code(id), " ", Name(id));
  for (const auto& [key, value] : fields) {
    // Quoted when it would not read as one word.
    const bool quote = value.empty() || value.find_first_of(" \"\n]") != std::string::npos;
    absl::StrAppend(&tail, " ", key, "=",
                    quote ? absl::StrCat("\"", absl::CHexEscape(value), "\"") : value);
  }
  tail += "]";
  // One line per event: a name with a newline in it cannot forge another.
  std::string line = message;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  logging::Get(component)->log(level, "{}{}", line, tail);
}

}  // namespace dagvault::events
