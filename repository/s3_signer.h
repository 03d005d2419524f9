// AWS Signature Version 4 for S3 requests (docs/repository.md, "S3"),
// written over OpenSSL and checked against AWS's published examples
// (s3_signer_test.cc). Header-based signing with the payload's SHA-256 in
// x-amz-content-sha256: every body is signed, never UNSIGNED-PAYLOAD.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dagvault::repository {

struct S3Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // optional (temporary credentials)
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct SignableRequest {
  std::string method;  // "GET", "PUT", ...
  std::string host;    // as sent in Host: "bucket.s3.example.com", "127.0.0.1:7480"
  // The path as sent on the wire: each segment already URI-encoded
  // (UriEncode(segment, false)), '/' between them.
  std::string encoded_path;
  // Query parameters, not encoded (the signer encodes and sorts them).
  std::vector<std::pair<std::string, std::string>> query;
  // Headers to sign besides host, x-amz-date and x-amz-content-sha256.
  HttpHeaders headers;
  std::string payload_sha256_hex;
  // S3 wants the payload's hash as a signed header; the generic SigV4
  // test suite (other AWS services) does not send it.
  bool content_sha256_header = true;
};

// Encodes as SigV4 wants: unreserved characters (A-Z a-z 0-9 - _ . ~) stay,
// every other byte becomes %XX (upper case); '/' stays when keep_slash.
std::string UriEncode(absl::string_view s, bool keep_slash);

// The query string as sent and as signed: encoded, sorted by name.
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);

struct SignedHeaders {
  // The headers to add to the request: Authorization, x-amz-date,
  // x-amz-content-sha256 and, with a session token, x-amz-security-token.
  HttpHeaders add;
  // For tests and debugging: what was signed. Never logged: it holds no
  // secret, but the Authorization header is one in effect.
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;
};

SignedHeaders SignV4(const SignableRequest& request, const S3Credentials& credentials,
                     const std::string& region, const std::string& service, absl::Time now);

// Hex SHA-256 of `data`, and base64 MD5 (Content-MD5).
std::string Sha256Hex(absl::string_view data);
std::string Md5Base64(absl::string_view data);

}  // namespace dagvault::repository
