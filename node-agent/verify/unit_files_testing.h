// A unit's files built byte by byte from docs/formats.md, for tests of the
// inline consistency check: a database whose pages carry valid checksums,
// and sealed logs that link by SHA-256. Shared by unit_verifier_test and
// the tampering suite (tests/repository/tampering_test.cc).
#pragma once

#include <cstring>
#include <random>
#include <string>

#include "absl/base/internal/endian.h"
#include "common/crc32c.h"
#include "common/evp.h"

namespace dagvault::agent::unit_files {

inline constexpr uint32_t kPage = 8192;
inline constexpr uint32_t kLogSize = 64 << 10;
inline const std::string kLogSig(16, '\x11');
inline const std::string kDbSig(16, '\x22');

inline void Put32(std::string* s, size_t at, uint32_t v) {
  absl::little_endian::Store32(s->data() + at, v);
}

inline std::string Database(uint32_t pages, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string db(size_t{pages} * kPage, '\0');
  for (uint32_t n = 0; n < pages; ++n) {
    if (n == pages - 1) break;  // the last page was never written
    char* p = db.data() + size_t{n} * kPage;
    Put32(&db, size_t{n} * kPage + 4, n);
    p[16] = n < 2 ? 1 : 5;
    p[17] = 1;
    if (n < 2) {
      std::memcpy(p + 32, "MSTOREDB", 8);
      Put32(&db, size_t{n} * kPage + 44, kPage);
      std::memcpy(p + 48, kDbSig.data(), 16);
      std::memcpy(p + 72, kLogSig.data(), 16);
    } else {
      for (uint32_t i = 32; i < kPage; i += 8) {
        const uint64_t v = rng();
        std::memcpy(p + i, &v, 8);
      }
    }
    Put32(&db, size_t{n} * kPage, Crc32c(p + 4, kPage - 4));
  }
  return db;
}

inline void AppendRecord(std::string* log, uint32_t generation, uint8_t type, uint32_t body_size) {
  const uint32_t off = static_cast<uint32_t>(log->size());
  const uint32_t length = 24 + body_size;
  log->resize(off + ((length + 7) & ~7u), '\0');
  Put32(log, off + 4, length);
  Put32(log, off + 8, generation);
  Put32(log, off + 12, off);
  (*log)[off + 16] = static_cast<char>(type);
  for (uint32_t i = 0; i < body_size; ++i) (*log)[off + 24 + i] = static_cast<char>(i * 7 + 1);
  Put32(log, off, Crc32c(log->data() + off + 4, length - 4));
}

inline std::string Log(uint32_t generation, const std::string& link, bool sealed = true) {
  std::string log(4096, '\0');
  std::memcpy(log.data(), "MSTORLOG", 8);
  Put32(&log, 8, 1);
  Put32(&log, 16, generation);
  Put32(&log, 20, kLogSize);
  std::memcpy(log.data() + 24, kLogSig.data(), 16);
  if (!link.empty()) {
    std::memcpy(log.data() + 56, link.data(), 32);
    Put32(&log, 88, 2);
  }
  Put32(&log, 92, kPage);
  Put32(&log, 12, Crc32c(log.data(), 4096));
  AppendRecord(&log, generation, 3, 24);  // a commit
  if (sealed) AppendRecord(&log, generation, 4, 16);
  log.resize(kLogSize, '\0');
  return log;
}

inline std::string Sha(const std::string& data) {
  Sha256 sha;
  sha.Update(data);
  const Sha256Digest d = sha.Finish();
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace dagvault::agent::unit_files
