// The names of the Recovery Databases the coordinator's own jobs make
// (issue 20): `<unit><marker><YYYYMMDDTHHMMSS>-<6 hex digits>`, with the
// marker -ITEMS- for an item-level restore and -VERIFY- for a restore
// verification. The coordinator makes them; mailstored (which deletes such
// folders left when it starts) and the agent (which removes such databases
// left mounted by a dead attempt) recognise exactly this shape, so an
// operator's own Recovery Database named, say, DB01-ITEMS-audit is never
// taken for one.
#pragma once

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dagvault {

inline constexpr absl::string_view kItemRestoreMarker = "-ITEMS-";
inline constexpr absl::string_view kVerificationMarker = "-VERIFY-";

inline std::string JobDatabaseName(absl::string_view marker, absl::string_view unit,
                                   absl::string_view utc_stamp, absl::string_view random_hex) {
  return absl::StrCat(unit, marker, utc_stamp, "-", random_hex);
}

// True for a name JobDatabaseName makes with `marker`; of `unit` when given.
inline bool IsJobDatabaseName(absl::string_view name, absl::string_view marker,
                              absl::string_view unit = "") {
  const size_t at = name.rfind(marker);
  if (at == absl::string_view::npos || at == 0) return false;
  if (!unit.empty() && name.substr(0, at) != unit) return false;
  const absl::string_view rest = name.substr(at + marker.size());
  // YYYYMMDDTHHMMSS-hhhhhh
  if (rest.size() != 15 + 1 + 6 || rest[8] != 'T' || rest[15] != '-') return false;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (i == 8 || i == 15) continue;
    const char c = rest[i];
    if (i < 15 ? !absl::ascii_isdigit(c) : !absl::ascii_isxdigit(c)) return false;
  }
  return true;
}

inline std::string ItemRestoreDatabaseName(absl::string_view unit, absl::string_view utc_stamp,
                                           absl::string_view random_hex) {
  return JobDatabaseName(kItemRestoreMarker, unit, utc_stamp, random_hex);
}

inline bool IsItemRestoreDatabaseName(absl::string_view name, absl::string_view unit = "") {
  return IsJobDatabaseName(name, kItemRestoreMarker, unit);
}

inline bool IsVerificationDatabaseName(absl::string_view name, absl::string_view unit = "") {
  return IsJobDatabaseName(name, kVerificationMarker, unit);
}

}  // namespace dagvault
