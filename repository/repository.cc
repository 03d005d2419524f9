#include "repository/repository.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

constexpr char kKeySuffix[] = ".key";

std::string ManifestBinding(const std::string& id) { return absl::StrCat("manifest ", id); }

// A manifest id names a file: only the characters NewSessionId uses.
absl::Status CheckId(const std::string& id) {
  const bool ok =
      !id.empty() && id.size() <= 64 &&
      std::all_of(id.begin(), id.end(),
                  [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
                  }) &&
      id.find("..") == std::string::npos && id[0] != '.';
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("\"", id, "\" is not a manifest id"));
  return absl::OkStatus();
}

// The names of the objects directly under `dir` ("keys/") that end in
// `suffix`, without it, sorted.
absl::StatusOr<std::vector<std::string>> ListWithSuffix(const ObjectStore& store,
                                                        const std::string& dir,
                                                        absl::string_view suffix) {
  std::vector<std::string> names;
  ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, ListAll(store, dir));
  for (const auto& o : objects) {
    absl::string_view name = absl::string_view(o.key).substr(dir.size());
    if (name.find('/') != absl::string_view::npos || !absl::ConsumeSuffix(&name, suffix)) continue;
    names.emplace_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<Secret> SecretFromFile(const std::string& path, Secret::Kind kind,
                                      absl::string_view what) {
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat(what, " ", path));
  Secret s;
  s.kind = kind;
  s.bytes = std::move(*bytes);
  s.source = absl::StrCat(what, " ", path);
  if (kind == Secret::Kind::kPassphrase) {
    // A passphrase file written by `echo` ends in a newline that is not
    // part of the passphrase.
    while (!s.bytes.empty() && (s.bytes.back() == '\n' || s.bytes.back() == '\r')) {
      s.bytes.pop_back();
    }
  }
  if (s.bytes.empty()) return absl::InvalidArgumentError(absl::StrCat(s.source, " is empty"));
  return s;
}

}  // namespace

absl::StatusOr<Secret> PassphraseFromFile(const std::string& path) {
  return SecretFromFile(path, Secret::Kind::kPassphrase, "passphrase file");
}

absl::StatusOr<Secret> KeyFileSecret(const std::string& path) {
  return SecretFromFile(path, Secret::Kind::kKeyFile, "key file");
}

absl::StatusOr<Secret> PassphraseFromEnv(const char* variable) {
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') {
    return absl::NotFoundError(absl::StrCat("$", variable, " is not set"));
  }
  Secret s;
  s.bytes = value;
  s.source = absl::StrCat("$", variable);
  return s;
}

absl::StatusOr<std::string> Repository::NewSessionId() {
  ASSIGN_OR_RETURN(std::string suffix, RandomHex(4));
  // Microseconds, so that the backups of one unit sort in the order they
  // were taken even when several start within a second.
  return absl::StrCat(absl::FormatTime("%Y%m%dT%H%M%E6SZ", absl::Now(), absl::UTCTimeZone()), "-",
                      suffix);
}

absl::StatusOr<dagvault::v1::RepositoryConfig> Repository::ReadConfig(const ObjectStore& store) {
  auto bytes = store.Get("config");
  if (absl::IsNotFound(bytes.status())) {
    return absl::NotFoundError(absl::StrCat(store.location(),
                                            " is not a dagvault repository: it has no config (",
                                            store.Name("config"), ")"));
  }
  if (!bytes.ok()) return bytes.status();
  dagvault::v1::RepositoryConfig config;
  if (!config.ParseFromString(*bytes) || config.id().empty()) {
    return absl::DataLossError(
        absl::StrCat("repository config ", store.Name("config"), ": does not parse"));
  }
  if (config.format_version() > kRepositoryFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "repository ", store.location(), ": format version ", config.format_version(),
        " is newer than this dagvault (", kRepositoryFormatVersion, "); upgrade dagvault"));
  }
  return config;
}

absl::StatusOr<Repository> Repository::Init(const std::string& location, const Secret& secret,
                                            const InitOptions& options) {
  ASSIGN_OR_RETURN(std::shared_ptr<const ObjectStore> store, OpenObjectStore(location));
  return Init(std::move(store), secret, options);
}

