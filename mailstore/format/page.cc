#include "mailstore/format/page.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/crc32c.h"

namespace dagvault::mailstore {

const char* PageTypeName(PageType type) {
  switch (type) {
    case PageType::kUnused:
      return "unused";
    case PageType::kDbHeader:
      return "db-header";
    case PageType::kMeta:
      return "meta";
    case PageType::kSpaceMap:
      return "space-map";
    case PageType::kBTreeInternal:
      return "btree-internal";
    case PageType::kBTreeLeaf:
      return "btree-leaf";
    case PageType::kLongValue:
      return "long-value";
  }
  return "invalid";
}

void InitPage(uint8_t* page, uint32_t page_size, PageNo pgno, PageType type) {
  std::memset(page, 0, page_size);
  StoreU32(page + page_offsets::kPgno, pgno);
  page[page_offsets::kType] = static_cast<uint8_t>(type);
  page[page_offsets::kFormat] = kPageFormatVersion;
}

uint32_t ComputePageChecksum(const uint8_t* page, uint32_t page_size) {
  return Crc32c(page + 4, page_size - 4);
}

void SealPage(uint8_t* page, uint32_t page_size) {
  StoreU32(page + page_offsets::kChecksum, ComputePageChecksum(page, page_size));
}

bool IsZeroPage(const uint8_t* page, uint32_t page_size) {
  // Word-at-a-time; this runs over every page in `check`.
  const uint8_t* end = page + page_size;
  for (const uint8_t* p = page; p < end; p += 8) {
    if (LoadU64(p) != 0) return false;
  }
  return true;
}

absl::Status VerifyPage(const uint8_t* page, uint32_t page_size, PageNo expected) {
  const uint32_t stored = LoadU32(page + page_offsets::kChecksum);
  const uint32_t computed = ComputePageChecksum(page, page_size);
  const uint64_t offset = uint64_t{expected} * page_size;
  if (stored != computed) {
    if (stored == 0 && IsZeroPage(page, page_size)) return absl::OkStatus();
    return absl::DataLossError(
        absl::StrFormat("page %u (offset %u): checksum mismatch: stored 0x%08x, computed 0x%08x",
                        expected, offset, stored, computed));
  }
  if (PagePgno(page) != expected) {
    return absl::DataLossError(
        absl::StrFormat("page %u (offset %u): holds page number %u (a misdirected write)", expected,
                        offset, PagePgno(page)));
  }
  const uint8_t type = page[page_offsets::kType];
  if (type == 0 || type > kMaxPageType) {
    return absl::DataLossError(
        absl::StrFormat("page %u (offset %u): unknown page type %u", expected, offset, type));
  }
  if (page[page_offsets::kFormat] != kPageFormatVersion) {
    return absl::DataLossError(absl::StrFormat("page %u (offset %u): page format %u, expected %u",
                                               expected, offset, page[page_offsets::kFormat],
                                               kPageFormatVersion));
  }
  return absl::OkStatus();
}

bool IsValidPageSize(uint64_t page_size) {
  return page_size >= kMinPageSize && page_size <= kMaxPageSize &&
         (page_size & (page_size - 1)) == 0;
}

}  // namespace dagvault::mailstore
