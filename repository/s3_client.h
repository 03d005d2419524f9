// The HTTP side of the S3 backend (docs/repository.md, "S3"): a bucket's
// address (path-style or virtual-hosted), credentials, SigV4 on every
// request, Content-MD5 and x-amz-content-sha256 on every body, and retries
// with exponential backoff and jitter on 5xx, 429, timeouts and broken
// connections, bounded in time. Over libcurl; TLS always verified.
//
// Credentials come from a file (0600, AWS's shared-credentials form) or
// the environment, never from a URL or a command line; no log line or
// error message carries them.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "repository/s3_signer.h"

namespace dagvault::repository {

// Where a repository lives in S3, parsed from
// "s3://bucket/prefix?endpoint=https://host:port&region=R&addressing=path|virtual
//  &ca=/path/ca.pem&credentials=/path/file&object_lock=compliance|governance".
struct S3Location {
  std::string bucket;
  std::string prefix;    // no leading or trailing '/'; may be empty
  std::string endpoint;  // scheme://host[:port], no path
  std::string region = "us-east-1";
  bool path_style = true;
  std::string ca_file;           // empty: the system's CA bundle
  std::string credentials_file;  // empty: $DAGVAULT_S3_CREDENTIALS_FILE, else the environment
  // Object Lock mode for objects written with a retention date:
  // "COMPLIANCE" (no one can shorten it) or "GOVERNANCE".
  std::string object_lock_mode = "COMPLIANCE";
  std::string url;  // as given, for messages
};
absl::StatusOr<S3Location> ParseS3Location(const std::string& url);

// Reads credentials: the file named (which must not be readable by group
// or others), else $DAGVAULT_S3_CREDENTIALS_FILE, else $AWS_ACCESS_KEY_ID,
// $AWS_SECRET_ACCESS_KEY and $AWS_SESSION_TOKEN. Errors name the file or
// variable, never a value.
absl::StatusOr<S3Credentials> LoadS3Credentials(const std::string& file);

struct S3Request {
  std::string method = "GET";
  std::string key;  // full object key in the bucket; empty: the bucket itself
  std::vector<std::pair<std::string, std::string>> query;
  HttpHeaders headers;
  std::string body;
  // A body the caller keeps alive through Send, sent instead of `body`
  // without a copy (a 32 MiB pack).
  absl::string_view borrowed_body;
  // Where a 206 answer's body goes instead of `body`: the caller's buffer,
  // filled from its start, so that a ranged read of a pack lands where the
  // restore opens its chunks, with no copy (S3Response::sunk says how
  // much). A body longer than the span is an error. Any other answer (an
  // error's XML, a 200 of a server that ignored the range) goes to `body`.
  absl::Span<char> sink;
  absl::string_view payload() const {
    return borrowed_body.data() != nullptr ? borrowed_body : absl::string_view(body);
  }
};

struct S3Response {
  long status = 0;
  HttpHeaders headers;  // names in lower case
  std::string body;
  size_t sunk = 0;  // bytes of a 206 body written into S3Request::sink
  int attempts = 0;
  // The header's value, or empty.
  std::string Header(const std::string& lower_name) const;
};

struct S3RetryPolicy {
  absl::Duration first_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  // No retry starts after this much time since the first attempt.
  absl::Duration give_up_after = absl::Seconds(60);
};

// Counts for benchmarks and tests.
struct S3Counters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> bytes_received{0};
};

class S3Client {
 public:
  S3Client(S3Location location, S3Credentials credentials, S3RetryPolicy retry = {});
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Location& location() const { return location_; }
  S3Counters& counters() const { return counters_; }

  // Sends the request, retrying what is safe to retry (see class comment):
  // the caller decides what a status means. A transport failure that
  // outlasts the retries is an Unavailable error naming `what`.
  //
  // Clock skew: S3 refuses a request signed more than 15 minutes off its
  // own clock (403, RequestTimeTooSkewed; a HEAD's 403 has no body to say
  // so). On a 403 whose Date header is more than 5 minutes off this
  // machine's clock, the client signs from then on with the server's time
  // (as AWS's own SDKs do), warns once naming the difference, and sends
  // the refused request again at once (it had no effect).
  absl::StatusOr<S3Response> Send(const S3Request& request, const std::string& what) const;

 private:
  struct Handle;
  std::unique_ptr<Handle> Acquire() const;
  void Release(std::unique_ptr<Handle> handle) const;
  absl::StatusOr<S3Response> SendOnce(Handle& handle, const S3Request& request,
                                      const std::string& what) const;
  // A refusal that shows this machine's clock far off the server's: learns
  // the difference and says whether to send again.
  bool LearnClockSkew(const S3Response& refused) const;

  S3Location location_;
  S3Credentials credentials_;
  S3RetryPolicy retry_;
  std::string host_;  // the Host header: the endpoint's, with the bucket for virtual-hosted
  std::string base_;  // scheme://host[:port]
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<Handle>> idle_;  // connections kept for reuse
  mutable S3Counters counters_;
  // The server's clock minus this machine's, as learnt from a refusal.
  mutable std::atomic<int64_t> clock_offset_us_{0};
};

// Whether an S3 error is worth another attempt: 500, 502, 503, 504, 429.
bool IsRetryableHttpStatus(long status);

// <Code> and <Message> of an S3 error body, "403 AccessDenied: ..." .
std::string DescribeS3Error(const S3Response& response);

// The text of the first <tag>…</tag> in `xml` at or after `from`, with
// XML's five entities decoded; `*end` is set past the closing tag.
std::optional<std::string> XmlElement(const std::string& xml, const std::string& tag,
                                      size_t from = 0, size_t* end = nullptr);

}  // namespace dagvault::repository
