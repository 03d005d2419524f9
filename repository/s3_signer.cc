#include "repository/s3_signer.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace dagvault::repository {
namespace {

std::string Hmac(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &n);
  return std::string(reinterpret_cast<const char*>(out), n);
}

// Header values are trimmed and runs of spaces folded (SigV4's rule).
std::string CanonicalValue(absl::string_view v) {
  std::string out;
  bool space = false;
  for (char c : absl::StripAsciiWhitespace(v)) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(absl::string_view data) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d), sizeof(d)));
}

std::string Md5Base64(absl::string_view data) {
  unsigned char d[16];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), d, &n, EVP_md5(), nullptr);
  return absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(d), n));
}

std::string UriEncode(absl::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& [k, v] : query) encoded.emplace_back(UriEncode(k, false), UriEncode(v, false));
  std::sort(encoded.begin(), encoded.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : encoded) parts.push_back(absl::StrCat(k, "=", v));
  return absl::StrJoin(parts, "&");
}

SignedHeaders SignV4(const SignableRequest& request, const S3Credentials& credentials,
                     const std::string& region, const std::string& service, absl::Time now) {
  const std::string amz_date = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
  const std::string day = amz_date.substr(0, 8);
  SignedHeaders out;
  out.add.emplace_back("x-amz-date", amz_date);
  if (request.content_sha256_header) {
    out.add.emplace_back("x-amz-content-sha256", request.payload_sha256_hex);
  }
  if (!credentials.session_token.empty()) {
    out.add.emplace_back("x-amz-security-token", credentials.session_token);
  }
  // Lower-case names, sorted; one name given twice would join its values
  // with commas, but no request of ours does that.
  std::vector<std::pair<std::string, std::string>> signed_headers;
  signed_headers.emplace_back("host", CanonicalValue(request.host));
  for (const auto& [name, value] : request.headers) {
    signed_headers.emplace_back(absl::AsciiStrToLower(name), CanonicalValue(value));
  }
  for (const auto& [name, value] : out.add) signed_headers.emplace_back(name, value);
  std::sort(signed_headers.begin(), signed_headers.end());
  std::string canonical_headers, names;
  for (const auto& [name, value] : signed_headers) {
    absl::StrAppend(&canonical_headers, name, ":", value, "\n");
    absl::StrAppend(&names, names.empty() ? "" : ";", name);
  }
  out.canonical_request =
      absl::StrCat(request.method, "\n", request.encoded_path.empty() ? "/" : request.encoded_path,
                   "\n", CanonicalQuery(request.query), "\n", canonical_headers, "\n", names, "\n",
                   request.payload_sha256_hex);
  const std::string scope = absl::StrCat(day, "/", region, "/", service, "/aws4_request");
  out.string_to_sign = absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n",
                                    Sha256Hex(out.canonical_request));
  const std::string key =
      Hmac(Hmac(Hmac(Hmac(absl::StrCat("AWS4", credentials.secret_key), day), region), service),
           "aws4_request");
  out.signature = absl::BytesToHexString(Hmac(key, out.string_to_sign));
  out.add.emplace_back(
      "Authorization",
      absl::StrCat("AWS4-HMAC-SHA256 Credential=", credentials.access_key, "/", scope,
                   ", SignedHeaders=", names, ", Signature=", out.signature));
  return out;
}

}  // namespace dagvault::repository
