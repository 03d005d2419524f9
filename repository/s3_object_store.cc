#include "repository/s3_object_store.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "repository/crypto.h"

namespace dagvault::repository {
namespace {

// "Tue, 01 Dec 2026 10:00:00 GMT" (Last-Modified) or
// "2026-12-01T10:00:00.000Z" (a listing's LastModified).
absl::Time ParseS3Time(const std::string& text) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", text, absl::UTCTimeZone(), &t, &err) ||
      absl::ParseTime("%Y-%m-%dT%H:%M:%E*SZ", text, absl::UTCTimeZone(), &t, &err)) {
    return t;
  }
  return absl::InfinitePast();
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
  S3Request del;
  del.method = "DELETE";
  del.key = probe;
  (void)client_->Send(del, "conditional-put probe");
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
  put.body = std::string(data);
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

absl::StatusOr<std::string> S3ObjectStore::Get(const std::string& key) const {
  S3Request get;
  get.key = FullKey(key);
  ASSIGN_OR_RETURN(S3Response r, client_->Send(get, Name(key)));
  if (r.status == 200) return std::move(r.body);
  if (r.status == 404) return absl::NotFoundError(absl::StrCat(Name(key), " does not exist"));
  return absl::UnavailableError(absl::StrCat("read of ", Name(key), ": ", DescribeS3Error(r)));
}

absl::StatusOr<std::string> S3ObjectStore::GetRange(const std::string& key, uint64_t offset,
                                                    uint64_t length) const {
  if (length == 0) return std::string();
  S3Request get;
  get.key = FullKey(key);
  get.headers.emplace_back("Range", absl::StrCat("bytes=", offset, "-", offset + length - 1));
  ASSIGN_OR_RETURN(S3Response r, client_->Send(get, Name(key)));
  if (r.status == 206) return std::move(r.body);
  if (r.status == 200) {  // a server that ignored the range sent it all
    if (offset >= r.body.size()) {
      return absl::OutOfRangeError(absl::StrCat(Name(key), ": offset ", offset,
                                                " is past its end (", r.body.size(), " bytes)"));
    }
    return r.body.substr(offset, length);
  }
  if (r.status == 416) {
    return absl::OutOfRangeError(absl::StrCat(Name(key), ": offset ", offset, " is past its end (",
                                              r.Header("content-range"), ")"));
  }
  if (r.status == 404) return absl::NotFoundError(absl::StrCat(Name(key), " does not exist"));
  return absl::UnavailableError(absl::StrCat("read of ", Name(key), ": ", DescribeS3Error(r)));
}

absl::StatusOr<ObjectInfo> S3ObjectStore::Head(const std::string& key) const {
  S3Request head;
  head.method = "HEAD";
  head.key = FullKey(key);
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
  return info;
}

absl::StatusOr<ObjectPage> S3ObjectStore::List(const std::string& prefix, const std::string& token,
                                               size_t max_keys) const {
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

absl::Status S3ObjectStore::Delete(const std::string& key) const {
  S3Request del;
  del.method = "DELETE";
  del.key = FullKey(key);
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
  for (size_t first = 0; first < keys.size(); first += 1000) {
    const size_t last = std::min(keys.size(), first + 1000);
    std::string body = "<Delete><Quiet>true</Quiet>";
    for (size_t i = first; i < last; ++i) {
      absl::StrAppend(&body, "<Object><Key>", XmlEscape(FullKey(keys[i])), "</Key></Object>");
    }
    body += "</Delete>";
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

}  // namespace dagvault::repository
