#include "repository/s3_object_store.h"

#include <cstring>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "repository/crypto.h"

namespace dagvault::repository {
namespace {

// "bytes FIRST-LAST/TOTAL" (TOTAL may be "*"), a 206's Content-Range.
bool ParseContentRange(absl::string_view header, uint64_t* first, uint64_t* last) {
  if (!absl::ConsumePrefix(&header, "bytes ")) return false;
  const size_t dash = header.find('-'), slash = header.find('/');
  return dash != absl::string_view::npos && slash != absl::string_view::npos && dash < slash &&
         absl::SimpleAtoi(header.substr(0, dash), first) &&
         absl::SimpleAtoi(header.substr(dash + 1, slash - dash - 1), last);
}

// "Tue, 01 Dec 2026 10:00:00 GMT" (Last-Modified) or
// "2026-12-01T10:00:00.000Z" (a listing's LastModified).
//
// Whole seconds, both: a HEAD's Last-Modified has no fraction while a
// listing's may, and locks and prune compare the two.
absl::Time ParseS3Time(const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", text, absl::UTCTimeZone(), &t, &err) ||
      absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", text, absl::UTCTimeZone(), &t, &err)) {
    return absl::FromUnixSeconds(absl::ToUnixSeconds(t));
  }
  return absl::InfinitePast();
}

// An object's Object Lock date, from a HEAD's (or GET's) headers.
std::optional<absl::Time> RetainUntilOf(const S3Response& r) {
  const std::string until = r.Header("x-amz-object-lock-retain-until-date");
  if (until.empty()) return std::nullopt;
  return ParseS3Time(until);
}

// A RetainedError when the response's object is retained past now.
absl::Status RefuseIfRetained(const std::string& name, const S3Response& r) {
  const std::optional<absl::Time> until = RetainUntilOf(r);
  if (until && *until > absl::Now()) return RetainedError(name, *until);
  return absl::OkStatus();
}

std::string HexMd5(absl::string_view data) {
  std::string raw;
  absl::Base64Unescape(Md5Base64(data), &raw);
  return absl::BytesToHexString(raw);
}

std::string XmlEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<S3ObjectStore>> S3ObjectStore::Open(const std::string& url,
                                                                   S3RetryPolicy retry) {
  ASSIGN_OR_RETURN(S3Location location, ParseS3Location(url));
  ASSIGN_OR_RETURN(S3Credentials credentials, LoadS3Credentials(location.credentials_file));
  std::unique_ptr<S3ObjectStore> store(new S3ObjectStore(
      std::make_unique<S3Client>(std::move(location), std::move(credentials), retry)));
  const S3Location& loc = store->client_->location();
  S3Request head;
  head.method = "HEAD";
  ASSIGN_OR_RETURN(S3Response r, store->client_->Send(head, absl::StrCat("bucket ", loc.bucket)));
  if (r.status == 404) {
    return absl::NotFoundError(absl::StrCat("repository ", url, ": bucket ", loc.bucket,
                                            " does not exist at ", loc.endpoint));
  }
  if (r.status == 403) {
    return absl::PermissionDeniedError(absl::StrCat("repository ", url, ": bucket ", loc.bucket,
                                                    " refuses these credentials (",
                                                    DescribeS3Error(r), ")"));
  }
  if (r.status != 200) {
    return absl::UnavailableError(
        absl::StrCat("repository ", url, ": bucket ", loc.bucket, ": ", DescribeS3Error(r)));
  }
  S3Request versioning;
  versioning.query = {{"versioning", ""}};
  ASSIGN_OR_RETURN(S3Response v, store->client_->Send(versioning, "bucket versioning"));
  if (v.status == 403) {
    // Without knowing, reads could take a newer version someone put on top
    // for the one dagvault wrote: refused rather than guessed.
    return absl::PermissionDeniedError(
        absl::StrCat("repository ", url, ": these credentials may not read whether bucket ",
                     loc.bucket, " keeps versions (s3:GetBucketVersioning): ", DescribeS3Error(v)));
  }
  // A server without versioning at all answers 400, 405 or 501: none kept.
  store->versioned_ = v.status == 200 && XmlElement(v.body, "Status").value_or("") == "Enabled";
  return store;
}

std::string S3ObjectStore::FullKey(const std::string& key) const {
  const std::string& prefix = client_->location().prefix;
  return prefix.empty() ? key : absl::StrCat(prefix, "/", key);
}

std::string S3ObjectStore::Name(const std::string& key) const {
  return absl::StrCat("s3://", client_->location().bucket, "/", FullKey(key));
}

absl::StatusOr<bool> S3ObjectStore::ConditionalPutWorks() const {
  if (int known = conditional_put_.load(); known != 0) return known == 1;
  ASSIGN_OR_RETURN(std::string suffix, RandomHex(8));
  const std::string probe = FullKey(absl::StrCat(".dagvault-probe-", suffix));
  S3Request put;
  put.method = "PUT";
  put.key = probe;
  put.body = "probe";
  ASSIGN_OR_RETURN(S3Response first, client_->Send(put, "conditional-put probe"));
  if (first.status != 200) {
    return absl::UnavailableError(
        absl::StrCat("repository ", location(), ": cannot write: ", DescribeS3Error(first)));
  }
  put.headers.emplace_back("If-None-Match", "*");
  ASSIGN_OR_RETURN(S3Response second, client_->Send(put, "conditional-put probe"));
  // Removed for good, every version of it (a plain DELETE would leave one
  // behind a delete marker on a versioned bucket).
  (void)Delete(probe.substr(FullKey("").size()));
  const bool honoured = second.status == 412;
  conditional_put_ = honoured ? 1 : 2;
  return honoured;
}

absl::Status S3ObjectStore::SameOrExists(const std::string& key, absl::string_view data) const {
  S3Request head;
  head.method = "HEAD";
  head.key = FullKey(key);
  ASSIGN_OR_RETURN(S3Response r, client_->Send(head, Name(key)));
  if (r.status != 200) {
    return absl::AbortedError(absl::StrCat("write of ", Name(key),
                                           ": the server refused it as "
                                           "existing, then answered HTTP ",
                                           r.status, " to a look"));
  }
  std::string etag = r.Header("etag");
  if (etag.size() >= 2 && etag.front() == '"') etag = etag.substr(1, etag.size() - 2);
  uint64_t size = 0;
  if (absl::SimpleAtoi(r.Header("content-length"), &size) && size == data.size() &&
      absl::EqualsIgnoreCase(etag, HexMd5(data))) {
    return absl::OkStatus();  // this writer's own earlier attempt landed
  }
  return absl::AlreadyExistsError(absl::StrCat(Name(key), " already exists"));
}

absl::Status S3ObjectStore::Put(const std::string& key, absl::string_view data,
                                const PutOptions& options, bool if_absent) const {
  S3Request put;
  put.method = "PUT";
  put.key = FullKey(key);
  put.borrowed_body = data;  // the caller's, alive until this returns
  if (options.retain_until) {
    put.headers.emplace_back("x-amz-object-lock-mode", client_->location().object_lock_mode);
    put.headers.emplace_back(
        "x-amz-object-lock-retain-until-date",
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", *options.retain_until, absl::UTCTimeZone()));
  }
  if (if_absent) {
    ASSIGN_OR_RETURN(bool conditional, ConditionalPutWorks());
    if (conditional) {
      put.headers.emplace_back("If-None-Match", "*");
    } else {
      // The server would overwrite: look first. (Only a racing writer of
      // the same key gets through between the two, and every key but the
      // config's is a writer's own: a session id or a content name.)
      auto there = Head(key);
      if (there.ok()) return SameOrExists(key, data);
      if (!absl::IsNotFound(there.status())) return there.status();
    }
  }
  ASSIGN_OR_RETURN(S3Response r, client_->Send(put, Name(key)));
  if (r.status == 200) return absl::OkStatus();
  if (r.status == 412 && if_absent) return SameOrExists(key, data);
  if (r.status == 403) {
    return absl::PermissionDeniedError(
        absl::StrCat("write of ", Name(key), " refused: ", DescribeS3Error(r)));
  }
  if (r.status == 400 && options.retain_until) {
    return absl::FailedPreconditionError(
        absl::StrCat("write of ", Name(key),
                     " with a retention date refused (is Object Lock enabled on "
                     "bucket ",
                     client_->location().bucket, "?): ", DescribeS3Error(r)));
  }
  return absl::UnavailableError(absl::StrCat("write of ", Name(key), ": ", DescribeS3Error(r)));
}

absl::Status S3ObjectStore::PutIfAbsent(const std::string& key, absl::string_view data,
                                        const PutOptions& options) const {
  return Put(key, data, options, /*if_absent=*/true);
}

absl::Status S3ObjectStore::Replace(const std::string& key, absl::string_view data) const {
  return Put(key, data, PutOptions{}, /*if_absent=*/false);
}

absl::StatusOr<S3Request> S3ObjectStore::RequestFor(const std::string& method,
                                                    const std::string& key) const {
  S3Request request;
  request.method = method;
  request.key = FullKey(key);
  ASSIGN_OR_RETURN(std::string version, ReadVersion(key));
  if (!version.empty()) request.query.emplace_back("versionId", version);
  return request;
}

absl::StatusOr<std::string> S3ObjectStore::Get(const std::string& key) const {
  ASSIGN_OR_RETURN(S3Request get, RequestFor("GET", key));
  ASSIGN_OR_RETURN(S3Response r, client_->Send(get, Name(key)));
  if (r.status == 200) return std::move(r.body);
  if (r.status == 404) return absl::NotFoundError(absl::StrCat(Name(key), " does not exist"));
  return absl::UnavailableError(absl::StrCat("read of ", Name(key), ": ", DescribeS3Error(r)));
}

absl::StatusOr<S3Response> S3ObjectStore::SendRange(const std::string& key, uint64_t offset,
                                                    uint64_t length, absl::Span<char> sink) const {
  ASSIGN_OR_RETURN(S3Request get, RequestFor("GET", key));
  get.headers.emplace_back("Range", absl::StrCat("bytes=", offset, "-", offset + length - 1));
  get.sink = sink;
  ASSIGN_OR_RETURN(S3Response r, client_->Send(get, Name(key)));
  if (r.status == 206) {
    // The answer must be the range asked for, from its first byte (it may
    // end early, at the object's end): a proxy or server that answered
    // another range would hand a restore bytes from elsewhere in the pack.
    const uint64_t got = r.body.size() + r.sunk;
    const std::string range = r.Header("content-range");
    uint64_t first = 0, last = 0;
    if (!ParseContentRange(range, &first, &last) || first != offset || got == 0 || got > length ||
        last != first + got - 1) {
      return absl::DataLossError(absl::StrCat(Name(key), ": asked for bytes ", offset, "-",
                                              offset + length - 1, ", the server sent ", got,
                                              " bytes as Content-Range \"", range, "\""));
    }
    return r;
  }
  if (r.status == 200) {  // a server that ignored the range sent it all
    if (offset >= r.body.size()) {
      return absl::OutOfRangeError(absl::StrCat(Name(key), ": offset ", offset,
                                                " is past its end (", r.body.size(), " bytes)"));
    }
    r.body = r.body.substr(offset, length);
    return r;
  }
  if (r.status == 416) {
    return absl::OutOfRangeError(absl::StrCat(Name(key), ": offset ", offset, " is past its end (",
                                              r.Header("content-range"), ")"));
  }
  if (r.status == 404) return absl::NotFoundError(absl::StrCat(Name(key), " does not exist"));
  return absl::UnavailableError(absl::StrCat("read of ", Name(key), ": ", DescribeS3Error(r)));
}

absl::StatusOr<std::string> S3ObjectStore::GetRange(const std::string& key, uint64_t offset,
                                                    uint64_t length) const {
  if (length == 0) return std::string();
  ASSIGN_OR_RETURN(S3Response r, SendRange(key, offset, length, {}));
  return std::move(r.body);
}

absl::StatusOr<absl::Span<char>> S3ObjectStore::GetRangeInto(const std::string& key,
                                                             uint64_t offset, uint64_t length,
                                                             AlignedBuffer* buffer) const {
  buffer->resize(length);
  if (length == 0) return absl::MakeSpan(buffer->data(), 0);
  ASSIGN_OR_RETURN(S3Response r,
                   SendRange(key, offset, length, absl::MakeSpan(buffer->data(), length)));
  if (!r.body.empty()) {  // not a 206 into the buffer: a 200 of the whole object, cut
    std::memcpy(buffer->data(), r.body.data(), r.body.size());  // at most `length`
    r.sunk = r.body.size();
  }
  buffer->resize(r.sunk);  // as the other backends: the buffer holds what was read
  return absl::MakeSpan(buffer->data(), r.sunk);
}

absl::StatusOr<ObjectInfo> S3ObjectStore::Head(const std::string& key) const {
  ASSIGN_OR_RETURN(S3Request head, RequestFor("HEAD", key));
  ASSIGN_OR_RETURN(S3Response r, client_->Send(head, Name(key)));
  if (r.status == 404) return absl::NotFoundError(absl::StrCat(Name(key), " does not exist"));
  if (r.status != 200) {
    return absl::UnavailableError(absl::StrCat("head of ", Name(key), ": HTTP ", r.status));
  }
  ObjectInfo info;
  info.key = key;
  if (!absl::SimpleAtoi(r.Header("content-length"), &info.size)) {
    return absl::DataLossError(absl::StrCat(Name(key), ": the server gave no size"));
  }
  info.modified = ParseS3Time(r.Header("last-modified"));
  info.retain_until = RetainUntilOf(r);
  return info;
}

absl::StatusOr<ObjectPage> S3ObjectStore::List(const std::string& prefix, const std::string& token,
                                               size_t max_keys) const {
  if (versioned_) return ListVersioned(prefix, token, max_keys);
  S3Request list;
  list.query = {{"list-type", "2"},
                {"prefix", FullKey(prefix)},
                {"max-keys", absl::StrCat(max_keys == 0 ? 1000 : max_keys)}};
  if (!token.empty()) list.query.emplace_back("continuation-token", token);
  const std::string what = absl::StrCat("listing of ", Name(prefix));
  ASSIGN_OR_RETURN(S3Response r, client_->Send(list, what));
  if (r.status != 200) return absl::UnavailableError(absl::StrCat(what, ": ", DescribeS3Error(r)));
  ObjectPage page;
  const std::string strip = FullKey("");
  size_t at = 0, end = 0;
  while (auto contents = XmlElement(r.body, "Contents", at, &end)) {
    at = end;
    ObjectInfo o;
    std::string key = XmlElement(*contents, "Key").value_or("");
    if (!absl::StartsWith(key, strip)) continue;
    o.key = key.substr(strip.size());
    if (absl::StartsWith(o.key, ".dagvault-probe-")) continue;
    if (!absl::SimpleAtoi(XmlElement(*contents, "Size").value_or(""), &o.size)) {
      return absl::DataLossError(absl::StrCat(what, ": an entry without a size"));
    }
    o.modified = ParseS3Time(XmlElement(*contents, "LastModified").value_or(""));
    page.objects.push_back(std::move(o));
  }
  if (XmlElement(r.body, "IsTruncated").value_or("") == "true") {
    page.next_token = XmlElement(r.body, "NextContinuationToken").value_or("");
    if (page.next_token.empty()) {
      return absl::DataLossError(absl::StrCat(what, ": truncated without a continuation token"));
    }
  }
  return page;
}

absl::StatusOr<std::optional<std::string>> S3ObjectStore::VersionToDelete(
    const std::string& key) const {
  S3Request head;
  head.method = "HEAD";
  head.key = FullKey(key);
  ASSIGN_OR_RETURN(S3Response r, client_->Send(head, Name(key)));
  if (r.status == 404) return std::optional<std::string>();
  if (r.status != 200) {
    return absl::UnavailableError(absl::StrCat("head of ", Name(key), ": HTTP ", r.status));
  }
  RETURN_IF_ERROR(RefuseIfRetained(Name(key), r));
  // "null" is the version of an object written while versioning was off.
  return std::optional<std::string>(r.Header("x-amz-version-id"));
}

absl::Status S3ObjectStore::ExtendRetention(const std::string& key, absl::Time until) const {
  ASSIGN_OR_RETURN(ObjectInfo info, Head(key));
  if (info.retain_until && *info.retain_until >= until) return absl::OkStatus();
  ASSIGN_OR_RETURN(S3Request put, RequestFor("PUT", key));
  put.query.emplace_back("retention", "");
  put.body = absl::StrCat("<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>",
                          client_->location().object_lock_mode, "</Mode><RetainUntilDate>",
                          absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", until, absl::UTCTimeZone()),
                          "</RetainUntilDate></Retention>");
  ASSIGN_OR_RETURN(S3Response r, client_->Send(put, Name(key)));
  if (r.status != 200 && r.status != 204) {
    return absl::FailedPreconditionError(absl::StrCat(
        "retention of ", Name(key), " until ", FormatUtc(until), " refused: ", DescribeS3Error(r)));
  }
  return absl::OkStatus();
}

absl::Status S3ObjectStore::Delete(const std::string& key) const {
  if (versioned_) {
    // Every version goes (a newer one someone put on top, delete markers),
    // or none: first a look at each version's retention.
    ASSIGN_OR_RETURN(std::vector<Version> versions, Versions(key));
    for (const Version& v : versions) {
      if (v.delete_marker) continue;
      S3Request head;
      head.method = "HEAD";
      head.key = FullKey(key);
      head.query = {{"versionId", v.id}};
      ASSIGN_OR_RETURN(S3Response r, client_->Send(head, Name(key)));
      RETURN_IF_ERROR(RefuseIfRetained(Name(key), r));
    }
    for (const Version& v : versions) {
      S3Request del;
      del.method = "DELETE";
      del.key = FullKey(key);
      del.query = {{"versionId", v.id}};
      ASSIGN_OR_RETURN(S3Response r, client_->Send(del, Name(key)));
      if (r.status != 204 && r.status != 200 && r.status != 404) {
        return absl::FailedPreconditionError(absl::StrCat("delete of ", Name(key), " version ",
                                                          v.id, " refused: ", DescribeS3Error(r)));
      }
    }
    std::lock_guard<std::mutex> l(mu_);
    first_version_.erase(key);
    return absl::OkStatus();
  }
  // On a versioned bucket (Object Lock needs one) a plain DELETE only hides
  // the object behind a delete marker and keeps every byte: the version
  // itself is removed, after a look at its retention.
  ASSIGN_OR_RETURN(std::optional<std::string> version, VersionToDelete(key));
  if (!version) return absl::OkStatus();
  S3Request del;
  del.method = "DELETE";
  del.key = FullKey(key);
  if (!version->empty()) del.query.emplace_back("versionId", *version);
  ASSIGN_OR_RETURN(S3Response r, client_->Send(del, Name(key)));
  if (r.status == 204 || r.status == 200 || r.status == 404) return absl::OkStatus();
  if (r.status == 403) {
    return absl::FailedPreconditionError(
        absl::StrCat("delete of ", Name(key),
                     " refused (under retention, or not permitted): ", DescribeS3Error(r)));
  }
  return absl::UnavailableError(absl::StrCat("delete of ", Name(key), ": ", DescribeS3Error(r)));
}

absl::Status S3ObjectStore::DeleteMany(const std::vector<std::string>& keys) const {
  if (versioned_) return ObjectStore::DeleteMany(keys);  // version by version
  for (size_t first = 0; first < keys.size(); first += 1000) {
    const size_t last = std::min(keys.size(), first + 1000);
    std::string body = "<Delete><Quiet>true</Quiet>";
    for (size_t i = first; i < last; ++i) {
      // Each version, as Delete does (a look at each, for its retention).
      ASSIGN_OR_RETURN(std::optional<std::string> version, VersionToDelete(keys[i]));
      if (!version) continue;
      absl::StrAppend(
          &body, "<Object><Key>", XmlEscape(FullKey(keys[i])), "</Key>",
          version->empty() ? "" : absl::StrCat("<VersionId>", XmlEscape(*version), "</VersionId>"),
          "</Object>");
    }
    body += "</Delete>";
    if (body == "<Delete><Quiet>true</Quiet></Delete>") continue;  // none was there
    S3Request post;
    post.method = "POST";
    post.query = {{"delete", ""}};
    post.body = std::move(body);
    const std::string what = absl::StrCat("delete of ", last - first, " objects under ", Name(""));
    ASSIGN_OR_RETURN(S3Response r, client_->Send(post, what));
    if (r.status != 200) {
      return absl::UnavailableError(absl::StrCat(what, ": ", DescribeS3Error(r)));
    }
    if (auto error = XmlElement(r.body, "Error")) {
      const std::string key = XmlElement(*error, "Key").value_or("?");
      return absl::FailedPreconditionError(
          absl::StrCat("delete of s3://", client_->location().bucket, "/", key,
                       " refused: ", XmlElement(*error, "Code").value_or(""), " ",
                       XmlElement(*error, "Message").value_or("")));
    }
  }
  return absl::OkStatus();
}

namespace {

// The <Version> and <DeleteMarker> entries of a ListObjectVersions page, in
// the order given (per key, newest first).
struct VersionEntry {
  std::string key;
  std::string id;
  bool delete_marker = false;
  uint64_t size = 0;
  absl::Time modified;
};

std::vector<VersionEntry> ParseVersions(const std::string& xml) {
  std::vector<VersionEntry> out;
  size_t at = 0;
  while (true) {
    const size_t v = xml.find("<Version>", at), d = xml.find("<DeleteMarker>", at);
    if (v == std::string::npos && d == std::string::npos) break;
    const bool marker = d < v;
    size_t end = 0;
    auto body = XmlElement(xml, marker ? "DeleteMarker" : "Version", marker ? d : v, &end);
    if (!body) break;
    at = end;
    VersionEntry e;
    e.key = XmlElement(*body, "Key").value_or("");
    e.id = XmlElement(*body, "VersionId").value_or("");
    e.delete_marker = marker;
    (void)absl::SimpleAtoi(XmlElement(*body, "Size").value_or("0"), &e.size);
    e.modified = ParseS3Time(XmlElement(*body, "LastModified").value_or(""));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<S3ObjectStore::Version>> S3ObjectStore::Versions(
    const std::string& key) const {
  const std::string full = FullKey(key);
  std::vector<Version> newest_first;
  std::string key_marker, version_marker;
  while (true) {
    S3Request list;
    list.query = {{"versions", ""}, {"prefix", full}, {"max-keys", "1000"}};
    if (!key_marker.empty()) {
      list.query.emplace_back("key-marker", key_marker);
      list.query.emplace_back("version-id-marker", version_marker);
    }
    ASSIGN_OR_RETURN(S3Response r, client_->Send(list, absl::StrCat("versions of ", Name(key))));
    if (r.status != 200) {
      return absl::UnavailableError(
          absl::StrCat("versions of ", Name(key), ": ", DescribeS3Error(r)));
    }
    for (auto& e : ParseVersions(r.body)) {
      if (e.key == full) newest_first.push_back({e.id, e.delete_marker, e.size, e.modified});
    }
    if (XmlElement(r.body, "IsTruncated").value_or("") != "true") break;
    key_marker = XmlElement(r.body, "NextKeyMarker").value_or("");
    version_marker = XmlElement(r.body, "NextVersionIdMarker").value_or("");
    if (key_marker.empty() || key_marker > full) break;  // past this key's versions
  }
  return std::vector<Version>(newest_first.rbegin(), newest_first.rend());
}

absl::StatusOr<std::string> S3ObjectStore::ReadVersion(const std::string& key) const {
  if (!versioned_ || absl::StartsWith(key, "locks/")) return std::string();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = first_version_.find(key); it != first_version_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(std::vector<Version> versions, Versions(key));
  for (const Version& v : versions) {
    if (v.delete_marker) continue;
    std::lock_guard<std::mutex> l(mu_);
    first_version_[key] = v.id;
    return v.id;
  }
  return absl::NotFoundError(absl::StrCat(Name(key), " does not exist"));
}

absl::StatusOr<ObjectPage> S3ObjectStore::ListVersioned(const std::string& prefix,
                                                        const std::string& token,
                                                        size_t max_keys) const {
  // Versions of one key may straddle two pages of the server's: a page is
  // cut after its last whole key, and the next one starts after that key.
  const std::string strip = FullKey("");
  std::vector<VersionEntry> entries;
  std::string key_marker = token, version_marker;
  bool truncated = false;
  do {
    S3Request list;
    list.query = {{"versions", ""},
                  {"prefix", FullKey(prefix)},
                  {"max-keys", absl::StrCat(max_keys == 0 ? 1000 : max_keys)}};
    if (!key_marker.empty()) {
      list.query.emplace_back("key-marker", key_marker);
      if (!version_marker.empty()) list.query.emplace_back("version-id-marker", version_marker);
    }
    const std::string what = absl::StrCat("listing of ", Name(prefix));
    ASSIGN_OR_RETURN(S3Response r, client_->Send(list, what));
    if (r.status != 200) {
      return absl::UnavailableError(absl::StrCat(what, ": ", DescribeS3Error(r)));
    }
    for (auto& e : ParseVersions(r.body)) entries.push_back(std::move(e));
    truncated = XmlElement(r.body, "IsTruncated").value_or("") == "true";
    key_marker = XmlElement(r.body, "NextKeyMarker").value_or("");
    version_marker = XmlElement(r.body, "NextVersionIdMarker").value_or("");
    // Go on while every entry so far is of one key: that key is not whole yet.
  } while (truncated && !entries.empty() && entries.front().key == entries.back().key);
  ObjectPage page;
  std::string last_whole;
  if (truncated && !entries.empty()) {
    // The last key may go on in the next page: it is left for that page.
    const std::string cut = entries.back().key;
    while (!entries.empty() && entries.back().key == cut) entries.pop_back();
    last_whole = entries.empty() ? std::string() : entries.back().key;
    page.next_token = last_whole;
  }
  // Per key, its first version that is not a delete marker (entries are
  // newest first within a key); for a lock, which is rewritten, its
  // current version, unless that is a delete marker.
  std::map<std::string, const VersionEntry*> first;
  std::set<std::string> seen;
  for (const auto& e : entries) {
    const bool newest = seen.insert(e.key).second;
    if (absl::StartsWith(e.key, FullKey("locks/"))) {
      if (newest && !e.delete_marker) first[e.key] = &e;
    } else if (!e.delete_marker) {
      first[e.key] = &e;
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [full, e] : first) {
    if (!absl::StartsWith(full, strip)) continue;
    ObjectInfo o;
    o.key = full.substr(strip.size());
    if (absl::StartsWith(o.key, ".dagvault-probe-")) continue;
    o.size = e->size;
    o.modified = e->modified;
    if (!absl::StartsWith(o.key, "locks/")) first_version_[o.key] = e->id;
    page.objects.push_back(std::move(o));
  }
  return page;
}

}  // namespace dagvault::repository
