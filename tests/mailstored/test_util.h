// Shared pieces of the mailstored multi-process tests.
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mailstore/server/lab_config.h"
#include "tests/mailstored/cluster.h"

namespace dagvault::testing {

// A lab that rolls logs often and replicates promptly, so tests see many
// generations in a few seconds.
inline mailstore::LabSpec FastLab(uint32_t lag_seconds = 4) {
  mailstore::LabSpec spec;
  spec.nodes = 3;
  spec.lag_seconds = lag_seconds;
  spec.log_file_size = 128 << 10;
  spec.replication_poll_ms = 100;
  spec.flush_interval_ms = 200;
  return spec;
}

// Node indexes of the lab (node1 is active at first, node3 is lagged).
constexpr int kNode1 = 0, kNode2 = 1, kNode3 = 2;

// A value that says where it belongs, so a misplaced item shows.
inline std::string ItemValue(uint64_t mailbox, uint64_t item, size_t size = 3000) {
  std::string v = absl::StrCat("mailbox ", mailbox, " item ", item, " ");
  while (v.size() < size) v += static_cast<char>('a' + (v.size() * 7 + item) % 26);
  v.resize(size);
  return v;
}

// Writes items [first, first + count) of `mailbox` to the active copy on
// node `i`, into each database of the unit in turn.
inline void PutItems(MailstoredCluster& cluster, int i, const std::string& unit,
                     const std::vector<std::string>& databases, uint64_t mailbox, uint64_t first,
                     uint64_t count) {
  for (uint64_t item = first; item < first + count; ++item) {
    const std::string& db = databases[item % databases.size()];
    ASSERT_TRUE(cluster.Put(i, unit, db, mailbox, item, ItemValue(mailbox, item)).ok())
        << unit << "/" << db << " item " << item;
  }
}

inline const std::vector<std::string>& Databases(const std::string& unit) {
  static const std::vector<std::string> sg = {"MDB01A", "MDB01B"}, db = {"DB02"};
  return unit == "SG01" ? sg : db;
}

// The digest of every database of `unit` on node i, joined; or of a
// recovery database `as` restored from it.
inline std::string UnitDigest(MailstoredCluster& cluster, int i, const std::string& unit,
                              const std::string& as = "") {
  std::string out;
  for (const auto& db : Databases(unit)) {
    auto d = cluster.Digest(i, as.empty() ? unit : as, db);
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return "error";
    absl::StrAppend(&out, db, "=", d->sha256(), "/", d->items(), " ");
  }
  return out;
}

inline const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

#define ASSERT_OK(expr)                                              \
  do {                                                               \
    const auto& _result = (expr);                                    \
    ASSERT_TRUE(_result.ok()) << #expr << ": " << StatusOf(_result); \
  } while (0)

}  // namespace dagvault::testing
