// Where things live inside a mailstore database, and the layouts of the
// page types above the common page header (see docs/formats.md).
//
//   page 0, 1   the two shadow copies of the database header
//   page 2      meta page: item count, value bytes, tree height
//   page 3      the B-tree root (fixed: a root split moves its contents down)
//   page 4      space map 0; space map k>0 sits at the first page it covers
#pragma once

#include <cstdint>

#include "mailstore/format/page.h"

namespace dagvault::mailstore {

constexpr PageNo kMetaPage = 2;
constexpr PageNo kRootPage = 3;
constexpr PageNo kFirstSpaceMapPage = 4;
constexpr PageNo kFirstDataPage = 5;
// Every page written at creation starts at this database time.
constexpr DbTime kInitialDbTime = 1;
// The largest value an item may hold. Several MiB is what mail needs.
constexpr uint64_t kMaxValueSize = 64ull << 20;

// The header's dbtime is a reservation: no page in the file has a larger
// one. Before writing pages beyond it, the header is raised by this much,
// so that the header is written rarely while the invariant always holds.
constexpr DbTime kDbTimeReserve = 1 << 20;

namespace meta_layout {
constexpr uint32_t kItemCount = 32;   // u64
constexpr uint32_t kValueBytes = 40;  // u64: sum of item value sizes
constexpr uint32_t kRootPgno = 48;    // u32
constexpr uint32_t kTreeHeight = 52;  // u32: levels, 1 when the root is a leaf
constexpr uint32_t kMapCount = 56;    // u32: space map pages initialised
}  // namespace meta_layout

namespace space_map_layout {
constexpr uint32_t kMapIndex = 32;  // u32
constexpr uint32_t kBits = 40;      // bitmap to the end of the page; 1 = allocated
inline uint32_t PagesPerMap(uint32_t page_size) { return (page_size - kBits) * 8; }
inline PageNo MapPageNo(uint32_t map_index, uint32_t page_size) {
  return map_index == 0 ? kFirstSpaceMapPage : map_index * PagesPerMap(page_size);
}
}  // namespace space_map_layout

namespace btree_layout {
constexpr uint32_t kLevel = 32;      // u8: 0 for leaves
constexpr uint32_t kSlotCount = 34;  // u16
constexpr uint32_t kHeapStart = 36;  // u16: lowest byte used by records (page_size when empty)
constexpr uint32_t kFragBytes = 38;  // u16: dead record bytes inside the heap
constexpr uint32_t kLeftmost = 40;   // u32: internal pages: child for keys below the first key
constexpr uint32_t kSlots = 48;      // u16 record offsets, sorted by key
}  // namespace btree_layout

namespace long_value_layout {
constexpr uint32_t kOwnerKey = 32;     // 16 bytes: the item this chunk belongs to
constexpr uint32_t kValueOffset = 48;  // u64: where this chunk sits within the value
constexpr uint32_t kNextPage = 56;     // u32: next chunk, 0 for the last
constexpr uint32_t kDataLength = 60;   // u32
constexpr uint32_t kData = 64;
inline uint32_t Capacity(uint32_t page_size) { return page_size - kData; }
}  // namespace long_value_layout

}  // namespace dagvault::mailstore
