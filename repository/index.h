// Where each chunk is: the in-memory index of a repository, and the index
// files each writing session leaves (docs/repository-format.md, "Index").
// Writers in many processes each write their own packs and their own index
// file, so none needs a lock; a reader loads every index file.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "repository/crypto.h"
#include "repository/pack.h"

namespace dagvault::repository {

struct ChunkLocation {
  const std::string* pack = nullptr;  // the pack's id
  // The key of the index file that listed the pack ("" when not given):
  // under Object Lock a backup that reuses the chunk keeps both.
  const std::string* index_file = nullptr;
  PackedChunk chunk;
};

// At most about 61 bytes per chunk in steady state: a sorted array of
// 48-byte entries (the 32-byte id and a 16-byte location; packs are
// numbered, their ids kept once), and a hash table of the chunks added
// since the last merge, which is merged into the array when it reaches an
// eighth of it. A merge briefly holds both arrays.
class ChunkIndex {
 public:
  void AddPack(const PackInfo& pack, const std::string& index_file = "");
  bool Contains(const ChunkId& id) const { return FindLocation(id) != nullptr; }
  std::optional<ChunkLocation> Find(const ChunkId& id) const;
  size_t chunk_count() const { return sorted_.size() + recent_.size(); }
  size_t pack_count() const { return packs_.size(); }
  // Merges the recent chunks into the sorted array (after loading).
  void Compact();
  // What the index occupies for its chunks (array and table), not
  // counting the pack ids.
  size_t MemoryBytes() const;

 private:
  struct Location {
    uint32_t pack;
    uint32_t offset;
    uint32_t length;
    uint32_t plaintext_length;
  };
  struct Entry {
    ChunkId id;
    Location loc;
  };
  static_assert(sizeof(Entry) == 48);
  struct IdHash {
    // Ids are HMAC outputs: their first eight bytes are as good a hash as any.
    size_t operator()(const ChunkId& id) const {
      size_t h;
      __builtin_memcpy(&h, id.data(), sizeof(h));
      return h;
    }
  };
  const Location* FindLocation(const ChunkId& id) const;

  std::vector<Entry> sorted_;
  absl::flat_hash_map<ChunkId, Location, IdHash> recent_;
  std::vector<std::string> packs_;
  // Per pack, which of index_files_ listed it (files are added in runs).
  std::vector<uint32_t> pack_files_;
  std::vector<std::string> index_files_;
};

// Writes index/<session>.idx whole, listing `packs`.
absl::Status WriteIndexFile(const RepositoryKeys& keys, const ObjectStore& store,
                            const std::string& session, const std::vector<PackInfo>& packs,
                            const PutOptions& put = {});
// The key of a writing session's index file.
std::string IndexFileKey(const std::string& session);
// The keys of the index files, sorted; and one file's packs. Errors name
// the file.
absl::StatusOr<std::vector<std::string>> ListIndexFiles(const ObjectStore& store);
absl::StatusOr<std::vector<PackInfo>> ReadIndexFile(const RepositoryKeys& keys,
                                                    const ObjectStore& store,
                                                    const std::string& key);
// Loads every index file. An index file that is damaged or from another
// key is an error naming the file.
absl::StatusOr<ChunkIndex> LoadIndex(const RepositoryKeys& keys, const ObjectStore& store);

}  // namespace dagvault::repository
