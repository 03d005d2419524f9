#include "mailstore/engine/long_value.h"

#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "common/status_macros.h"
#include "mailstore/engine/layout.h"

namespace dagvault::mailstore {
namespace {

using namespace long_value_layout;

absl::Status ChainError(const ItemKey& key, PageNo pgno, const std::string& what) {
  return absl::DataLossError(
      absl::StrFormat("long value of item %s: page %u: %s", key.ToString(), pgno, what));
}

// Walks the chain, checking each chunk belongs to this value at the right
// offset; calls fn for each page.
template <typename Fn>
absl::Status WalkChain(PageAccess& access, const ItemKey& key, const LongValueRef& ref, Fn fn) {
  uint8_t owner[kKeySize];
  key.Encode(owner);
  const uint32_t capacity = Capacity(access.page_size());
  // The reference comes from disk: bound it before trusting it.
  if (ref.length > kMaxValueSize || ref.page_count != (ref.length + capacity - 1) / capacity) {
    return ChainError(
        key, ref.first_page,
        absl::StrFormat("the item claims %u bytes on %u pages", ref.length, ref.page_count));
  }
  PageNo pgno = ref.first_page;
  uint64_t offset = 0;
  for (uint32_t i = 0; i < ref.page_count; ++i) {
    if (pgno == 0)
      return ChainError(key, pgno,
                        absl::StrFormat("chain ends after %u of %u pages", i, ref.page_count));
    ASSIGN_OR_RETURN(PageRef page, access.Read(pgno));
    const uint8_t* p = page->data();
    if (PageTypeOf(p) != PageType::kLongValue) {
      return ChainError(key, pgno, absl::StrFormat("is a %s page", PageTypeName(PageTypeOf(p))));
    }
    if (std::memcmp(p + kOwnerKey, owner, kKeySize) != 0) {
      return ChainError(
          key, pgno,
          absl::StrFormat("belongs to item %s", ItemKey::Decode(p + kOwnerKey).ToString()));
    }
    const uint32_t len = LoadU32(p + kDataLength);
    if (LoadU64(p + kValueOffset) != offset || len > capacity || offset + len > ref.length) {
      return ChainError(key, pgno,
                        absl::StrFormat("chunk at value offset %u (%u bytes) does not fit",
                                        LoadU64(p + kValueOffset), len));
    }
    PageNo next = LoadU32(p + kNextPage);
    RETURN_IF_ERROR(fn(pgno, p + kData, len));
    offset += len;
    pgno = next;
  }
  if (offset != ref.length) {
    return ChainError(
        key, ref.first_page,
        absl::StrFormat("chain holds %u bytes, the item says %u", offset, ref.length));
  }
  return absl::OkStatus();
}

}  // namespace

LongValueRef DecodeLongValueRef(const uint8_t* r) {
  return LongValueRef{LoadU64(r + leaf_record::kLongLength),
                      LoadU32(r + leaf_record::kLongFirstPage), LoadU32(r + leaf_record::kLongCrc),
                      LoadU32(r + leaf_record::kLongPageCount)};
}

void EncodeLongValueRef(const LongValueRef& ref, uint8_t* r) {
  r[leaf_record::kKind] = leaf_record::kLong;
  StoreU64(r + leaf_record::kLongLength, ref.length);
  StoreU32(r + leaf_record::kLongFirstPage, ref.first_page);
  StoreU32(r + leaf_record::kLongCrc, ref.crc);
  StoreU32(r + leaf_record::kLongPageCount, ref.page_count);
}

absl::StatusOr<LongValueRef> WriteLongValue(PageAccess& access, SpaceMap& space, const ItemKey& key,
                                            absl::string_view value) {
  const uint32_t capacity = Capacity(access.page_size());
  LongValueRef ref;
  ref.length = value.size();
  ref.crc = Crc32c(value.data(), value.size());
  ref.page_count = static_cast<uint32_t>((value.size() + capacity - 1) / capacity);
  std::vector<PageNo> pages(ref.page_count);
  for (auto& p : pages) {
    ASSIGN_OR_RETURN(p, space.Allocate());
  }
  uint8_t owner[kKeySize];
  key.Encode(owner);
  for (uint32_t i = 0; i < ref.page_count; ++i) {
    ASSIGN_OR_RETURN(uint8_t * p, access.Create(pages[i], PageType::kLongValue));
    const uint64_t offset = uint64_t{i} * capacity;
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(capacity, value.size() - offset));
    std::memcpy(p + kOwnerKey, owner, kKeySize);
    StoreU64(p + kValueOffset, offset);
    StoreU32(p + kNextPage, i + 1 < ref.page_count ? pages[i + 1] : 0);
    StoreU32(p + kDataLength, len);
    std::memcpy(p + kData, value.data() + offset, len);
  }
  ref.first_page = pages.empty() ? 0 : pages[0];
  return ref;
}

absl::StatusOr<std::string> ReadLongValue(PageAccess& access, const ItemKey& key,
                                          const LongValueRef& ref) {
  std::string value;
  value.reserve(ref.length);
  RETURN_IF_ERROR(WalkChain(access, key, ref, [&](PageNo, const uint8_t* data, uint32_t len) {
    value.append(reinterpret_cast<const char*>(data), len);
    return absl::OkStatus();
  }));
  const uint32_t crc = Crc32c(value.data(), value.size());
  if (crc != ref.crc) {
    return absl::DataLossError(
        absl::StrFormat("long value of item %s: checksum mismatch (stored 0x%08x, computed 0x%08x)",
                        key.ToString(), ref.crc, crc));
  }
  return value;
}

absl::Status FreeLongValue(PageAccess& access, SpaceMap& space, const ItemKey& key,
                           const LongValueRef& ref) {
  std::vector<PageNo> pages;
  RETURN_IF_ERROR(WalkChain(access, key, ref, [&](PageNo pgno, const uint8_t*, uint32_t) {
    pages.push_back(pgno);
    return absl::OkStatus();
  }));
  for (PageNo p : pages) RETURN_IF_ERROR(space.Free(p));
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
