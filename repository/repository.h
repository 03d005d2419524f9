// A repository in an object store (a filesystem path or an S3 bucket,
// object_store.h): its layout, its key slots, and its manifests
// (docs/repository-format.md). Keys:
//
//   config                RepositoryConfig, in the clear
//   keys/<slot>.key       WrappedKey: one copy of the repository key
//   packs/<xx>/<id>       packs (pack.h)
//   index/<session>.idx   index files (index.h)
//   manifests/<id>.mf     sealed Manifest, one per backup
//   locks/<session>.lock  lock files (lock.h)
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dagvault/v1/repository.pb.h"
#include "repository/crypto.h"
#include "repository/object_store.h"

namespace dagvault::repository {

// 2: manifests prove non-log files by a tree digest (file_digest.h).
// Format 1 repositories and manifests are still read.
inline constexpr uint32_t kRepositoryFormatVersion = 2;
inline constexpr char kManifestSuffix[] = ".mf";

// How an operator proves who they are: a passphrase or a key file's
// bytes. Read from a file or an environment variable, never from an
// argument (which `ps` shows).
struct Secret {
  enum class Kind { kPassphrase, kKeyFile };
  Kind kind = Kind::kPassphrase;
  std::string bytes;
  std::string source;  // "passphrase file /x", "$DAGVAULT_PASSPHRASE": for errors, never the bytes
};
absl::StatusOr<Secret> PassphraseFromFile(const std::string& path);
absl::StatusOr<Secret> PassphraseFromEnv(const char* variable);
absl::StatusOr<Secret> KeyFileSecret(const std::string& path);

struct InitOptions {
  // Level 1: on mail data it compresses nearly as well as 3 (the
  // benchmark's .edb-like file: the same ratio) at three times the speed.
  int zstd_level = 1;
  uint32_t pack_target_bytes = 32 << 20;
  // 0: the default (lock.h). Every host that uses the repository reads it
  // from the config, so they agree on when a lock is stale.
  uint32_t lock_stale_seconds = 0;
  // Object Lock days (RepositoryConfig.object_lock_days); needs a store
  // that can lock objects (an S3 bucket with Object Lock enabled).
  uint32_t object_lock_days = 0;
  ScryptParams scrypt;
};

class Repository {
 public:
  // Creates a repository at `location` (an empty or missing folder, an
  // empty bucket prefix: OpenObjectStore) with one key slot for `secret`.
  static absl::StatusOr<Repository> Init(const std::string& location, const Secret& secret,
                                         const InitOptions& options = {});
  static absl::StatusOr<Repository> Init(std::shared_ptr<const ObjectStore> store,
                                         const Secret& secret, const InitOptions& options = {});
  // Opens a repository with whichever key slot `secret` opens.
  static absl::StatusOr<Repository> Open(const std::string& location, const Secret& secret);
  static absl::StatusOr<Repository> Open(std::shared_ptr<const ObjectStore> store,
                                         const Secret& secret);
  // Reads only the config: the format check, with no key.
  static absl::StatusOr<dagvault::v1::RepositoryConfig> ReadConfig(const ObjectStore& store);

  // Where it is, as the operator named it: for messages.
  const std::string& root() const { return root_; }
  const ObjectStore& store() const { return *store_; }
  const std::shared_ptr<const ObjectStore>& shared_store() const { return store_; }
  const RepositoryKeys& keys() const { return keys_; }
  const dagvault::v1::RepositoryConfig& config() const { return config_; }
  // The slot the repository was opened with.
  const std::string& opened_slot() const { return opened_slot_; }
  // How a backup that started at `started` writes its objects: locked for
  // the repository's object_lock_days, or for `at_least` when that is
  // longer; nothing when the repository does not lock objects.
  PutOptions BackupPutOptions(absl::Time started,
                              absl::Duration at_least = absl::ZeroDuration()) const;
  // Under Object Lock: keeps the config and every key slot immutable at
  // least until `until` (a backup's own date), since no backup can be read
  // without them. Nothing without Object Lock.
  absl::Status KeepKeysUntil(absl::Time until) const;

  // Key slots.
  absl::StatusOr<std::string> AddKey(const Secret& secret, const ScryptParams& scrypt = {});
  // Refuses to remove the last slot: the data would be lost for good.
  absl::Status RemoveKey(const std::string& slot);
  absl::StatusOr<std::vector<dagvault::v1::WrappedKey>> ListKeys() const;

  // Manifests.
  absl::Status WriteManifest(const dagvault::v1::Manifest& manifest,
                             const PutOptions& put = {}) const;
  absl::StatusOr<dagvault::v1::Manifest> ReadManifest(const std::string& id) const;
  // Ids of every manifest, oldest first (ids sort by time).
  absl::StatusOr<std::vector<std::string>> ListManifests() const;
  absl::Status RemoveManifest(const std::string& id) const;
  // Every manifest of `unit`, oldest first: what a chain is assembled
  // from. One that cannot be read fails the call (a chain with a hole
  // would look shorter, not broken).
  absl::StatusOr<std::vector<dagvault::v1::Manifest>> ReadManifestsOfUnit(
      const std::string& unit) const;
  static std::string ManifestKey(const std::string& id);

  // A new session id: "<UTC yyyymmddThhmmss.ffffffZ>-<8 hex digits>", which sorts
  // by time and names a writer's index file, lock and manifest.
  static absl::StatusOr<std::string> NewSessionId();

 private:
  std::string root_;
  std::shared_ptr<const ObjectStore> store_;
  dagvault::v1::RepositoryConfig config_;
  RepositoryKeys keys_;
  std::string opened_slot_;
};

}  // namespace dagvault::repository
