// Basic vocabulary of the mailstore engine: page numbers, database times,
// log generations and positions, signatures, database states.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "mailstore/format/codec.h"

namespace dagvault::mailstore {

using PageNo = uint32_t;
// A per-database counter, bumped on every page change and stamped into the
// page. Redo applies a log record only to a page whose dbtime shows it has
// not seen the change yet, which makes replay idempotent.
using DbTime = uint64_t;
// A log generation: the number in E00<8 hex digits>.log.
using Generation = uint32_t;

constexpr uint32_t kMinPageSize = 4096;
constexpr uint32_t kMaxPageSize = 32768;
constexpr uint32_t kDefaultPageSize = 8192;
constexpr uint64_t kDefaultLogFileSize = 1 << 20;
constexpr uint64_t kMinLogFileSize = 64 << 10;
constexpr uint32_t kMaxDatabasesPerUnit = 64;
constexpr Generation kMaxGeneration = 0xFFFFFFF0u;

// A position in the log stream: generation and byte offset in that file.
struct Lsn {
  Generation generation = 0;
  uint32_t offset = 0;

  uint64_t Pack() const { return (uint64_t{generation} << 32) | offset; }
  static Lsn Unpack(uint64_t v) {
    return Lsn{static_cast<Generation>(v >> 32), static_cast<uint32_t>(v)};
  }
  bool IsZero() const { return generation == 0 && offset == 0; }
  auto operator<=>(const Lsn& other) const { return Pack() <=> other.Pack(); }
  bool operator==(const Lsn& other) const = default;
  // "0x0000001A:4096", as eseutil prints log positions.
  std::string ToString() const;
};

// Identifies a database or a log stream: random bytes plus creation time.
// Two files belong together only if their signatures match exactly.
struct Signature {
  std::array<uint8_t, 16> random{};
  int64_t created_us = 0;

  bool operator==(const Signature& other) const = default;
  bool IsZero() const { return *this == Signature{}; }
  std::string RandomHex() const;
  // Short human form: first 8 hex digits and the creation time.
  std::string ToString() const;

  static absl::StatusOr<Signature> Generate(const Clock& clock);
};

// On disk a signature is 24 bytes: the random bytes, then the time (i64).
constexpr uint32_t kSignatureSize = 24;
inline void StoreSignature(uint8_t* p, const Signature& s) {
  std::memcpy(p, s.random.data(), s.random.size());
  StoreU64(p + 16, static_cast<uint64_t>(s.created_us));
}
inline Signature LoadSignature(const uint8_t* p) {
  Signature s;
  std::memcpy(s.random.data(), p, s.random.size());
  s.created_us = static_cast<int64_t>(LoadU64(p + 16));
  return s;
}

enum class DbState : uint32_t {
  kJustCreated = 1,
  kDirtyShutdown = 2,
  kCleanShutdown = 3,
};
const char* DbStateName(DbState state);

// Formats a generation the way file names show it: 8 upper-case hex digits.
std::string GenerationHex(Generation generation);

// Formats microseconds since the epoch as RFC 3339 UTC.
std::string FormatTimeMicros(int64_t us);

}  // namespace dagvault::mailstore
