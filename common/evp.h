// RAII wrappers for OpenSSL's EVP objects, and SHA-256 through EVP (which
// uses the CPU's SHA extensions where present).
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dagvault {

struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct EvpCipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct EvpPkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct EvpMacFree {
  void operator()(EVP_MAC* p) const { EVP_MAC_free(p); }
};
struct EvpMacCtxFree {
  void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }
};

using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;
using EvpCipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, EvpCipherCtxFree>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, EvpPkeyCtxFree>;
using EvpMacPtr = std::unique_ptr<EVP_MAC, EvpMacFree>;
using EvpMacCtxPtr = std::unique_ptr<EVP_MAC_CTX, EvpMacCtxFree>;

// Drains OpenSSL's error queue into one readable string.
std::string OpenSslErrors();

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256. OpenSSL failures here mean a broken library, not bad
// input, so they abort rather than return a Status.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t n);
  void Update(absl::string_view data) { Update(data.data(), data.size()); }
  Sha256Digest Finish();

  static Sha256Digest Of(const void* data, size_t n);
  static Sha256Digest Of(absl::string_view data) { return Of(data.data(), data.size()); }

 private:
  EvpMdCtxPtr ctx_;
};

std::string DigestToHex(const Sha256Digest& digest);

// Fills `out` with cryptographically random bytes.
absl::Status RandomBytes(absl::Span<uint8_t> out);
// `bytes` random bytes as lower-case hex, for ids (sessions, daemon runs).
std::string RandomHexId(size_t bytes = 12);

}  // namespace dagvault
