#include "mailstore/engine/digest.h"

#include "common/status_macros.h"
#include "mailstore/format/codec.h"

namespace dagvault::mailstore {

absl::StatusOr<DigestResult> DigestItems(ItemTable& table) {
  DigestResult result;
  Sha256 sha;
  RETURN_IF_ERROR(table.ForEach([&](const ItemKey& key, absl::string_view value) {
    uint8_t frame[24];
    StoreBigU64(frame, key.mailbox);
    StoreBigU64(frame + 8, key.item);
    StoreBigU64(frame + 16, value.size());
    sha.Update(frame, sizeof(frame));
    sha.Update(value.data(), value.size());
    result.items++;
    result.value_bytes += value.size();
    return absl::OkStatus();
  }));
  result.digest = sha.Finish();
  return result;
}

}  // namespace dagvault::mailstore
