#include "mailstore/engine/page_diff.h"

#include <cstring>

#include "mailstore/format/codec.h"

namespace dagvault::mailstore {
namespace {
constexpr uint32_t kMergeGap = 16;
}

std::optional<PageDiff> DiffPages(const uint8_t* before, const uint8_t* after, uint32_t page_size,
                                  uint32_t max_bytes) {
  PageDiff diff;
  uint32_t pos = 0;
  while (pos < page_size) {
    // Skip equal words quickly.
    while (pos < page_size && LoadU64(before + pos) == LoadU64(after + pos)) pos += 8;
    if (pos >= page_size) break;
    uint32_t start = pos;
    while (start > 0 && before[start - 1] != after[start - 1]) --start;
    while (before[start] == after[start]) ++start;
    // Extend the range until a run of kMergeGap equal bytes.
    uint32_t end = start + 1;
    uint32_t equal_run = 0;
    uint32_t scan = end;
    while (scan < page_size && equal_run < kMergeGap) {
      if (before[scan] == after[scan]) {
        ++equal_run;
      } else {
        equal_run = 0;
        end = scan + 1;
      }
      ++scan;
    }
    const uint32_t len = end - start;
    if (diff.ranges.size() + 4 + len > max_bytes) return std::nullopt;
    uint8_t frame[4];
    StoreU16(frame, static_cast<uint16_t>(start));
    StoreU16(frame + 2, static_cast<uint16_t>(len));
    diff.ranges.append(reinterpret_cast<const char*>(frame), 4);
    diff.ranges.append(reinterpret_cast<const char*>(after + start), len);
    diff.range_count++;
    pos = (end + 7) & ~7u;
  }
  return diff;
}

}  // namespace dagvault::mailstore
