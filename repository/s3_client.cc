#include "repository/s3_client.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

// Percent-decoding of a URL query value ("%2F" → "/", "+" stays).
std::string QueryUnescape(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) &&
        absl::ascii_isxdigit(s[i + 2])) {
      auto digit = [](char c) {
        return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10;
      };
      out.push_back(static_cast<char>(digit(s[i + 1]) * 16 + digit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Where a response's body goes: the request's sink for a 206, else the
// response's string, reserved to the announced length (at most
// kMaxBodyReserve) so that a pack read whole is not copied as it grows.
struct BodyTarget {
  CURL* curl = nullptr;
  std::string* body = nullptr;
  absl::Span<char> sink;
  size_t sunk = 0;
  bool started = false;
  bool to_sink = false;
  bool overflowed = false;
};
constexpr curl_off_t kMaxBodyReserve = 256 << 20;
constexpr long kReceiveBufferBytes = 256 << 10;

size_t CollectBody(char* data, size_t size, size_t n, void* out) {
  auto* target = static_cast<BodyTarget*>(out);
  const size_t bytes = size * n;
  if (!target->started) {
    target->started = true;
    long status = 0;
    curl_easy_getinfo(target->curl, CURLINFO_RESPONSE_CODE, &status);
    target->to_sink = status == 206 && target->sink.data() != nullptr;
    curl_off_t announced = -1;
    if (!target->to_sink &&
        curl_easy_getinfo(target->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) ==
            CURLE_OK &&
        announced > 0) {
      target->body->reserve(static_cast<size_t>(std::min(announced, kMaxBodyReserve)));
    }
  }
  if (!target->to_sink) {
    target->body->append(data, bytes);
    return bytes;
  }
  if (bytes > target->sink.size() - target->sunk) {
    target->overflowed = true;
    return 0;  // curl stops with CURLE_WRITE_ERROR
  }
  std::memcpy(target->sink.data() + target->sunk, data, bytes);
  target->sunk += bytes;
  return bytes;
}

size_t CollectHeader(char* data, size_t size, size_t n, void* out) {
  const absl::string_view line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    static_cast<HttpHeaders*>(out)->emplace_back(
        absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, colon))),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  } else if (absl::StartsWith(line, "HTTP/")) {
    static_cast<HttpHeaders*>(out)->clear();  // a new response (after 100 Continue)
  }
  return size * n;
}

