#include "mailstore/engine/space_map.h"

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "mailstore/engine/btree_page.h"
#include "mailstore/engine/layout.h"

namespace dagvault::mailstore {
namespace {

using space_map_layout::kBits;
using space_map_layout::MapPageNo;
using space_map_layout::PagesPerMap;

void SetBit(uint8_t* map, uint32_t bit) {
  map[kBits + bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
}
void ClearBit(uint8_t* map, uint32_t bit) {
  map[kBits + bit / 8] &= static_cast<uint8_t>(~(1u << (bit % 8)));
}
bool TestBit(const uint8_t* map, uint32_t bit) { return (map[kBits + bit / 8] >> (bit % 8)) & 1; }

}  // namespace

bool SpaceMap::IsSystemPage(PageNo pgno, uint32_t page_size) {
  if (pgno < kFirstDataPage) return true;
  return pgno % PagesPerMap(page_size) == 0;  // space map k >= 1
}

absl::StatusOr<PageNo> SpaceMap::Allocate() {
  const uint32_t page_size = access_.page_size();
  const uint32_t per_map = PagesPerMap(page_size);
  const uint32_t words = (page_size - kBits) / 8;
  ASSIGN_OR_RETURN(PageRef meta, access_.Read(kMetaPage));
  const uint32_t map_count = LoadU32(meta->data() + meta_layout::kMapCount);
  if (hints_.word_hint.size() < map_count) hints_.word_hint.resize(map_count, 0);

  for (uint32_t k = hints_.first_open_map; k < map_count; ++k) {
    ASSIGN_OR_RETURN(PageRef map, access_.Read(MapPageNo(k, page_size)));
    const uint8_t* bits = map->data() + kBits;
    for (uint32_t w = hints_.word_hint[k]; w < words; ++w) {
      const uint64_t word = LoadU64(bits + 8 * w);
      if (word == ~uint64_t{0}) continue;
      const uint32_t bit = w * 64 + static_cast<uint32_t>(__builtin_ctzll(~word));
      ASSIGN_OR_RETURN(uint8_t * writable, access_.Write(MapPageNo(k, page_size)));
      SetBit(writable, bit);
      hints_.word_hint[k] = w;
      return k * per_map + bit;
    }
    hints_.word_hint[k] = words;
    if (k == hints_.first_open_map) hints_.first_open_map = k + 1;
  }

  // Every mapped page is in use: start the next map, which sits at the first
  // page of the range it covers.
  const uint32_t k = map_count;
  if (uint64_t{k + 1} * per_map > uint64_t{0xFFFFFFFFu}) {
    return absl::ResourceExhaustedError("database has reached the maximum number of pages");
  }
  const PageNo map_pgno = MapPageNo(k, page_size);
  ASSIGN_OR_RETURN(uint8_t * map, access_.Create(map_pgno, PageType::kSpaceMap));
  StoreU32(map + space_map_layout::kMapIndex, k);
  SetBit(map, 0);  // the map page itself
  SetBit(map, 1);
  ASSIGN_OR_RETURN(uint8_t * meta_w, access_.Write(kMetaPage));
  StoreU32(meta_w + meta_layout::kMapCount, k + 1);
  hints_.word_hint.resize(k + 1, 0);
  return map_pgno + 1;
}

absl::Status SpaceMap::Free(PageNo pgno) {
  const uint32_t page_size = access_.page_size();
  if (IsSystemPage(pgno, page_size)) {
    return absl::DataLossError(absl::StrFormat("attempt to free system page %u", pgno));
  }
  const uint32_t per_map = PagesPerMap(page_size);
  const uint32_t k = pgno / per_map;
  const uint32_t bit = pgno % per_map;
  ASSIGN_OR_RETURN(uint8_t * map, access_.Write(MapPageNo(k, page_size)));
  if (!TestBit(map, bit)) {
    return absl::DataLossError(absl::StrFormat("page %u is freed but is not allocated", pgno));
  }
  ClearBit(map, bit);
  if (k < hints_.first_open_map) hints_.first_open_map = k;
  if (k < hints_.word_hint.size() && bit / 64 < hints_.word_hint[k]) hints_.word_hint[k] = bit / 64;
  return absl::OkStatus();
}

absl::StatusOr<bool> SpaceMap::IsAllocated(PageNo pgno) {
  const uint32_t page_size = access_.page_size();
  const uint32_t per_map = PagesPerMap(page_size);
  const uint32_t k = pgno / per_map;
  ASSIGN_OR_RETURN(PageRef meta, access_.Read(kMetaPage));
  if (k >= LoadU32(meta->data() + meta_layout::kMapCount)) return false;
  ASSIGN_OR_RETURN(PageRef map, access_.Read(MapPageNo(k, page_size)));
  return TestBit(map->data(), pgno % per_map);
}

absl::Status FormatNewDatabase(PageAccess& access) {
  const uint32_t page_size = access.page_size();
  ASSIGN_OR_RETURN(uint8_t * meta, access.Create(kMetaPage, PageType::kMeta));
  StoreU32(meta + meta_layout::kRootPgno, kRootPage);
  StoreU32(meta + meta_layout::kTreeHeight, 1);
  StoreU32(meta + meta_layout::kMapCount, 1);
  ASSIGN_OR_RETURN(uint8_t * root, access.Create(kRootPage, PageType::kBTreeLeaf));
  BTreePage::Init(root, page_size, kRootPage, 0, 0);
  ASSIGN_OR_RETURN(uint8_t * map, access.Create(kFirstSpaceMapPage, PageType::kSpaceMap));
  StoreU32(map + space_map_layout::kMapIndex, 0);
  for (PageNo p = 0; p < kFirstDataPage; ++p) SetBit(map, p);
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