absl::StatusOr<Repository> Repository::Init(std::shared_ptr<const ObjectStore> store,
                                            const Secret& secret, const InitOptions& options) {
  RETURN_IF_ERROR(ValidateZstdLevel(options.zstd_level));
  const std::string where = store->location();
  if (options.object_lock_days > 0 && !store->supports_retention()) {
    return absl::FailedPreconditionError(absl::StrCat(
        where,
        " cannot lock objects against deletion (a folder): Object Lock needs an S3 bucket "
        "with Object Lock enabled (docs/repository.md, \"Immutable backups\")"));
  }
  if (auto config = store->Head("config"); config.ok()) {
    return absl::AlreadyExistsError(absl::StrCat(where, " already holds a repository"));
  } else if (!absl::IsNotFound(config.status())) {
    return config.status();
  }
  // Empty: no object at all (a page may come back empty with more to
  // follow, so every page is asked for until one has something).
  std::string token;
  do {
    ASSIGN_OR_RETURN(ObjectPage any, store->List("", token, 1));
    if (!any.objects.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, " is not empty (it holds ", store->Name(any.objects.front().key),
                       "); a repository is created in an empty folder or bucket prefix"));
    }
    token = any.next_token;
  } while (!token.empty());
  Repository repo;
  repo.root_ = where;
  repo.store_ = std::move(store);
  ASSIGN_OR_RETURN(repo.keys_, RepositoryKeys::Generate());
  // Before the first slot: under Object Lock the slots are locked too.
  repo.config_.set_object_lock_days(options.object_lock_days);
  ASSIGN_OR_RETURN(repo.opened_slot_, repo.AddKey(secret, options.scrypt));
  ASSIGN_OR_RETURN(std::string id, RandomHex(16));
  repo.config_.set_format_version(kRepositoryFormatVersion);
  repo.config_.set_id(id);
  repo.config_.set_created_us(absl::ToUnixMicros(absl::Now()));
  repo.config_.set_zstd_level(options.zstd_level);
  repo.config_.set_pack_target_bytes(options.pack_target_bytes);
  repo.config_.set_lock_stale_seconds(options.lock_stale_seconds);
  // Written last, and only once: a location without it is not a
  // repository yet, and of two racing inits one fails here. Under Object
  // Lock the config is locked too: a bucket without Object Lock refuses it
  // here, before any backup relies on it.
  RETURN_IF_ERROR(repo.store_->PutIfAbsent("config", repo.config_.SerializeAsString(),
                                           repo.BackupPutOptions(absl::Now())));
  return repo;
}

absl::StatusOr<Repository> Repository::Open(const std::string& location, const Secret& secret) {
  ASSIGN_OR_RETURN(std::shared_ptr<const ObjectStore> store, OpenObjectStore(location));
  return Open(std::move(store), secret);
}

absl::StatusOr<Repository> Repository::Open(std::shared_ptr<const ObjectStore> store,
                                            const Secret& secret) {
  Repository repo;
  repo.root_ = store->location();
  repo.store_ = std::move(store);
  ASSIGN_OR_RETURN(repo.config_, ReadConfig(*repo.store_));
  if (repo.config_.object_lock_days() > 0 && !repo.store_->keeps_versions()) {
    // Not refused: a restore must still be possible. But an overwrite put
    // on top of a locked object would be read instead of it.
    logging::Get("repository")
        ->warn(
            "repository {} locks its backups (Object Lock) but its store does not keep "
            "versions as seen from here: an object overwritten on top of a locked one would "
            "be read instead of it; check the bucket's versioning",
            repo.root_);
  }
  ASSIGN_OR_RETURN(std::vector<dagvault::v1::WrappedKey> slots, repo.ListKeys());
  const auto kind = secret.kind == Secret::Kind::kPassphrase ? dagvault::v1::WrappedKey::PASSPHRASE
                                                             : dagvault::v1::WrappedKey::KEY_FILE;
  int tried = 0;
  for (const auto& slot : slots) {
    if (slot.kind() != kind) continue;
    ++tried;
    auto keys = Unwrap(slot, secret.bytes);
    if (keys.ok()) {
      repo.keys_ = std::move(*keys);
      repo.opened_slot_ = slot.slot();
      return repo;
    }
    if (keys.status().code() != absl::StatusCode::kPermissionDenied) return keys.status();
  }
  const char* what = kind == dagvault::v1::WrappedKey::PASSPHRASE ? "passphrase" : "key file";
  return absl::PermissionDeniedError(absl::StrCat(
      "repository ", repo.root_, ": the ", what, " from ", secret.source, " opens none of its ",
      tried, " ", what, " key slots (", slots.size(), " slots in all)"));
}

absl::StatusOr<std::string> Repository::AddKey(const Secret& secret, const ScryptParams& scrypt) {
  dagvault::v1::WrappedKey slot;
  if (secret.kind == Secret::Kind::kPassphrase) {
    ASSIGN_OR_RETURN(slot, WrapWithPassphrase(keys_, secret.bytes, scrypt));
  } else {
    ASSIGN_OR_RETURN(slot, WrapWithKeyFile(keys_, secret.bytes));
  }
  // Owner only: a slot is the repository's keys wrapped under a passphrase
  // or key file; whoever can read it can try passphrases offline.
  PutOptions put = BackupPutOptions(absl::Now());
  put.owner_only = true;
  RETURN_IF_ERROR(store_->PutIfAbsent(absl::StrCat("keys/", slot.slot(), kKeySuffix),
                                      slot.SerializeAsString(), put));
  return slot.slot();
}

absl::Status Repository::KeepKeysUntil(absl::Time until) const {
  if (config_.object_lock_days() == 0) return absl::OkStatus();
  RETURN_IF_ERROR(store_->ExtendRetention("config", until));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListWithSuffix(*store_, "keys/", kKeySuffix));
  for (const auto& name : names) {
    RETURN_IF_ERROR(store_->ExtendRetention(absl::StrCat("keys/", name, kKeySuffix), until));
  }
  return absl::OkStatus();
}

