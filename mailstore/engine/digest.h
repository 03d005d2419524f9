// The content digest of a database: SHA-256 over every item in key order,
// each as mailbox (u64 big-endian), item id (u64 big-endian), value length
// (u64 big-endian), value bytes. Two databases with the same items have the
// same digest whatever their page layout, so it proves that a restore or a
// replica holds the same data.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/evp.h"
#include "mailstore/engine/item_table.h"

namespace dagvault::mailstore {

struct DigestResult {
  Sha256Digest digest{};
  uint64_t items = 0;
  uint64_t value_bytes = 0;
};

absl::StatusOr<DigestResult> DigestItems(ItemTable& table);

}  // namespace dagvault::mailstore
