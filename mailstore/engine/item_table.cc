#include "mailstore/engine/item_table.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "mailstore/engine/layout.h"
#include "mailstore/engine/long_value.h"

namespace dagvault::mailstore {

uint64_t RecordValueLength(const uint8_t* record) {
  if (record[leaf_record::kKind] == leaf_record::kLong) {
    return LoadU64(record + leaf_record::kLongLength);
  }
  return LoadU32(record + leaf_record::kInlineLength);
}

ItemTable::ItemTable(PageAccess& access, SpaceHints* hints)
    : access_(access),
      space_(hints != nullptr ? std::optional<SpaceMap>(std::in_place, access, *hints)
                              : std::nullopt),
      tree_(access, space_ ? &*space_ : nullptr) {}

absl::StatusOr<std::string> ItemTable::ValueOf(const uint8_t* record) {
  if (record[leaf_record::kKind] == leaf_record::kLong) {
    return ReadLongValue(access_, ItemKey::Decode(record), DecodeLongValueRef(record));
  }
  return std::string(reinterpret_cast<const char*>(record + leaf_record::kInlineData),
                     LoadU32(record + leaf_record::kInlineLength));
}

absl::StatusOr<std::optional<std::string>> ItemTable::Get(const ItemKey& key) {
  uint8_t k[kKeySize];
  key.Encode(k);
  ASSIGN_OR_RETURN(auto record, tree_.Find(k));
  if (!record) return std::nullopt;
  ASSIGN_OR_RETURN(std::string value, ValueOf(reinterpret_cast<const uint8_t*>(record->data())));
  return value;
}

absl::Status ItemTable::Put(const ItemKey& key, absl::string_view value) {
  if (!space_) return absl::FailedPreconditionError("Put on a read-only item table");
  if (value.size() > kMaxValueSize) {
    return absl::InvalidArgumentError(
        absl::StrFormat("item %s: value of %u bytes exceeds the %u-byte limit", key.ToString(),
                        value.size(), kMaxValueSize));
  }
  uint8_t k[kKeySize];
  key.Encode(k);
  // Free the old long value first so that its pages are the first reused:
  // an overwrite then lands where the old value was, as an in-place update.
  ASSIGN_OR_RETURN(auto old, tree_.Find(k));
  int64_t old_bytes = 0;
  if (old) {
    const auto* rec = reinterpret_cast<const uint8_t*>(old->data());
    old_bytes = static_cast<int64_t>(RecordValueLength(rec));
    if (rec[leaf_record::kKind] == leaf_record::kLong) {
      RETURN_IF_ERROR(FreeLongValue(access_, *space_, key, DecodeLongValueRef(rec)));
    }
  }
  std::string record(kKeySize + 1, '\0');
  auto* r = reinterpret_cast<uint8_t*>(record.data());
  std::memcpy(r, k, kKeySize);
  if (value.size() <= MaxInlineValue(access_.page_size())) {
    record.resize(leaf_record::kInlineData + value.size());
    r = reinterpret_cast<uint8_t*>(record.data());
    r[leaf_record::kKind] = leaf_record::kInline;
    StoreU32(r + leaf_record::kInlineLength, static_cast<uint32_t>(value.size()));
    if (!value.empty()) std::memcpy(r + leaf_record::kInlineData, value.data(), value.size());
  } else {
    ASSIGN_OR_RETURN(LongValueRef ref, WriteLongValue(access_, *space_, key, value));
    record.resize(leaf_record::kLongSize);
    r = reinterpret_cast<uint8_t*>(record.data());
    EncodeLongValueRef(ref, r);
  }
  RETURN_IF_ERROR(tree_.Upsert(r, static_cast<uint32_t>(record.size())));
  return AddToMeta(old ? 0 : 1, static_cast<int64_t>(value.size()) - old_bytes);
}

absl::StatusOr<bool> ItemTable::Delete(const ItemKey& key) {
  if (!space_) return absl::FailedPreconditionError("Delete on a read-only item table");
  uint8_t k[kKeySize];
  key.Encode(k);
  ASSIGN_OR_RETURN(auto old, tree_.Remove(k));
  if (!old) return false;
  const auto* rec = reinterpret_cast<const uint8_t*>(old->data());
  if (rec[leaf_record::kKind] == leaf_record::kLong) {
    RETURN_IF_ERROR(FreeLongValue(access_, *space_, key, DecodeLongValueRef(rec)));
  }
  RETURN_IF_ERROR(AddToMeta(-1, -static_cast<int64_t>(RecordValueLength(rec))));
  return true;
}

absl::StatusOr<std::vector<ItemInfo>> ItemTable::List(uint64_t mailbox, uint64_t start_item,
                                                      size_t limit) {
  std::vector<ItemInfo> out;
  uint8_t start[kKeySize];
  ItemKey{mailbox, start_item}.Encode(start);
  RETURN_IF_ERROR(tree_.Scan(start, [&](const uint8_t* rec, uint32_t) -> absl::StatusOr<bool> {
    ItemKey key = ItemKey::Decode(rec);
    if (key.mailbox != mailbox || out.size() >= limit) return false;
    out.push_back(ItemInfo{key, RecordValueLength(rec)});
    return true;
  }));
  return out;
}

absl::StatusOr<std::optional<uint64_t>> ItemTable::FirstMailboxFrom(uint64_t mailbox) {
  std::optional<uint64_t> found;
  uint8_t start[kKeySize];
  ItemKey{mailbox, 0}.Encode(start);
  RETURN_IF_ERROR(tree_.Scan(start, [&](const uint8_t* rec, uint32_t) -> absl::StatusOr<bool> {
    found = ItemKey::Decode(rec).mailbox;
    return false;
  }));
  return found;
}

absl::Status ItemTable::ForEach(const ItemFn& fn) {
  uint8_t start[kKeySize] = {};
  return tree_.Scan(start, [&](const uint8_t* rec, uint32_t) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(std::string value, ValueOf(rec));
    RETURN_IF_ERROR(fn(ItemKey::Decode(rec), value));
    return true;
  });
}

absl::StatusOr<MetaInfo> ItemTable::Meta() {
  ASSIGN_OR_RETURN(PageRef meta, access_.Read(kMetaPage));
  if (PageTypeOf(meta->data()) != PageType::kMeta) {
    return absl::DataLossError(absl::StrFormat("page %u: expected the meta page, found a %s page",
                                               kMetaPage, PageTypeName(PageTypeOf(meta->data()))));
  }
  const uint8_t* p = meta->data();
  return MetaInfo{LoadU64(p + meta_layout::kItemCount), LoadU64(p + meta_layout::kValueBytes),
                  LoadU32(p + meta_layout::kTreeHeight), LoadU32(p + meta_layout::kMapCount)};
}

absl::Status ItemTable::AddToMeta(int64_t items, int64_t bytes) {
  if (items == 0 && bytes == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(uint8_t * meta, access_.Write(kMetaPage));
  StoreU64(
      meta + meta_layout::kItemCount,
      static_cast<uint64_t>(static_cast<int64_t>(LoadU64(meta + meta_layout::kItemCount)) + items));
  StoreU64(meta + meta_layout::kValueBytes,
           static_cast<uint64_t>(static_cast<int64_t>(LoadU64(meta + meta_layout::kValueBytes)) +
                                 bytes));
  return absl::OkStatus();
}

}  // namespace dagvault::mailstore