absl::Status Repository::RemoveKey(const std::string& slot) {
  ASSIGN_OR_RETURN(std::vector<dagvault::v1::WrappedKey> slots, ListKeys());
  const bool present =
      std::any_of(slots.begin(), slots.end(), [&](const auto& s) { return s.slot() == slot; });
  if (!present) {
    return absl::NotFoundError(absl::StrCat("repository ", root_, " has no key slot ", slot));
  }
  if (slots.size() == 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("key slot ", slot,
                     " is the repository's last: without it no one could "
                     "read the repository again; add another key first"));
  }
  return store_->Delete(absl::StrCat("keys/", slot, kKeySuffix));
}

absl::StatusOr<std::vector<dagvault::v1::WrappedKey>> Repository::ListKeys() const {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListWithSuffix(*store_, "keys/", kKeySuffix));
  std::vector<dagvault::v1::WrappedKey> slots;
  for (const auto& name : names) {
    const std::string key = absl::StrCat("keys/", name, kKeySuffix);
    ASSIGN_OR_RETURN(std::string bytes, store_->Get(key));
    dagvault::v1::WrappedKey slot;
    if (!slot.ParseFromString(bytes) || slot.slot() != name) {
      return absl::DataLossError(
          absl::StrCat("key slot file ", store_->Name(key), ": does not parse"));
    }
    slots.push_back(std::move(slot));
  }
  if (slots.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("repository ", root_, " has no key slots in ", store_->Name("keys")));
  }
  return slots;
}

PutOptions Repository::BackupPutOptions(absl::Time started, absl::Duration at_least) const {
  PutOptions put;
  if (config_.object_lock_days() == 0) return put;
  put.retain_until = started + std::max(absl::Hours(24) * config_.object_lock_days(), at_least);
  return put;
}

std::string Repository::ManifestKey(const std::string& id) {
  return absl::StrCat("manifests/", id, kManifestSuffix);
}

absl::Status Repository::WriteManifest(const dagvault::v1::Manifest& manifest,
                                       const PutOptions& put) const {
  RETURN_IF_ERROR(CheckId(manifest.id()));
  ASSIGN_OR_RETURN(std::string sealed,
                   SealBlob(keys_, ManifestBinding(manifest.id()), manifest.SerializeAsString()));
  RETURN_IF_ERROR(store_->PutIfAbsent(ManifestKey(manifest.id()), sealed, put));
  // Tests fail the write here, after the rename (as a failing fsync of the
  // folder would): backup.cc takes such a manifest back.
  return FailPoint("repository.manifest.renamed");
}

absl::StatusOr<dagvault::v1::Manifest> Repository::ReadManifest(const std::string& id) const {
  RETURN_IF_ERROR(CheckId(id));
  const std::string path = store_->Name(ManifestKey(id));
  auto sealed = store_->Get(ManifestKey(id));
  if (absl::IsNotFound(sealed.status())) {
    return absl::NotFoundError(absl::StrCat("repository ", root_, " has no manifest ", id));
  }
  if (!sealed.ok()) return sealed.status();
  auto opened = OpenBlob(keys_, ManifestBinding(id), *sealed);
  if (!opened.ok()) return Annotate(opened.status(), absl::StrCat("manifest file ", path));
  dagvault::v1::Manifest manifest;
  if (!manifest.ParseFromString(*opened) || manifest.id() != id) {
    return absl::DataLossError(absl::StrCat("manifest file ", path, ": does not parse"));
  }
  if (manifest.format_version() > kRepositoryFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("manifest ", id, ": format version ", manifest.format_version(),
                     " is newer than this dagvault (", kRepositoryFormatVersion, "); upgrade"));
  }
  return manifest;
}

absl::StatusOr<std::vector<std::string>> Repository::ListManifests() const {
  return ListWithSuffix(*store_, "manifests/", kManifestSuffix);
}

absl::Status Repository::RemoveManifest(const std::string& id) const {
  RETURN_IF_ERROR(CheckId(id));
  return store_->Delete(ManifestKey(id));
}

absl::StatusOr<std::vector<dagvault::v1::Manifest>> Repository::ReadManifestsOfUnit(
    const std::string& unit) const {
  ASSIGN_OR_RETURN(std::vector<std::string> ids, ListManifests());
  std::vector<dagvault::v1::Manifest> manifests;
  for (const auto& id : ids) {
    auto m = ReadManifest(id);
    if (!m.ok()) {
      return absl::DataLossError(absl::StrCat("manifest ", id, " cannot be read (",
                                              m.status().message(), "), so the chains of unit ",
                                              unit, " cannot be followed; run repo check"));
    }
    if (m->unit() == unit) manifests.push_back(*std::move(m));
  }
  return manifests;
}

}  // namespace dagvault::repository
