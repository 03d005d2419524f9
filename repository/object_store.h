// Where a repository's objects live (docs/repository.md, "Backends"): a
// filesystem path or an S3-compatible bucket. Every repository module reads
// and writes through this interface and nothing else, so the format
// (docs/repository-format.md) is the same on both.
//
// Keys are relative, '/'-separated names such as "packs/3f/3f…",
// "index/<session>.idx", "manifests/<id>.mf", "locks/<session>.lock",
// "keys/<slot>.key" and "config". Every object but a lock is written once
// and never changed: PutIfAbsent. Errors name the object as the operator
// would find it (Name()).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/uncached_io.h"

namespace dagvault::repository {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  // When the object was last written, on the storage's clock: locks and
  // prune compare ages on it, never on a host's wall clock alone.
  absl::Time modified = absl::InfinitePast();
  // Object Lock: no one can delete or overwrite it before then (Head
  // only; a listing does not say).
  std::optional<absl::Time> retain_until;
};

struct ObjectPage {
  std::vector<ObjectInfo> objects;  // sorted by key
  std::string next_token;           // empty: this was the last page
};

struct PutOptions {
  // Object Lock: the object can be neither deleted nor overwritten before
  // this time, by anyone with any credentials (S3 compliance mode) or by
  // anyone without the bypass permission (governance mode). Unset: none.
  // A store that cannot lock objects refuses a put that asks for it.
  std::optional<absl::Time> retain_until;
  // Readable by its owner only where the store has owners (0600 on a
  // filesystem): key slots, which invite offline guessing.
  bool owner_only = false;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // The repository as an operator names it ("/srv/backup", "s3://b/p").
  virtual std::string location() const = 0;
  // An object's full name, for messages: a path, or an s3:// URL.
  virtual std::string Name(const std::string& key) const = 0;

  // Writes `key` whole or not at all, only if nothing is there: an
  // AlreadyExists error (naming the object) otherwise. Durable on return.
  virtual absl::Status PutIfAbsent(const std::string& key, absl::string_view data,
                                   const PutOptions& options = {}) const = 0;
  // Writes `key` whole or not at all, replacing what is there. Only a lock
  // (rewritten at each refresh) is ever replaced.
  virtual absl::Status Replace(const std::string& key, absl::string_view data) const = 0;
  // The whole object; NotFound names it when it is not there.
  virtual absl::StatusOr<std::string> Get(const std::string& key) const = 0;
  // Up to `length` bytes from `offset`: fewer when the object ends sooner
  // (the caller says what it expected). An offset at or past the end is
  // an OutOfRange error naming the object and its size.
  virtual absl::StatusOr<std::string> GetRange(const std::string& key, uint64_t offset,
                                               uint64_t length) const = 0;
  // The same into *buffer, read in place where the backend can (a
  // filesystem's direct reads): the result is where the bytes lie in
  // *buffer, not always at its start, and lives until the buffer's next
  // use. A restore decrypts a pack's chunks where they lie. By default a
  // copy of GetRange's result.
  virtual absl::StatusOr<absl::Span<char>> GetRangeInto(const std::string& key, uint64_t offset,
                                                        uint64_t length,
                                                        AlignedBuffer* buffer) const;
  // Size and modification time; NotFound when it is not there.
  virtual absl::StatusOr<ObjectInfo> Head(const std::string& key) const = 0;
  // One page of the objects whose keys start with `prefix`, in key order,
  // after `token` (a previous page's next_token; empty for the first).
  virtual absl::StatusOr<ObjectPage> List(const std::string& prefix, const std::string& token,
                                          size_t max_keys) const = 0;
  // Removes `key` for good (on a versioned bucket, its version, not just
  // a delete marker); one that is not there is no error. An object under
  // retention is a RetainedError that says until when.
  virtual absl::Status Delete(const std::string& key) const = 0;
  // Removes many (S3 batches them); the first failure names its object.
  virtual absl::Status DeleteMany(const std::vector<std::string>& keys) const;

  // Removes what interrupted writes left behind (a filesystem's temporary
  // files) that is older than `before`; returns how many.
  virtual absl::StatusOr<size_t> RemoveIncomplete(absl::Time /*before*/) const { return 0; }
  // Makes `key` (its first version, where versions are kept) immutable
  // until at least `until`: a later date only, never an earlier one.
  virtual absl::Status ExtendRetention(const std::string& key, absl::Time until) const {
    return absl::FailedPreconditionError(
        absl::StrCat(Name(key), ": this store cannot lock objects (retention until ",
                     absl::FormatTime(until), ")"));
  }
  // Whether PutOptions::retain_until can be honoured.
  virtual bool supports_retention() const { return false; }
  // Whether prune removes unreferenced packs in two phases here (marked by
  // one prune, removed by a later one once the mark is older than the
  // grace period): on an object store, where nothing but timing and
  // listings tells a prune what another host is writing.
  virtual bool two_phase_prune() const { return false; }
  // How many large objects a writer should put at once.
  virtual int parallel_writes() const { return 1; }
  // The most a restore reads at once (chunks that lie next to each other
  // in a pack, in one read): a direct pread of a folder's pack, a ranged
  // GET on S3. A 1 GiB restore from a folder took 2.2 s with 8 MiB reads
  // and 2.8-2.9 s with 4 MiB (three alternating runs each).
  virtual uint64_t restore_read_bytes() const { return 8 << 20; }
  // Whether objects are read at their first version (a versioned bucket):
  // what Object Lock's protection against overwrites rests on.
  virtual bool keeps_versions() const { return false; }
};

// The error of a delete refused because the object is under retention
// (Object Lock) until `until`; prune and expiry keep such objects, say so,
// and remove them at a later run.
absl::Status RetainedError(const std::string& name, absl::Time until);
// When `status` is such an error: the time the retention ends.
std::optional<absl::Time> RetainedUntil(const absl::Status& status);

// Every object under `prefix`, page after page.
absl::StatusOr<std::vector<ObjectInfo>> ListAll(const ObjectStore& store,
                                                const std::string& prefix);

// The store a repository location names: "s3://bucket/prefix?..." is an S3
// bucket (s3_object_store.h); anything else is a filesystem path.
absl::StatusOr<std::shared_ptr<const ObjectStore>> OpenObjectStore(const std::string& location);

}  // namespace dagvault::repository
