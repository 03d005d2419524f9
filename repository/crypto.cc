#include "repository/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <zstd.h>

#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/evp.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

constexpr uint8_t kFlagCompressed = 1;
constexpr absl::string_view kChunkAad = "dagvault chunk";
constexpr absl::string_view kBlobAad = "dagvault blob";
constexpr absl::string_view kKeyAad = "dagvault key slot v1";
constexpr uint32_t kWrappedKeyVersion = 1;

struct EvpKdfFree {
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
};
struct EvpKdfCtxFree {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};

absl::Status CryptoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, " failed: ", OpenSslErrors()));
}

absl::StatusOr<std::string> Hkdf(absl::string_view key, absl::string_view salt,
                                 absl::string_view info) {
  std::unique_ptr<EVP_KDF, EvpKdfFree> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (!kdf) return CryptoError("HKDF fetch");
  std::unique_ptr<EVP_KDF_CTX, EvpKdfCtxFree> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (!ctx) return CryptoError("HKDF context");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_KEY, const_cast<char*>(key.data()), key.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
                         OSSL_PARAM_construct_end()};
  std::string out(kKeySize, '\0');
  if (EVP_KDF_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), out.size(), params) !=
      1) {
    return CryptoError("HKDF");
  }
  return out;
}

// AES-256-GCM of `in` into out[0, in.size()), with the tag after it in
// out[in.size(), in.size() + kTagSize). `in` may be out's own start.
absl::Status GcmSealTo(absl::string_view key, absl::string_view nonce, absl::string_view aad,
                       absl::string_view in, char* out) {
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return CryptoError("cipher context");
  auto u8 = [](absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  auto* o = reinterpret_cast<unsigned char*>(out);
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &len, u8(in), static_cast<int>(in.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, o + in.size()) != 1) {
    return CryptoError("AES-256-GCM encryption");
  }
  return absl::OkStatus();
}

// AES-256-GCM. The output is ciphertext followed by the tag.
absl::StatusOr<std::string> GcmSeal(absl::string_view key, absl::string_view nonce,
                                    absl::string_view aad, absl::string_view plaintext) {
  std::string out(plaintext.size() + kTagSize, '\0');
  RETURN_IF_ERROR(GcmSealTo(key, nonce, aad, plaintext, out.data()));
  return out;
}

// AES-256-GCM decryption of `sealed` (ciphertext, then the tag) into
// `out`, which may be sealed's own start. Returns false when
// authentication fails; out's bytes must then not be used.
absl::StatusOr<bool> GcmOpenTo(absl::string_view key, absl::string_view nonce,
                               absl::string_view aad, absl::string_view sealed, char* out) {
  if (sealed.size() < kTagSize) return false;
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return CryptoError("cipher context");
  auto u8 = [](absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  const size_t n = sealed.size() - kTagSize;
  auto* o = reinterpret_cast<unsigned char*>(out);
  int len = 0;
  unsigned char tag[kTagSize];
  std::memcpy(tag, sealed.data() + n, kTagSize);  // before `out` may overwrite it
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), o, &len, u8(sealed), static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag) != 1) {
    return CryptoError("AES-256-GCM decryption");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), o + len, &len) != 1) {
    (void)OpenSslErrors();  // drain: an authentication failure, not a library error
    return false;
  }
  return true;
}

// Returns nullopt when authentication fails.
absl::StatusOr<std::optional<std::string>> GcmOpen(absl::string_view key, absl::string_view nonce,
                                                   absl::string_view aad,
                                                   absl::string_view sealed) {
  std::string out(sealed.size() < kTagSize ? 0 : sealed.size() - kTagSize, '\0');
  ASSIGN_OR_RETURN(bool opened, GcmOpenTo(key, nonce, aad, sealed, out.data()));
  if (!opened) return std::optional<std::string>();
  return std::optional<std::string>(std::move(out));
}

absl::StatusOr<std::string> RandomString(size_t n) {
  std::string s(n, '\0');
  RETURN_IF_ERROR(RandomBytes(absl::MakeSpan(reinterpret_cast<uint8_t*>(s.data()), n)));
  return s;
}

// The associated data: a label saying what kind of object this is, the
// version and flags bytes, and what the object is bound to (a chunk's id,
// a pack's name).
std::string Aad(absl::string_view label, uint8_t version, uint8_t flags,
                absl::string_view binding) {
  std::string aad(label);
  aad.push_back(static_cast<char>(version));
  aad.push_back(static_cast<char>(flags));
  aad.append(binding.data(), binding.size());
  return aad;
}