bool IsRetryableCurlError(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

struct S3Client::Handle {
  CURL* curl = nullptr;
  ~Handle() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

std::string S3Response::Header(const std::string& lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

bool IsRetryableHttpStatus(long status) {
  return status == 500 || status == 502 || status == 503 || status == 504 || status == 429;
}

std::optional<std::string> XmlElement(const std::string& xml, const std::string& tag, size_t from,
                                      size_t* end) {
  const std::string open = absl::StrCat("<", tag, ">"), close = absl::StrCat("</", tag, ">");
  const size_t start = xml.find(open, from);
  if (start == std::string::npos) return std::nullopt;
  const size_t stop = xml.find(close, start + open.size());
  if (stop == std::string::npos) return std::nullopt;
  if (end != nullptr) *end = stop + close.size();
  const absl::string_view raw =
      absl::string_view(xml).substr(start + open.size(), stop - start - open.size());
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '&') {
      out.push_back(raw[i]);
      continue;
    }
    static const std::pair<const char*, char> kEntities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool decoded = false;
    for (const auto& [entity, c] : kEntities) {
      if (absl::StartsWith(raw.substr(i), entity)) {
        out.push_back(c);
        i += std::strlen(entity) - 1;
        decoded = true;
        break;
      }
    }
    if (!decoded) out.push_back('&');
  }
  return out;
}

std::string DescribeS3Error(const S3Response& response) {
  const std::string code = XmlElement(response.body, "Code").value_or("");
  const std::string message = XmlElement(response.body, "Message").value_or("");
  return absl::StrCat("HTTP ", response.status, code.empty() ? "" : absl::StrCat(" ", code),
                      message.empty() ? "" : absl::StrCat(": ", message));
}

absl::StatusOr<S3Location> ParseS3Location(const std::string& url) {
  S3Location loc;
  loc.url = url;
  // Messages name the URL without its query: a misplaced secret in a
  // parameter must not reach a log.
  const std::string shown = url.substr(0, url.find('?'));
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "s3://")) {
    return absl::InvalidArgumentError(absl::StrCat("\"", shown, "\" is not an s3:// URL"));
  }
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const size_t slash = rest.find('/');
  loc.bucket = std::string(rest.substr(0, slash));
  if (slash != absl::string_view::npos) {
    loc.prefix = std::string(absl::StripSuffix(absl::StripPrefix(rest.substr(slash), "/"), "/"));
  }
  if (loc.bucket.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("repository URL ", shown, " names no bucket"));
  }
  bool addressing_given = false;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    const std::string name(pair.substr(0, eq));
    const std::string value =
        eq == absl::string_view::npos ? "" : QueryUnescape(pair.substr(eq + 1));
    if (name == "endpoint") {
      loc.endpoint = std::string(absl::StripSuffix(value, "/"));
    } else if (name == "region") {
      loc.region = value;
    } else if (name == "addressing") {
      if (value != "path" && value != "virtual") {
        return absl::InvalidArgumentError(absl::StrCat(
            "repository URL ", shown, ": addressing must be path or virtual, not \"", value, "\""));
      }
      loc.path_style = value == "path";
      addressing_given = true;
    } else if (name == "ca") {
      loc.ca_file = value;
    } else if (name == "credentials") {
      loc.credentials_file = value;
    } else if (name == "object_lock") {
      const std::string mode = absl::AsciiStrToUpper(value);
      if (mode != "COMPLIANCE" && mode != "GOVERNANCE") {
        return absl::InvalidArgumentError(
            absl::StrCat("repository URL ", shown,
                         ": object_lock must be compliance or governance, not \"", value, "\""));
      }
      loc.object_lock_mode = mode;
    } else if (const std::string lower = absl::AsciiStrToLower(name);
               absl::StrContains(lower, "key") || absl::StrContains(lower, "secret") ||
               absl::StrContains(lower, "token") || absl::StrContains(lower, "password")) {
      // Refused outright: a URL lands in configurations, catalogs and `ps`.
      return absl::InvalidArgumentError(absl::StrCat(
          "repository URL for bucket ", loc.bucket,
          ": credentials never go in the URL; use "
          "credentials=FILE (mode 0600) or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY"));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("repository URL ", shown, ": unknown parameter \"", name,
                       "\" (known: endpoint, region, addressing, ca, credentials, object_lock)"));
    }
  }
  if (loc.endpoint.empty()) {
    loc.endpoint = absl::StrCat("https://s3.", loc.region, ".amazonaws.com");
    if (!addressing_given) loc.path_style = false;  // AWS's own preference
  }
  if (!absl::StartsWith(loc.endpoint, "https://") && !absl::StartsWith(loc.endpoint, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("repository URL ", shown,
                     ": the endpoint must start with https:// (or http:// for a test "
                     "server on this machine)"));
  }
  return loc;
}

