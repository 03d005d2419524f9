#include "repository/block_map.h"

#include <algorithm>
#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "common/evp.h"

namespace dagvault::repository {

uint32_t BlockSizeFor(uint64_t file_size, uint32_t page_size) {
  uint32_t size = 4096;
  while (size < page_size) size <<= 1;
  while (BlockCount(file_size, size) > kMaxBlocksPerFile) size <<= 1;
  return size;
}

uint32_t BlocksPerChunk(uint32_t block_size) {
  return std::clamp<uint32_t>(kBlockChunkTarget / block_size, 1, kMaxSlotsPerChunk);
}

uint64_t ShortBlockHash(absl::string_view block) {
  std::string digests;
  AppendLeafDigests(block, &digests);
  return ShortBlockHashFromLeafDigests(digests);
}

uint64_t ShortBlockHashFromLeafDigests(absl::string_view leaf_digests) {
  const Sha256Digest d = Sha256::Of(leaf_digests);
  uint64_t h;
  std::memcpy(&h, d.data(), sizeof(h));
  return absl::little_endian::ToHost64(h);
}

bool IsAllZero(absl::string_view block) {
  if (block.empty()) return true;
  // Compare the block with itself shifted by one: all bytes equal the first.
  return block[0] == 0 && std::memcmp(block.data(), block.data() + 1, block.size() - 1) == 0;
}

void AppendBlockRecord(const BlockRecord& record, std::string* blocks) {
  char buf[kBlockRecordSize];
  absl::little_endian::Store64(buf, record.hash);
  absl::little_endian::Store32(buf + 8, record.ref);
  blocks->append(buf, sizeof(buf));
}

BlockRecord BlockRecordAt(absl::string_view blocks, uint64_t index) {
  const char* p = blocks.data() + index * kBlockRecordSize;
  return BlockRecord{absl::little_endian::Load64(p), absl::little_endian::Load32(p + 8)};
}

absl::Status ValidateBlockMap(const dagvault::v1::ManifestFile& file, const std::string& where) {
  const auto& map = file.block_map();
  const uint32_t bs = map.block_size();
  if (bs < 4096 || (bs & (bs - 1)) != 0) {
    return absl::DataLossError(absl::StrCat(where, ": block size ", bs, " is not valid"));
  }
  const uint64_t count = BlockCount(file.size(), bs);
  if (map.blocks().size() != count * kBlockRecordSize) {
    return absl::DataLossError(absl::StrCat(where, ": the block map has ", map.blocks().size(),
                                            " bytes; a file of ", file.size(), " bytes needs ",
                                            count * kBlockRecordSize));
  }
  if (map.chunk_ids().size() % 32 != 0) {
    return absl::DataLossError(absl::StrCat(where, ": the chunk table is not whole ids"));
  }
  const uint64_t chunks = map.chunk_ids().size() / 32;
  const uint32_t slots = BlocksPerChunk(bs);
  for (uint64_t i = 0; i < count; ++i) {
    const BlockRecord r = BlockRecordAt(map.blocks(), i);
    if (r.ref == kZeroBlockRef) continue;
    if (r.chunk() >= chunks || r.slot() >= slots) {
      return absl::DataLossError(absl::StrCat(where, ": block ", i, " refers to chunk ", r.chunk(),
                                              " slot ", r.slot(), ", outside its ", chunks,
                                              " chunks of ", slots, " slots"));
    }
  }
  return absl::OkStatus();
}

}  // namespace dagvault::repository
