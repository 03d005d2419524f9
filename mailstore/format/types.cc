#include "mailstore/format/types.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/evp.h"
#include "common/status_macros.h"

namespace dagvault::mailstore {

std::string Lsn::ToString() const { return absl::StrFormat("0x%08X:%u", generation, offset); }

std::string Signature::RandomHex() const {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(random.data()), random.size()));
}

std::string Signature::ToString() const {
  return absl::StrCat(RandomHex().substr(0, 8), "@", FormatTimeMicros(created_us));
}

absl::StatusOr<Signature> Signature::Generate(const Clock& clock) {
  Signature sig;
  RETURN_IF_ERROR(RandomBytes(absl::MakeSpan(sig.random)));
  sig.created_us = clock.NowMicros();
  return sig;
}

const char* DbStateName(DbState state) {
  switch (state) {
    case DbState::kJustCreated:
      return "JustCreated";
    case DbState::kDirtyShutdown:
      return "DirtyShutdown";
    case DbState::kCleanShutdown:
      return "CleanShutdown";
  }
  return "Unknown";
}

std::string GenerationHex(Generation generation) { return absl::StrFormat("%08X", generation); }

std::string FormatTimeMicros(int64_t us) {
  if (us == 0) return "never";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromUnixMicros(us), absl::UTCTimeZone());
}

}  // namespace dagvault::mailstore
