#include "repository/crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <zstd.h>

#include <optional>

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

// AES-256-GCM. The output is ciphertext followed by the tag.
absl::StatusOr<std::string> GcmSeal(absl::string_view key, absl::string_view nonce,
                                    absl::string_view aad, absl::string_view plaintext) {
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return CryptoError("cipher context");
  auto u8 = [](absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  std::string out(plaintext.size() + kTagSize, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &len, u8(plaintext), static_cast<int>(plaintext.size())) !=
          1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, o + plaintext.size()) != 1) {
    return CryptoError("AES-256-GCM encryption");
  }
  return out;
}

// Returns nullopt when authentication fails.
absl::StatusOr<std::optional<std::string>> GcmOpen(absl::string_view key, absl::string_view nonce,
                                                   absl::string_view aad,
                                                   absl::string_view sealed) {
  if (sealed.size() < kTagSize) return std::optional<std::string>();
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return CryptoError("cipher context");
  auto u8 = [](absl::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  const size_t n = sealed.size() - kTagSize;
  std::string out(n, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  std::string tag(sealed.substr(n));
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u8(key), u8(nonce)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, u8(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), o, &len, u8(sealed), static_cast<int>(n)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1) {
    return CryptoError("AES-256-GCM decryption");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), o + len, &len) != 1) {
    (void)OpenSslErrors();  // drain: an authentication failure, not a library error
    return std::optional<std::string>();
  }
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

absl::StatusOr<std::string> Seal(const RepositoryKeys& keys, absl::string_view label,
                                 absl::string_view binding, absl::string_view plaintext,
                                 const SealOptions& options, const std::string& name) {
  if (plaintext.size() > kMaxChunkSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has ", plaintext.size(), " bytes; at most ", kMaxChunkSize, " are allowed"));
  }
  // Compressed unless that does not make it smaller.
  std::string body;
  uint8_t flags = 0;
  if (!plaintext.empty()) {
    std::string compressed(ZSTD_compressBound(plaintext.size()), '\0');
    const size_t n = ZSTD_compress(compressed.data(), compressed.size(), plaintext.data(),
                                   plaintext.size(), options.zstd_level);
    if (ZSTD_isError(n)) {
      return absl::InternalError(absl::StrCat(name, ": zstd: ", ZSTD_getErrorName(n)));
    }
    if (n < plaintext.size()) {
      compressed.resize(n);
      body = std::move(compressed);
      flags |= kFlagCompressed;
    }
  }
  if ((flags & kFlagCompressed) == 0) body = std::string(plaintext);
  ASSIGN_OR_RETURN(std::string nonce, RandomString(kNonceSize));
  ASSIGN_OR_RETURN(
      std::string sealed,
      GcmSeal(keys.data_key(), nonce, Aad(label, kChunkFormatVersion, flags, binding), body));
  std::string out;
  out.reserve(2 + nonce.size() + sealed.size());
  out.push_back(static_cast<char>(kChunkFormatVersion));
  out.push_back(static_cast<char>(flags));
  out += nonce;
  out += sealed;
  return out;
}

absl::StatusOr<std::string> Open(const RepositoryKeys& keys, absl::string_view label,
                                 absl::string_view binding, absl::string_view sealed,
                                 const std::string& name) {
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
  ASSIGN_OR_RETURN(std::optional<std::string> body,
                   GcmOpen(keys.data_key(), sealed.substr(2, kNonceSize),
                           Aad(label, version, flags, binding), sealed.substr(2 + kNonceSize)));
  if (!body) {
    return absl::DataLossError(absl::StrCat(
        name,
        ": authentication failed: it is damaged, was altered, is not what it is named, "
        "or belongs to another repository key"));
  }
  if ((flags & kFlagCompressed) == 0) return std::move(*body);
  const unsigned long long size = ZSTD_getFrameContentSize(body->data(), body->size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > kMaxChunkSize) {
    return absl::DataLossError(absl::StrCat(name, ": the compressed body declares no valid size"));
  }
  std::string plaintext(size, '\0');
  const size_t n = ZSTD_decompress(plaintext.data(), plaintext.size(), body->data(), body->size());
  if (ZSTD_isError(n) || n != size) {
    return absl::DataLossError(
        absl::StrCat(name, ": zstd: ", ZSTD_isError(n) ? ZSTD_getErrorName(n) : "a short frame"));
  }
  return plaintext;
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

ChunkId RepositoryKeys::Id(absl::string_view plaintext) const {
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
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(plaintext.data()),
                     plaintext.size()) != 1 ||
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

absl::StatusOr<std::string> OpenChunk(const RepositoryKeys& keys, const ChunkId& id,
                                      absl::string_view sealed) {
  const std::string name = absl::StrCat("chunk ", ChunkIdHex(id));
  ASSIGN_OR_RETURN(std::string plaintext, Open(keys, kChunkAad, IdBytes(id), sealed, name));
  // Authenticated, so only a chunk sealed under a wrong id could fail here.
  if (keys.Id(plaintext) != id) {
    return absl::DataLossError(
        absl::StrCat(name, ": the plaintext does not hash to the chunk's id"));
  }
  return plaintext;
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