absl::string_view IdBytes(const ChunkId& id) {
  return absl::string_view(reinterpret_cast<const char*>(id.data()), id.size());
}

// One zstd context of each kind per thread: creating one per chunk costs
// more than compressing a small chunk at level 1.
template <typename Context, Context* (*Create)(), size_t (*Free)(Context*)>
Context* ThreadContext() {
  struct Holder {
    Context* ctx = Create();
    ~Holder() { Free(ctx); }
  };
  thread_local Holder holder;
  return holder.ctx;
}
ZSTD_CCtx* ThreadCompressionContext() {
  return ThreadContext<ZSTD_CCtx, ZSTD_createCCtx, ZSTD_freeCCtx>();
}
ZSTD_DCtx* ThreadDecompressionContext() {
  return ThreadContext<ZSTD_DCtx, ZSTD_createDCtx, ZSTD_freeDCtx>();
}

size_t MaxSealedSize(size_t plaintext_size) {
  return 2 + kNonceSize + std::max(ZSTD_compressBound(plaintext_size), plaintext_size) + kTagSize;
}

// Seals into scratch, grown as needed and never shrunk, so that a caller
// sealing chunk after chunk reuses one buffer; returns the sealed bytes.
absl::StatusOr<absl::string_view> SealTo(const RepositoryKeys& keys, absl::string_view label,
                                         absl::string_view binding, absl::string_view plaintext,
                                         const SealOptions& options, const std::string& name,
                                         std::vector<char>* scratch) {
  if (plaintext.size() > kMaxChunkSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has ", plaintext.size(), " bytes; at most ", kMaxChunkSize, " are allowed"));
  }
  // Header, nonce, body, tag in one buffer. The body is the zstd frame
  // when that is smaller than the plaintext, encrypted in place, or else
  // the plaintext encrypted straight into the buffer.
  constexpr size_t kHeader = 2 + kNonceSize;
  const size_t max = MaxSealedSize(plaintext.size());
  if (scratch->size() < max) scratch->resize(max);
  char* out = scratch->data();
  char* body = out + kHeader;
  absl::string_view in = plaintext;
  uint8_t flags = 0;
  if (!plaintext.empty() && !LooksIncompressible(plaintext)) {
    ZSTD_CCtx* cctx = ThreadCompressionContext();
    if (cctx == nullptr)
      return absl::ResourceExhaustedError(absl::StrCat(name, ": no zstd context"));
    const size_t n = ZSTD_compressCCtx(cctx, body, max - kHeader - kTagSize, plaintext.data(),
                                       plaintext.size(), options.zstd_level);
    if (ZSTD_isError(n)) {
      return absl::InternalError(absl::StrCat(name, ": zstd: ", ZSTD_getErrorName(n)));
    }
    if (n < plaintext.size()) {
      in = absl::string_view(body, n);
      flags |= kFlagCompressed;
    }
  }
  out[0] = static_cast<char>(kChunkFormatVersion);
  out[1] = static_cast<char>(flags);
  RETURN_IF_ERROR(RandomBytes(absl::MakeSpan(reinterpret_cast<uint8_t*>(out + 2), kNonceSize)));
  RETURN_IF_ERROR(GcmSealTo(keys.data_key(), absl::string_view(out + 2, kNonceSize),
                            Aad(label, kChunkFormatVersion, flags, binding), in, body));
  return absl::string_view(out, kHeader + in.size() + kTagSize);
}

absl::StatusOr<std::string> Seal(const RepositoryKeys& keys, absl::string_view label,
                                 absl::string_view binding, absl::string_view plaintext,
                                 const SealOptions& options, const std::string& name) {
  std::vector<char> scratch;
  ASSIGN_OR_RETURN(absl::string_view sealed,
                   SealTo(keys, label, binding, plaintext, options, name, &scratch));
  return std::string(sealed);
}

