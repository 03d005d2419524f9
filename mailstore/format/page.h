// The .edb page: every page starts with the same 32-byte header.
//
//   0  u32 checksum   CRC32C of bytes [4, page_size)
//   4  u32 pgno       the page's own number, so misplaced writes are caught
//   8  u64 dbtime     database time of the page's last change
//  16  u8  type       PageType
//  17  u8  format     kPageFormatVersion
//  18  u16 flags      reserved, zero
//  20  12 bytes       reserved, zero
//
// Pages 0 and 1 hold the two shadow copies of the database header. An
// all-zero page has never been written. See docs/formats.md.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "mailstore/format/codec.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

constexpr uint32_t kPageHeaderSize = 32;
constexpr uint8_t kPageFormatVersion = 1;

enum class PageType : uint8_t {
  kUnused = 0,
  kDbHeader = 1,
  kMeta = 2,
  kSpaceMap = 3,
  kBTreeInternal = 4,
  kBTreeLeaf = 5,
  kLongValue = 6,
};
constexpr uint8_t kMaxPageType = 6;
const char* PageTypeName(PageType type);

namespace page_offsets {
constexpr uint32_t kChecksum = 0;
constexpr uint32_t kPgno = 4;
constexpr uint32_t kDbTime = 8;
constexpr uint32_t kType = 16;
constexpr uint32_t kFormat = 17;
}  // namespace page_offsets

inline PageNo PagePgno(const uint8_t* page) { return LoadU32(page + page_offsets::kPgno); }
inline DbTime PageDbTime(const uint8_t* page) { return LoadU64(page + page_offsets::kDbTime); }
inline PageType PageTypeOf(const uint8_t* page) {
  return static_cast<PageType>(page[page_offsets::kType]);
}
inline void SetPageDbTime(uint8_t* page, DbTime t) { StoreU64(page + page_offsets::kDbTime, t); }

// Clears a page and writes a fresh header of the given type.
void InitPage(uint8_t* page, uint32_t page_size, PageNo pgno, PageType type);

uint32_t ComputePageChecksum(const uint8_t* page, uint32_t page_size);
// Stores the checksum; called just before a page is written to disk.
void SealPage(uint8_t* page, uint32_t page_size);

bool IsZeroPage(const uint8_t* page, uint32_t page_size);

// Checks a page read from position `expected`: checksum, page number, type
// and format. The error names the page and its byte offset, e.g.
// "page 1234 (offset 10108928): checksum mismatch: stored 0x1a2b3c4d,
// computed 0x5e6f7081". An all-zero page passes (it was never written).
absl::Status VerifyPage(const uint8_t* page, uint32_t page_size, PageNo expected);

bool IsValidPageSize(uint64_t page_size);

}  // namespace dagvault::mailstore
