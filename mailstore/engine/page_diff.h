// Computes the byte ranges in which two images of a page differ, encoded as
// the body of a PageDelta record: {u16 offset, u16 length, bytes}...
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace dagvault::mailstore {

struct PageDiff {
  uint16_t range_count = 0;
  std::string ranges;
};

// Returns nullopt when the encoded delta would exceed `max_bytes` (a full
// page image is then the better record). Ranges closer than a few bytes are
// merged, since each range costs four bytes of framing.
std::optional<PageDiff> DiffPages(const uint8_t* before, const uint8_t* after, uint32_t page_size,
                                  uint32_t max_bytes);

}  // namespace dagvault::mailstore
