// How the catalogs (sqlite_catalog.h, postgres_catalog.h) write values
// that SQL has no type for: times as microseconds since the epoch (0 for
// "never"), messages serialized. Shared by the two; not for use elsewhere.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/message_lite.h"

namespace dagvault::coordinator::codec {

inline int64_t Us(absl::Time t) { return t == absl::InfinitePast() ? 0 : absl::ToUnixMicros(t); }
inline absl::Time TimeOf(int64_t us) {
  return us == 0 ? absl::InfinitePast() : absl::FromUnixMicros(us);
}

inline std::string Serialized(const google::protobuf::MessageLite& m) {
  std::string s;
  (void)m.SerializeToString(&s);
  return s;
}

}  // namespace dagvault::coordinator::codec
