// Helpers shared by the engine's tests.
#pragma once

#include <random>
#include <string>

#include "absl/time/time.h"
#include "dagvault/v1/mailstore.pb.h"
#include "gtest/gtest.h"
#include "mailstore/engine/digest.h"
#include "mailstore/engine/engine.h"
#include "mailstore/engine/memory_page_access.h"
#include "mailstore/engine/recovery.h"

namespace dagvault::mailstore::testing {

// A unit under `dir`: system and logs in dir, databases db0..db{n-1}.
inline dagvault::v1::UnitConfig MakeUnitConfig(const std::string& dir, int databases = 1,
                                               uint64_t log_size = 128 << 10,
                                               bool circular = false) {
  dagvault::v1::UnitConfig c;
  c.set_name("u1");
  c.set_mode(databases == 1 ? dagvault::v1::UnitConfig::DATABASE
                            : dagvault::v1::UnitConfig::STORAGE_GROUP);
  c.set_log_prefix("E00");
  c.set_system_dir(dir);
  c.set_log_file_size(log_size);
  c.set_circular_logging(circular);
  for (int i = 0; i < databases; ++i) {
    auto* db = c.add_databases();
    db->set_name("db" + std::to_string(i));
  }
  return c;
}

// Engine options for tests: a small cache, and the lazy writer every
// `flush_interval` (an hour: only when the test calls FlushNow).
inline EngineOptions TestEngineOptions(absl::Duration flush_interval = absl::Milliseconds(50),
                                       size_t cache_bytes = 4 << 20) {
  EngineOptions o;
  o.flush_interval = flush_interval;
  o.cache_bytes = cache_bytes;
  return o;
}

// Deterministic value bytes: the same seed always gives the same value.
inline std::string ValueFor(uint64_t seed, size_t size) {
  std::string v(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    // Mostly text-like bytes, as mail bodies are.
    v[i] = static_cast<char>(' ' + (x % 95));
  }
  return v;
}

// The item digest of a database file, read offline.
inline Sha256Digest OfflineDigest(const std::string& path) {
  auto db = DatabaseFile::Open(path, false);
  EXPECT_TRUE(db.ok()) << db.status();
  FilePageReader reader(**db);
  ItemTable table(reader, nullptr);
  auto result = DigestItems(table);
  EXPECT_TRUE(result.ok()) << result.status();
  return result->digest;
}

// A recovery request for the single database db0.edb of a unit: logs in
// log_dir, checkpoint and lock in system_dir (empty: none).
inline RecoveryRequest RequestFor(const std::string& system_dir, const std::string& log_dir,
                                  const std::string& db_dir) {
  RecoveryRequest req;
  req.system_dir = system_dir;
  req.log_dir = log_dir;
  req.prefix = "E00";
  req.db_paths = {db_dir + "/db0.edb"};
  return req;
}

}  // namespace dagvault::mailstore::testing
