// The repository's cryptography (docs/repository-format.md, "Keys" and
// "Chunks"):
//
// - a random 32-byte repository key, from which HKDF-SHA256 derives the
//   chunk-id key and the chunk-data key;
// - chunk ids: HMAC-SHA256 of the plaintext under the chunk-id key, so ids
//   reveal nothing about content to whoever lacks the key;
// - sealed chunks: zstd (stored raw when that does not make it smaller,
//   or when samples show it would not: LooksIncompressible),
//   then AES-256-GCM with a random 96-bit nonce, the associated data
//   binding the format version, the flags and the chunk id;
// - key slots: the repository key wrapped by a passphrase (scrypt) or a
//   key file (HKDF), each with AES-256-GCM.
//
// No key, passphrase or plaintext ever appears in an error message.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/uncached_io.h"
#include "dagvault/v1/repository.pb.h"

namespace dagvault::repository {

inline constexpr uint8_t kChunkFormatVersion = 1;
inline constexpr size_t kKeySize = 32;
inline constexpr size_t kNonceSize = 12;
inline constexpr size_t kTagSize = 16;
// Version byte, flags byte, nonce; then the ciphertext; then the tag.
inline constexpr size_t kSealedOverhead = 2 + kNonceSize + kTagSize;
// No chunk's plaintext is larger (a sealed chunk claiming more is refused
// before anything is allocated).
inline constexpr size_t kMaxChunkSize = 64 << 20;

using ChunkId = std::array<uint8_t, 32>;
std::string ChunkIdHex(const ChunkId& id);

// The repository key and the keys derived from it. Never logged.
class RepositoryKeys {
 public:
  static absl::StatusOr<RepositoryKeys> Generate();
  static absl::StatusOr<RepositoryKeys> FromKey(absl::string_view key);

  const std::string& key() const { return key_; }
  const std::string& data_key() const { return data_key_; }
  // A chunk's id: the HMAC-SHA256, under the chunk-id key, of the SHA-256
  // digests of its 4 KiB leaves in order (AppendLeafDigests).
  ChunkId Id(absl::string_view plaintext) const;
  // The same id from leaf digests already computed: a backup hashes each
  // leaf once and derives block hashes and chunk ids from those digests.
  ChunkId IdFromLeafDigests(absl::string_view leaf_digests) const;

 private:
  std::string key_;       // the repository key
  std::string id_key_;    // HKDF(key, "dagvault chunk id v1")
  std::string data_key_;  // HKDF(key, "dagvault chunk data v1")
};

// Chunks are hashed in leaves of this size; the last leaf of a chunk may
// be shorter. Block sizes are multiples of it (BlockSizeFor).
inline constexpr size_t kLeafSize = 4096;
inline constexpr size_t kLeafDigestSize = 32;
// Appends the SHA-256 of each leaf of `data` to `digests`.
void AppendLeafDigests(absl::string_view data, std::string* digests);

// A zstd level a repository or a backup may ask for: 1 to zstd's maximum
// (22). The error names the level and the range.
absl::Status ValidateZstdLevel(int level);

struct SealOptions {
  int zstd_level = 3;
};

// Whether a chunk is not worth compressing: four 16 KiB samples spread
// over it, compressed at zstd level 1, each save under 2% (already
// compressed attachments, encrypted data). Such a chunk is sealed raw
// without compressing it whole. Chunks under 256 KiB are always tried.
bool LooksIncompressible(absl::string_view plaintext);

// Seals a chunk's plaintext, which must have the id `id` (Id(plaintext)).
absl::StatusOr<std::string> SealChunk(const RepositoryKeys& keys, const ChunkId& id,
                                      absl::string_view plaintext, const SealOptions& options = {});
// The same into *scratch, which is grown as needed and never shrunk: a
// caller sealing many chunks reuses one buffer. The result points into it.
absl::StatusOr<absl::string_view> SealChunkTo(const RepositoryKeys& keys, const ChunkId& id,
                                              absl::string_view plaintext,
                                              const SealOptions& options,
                                              std::vector<char>* scratch);
// Opens a sealed chunk: authenticates it against `id`, decompresses, and
// checks that the plaintext has that id. Errors name the chunk (by id) and
// what is wrong with it; nothing unauthenticated is returned.
absl::StatusOr<std::string> OpenChunk(const RepositoryKeys& keys, const ChunkId& id,
                                      absl::string_view sealed);
// The same without allocating: `sealed` is decrypted in place and a
// compressed body is decompressed into *plain (grown as needed, never
// shrunk), so a reader opening chunk after chunk reuses two buffers. The
// result points into one of them.
// `check_id` false skips hashing the plaintext against the id, for a
// reader that proves its result another way (a restore checks each file's
// SHA-256); authentication still binds the chunk to its id.
absl::StatusOr<absl::string_view> OpenChunkIn(const RepositoryKeys& keys, const ChunkId& id,
                                              absl::Span<char> sealed, AlignedBuffer* plain,
                                              bool check_id = true);
// Other sealed objects (a pack's trailer, an index, a manifest): the same
// format, with associated data `dagvault blob` and a binding that names
// the object (e.g. "pack <id> trailer"), which errors use too.
absl::StatusOr<std::string> SealBlob(const RepositoryKeys& keys, absl::string_view binding,
                                     absl::string_view plaintext);
absl::StatusOr<std::string> OpenBlob(const RepositoryKeys& keys, absl::string_view binding,
                                     absl::string_view sealed);
// `bytes` random bytes as hex digits (session, slot and repository ids).
absl::StatusOr<std::string> RandomHex(size_t bytes);
// Whether a sealed chunk was stored compressed (for statistics).
bool SealedIsCompressed(absl::string_view sealed);

struct ScryptParams {
  uint64_t n = 1 << 15;
  uint32_t r = 8;
  uint32_t p = 1;
};

// Key slots.
absl::StatusOr<dagvault::v1::WrappedKey> WrapWithPassphrase(const RepositoryKeys& keys,
                                                            absl::string_view passphrase,
                                                            const ScryptParams& params = {});
absl::StatusOr<dagvault::v1::WrappedKey> WrapWithKeyFile(const RepositoryKeys& keys,
                                                         absl::string_view key_file_bytes);
// A wrong passphrase or key file, and a damaged slot, are both refused with
// an error that names the slot; which of the two it is cannot be told.
absl::StatusOr<RepositoryKeys> Unwrap(const dagvault::v1::WrappedKey& slot,
                                      absl::string_view secret);

}  // namespace dagvault::repository