absl::StatusOr<S3Credentials> LoadS3Credentials(const std::string& file) {
  std::string path = file;
  if (path.empty()) {
    if (const char* env = std::getenv("DAGVAULT_S3_CREDENTIALS_FILE"); env && *env) path = env;
  }
  S3Credentials c;
  if (!path.empty()) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return ErrnoToStatus(errno, "S3 credentials file", path);
    if ((st.st_mode & 077) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("S3 credentials file ", path, " is readable by others (mode ",
                       absl::StrFormat("%04o", st.st_mode & 0777), "); chmod 600 it"));
    }
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    // AWS's shared-credentials form: "name = value" lines, [sections] and
    // # comments ignored (the first keys found are used).
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (line.empty() || line[0] == '#' || line[0] == '[') continue;
      const size_t eq = line.find('=');
      if (eq == absl::string_view::npos) continue;
      const std::string name =
          absl::AsciiStrToLower(absl::StripAsciiWhitespace(line.substr(0, eq)));
      const std::string value(absl::StripAsciiWhitespace(line.substr(eq + 1)));
      if (name == "aws_access_key_id" && c.access_key.empty()) c.access_key = value;
      if (name == "aws_secret_access_key" && c.secret_key.empty()) c.secret_key = value;
      if (name == "aws_session_token" && c.session_token.empty()) c.session_token = value;
    }
    if (c.access_key.empty() || c.secret_key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("S3 credentials file ", path,
                       " needs aws_access_key_id and aws_secret_access_key lines"));
    }
    return c;
  }
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (id == nullptr || *id == '\0' || secret == nullptr || *secret == '\0') {
    return absl::FailedPreconditionError(
        "no S3 credentials: give credentials=FILE in the repository URL, "
        "$DAGVAULT_S3_CREDENTIALS_FILE, or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY");
  }
  c.access_key = id;
  c.secret_key = secret;
  if (const char* token = std::getenv("AWS_SESSION_TOKEN"); token && *token)
    c.session_token = token;
  return c;
}

S3Client::S3Client(S3Location location, S3Credentials credentials, S3RetryPolicy retry)
    : location_(std::move(location)), credentials_(std::move(credentials)), retry_(retry) {
  GlobalInit();
  const size_t scheme = location_.endpoint.find("://");
  const std::string host = location_.endpoint.substr(scheme + 3);
  host_ = location_.path_style ? host : absl::StrCat(location_.bucket, ".", host);
  base_ = absl::StrCat(location_.endpoint.substr(0, scheme + 3), host_);
}

S3Client::~S3Client() = default;

std::unique_ptr<S3Client::Handle> S3Client::Acquire() const {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->curl = curl_easy_init();
  return h;
}

void S3Client::Release(std::unique_ptr<Handle> handle) const {
  std::lock_guard<std::mutex> l(mu_);
  if (idle_.size() < 32) idle_.push_back(std::move(handle));
}

