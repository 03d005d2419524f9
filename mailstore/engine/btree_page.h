// A slotted B-tree page: a sorted array of 2-byte record offsets after the
// header, records packed from the end of the page downwards. Inserting a
// record writes its bytes into free space and shifts only the slot array,
// so a small change touches few bytes, which keeps log deltas small.
//
// Leaf record:     key[16] kind:u8 then
//                    kind 0 (inline): length:u32 value[length]
//                    kind 1 (long):   length:u64 first_page:u32 crc32c:u32 page_count:u32
// Internal record: key[16] child:u32   (the child holds keys >= key)
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "mailstore/engine/layout.h"
#include "mailstore/format/codec.h"

namespace dagvault::mailstore {

constexpr uint32_t kKeySize = 16;

// Items are keyed by mailbox and item id; on disk the key is big-endian so
// that byte order is key order.
struct ItemKey {
  uint64_t mailbox = 0;
  uint64_t item = 0;
  auto operator<=>(const ItemKey&) const = default;
  void Encode(uint8_t out[kKeySize]) const {
    StoreBigU64(out, mailbox);
    StoreBigU64(out + 8, item);
  }
  static ItemKey Decode(const uint8_t* in) { return ItemKey{LoadBigU64(in), LoadBigU64(in + 8)}; }
  std::string ToString() const;
};

namespace leaf_record {
constexpr uint32_t kKind = 16;
constexpr uint8_t kInline = 0;
constexpr uint8_t kLong = 1;
constexpr uint32_t kInlineLength = 17;  // u32
constexpr uint32_t kInlineData = 21;
constexpr uint32_t kLongLength = 17;  // u64
constexpr uint32_t kLongFirstPage = 25;
constexpr uint32_t kLongCrc = 29;
constexpr uint32_t kLongPageCount = 33;
constexpr uint32_t kLongSize = 37;
}  // namespace leaf_record
constexpr uint32_t kInternalRecordSize = 20;

// The largest value stored inline in a leaf. Larger values go to long-value
// pages. Chosen so that a leaf always holds at least four records, which
// keeps a split of a full page able to take any record.
uint32_t MaxInlineValue(uint32_t page_size);
uint32_t MaxRecordSize(uint32_t page_size);

class BTreePage {
 public:
  BTreePage(const uint8_t* page, uint32_t page_size)
      : page_(const_cast<uint8_t*>(page)), page_size_(page_size) {}

  // Formats a page as an empty leaf (level 0) or internal page.
  static void Init(uint8_t* page, uint32_t page_size, PageNo pgno, uint8_t level, PageNo leftmost);

  uint8_t level() const { return page_[btree_layout::kLevel]; }
  bool is_leaf() const { return level() == 0; }
  uint16_t slot_count() const { return LoadU16(page_ + btree_layout::kSlotCount); }
  PageNo leftmost() const { return LoadU32(page_ + btree_layout::kLeftmost); }
  void set_leftmost(PageNo p) { StoreU32(page_ + btree_layout::kLeftmost, p); }

  const uint8_t* Record(int i) const { return page_ + SlotOffset(i); }
  uint32_t RecordSize(int i) const { return RecordSizeAt(Record(i)); }
  const uint8_t* Key(int i) const { return Record(i); }
  PageNo Child(int i) const { return LoadU32(Record(i) + kKeySize); }
  void SetChild(int i, PageNo p) { StoreU32(page_ + SlotOffset(i) + kKeySize, p); }

  // The first slot whose key is >= key; slot_count() if none.
  int LowerBound(const uint8_t key[kKeySize]) const;
  // The slot holding exactly this key, or -1.
  int Find(const uint8_t key[kKeySize]) const;
  // Internal pages: the child to descend into for key, and the slot of the
  // separator that leads there (-1 for the leftmost child).
  PageNo ChildFor(const uint8_t key[kKeySize], int* slot) const;

  uint32_t ContiguousFree() const;
  uint32_t TotalFree() const {
    return ContiguousFree() + LoadU16(page_ + btree_layout::kFragBytes);
  }
  bool CanInsert(uint32_t record_size) const { return TotalFree() >= record_size + 2; }
  uint32_t UsedBytes() const;

  // Inserts at slot i (which must keep the order); compacts first if the
  // free space is fragmented. The caller checked CanInsert.
  void Insert(int i, const uint8_t* record, uint32_t size);
  void Remove(int i);
  // Overwrites record i with a record of the same key that is no larger,
  // in place, so only the changed bytes differ. Returns false if larger.
  bool ReplaceInPlace(int i, const uint8_t* record, uint32_t size);
  // Rewrites the records contiguously, dropping fragmented space.
  void Compact();
  // Moves slots [from, slot_count) to the empty page `right`.
  void MoveTail(int from, BTreePage& right);
  // The slot at which to split so that both halves hold about half the bytes.
  int SplitPoint() const;

  // Structural sanity for pages read from disk: slot offsets and record
  // sizes inside the page, keys in order. Names the page on failure.
  absl::Status Validate(PageNo pgno) const;

  static uint32_t RecordSizeAt(const uint8_t* record, bool leaf);
  uint32_t RecordSizeAt(const uint8_t* record) const { return RecordSizeAt(record, is_leaf()); }

 private:
  uint16_t SlotOffset(int i) const { return LoadU16(page_ + btree_layout::kSlots + 2 * i); }
  void SetSlotOffset(int i, uint16_t off) { StoreU16(page_ + btree_layout::kSlots + 2 * i, off); }
  uint32_t HeapStart() const;
  void SetHeapStart(uint32_t v);

  uint8_t* page_;
  uint32_t page_size_;
};

}  // namespace dagvault::mailstore