// Opens a sealed object in place: `sealed` is decrypted where it lies, and
// a compressed body is decompressed into *plain (grown as needed, never
// shrunk). The result points into one of them.
absl::StatusOr<absl::string_view> OpenIn(const RepositoryKeys& keys, absl::string_view label,
                                         absl::string_view binding, absl::Span<char> sealed,
                                         const std::string& name, AlignedBuffer* plain) {
  if (sealed.size() < kSealedOverhead) {
    return absl::DataLossError(absl::StrCat(name, ": ", sealed.size(),
                                            " bytes, too short for a sealed object (at least ",
                                            kSealedOverhead, ")"));
  }
  const uint8_t version = static_cast<uint8_t>(sealed[0]);
  const uint8_t flags = static_cast<uint8_t>(sealed[1]);
  if (version > kChunkFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": format version ", version, " is newer than this dagvault (",
                     kChunkFormatVersion, "); upgrade dagvault to read it"));
  }
  if (version != kChunkFormatVersion || (flags & ~kFlagCompressed) != 0) {
    return absl::DataLossError(
        absl::StrFormat("%s: bad header (version %d, flags 0x%02x)", name, version, flags));
  }
  char* body = sealed.data() + 2 + kNonceSize;
  const size_t body_size = sealed.size() - kSealedOverhead;
  ASSIGN_OR_RETURN(bool authentic,
                   GcmOpenTo(keys.data_key(), absl::string_view(sealed.data() + 2, kNonceSize),
                             Aad(label, version, flags, binding),
                             absl::string_view(body, body_size + kTagSize), body));
  if (!authentic) {
    return absl::DataLossError(absl::StrCat(
        name,
        ": authentication failed: it is damaged, was altered, is not what it is named, "
        "or belongs to another repository key"));
  }
  if ((flags & kFlagCompressed) == 0) return absl::string_view(body, body_size);
  const unsigned long long size = ZSTD_getFrameContentSize(body, body_size);
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxChunkSize) {
    return absl::DataLossError(absl::StrCat(name, ": the compressed body declares no valid size"));
  }
  if (plain->size() < size) plain->resize(size);
  ZSTD_DCtx* dctx = ThreadDecompressionContext();
  if (dctx == nullptr) return absl::ResourceExhaustedError(absl::StrCat(name, ": no zstd context"));
  const size_t n = ZSTD_decompressDCtx(dctx, plain->data(), size, body, body_size);
  if (ZSTD_isError(n) || n != size) {
    return absl::DataLossError(
        absl::StrCat(name, ": zstd: ", ZSTD_isError(n) ? ZSTD_getErrorName(n) : "a short frame"));
  }
  return absl::string_view(plain->data(), size);
}

absl::StatusOr<std::string> Open(const RepositoryKeys& keys, absl::string_view label,
                                 absl::string_view binding, absl::string_view sealed,
                                 const std::string& name) {
  std::vector<char> copy(sealed.begin(), sealed.end());
  AlignedBuffer plain;
  ASSIGN_OR_RETURN(absl::string_view opened,
                   OpenIn(keys, label, binding, absl::MakeSpan(copy), name, &plain));
  return std::string(opened);
}

absl::StatusOr<std::string> KeyEncryptionKey(const dagvault::v1::WrappedKey& slot,
                                             absl::string_view secret) {
  if (slot.kind() == dagvault::v1::WrappedKey::PASSPHRASE) {
    std::string kek(kKeySize, '\0');
    // Enough for N * r * 128 bytes, with room.
    const uint64_t maxmem = 2 * 128 * slot.scrypt_n() * slot.scrypt_r() + (16 << 20);
    if (EVP_PBE_scrypt(secret.data(), secret.size(),
                       reinterpret_cast<const unsigned char*>(slot.salt().data()),
                       slot.salt().size(), slot.scrypt_n(), slot.scrypt_r(), slot.scrypt_p(),
                       maxmem, reinterpret_cast<unsigned char*>(kek.data()), kek.size()) != 1) {
      return absl::InvalidArgumentError(
          absl::StrFormat("key slot %s: scrypt with N=%d r=%d p=%d failed: %s", slot.slot(),
                          slot.scrypt_n(), slot.scrypt_r(), slot.scrypt_p(), OpenSslErrors()));
    }
    return kek;
  }
  if (slot.kind() == dagvault::v1::WrappedKey::KEY_FILE) {
    return Hkdf(secret, slot.salt(), "dagvault key file v1");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("key slot ", slot.slot(), ": unknown kind ", static_cast<int>(slot.kind())));
}

absl::StatusOr<dagvault::v1::WrappedKey> Wrap(const RepositoryKeys& keys,
                                              dagvault::v1::WrappedKey slot,
                                              absl::string_view secret) {
  slot.set_format_version(kWrappedKeyVersion);
  slot.set_slot(RandomHexId(8));
  ASSIGN_OR_RETURN(std::string salt, RandomString(16));
  slot.set_salt(salt);
  ASSIGN_OR_RETURN(std::string kek, KeyEncryptionKey(slot, secret));
  ASSIGN_OR_RETURN(std::string nonce, RandomString(kNonceSize));
  slot.set_nonce(nonce);
  ASSIGN_OR_RETURN(std::string sealed, GcmSeal(kek, nonce, kKeyAad, keys.key()));
  slot.set_ciphertext(sealed);
  slot.set_created_us(absl::ToUnixMicros(absl::Now()));
  return slot;
}

}  // namespace

