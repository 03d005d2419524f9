// The S3 backend of ObjectStore (docs/repository.md, "S3"): a repository
// under a prefix of a bucket on any S3-compatible server, tested against
// Ceph's radosgw.
//
// Put-if-absent is a PUT with If-None-Match: * where the server honours it
// (probed once per store), else a HEAD before the PUT. Either way a PUT
// that is retried after a lost response and finds the object there checks
// the object's ETag against the MD5 of what it sent: the same bytes are its
// own earlier attempt, anything else is AlreadyExists. No request is ever
// retried in a way that could overwrite an object.
//
// On a versioned bucket (Object Lock needs versioning) every object but a
// lock is read at its first version: dagvault writes each key once, so the
// first version is the one it wrote, and neither a delete marker nor a
// newer version put on top by someone else (who cannot remove a locked
// version) hides it. Listings come from the versions too, and a delete
// removes every version of a key, each after a look at its retention.
//
// Packs are at most a few tens of MiB (pack_target_bytes, 32 MiB by
// default), well within one PUT (5 GiB): no multipart uploads.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "repository/object_store.h"
#include "repository/s3_client.h"

namespace dagvault::repository {

class S3ObjectStore : public ObjectStore {
 public:
  // Parses the URL (s3_client.h), loads credentials, and checks that the
  // bucket answers.
  static absl::StatusOr<std::unique_ptr<S3ObjectStore>> Open(const std::string& url,
                                                             S3RetryPolicy retry = {});

  std::string location() const override { return client_->location().url; }
  std::string Name(const std::string& key) const override;
  absl::Status PutIfAbsent(const std::string& key, absl::string_view data,
                           const PutOptions& options = {}) const override;
  absl::Status Replace(const std::string& key, absl::string_view data) const override;
  absl::StatusOr<std::string> Get(const std::string& key) const override;
  absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset,
                                       uint64_t length) const override;
  // The range lands in *buffer as curl receives it (no copy).
  absl::StatusOr<absl::Span<char>> GetRangeInto(const std::string& key, uint64_t offset,
                                                uint64_t length,
                                                AlignedBuffer* buffer) const override;
  absl::StatusOr<ObjectInfo> Head(const std::string& key) const override;
  // max_keys 0: the server's page (1000).
  absl::StatusOr<ObjectPage> List(const std::string& prefix, const std::string& token,
                                  size_t max_keys) const override;
  absl::Status Delete(const std::string& key) const override;
  // One request per 1000 keys (S3's DeleteObjects).
  absl::Status DeleteMany(const std::vector<std::string>& keys) const override;
  absl::Status ExtendRetention(const std::string& key, absl::Time until) const override;
  bool supports_retention() const override { return true; }
  bool two_phase_prune() const override { return true; }
  // Each PUT waits on its body's SHA-256 and MD5 and on the network:
  // three keep a connection busy while the next pack's digests run.
  int parallel_writes() const override { return 3; }
  // Against radosgw, a 1 GiB restore in GETs of at most 4 MiB (mostly one
  // chunk each) cost the server 1.6-2.2 s of CPU and took 3.2-3.8 s; in
  // GETs of at most 8 MiB (mostly two chunks), 4.0-4.9 s of CPU and
  // 4.5-5.4 s (six alternating runs each); 2 MiB was no better than 4.
  // At 4 GiB the gain was small: 10.0-11.6 s against 11.0-12.2 s (three
  // alternating runs each), and 75 MiB peak RSS against 90.
  uint64_t restore_read_bytes() const override { return 4 << 20; }
  bool keeps_versions() const override { return versioned_; }

  const S3Client& client() const { return *client_; }
  bool versioned() const { return versioned_; }

 private:
  explicit S3ObjectStore(std::unique_ptr<S3Client> client) : client_(std::move(client)) {}
  std::string FullKey(const std::string& key) const;
  // A request for `key` at the version reads use (ReadVersion).
  absl::StatusOr<S3Request> RequestFor(const std::string& method, const std::string& key) const;
  // A ranged GET; a 206's body goes to `sink` when it has room (see
  // S3Request::sink), and a 200 of the whole object is cut to the range.
  absl::StatusOr<S3Response> SendRange(const std::string& key, uint64_t offset, uint64_t length,
                                       absl::Span<char> sink) const;
  // Whether the server refuses a second PUT with If-None-Match: * (asked
  // once, with a probe object of its own).
  absl::StatusOr<bool> ConditionalPutWorks() const;
  absl::Status Put(const std::string& key, absl::string_view data, const PutOptions& options,
                   bool if_absent) const;
  // The version a delete of `key` removes ("" on an unversioned bucket),
  // none when it is not there, or a RetainedError.
  absl::StatusOr<std::optional<std::string>> VersionToDelete(const std::string& key) const;
  // After a refused conditional PUT: the object is this writer's own
  // earlier attempt when its ETag is the MD5 of `data`.
  absl::Status SameOrExists(const std::string& key, absl::string_view data) const;

  // The version to read `key` at: its first, on a versioned bucket (not
  // for locks, which are rewritten); empty to read the current one.
  // NotFound when the key has no version but delete markers.
  absl::StatusOr<std::string> ReadVersion(const std::string& key) const;
  // Every version of `key` (and delete marker), oldest first.
  struct Version {
    std::string id;
    bool delete_marker = false;
    uint64_t size = 0;
    absl::Time modified;
  };
  absl::StatusOr<std::vector<Version>> Versions(const std::string& key) const;
  absl::StatusOr<ObjectPage> ListVersioned(const std::string& prefix, const std::string& token,
                                           size_t max_keys) const;

  std::unique_ptr<S3Client> client_;
  bool versioned_ = false;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::string> first_version_;  // key → its first version's id
  // 0 unknown, 1 honoured, 2 ignored.
  mutable std::atomic<int> conditional_put_{0};
};

}  // namespace dagvault::repository
