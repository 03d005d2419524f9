// Block maps: how a large file is stored (docs/repository-format.md,
// "Block maps"). The file is cut into fixed, page-aligned blocks; each
// block has a short hash (the first 8 bytes of its SHA-256) and a
// reference to the chunk and slot that hold its bytes. A later backup
// hashes every block again and stores only those whose hash changed.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "dagvault/v1/repository.pb.h"
#include "repository/crypto.h"

namespace dagvault::repository {

inline constexpr size_t kBlockRecordSize = 12;
inline constexpr uint32_t kSlotBits = 10;
inline constexpr uint32_t kMaxSlotsPerChunk = 1u << kSlotBits;
inline constexpr uint32_t kMaxChunkTableSize = 1u << (32 - kSlotBits);
// An all-zero block: nothing is stored, and a restore leaves a hole.
inline constexpr uint32_t kZeroBlockRef = 0xFFFFFFFFu;
// New blocks are packed into chunks of about this size.
inline constexpr uint32_t kBlockChunkTarget = 4 << 20;
// A file has at most this many blocks: the block size grows with the file
// beyond 16 GiB of 8 KiB pages, so a map stays under ~25 MiB.
inline constexpr uint64_t kMaxBlocksPerFile = 1u << 21;

// The block size for a file: the page size (at least 4 KiB, a power of
// two), doubled until the file has at most kMaxBlocksPerFile blocks.
uint32_t BlockSizeFor(uint64_t file_size, uint32_t page_size);
// How many blocks a chunk of new blocks holds.
uint32_t BlocksPerChunk(uint32_t block_size);

struct BlockRecord {
  uint64_t hash = 0;
  uint32_t ref = kZeroBlockRef;
  uint32_t chunk() const { return ref >> kSlotBits; }
  uint32_t slot() const { return ref & (kMaxSlotsPerChunk - 1); }
  static uint32_t Ref(uint32_t chunk, uint32_t slot) { return chunk << kSlotBits | slot; }
};

// A block's hash in its map: the first 8 bytes (little-endian) of the
// SHA-256 of its leaf digests (AppendLeafDigests), so that a backup hashes
// each byte once for both the block map and the chunk id.
uint64_t ShortBlockHash(absl::string_view block);
uint64_t ShortBlockHashFromLeafDigests(absl::string_view leaf_digests);
bool IsAllZero(absl::string_view block);

void AppendBlockRecord(const BlockRecord& record, std::string* blocks);
BlockRecord BlockRecordAt(absl::string_view blocks, uint64_t index);
inline uint64_t BlockCount(uint64_t file_size, uint32_t block_size) {
  // Not (size + block_size - 1) / block_size, which wraps for a size near
  // 2^64 (a damaged manifest's) and would make its map look whole.
  return file_size / block_size + (file_size % block_size != 0 ? 1 : 0);
}

// Calls fn(id) for each chunk id a manifest file refers to: its block
// map's chunk table, or its chunk list. Malformed ids are skipped (check
// and restore report them).
template <typename Fn>
void ForEachChunkId(const dagvault::v1::ManifestFile& f, Fn fn) {
  std::array<uint8_t, 32> id;
  const std::string& table = f.block_map().chunk_ids();
  for (size_t i = 0; i + 32 <= table.size(); i += 32) {
    std::memcpy(id.data(), table.data() + i, 32);
    fn(id);
  }
  for (const auto& c : f.chunks()) {
    if (c.id().size() != 32) continue;
    std::memcpy(id.data(), c.id().data(), 32);
    fn(id);
  }
}

// Checks a manifest file's block map against its size: record count,
// chunk table, every reference in range. `where` names the manifest and
// file for the error.
absl::Status ValidateBlockMap(const dagvault::v1::ManifestFile& file, const std::string& where);

}  // namespace dagvault::repository