bool LooksIncompressible(absl::string_view plaintext) {
  constexpr size_t kSamples = 4, kSample = 16 << 10, kMinChunk = 256 << 10;
  if (plaintext.size() < kMinChunk) return false;
  ZSTD_CCtx* cctx = ThreadCompressionContext();
  if (cctx == nullptr) return false;
  thread_local std::vector<char> out(ZSTD_compressBound(kSample));
  for (size_t k = 0; k < kSamples; ++k) {
    const absl::string_view sample = plaintext.substr(plaintext.size() / kSamples * k, kSample);
    const size_t n =
        ZSTD_compressCCtx(cctx, out.data(), out.size(), sample.data(), sample.size(), 1);
    // One sample that compresses (or an error) is enough to try the whole.
    if (ZSTD_isError(n) || n * 100 < sample.size() * 98) return false;
  }
  return true;
}

absl::Status ValidateZstdLevel(int level) {
  if (level >= 1 && level <= ZSTD_maxCLevel()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("zstd level ", level, " is not between 1 and ", ZSTD_maxCLevel()));
}

std::string ChunkIdHex(const ChunkId& id) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(id.data()), id.size()));
}

absl::StatusOr<RepositoryKeys> RepositoryKeys::Generate() {
  ASSIGN_OR_RETURN(std::string key, RandomString(kKeySize));
  return FromKey(key);
}

absl::StatusOr<RepositoryKeys> RepositoryKeys::FromKey(absl::string_view key) {
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("a repository key has ", kKeySize, " bytes, not ", key.size()));
  }
  RepositoryKeys keys;
  keys.key_ = std::string(key);
  ASSIGN_OR_RETURN(keys.id_key_, Hkdf(key, "", "dagvault chunk id v1"));
  ASSIGN_OR_RETURN(keys.data_key_, Hkdf(key, "", "dagvault chunk data v1"));
  return keys;
}

void AppendLeafDigests(absl::string_view data, std::string* digests) {
  // One context and one fetched digest per thread: leaves are small, and
  // EVP_Digest's per-call setup would cost a fifth of the hashing.
  struct Hasher {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Hasher() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local Hasher h;
  const size_t leaves = (data.size() + kLeafSize - 1) / kLeafSize;
  const size_t at = digests->size();
  digests->resize(at + leaves * kLeafDigestSize);
  auto* out = reinterpret_cast<unsigned char*>(digests->data() + at);
  for (size_t i = 0; i < leaves; ++i) {
    const absl::string_view leaf = data.substr(i * kLeafSize, kLeafSize);
    unsigned int len = 0;
    // Failures mean a broken library, not bad input (as for Sha256).
    if (h.md == nullptr || h.ctx == nullptr || EVP_DigestInit_ex2(h.ctx, h.md, nullptr) != 1 ||
        EVP_DigestUpdate(h.ctx, leaf.data(), leaf.size()) != 1 ||
        EVP_DigestFinal_ex(h.ctx, out + i * kLeafDigestSize, &len) != 1 || len != kLeafDigestSize) {
      std::abort();
    }
  }
}

ChunkId RepositoryKeys::Id(absl::string_view plaintext) const {
  std::string digests;
  AppendLeafDigests(plaintext, &digests);
  return IdFromLeafDigests(digests);
}

ChunkId RepositoryKeys::IdFromLeafDigests(absl::string_view leaf_digests) const {
  // HMAC failures mean a broken library, not bad input (as for Sha256).
  EvpMacPtr mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  EvpMacCtxPtr ctx(mac ? EVP_MAC_CTX_new(mac.get()) : nullptr);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  ChunkId id{};
  size_t len = 0;
  if (!ctx ||
      EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(id_key_.data()),
                   id_key_.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(leaf_digests.data()),
                     leaf_digests.size()) != 1 ||
      EVP_MAC_final(ctx.get(), id.data(), &len, id.size()) != 1 || len != id.size()) {
    std::abort();
  }
  return id;
}

absl::StatusOr<std::string> SealChunk(const RepositoryKeys& keys, const ChunkId& id,
                                      absl::string_view plaintext, const SealOptions& options) {
  return Seal(keys, kChunkAad, IdBytes(id), plaintext, options,
              absl::StrCat("chunk ", ChunkIdHex(id)));
}

absl::StatusOr<absl::string_view> SealChunkTo(const RepositoryKeys& keys, const ChunkId& id,
                                              absl::string_view plaintext,
                                              const SealOptions& options,
                                              std::vector<char>* scratch) {
  return SealTo(keys, kChunkAad, IdBytes(id), plaintext, options,
                absl::StrCat("chunk ", ChunkIdHex(id)), scratch);
}

