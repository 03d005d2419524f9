// Packs: files of tens of MiB holding sealed chunks back to back, with a
// sealed trailer that indexes them (docs/repository-format.md, "Packs").
// A pack's name is the SHA-256 of its tail (the sealed trailer, its
// length and the end marker), which commits to every chunk through the
// authenticated trailer; it is written under a
// temporary name, fsynced, renamed into place and its folder fsynced, so a
// pack either exists whole or not at all. Each writer writes its own packs:
// concurrent writers need no lock.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/uncached_io.h"
#include "dagvault/v1/repository.pb.h"
#include "repository/crypto.h"
#include "repository/object_store.h"

namespace dagvault::repository {

inline constexpr uint32_t kPackFormatVersion = 1;
inline constexpr char kPackMagic[] = "DVPACK01";     // 8 bytes, at the start
inline constexpr char kPackEndMagic[] = "DVPKEND1";  // 8 bytes, at the end

struct PackedChunk {
  ChunkId id;
  uint64_t offset = 0;
  uint32_t length = 0;
  uint32_t plaintext_length = 0;
};

struct PackInfo {
  std::string id;   // 64 hex digits: SHA-256 of the pack's tail (from its trailer on)
  std::string key;  // packs/<first two digits>/<id>
  uint64_t size = 0;
  std::vector<PackedChunk> chunks;
};

// A chunk's entry in a pack trailer or an index file, both ways. An entry
// with a bad id is refused; `where` names the file for the error.
void ToEntry(const PackedChunk& chunk, dagvault::v1::PackTrailer::Entry* entry);
absl::StatusOr<PackedChunk> FromEntry(const dagvault::v1::PackTrailer::Entry& entry,
                                      const std::string& where);

// The key of pack `id`.
std::string PackKey(const std::string& id);

// Every pack in the store (by id), found by listing packs/.
absl::StatusOr<std::map<std::string, ObjectInfo>> ListPackFiles(const ObjectStore& store);

class PackWriter {
 public:
  // `put` says how each pack is written (its retention, on an object store
  // with Object Lock).
  PackWriter(const RepositoryKeys& keys, const ObjectStore& store, PutOptions put = {});
  // Reuses `buffer`'s memory (a finished pack's, from TakeBuffer) and
  // reserves `expected_size`: a pack grown by doubling would copy itself
  // and fault in fresh pages several times over.
  PackWriter(const RepositoryKeys& keys, const ObjectStore& store, PutOptions put,
             AlignedBuffer buffer, size_t expected_size);

  // Adds a sealed chunk (SealChunk's output). A pack stays under 4 GiB
  // (offsets are 32-bit in the in-memory index): Finish one before that.
  absl::Status Add(const ChunkId& id, std::string_view sealed, uint32_t plaintext_length);
  size_t size() const { return data_.size(); }
  size_t chunk_count() const { return chunks_.size(); }
  // Writes the pack durably and starts a new one.
  absl::StatusOr<PackInfo> Finish();
  // The (empty) buffer, for the next PackWriter.
  AlignedBuffer TakeBuffer();

 private:
  const RepositoryKeys& keys_;
  const ObjectStore& store_;
  PutOptions put_;
  // Aligned, so that a folder writes it by direct I/O where it lies.
  AlignedBuffer data_;
  std::vector<PackedChunk> chunks_;
};

// Finishes full packs on threads of their own, so that the threads which
// compress and encrypt never wait on a write, an fsync or an upload. At
// most `queue_limit` packs wait and `writers` are being written at once:
// Submit blocks beyond that, which bounds the memory a fast producer can
// take to queue_limit + writers packs. Several writers keep an object
// store's connections busy while one pack's digests are computed.
class BackgroundPackWriter {
 public:
  explicit BackgroundPackWriter(size_t queue_limit = 2, int writers = 1);
  ~BackgroundPackWriter();  // waits for the packs already submitted

  // Queues a full pack. Returns the first write error seen so far, so a
  // producer stops early when the repository cannot be written.
  absl::Status Submit(std::unique_ptr<PackWriter> pack);
  // Waits for every submitted pack; returns them, or the first error.
  absl::StatusOr<std::vector<PackInfo>> Close();
  // The buffer of a pack already written, or an empty string.
  AlignedBuffer SpareBuffer();

 private:
  void Run();

  const size_t queue_limit_;
  const size_t writers_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<PackWriter>> queue_;
  bool closing_ = false;
  absl::Status status_;
  std::vector<PackInfo> written_;
  std::vector<AlignedBuffer> spare_;
  std::vector<std::thread> threads_;
};

// Reads and authenticates a pack's trailer (a HEAD and two ranged reads:
// the header and the tail). Errors name the pack.
absl::StatusOr<PackInfo> ReadPackIndex(const RepositoryKeys& keys, const ObjectStore& store,
                                       const std::string& key);
// Reads the trailer (which checks the pack's name); with read_data reads
// the whole pack once and checks that every chunk opens. The first
// problem is returned, naming the pack (and the chunk).
absl::Status CheckPack(const RepositoryKeys& keys, const ObjectStore& store, const std::string& key,
                       bool read_data);
// Buffers a reader reuses from chunk to chunk (ReadPackedChunkIn).
struct ChunkReadBuffers {
  std::string sealed;
  AlignedBuffer plain;  // aligned: a restore writes it by direct I/O in place
};
// Opens one chunk from its sealed bytes, already read from pack `key`
// (`sealed` may be shorter than the index says: a pack cut short), in
// place. Errors name the pack and the chunk. The result points into
// `sealed` or *buffers and lives until their next use.
absl::StatusOr<absl::string_view> OpenPackedChunkIn(
    const RepositoryKeys& keys, const ObjectStore& store, const std::string& key,
    const PackedChunk& chunk, absl::Span<char> sealed, ChunkReadBuffers* buffers,
    bool check_id = true);
// Reads one chunk of a pack (one ranged read) and opens it.
absl::StatusOr<absl::string_view> ReadPackedChunkIn(
    const RepositoryKeys& keys, const ObjectStore& store, const std::string& key,
    const PackedChunk& chunk, ChunkReadBuffers* buffers, bool check_id = true);
absl::StatusOr<std::string> ReadPackedChunk(const RepositoryKeys& keys, const ObjectStore& store,
                                            const std::string& key, const PackedChunk& chunk);

}  // namespace dagvault::repository
