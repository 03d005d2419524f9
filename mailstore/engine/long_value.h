// Values too large for a leaf live on a chain of long-value pages. The leaf
// record keeps the length, the first page, the page count and a CRC32C of
// the whole value, so a damaged or misplaced chunk is caught on every read.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mailstore/engine/btree_page.h"
#include "mailstore/engine/page_access.h"
#include "mailstore/engine/space_map.h"

namespace dagvault::mailstore {

struct LongValueRef {
  uint64_t length = 0;
  PageNo first_page = 0;
  uint32_t crc = 0;
  uint32_t page_count = 0;
};

LongValueRef DecodeLongValueRef(const uint8_t* leaf_record);
void EncodeLongValueRef(const LongValueRef& ref, uint8_t* leaf_record);

absl::StatusOr<LongValueRef> WriteLongValue(PageAccess& access, SpaceMap& space, const ItemKey& key,
                                            absl::string_view value);
// Reads and verifies the chain: owner key, offsets, lengths, page count, CRC.
absl::StatusOr<std::string> ReadLongValue(PageAccess& access, const ItemKey& key,
                                          const LongValueRef& ref);
absl::Status FreeLongValue(PageAccess& access, SpaceMap& space, const ItemKey& key,
                           const LongValueRef& ref);

}  // namespace dagvault::mailstore
