// The sealed-object opener (repository/crypto.h: OpenChunk, OpenBlob) with
// a fixed key.
//
// Input: a mode byte, then
//   0: a 32-byte chunk id and sealed bytes, opened as that chunk and as a
//      blob (the seeds are real sealed objects under the fixed key);
//   1: a plaintext, sealed and opened again as a chunk and as a blob;
//   2: a flags byte and a body, encrypted under the key as the format does,
//      so that the code after authentication (the compressed flag, zstd
//      frames, the declared size) sees arbitrary bytes.
#include <openssl/evp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "repository/crypto.h"
#include "tests/fuzz/fuzz_entry.h"

namespace dagvault::fuzz {
namespace {

using namespace dagvault::repository;

const RepositoryKeys& Keys() {
  static const RepositoryKeys* keys = [] {
    auto k = RepositoryKeys::FromKey(absl::string_view(kFuzzRepositoryKey, kKeySize));
    if (!k.ok()) std::abort();
    return new RepositoryKeys(*std::move(k));
  }();
  return *keys;
}

// The sealed format (docs/repository-format.md, "Chunks"): version, flags,
// nonce, AES-256-GCM ciphertext, tag; associated data: the label, version,
// flags and binding.
std::string Forge(uint8_t flags, absl::string_view body, absl::string_view label,
                  absl::string_view binding) {
  std::string nonce(kNonceSize, '\x07');
  std::string aad = absl::StrCat(label, std::string(1, static_cast<char>(kChunkFormatVersion)),
                                 std::string(1, static_cast<char>(flags)), binding);
  std::string out = absl::StrCat(std::string(1, static_cast<char>(kChunkFormatVersion)),
                                 std::string(1, static_cast<char>(flags)), nonce);
  std::string cipher(body.size() + kTagSize, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  auto u8 = [](absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  auto* o = reinterpret_cast<unsigned char*>(cipher.data());
  int len = 0;
  const std::string& key = Keys().data_key();
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce)) != 1 ||
      EVP_EncryptUpdate(ctx, nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx, o, &len, u8(body), static_cast<int>(body.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, o + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, o + body.size()) != 1) {
    std::abort();
  }
  EVP_CIPHER_CTX_free(ctx);
  return out + cipher;
}

}  // namespace

int FuzzSealedBlob(const uint8_t* data, size_t size) {
  if (size < 1 || size > (1 << 20)) return 0;
  const uint8_t mode = data[0] % 3;
  const absl::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const RepositoryKeys& keys = Keys();
  if (mode == 0) {
    if (rest.size() < 32) return 0;
    ChunkId id;
    std::memcpy(id.data(), rest.data(), 32);
    const absl::string_view sealed = rest.substr(32);
    auto chunk = OpenChunk(keys, id, sealed);
    if (chunk.ok()) {
      FUZZ_CHECK(keys.Id(*chunk) == id);
      FUZZ_CHECK(chunk->size() <= kMaxChunkSize);
    }
    auto blob = OpenBlob(keys, kFuzzBlobBinding, sealed);
    if (blob.ok()) {
      FUZZ_CHECK(blob->size() <= kMaxChunkSize);
      // Nothing opens under another binding, or as a chunk.
      FUZZ_CHECK(!OpenBlob(keys, "manifest other", sealed).ok());
      FUZZ_CHECK(!chunk.ok());
    }
    return 0;
  }
  if (mode == 1) {
    const ChunkId id = keys.Id(rest);
    auto sealed = SealChunk(keys, id, rest);
    FUZZ_CHECK(sealed.ok());
    FUZZ_CHECK(sealed->size() <= rest.size() + kSealedOverhead);
    auto opened = OpenChunk(keys, id, *sealed);
    FUZZ_CHECK(opened.ok() && *opened == rest);
    auto blob = SealBlob(keys, kFuzzBlobBinding, rest);
    FUZZ_CHECK(blob.ok());
    auto back = OpenBlob(keys, kFuzzBlobBinding, *blob);
    FUZZ_CHECK(back.ok() && *back == rest);
    return 0;
  }
  if (rest.empty()) return 0;
  const uint8_t flags = static_cast<uint8_t>(rest[0]);
  const absl::string_view body = rest.substr(1);
  auto blob =
      OpenBlob(keys, kFuzzBlobBinding, Forge(flags, body, "dagvault blob", kFuzzBlobBinding));
  if (flags > 1) FUZZ_CHECK(!blob.ok());
  if (flags == 0) FUZZ_CHECK(blob.ok() && *blob == body);
  if (blob.ok()) FUZZ_CHECK(blob->size() <= kMaxChunkSize);
  // A chunk: authenticated, then refused unless its plaintext hashes to the id.
  ChunkId id{};
  auto chunk =
      OpenChunk(keys, id,
                Forge(flags, body, "dagvault chunk",
                      absl::string_view(reinterpret_cast<const char*>(id.data()), id.size())));
  if (chunk.ok()) FUZZ_CHECK(keys.Id(*chunk) == id);
  return 0;
}

}  // namespace dagvault::fuzz

DAGVAULT_FUZZ_TARGET(FuzzSealedBlob)