absl::StatusOr<std::string> SealBlob(const RepositoryKeys& keys, absl::string_view binding,
                                     absl::string_view plaintext) {
  return Seal(keys, kBlobAad, binding, plaintext, SealOptions{}, std::string(binding));
}

absl::StatusOr<std::string> OpenBlob(const RepositoryKeys& keys, absl::string_view binding,
                                     absl::string_view sealed) {
  return Open(keys, kBlobAad, binding, sealed, std::string(binding));
}

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  ASSIGN_OR_RETURN(std::string raw, RandomString(bytes));
  return absl::BytesToHexString(raw);
}

bool SealedIsCompressed(absl::string_view sealed) {
  return sealed.size() >= 2 && (static_cast<uint8_t>(sealed[1]) & kFlagCompressed) != 0;
}

absl::StatusOr<absl::string_view> OpenChunkIn(const RepositoryKeys& keys, const ChunkId& id,
                                              absl::Span<char> sealed, AlignedBuffer* plain,
                                              bool check_id) {
  const std::string name = absl::StrCat("chunk ", ChunkIdHex(id));
  ASSIGN_OR_RETURN(absl::string_view plaintext,
                   OpenIn(keys, kChunkAad, IdBytes(id), sealed, name, plain));
  // Authenticated, so only a chunk sealed under a wrong id could fail here.
  if (check_id && keys.Id(plaintext) != id) {
    return absl::DataLossError(
        absl::StrCat(name, ": the plaintext does not hash to the chunk's id"));
  }
  return plaintext;
}

absl::StatusOr<std::string> OpenChunk(const RepositoryKeys& keys, const ChunkId& id,
                                      absl::string_view sealed) {
  std::vector<char> copy(sealed.begin(), sealed.end());
  AlignedBuffer plain;
  ASSIGN_OR_RETURN(absl::string_view plaintext,
                   OpenChunkIn(keys, id, absl::MakeSpan(copy), &plain));
  return std::string(plaintext);
}

absl::StatusOr<dagvault::v1::WrappedKey> WrapWithPassphrase(const RepositoryKeys& keys,
                                                            absl::string_view passphrase,
                                                            const ScryptParams& params) {
  if (passphrase.empty()) return absl::InvalidArgumentError("an empty passphrase");
  dagvault::v1::WrappedKey slot;
  slot.set_kind(dagvault::v1::WrappedKey::PASSPHRASE);
  slot.set_scrypt_n(params.n);
  slot.set_scrypt_r(params.r);
  slot.set_scrypt_p(params.p);
  return Wrap(keys, std::move(slot), passphrase);
}

absl::StatusOr<dagvault::v1::WrappedKey> WrapWithKeyFile(const RepositoryKeys& keys,
                                                         absl::string_view key_file_bytes) {
  if (key_file_bytes.size() < kKeySize) {
    return absl::InvalidArgumentError(absl::StrCat("a key file holds at least ", kKeySize,
                                                   " bytes; this one has ", key_file_bytes.size()));
  }
  dagvault::v1::WrappedKey slot;
  slot.set_kind(dagvault::v1::WrappedKey::KEY_FILE);
  return Wrap(keys, std::move(slot), key_file_bytes);
}

absl::StatusOr<RepositoryKeys> Unwrap(const dagvault::v1::WrappedKey& slot,
                                      absl::string_view secret) {
  if (slot.format_version() > kWrappedKeyVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "key slot ", slot.slot(), ": format version ", slot.format_version(),
        " is newer than this dagvault (", kWrappedKeyVersion, "); upgrade dagvault to read it"));
  }
  if (slot.nonce().size() != kNonceSize || slot.ciphertext().size() != kKeySize + kTagSize) {
    return absl::DataLossError(absl::StrCat("key slot ", slot.slot(), " is damaged (nonce ",
                                            slot.nonce().size(), " bytes, ciphertext ",
                                            slot.ciphertext().size(), " bytes)"));
  }
  ASSIGN_OR_RETURN(std::string kek, KeyEncryptionKey(slot, secret));
  ASSIGN_OR_RETURN(std::optional<std::string> key,
                   GcmOpen(kek, slot.nonce(), kKeyAad, slot.ciphertext()));
  if (!key) {
    return absl::PermissionDeniedError(absl::StrCat(
        "key slot ", slot.slot(), ": the ",
        slot.kind() == dagvault::v1::WrappedKey::PASSPHRASE ? "passphrase" : "key file",
        " does not open it (or the slot is damaged)"));
  }
  return RepositoryKeys::FromKey(*key);
}

}  // namespace dagvault::repository