absl::StatusOr<S3Response> S3Client::SendOnce(Handle& handle, const S3Request& request,
                                              const std::string& what) const {
  CURL* curl = handle.curl;
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  curl_easy_reset(curl);
  // The path as sent and as signed.
  const std::string bucket_part =
      location_.path_style ? absl::StrCat("/", UriEncode(location_.bucket, false)) : "";
  const std::string key_part =
      request.key.empty() ? "" : absl::StrCat("/", UriEncode(request.key, true));
  std::string path = absl::StrCat(bucket_part, key_part);
  if (path.empty()) path.assign(1, '/');
  SignableRequest sign;
  sign.method = request.method;
  sign.host = host_;
  sign.encoded_path = path;
  sign.query = request.query;
  sign.headers = request.headers;
  const absl::string_view payload = request.payload();
  sign.payload_sha256_hex = Sha256Hex(payload);
  if (!payload.empty() || request.method == "PUT" || request.method == "POST") {
    sign.headers.emplace_back("Content-MD5", Md5Base64(payload));
  }
  const SignedHeaders signed_headers =
      SignV4(sign, credentials_, location_.region, "s3",
             absl::Now() + absl::Microseconds(clock_offset_us_.load()));
  std::string url = absl::StrCat(base_, path);
  const std::string query = CanonicalQuery(request.query);
  if (!query.empty()) absl::StrAppend(&url, "?", query);

  curl_slist* list = nullptr;
  auto add = [&](const std::string& name, const std::string& value) {
    list = curl_slist_append(list, absl::StrCat(name, ": ", value).c_str());
  };
  for (const auto& [n, v] : sign.headers) add(n, v);
  for (const auto& [n, v] : signed_headers.add) add(n, v);
  add("Expect", "");  // no 100-continue round trip
  S3Response response;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  // A stalled transfer (under 1 KiB/s for 30 s) is cut and retried; a
  // slow but moving one is not.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 30L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!location_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, location_.ca_file.c_str());
  BodyTarget body_target{.curl = curl, .body = &response.body, .sink = request.sink};
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body_target);
  // Fewer, larger reads of the socket for packs (curl's default is 16 KiB).
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, CollectHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &response.headers);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  }
  const CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(list);
  counters_.requests++;
  counters_.bytes_sent += payload.size();
  response.sunk = body_target.sunk;
  counters_.bytes_received += response.body.size() + response.sunk;
  if (body_target.overflowed) {
    return absl::DataLossError(absl::StrCat(what, ": the server sent more than the ",
                                            request.sink.size(), " bytes asked for"));
  }
  if (code != CURLE_OK) {
    const std::string message = absl::StrCat(what, ": ", request.method, " to ", location_.endpoint,
                                             " failed: ", curl_easy_strerror(code));
    return IsRetryableCurlError(code) ? absl::UnavailableError(message)
                                      : absl::FailedPreconditionError(message);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

bool S3Client::LearnClockSkew(const S3Response& refused) const {
  absl::Time server;
  std::string error;
  if (!absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", refused.Header("date"), absl::UTCTimeZone(),
                       &server, &error)) {
    return false;
  }
  const absl::Duration offset = server - absl::Now();
  const absl::Duration known = absl::Microseconds(clock_offset_us_.load());
  // Within 5 minutes the signature was in time: the 403 is about something else.
  if (absl::AbsDuration(offset - known) <= absl::Minutes(5)) return false;
  clock_offset_us_ = absl::ToInt64Microseconds(offset);
  logging::Get("repository.s3")
      ->warn(
          "the clock of this machine is {} off the S3 server's ({}): requests are signed with "
          "the server's time from now on; set this machine's clock right (NTP)",
          absl::FormatDuration(offset), location_.endpoint);
  return true;
}

absl::StatusOr<S3Response> S3Client::Send(const S3Request& request, const std::string& what) const {
  const absl::Time started = absl::Now();
  absl::Duration backoff = retry_.first_backoff;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  bool resigned = false;
  for (int attempt = 1;; ++attempt) {
    auto handle = Acquire();
    absl::StatusOr<S3Response> r = SendOnce(*handle, request, what);
    Release(std::move(handle));
    if (r.ok() && r->status == 403 && !resigned && LearnClockSkew(*r)) {
      resigned = true;
      continue;
    }
    const bool retry = r.ok() ? IsRetryableHttpStatus(r->status) : absl::IsUnavailable(r.status());
    if (!retry) {
      if (r.ok()) r->attempts = attempt;
      return r;
    }
    const std::string why = r.ok() ? DescribeS3Error(*r) : std::string(r.status().message());
    if (absl::Now() - started + backoff > retry_.give_up_after) {
      return absl::UnavailableError(absl::StrCat(what, ": gave up after ", attempt, " attempts in ",
                                                 absl::FormatDuration(absl::Now() - started),
                                                 "; the last: ", why));
    }
    // Full jitter: a random wait up to the backoff, so that many agents
    // retrying at once spread out.
    const absl::Duration wait = absl::Nanoseconds(std::uniform_int_distribution<int64_t>(
        absl::ToInt64Nanoseconds(backoff) / 2, absl::ToInt64Nanoseconds(backoff))(rng));
    logging::Get("repository.s3")
        ->warn("{}: attempt {} failed ({}); retrying in {}", what, attempt, why,
               absl::FormatDuration(wait));
    counters_.retries++;
    absl::SleepFor(wait);
    backoff = std::min(backoff * 2, retry_.max_backoff);
  }
}

}  // namespace dagvault::repository
