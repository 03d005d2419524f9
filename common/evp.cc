#include "common/evp.h"

#include <openssl/err.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dagvault {

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long err = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

namespace {
void CheckOpenSsl(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "fatal: OpenSSL %s failed: %s\n", what, OpenSslErrors().c_str());
    std::abort();
  }
}
}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_) CheckOpenSsl(0, "EVP_MD_CTX_new");
  CheckOpenSsl(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

void Sha256::Update(const void* data, size_t n) {
  CheckOpenSsl(EVP_DigestUpdate(ctx_.get(), data, n), "EVP_DigestUpdate");
}

Sha256Digest Sha256::Finish() {
  Sha256Digest out;
  unsigned int len = 0;
  CheckOpenSsl(EVP_DigestFinal_ex(ctx_.get(), out.data(), &len), "EVP_DigestFinal_ex");
  // Ready for reuse.
  CheckOpenSsl(EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr), "EVP_DigestInit_ex");
  return out;
}

Sha256Digest Sha256::Of(const void* data, size_t n) {
  Sha256Digest out;
  unsigned int len = 0;
  CheckOpenSsl(EVP_Digest(data, n, out.data(), &len, EVP_sha256(), nullptr), "EVP_Digest");
  return out;
}

std::string DigestToHex(const Sha256Digest& digest) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

absl::Status RandomBytes(absl::Span<uint8_t> out) {
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return absl::InternalError(absl::StrCat("RAND_bytes: ", OpenSslErrors()));
  }
  return absl::OkStatus();
}

std::string RandomHexId(size_t bytes) {
  std::string raw(bytes, '\0');
  // RAND_bytes fails only when the system has no entropy source at all;
  // CheckOpenSsl aborts with OpenSSL's reason then.
  CheckOpenSsl(RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)),
               "RAND_bytes");
  return absl::BytesToHexString(raw);
}

}  // namespace dagvault
