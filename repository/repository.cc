#include "repository/repository.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/fault_injection.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace dagvault::repository {
namespace {

namespace fs = std::filesystem;
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

absl::StatusOr<std::vector<std::string>> ListWithSuffix(const std::string& dir,
                                                        absl::string_view suffix) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return ErrnoToStatus(ec.value(), "list", dir);
  for (const auto& e : it) {
    std::string name = e.path().filename().string();
    if (absl::EndsWith(name, suffix)) names.push_back(name.substr(0, name.size() - suffix.size()));
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

absl::StatusOr<dagvault::v1::RepositoryConfig> Repository::ReadConfig(const std::string& root) {
  const std::string path = JoinPath(root, "config");
  if (!PathExists(path)) {
    return absl::NotFoundError(
        absl::StrCat(root, " is not a dagvault repository: it has no config file (", path, ")"));
  }
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  dagvault::v1::RepositoryConfig config;
  if (!config.ParseFromString(bytes) || config.id().empty()) {
    return absl::DataLossError(absl::StrCat("repository config ", path, ": does not parse"));
  }
  if (config.format_version() > kRepositoryFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "repository ", root, ": format version ", config.format_version(),
        " is newer than this dagvault (", kRepositoryFormatVersion, "); upgrade dagvault"));
  }
  return config;
}

absl::StatusOr<Repository> Repository::Init(const std::string& root, const Secret& secret,
                                            const InitOptions& options) {
  RETURN_IF_ERROR(ValidateZstdLevel(options.zstd_level));
  if (PathExists(JoinPath(root, "config"))) {
    return absl::AlreadyExistsError(absl::StrCat(root, " already holds a repository"));
  }
  std::error_code ec;
  if (PathExists(root) && !fs::is_empty(root, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(root, " is not empty; a repository is created in an empty folder"));
  }
  Repository repo;
  repo.root_ = root;
  ASSIGN_OR_RETURN(repo.keys_, RepositoryKeys::Generate());
  for (const char* dir : {"keys", "packs", "index", "manifests", "locks"}) {
    RETURN_IF_ERROR(CreateDirectories(JoinPath(root, dir)));
  }
  ASSIGN_OR_RETURN(repo.opened_slot_, repo.AddKey(secret, options.scrypt));
  ASSIGN_OR_RETURN(std::string id, RandomHex(16));
  repo.config_.set_format_version(kRepositoryFormatVersion);
  repo.config_.set_id(id);
  repo.config_.set_created_us(absl::ToUnixMicros(absl::Now()));
  repo.config_.set_zstd_level(options.zstd_level);
  repo.config_.set_pack_target_bytes(options.pack_target_bytes);
  repo.config_.set_lock_stale_seconds(options.lock_stale_seconds);
  // Written last: a folder without it is not a repository yet.
  RETURN_IF_ERROR(WriteFileAtomically(JoinPath(root, "config"), repo.config_.SerializeAsString()));
  return repo;
}

absl::StatusOr<Repository> Repository::Open(const std::string& root, const Secret& secret) {
  Repository repo;
  repo.root_ = root;
  ASSIGN_OR_RETURN(repo.config_, ReadConfig(root));
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
      "repository ", root, ": the ", what, " from ", secret.source, " opens none of its ", tried,
      " ", what, " key slots (", slots.size(), " slots in all)"));
}

absl::StatusOr<std::string> Repository::AddKey(const Secret& secret, const ScryptParams& scrypt) {
  dagvault::v1::WrappedKey slot;
  if (secret.kind == Secret::Kind::kPassphrase) {
    ASSIGN_OR_RETURN(slot, WrapWithPassphrase(keys_, secret.bytes, scrypt));
  } else {
    ASSIGN_OR_RETURN(slot, WrapWithKeyFile(keys_, secret.bytes));
  }
  // 0600: a slot is the repository's keys wrapped under a passphrase or key
  // file; whoever can read it can try passphrases offline.
  RETURN_IF_ERROR(
      WriteFileAtomically(JoinPath(root_, absl::StrCat("keys/", slot.slot(), kKeySuffix)),
                          slot.SerializeAsString(), 0600));
  return slot.slot();
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
  return RemoveDurably(JoinPath(root_, absl::StrCat("keys/", slot, kKeySuffix)));
}

absl::StatusOr<std::vector<dagvault::v1::WrappedKey>> Repository::ListKeys() const {
  const std::string dir = JoinPath(root_, "keys");
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListWithSuffix(dir, kKeySuffix));
  std::vector<dagvault::v1::WrappedKey> slots;
  for (const auto& name : names) {
    const std::string path = JoinPath(dir, name + kKeySuffix);
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    dagvault::v1::WrappedKey slot;
    if (!slot.ParseFromString(bytes) || slot.slot() != name) {
      return absl::DataLossError(absl::StrCat("key slot file ", path, ": does not parse"));
    }
    slots.push_back(std::move(slot));
  }
  if (slots.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("repository ", root_, " has no key slots in ", dir));
  }
  return slots;
}

std::string Repository::ManifestPath(const std::string& id) const {
  return JoinPath(root_, absl::StrCat("manifests/", id, kManifestSuffix));
}

absl::Status Repository::WriteManifest(const dagvault::v1::Manifest& manifest) const {
  RETURN_IF_ERROR(CheckId(manifest.id()));
  ASSIGN_OR_RETURN(std::string sealed,
                   SealBlob(keys_, ManifestBinding(manifest.id()), manifest.SerializeAsString()));
  RETURN_IF_ERROR(WriteFileAtomically(ManifestPath(manifest.id()), sealed));
  // Tests fail the write here, after the rename (as a failing fsync of the
  // folder would): backup.cc takes such a manifest back.
  return FailPoint("repository.manifest.renamed");
}

absl::StatusOr<dagvault::v1::Manifest> Repository::ReadManifest(const std::string& id) const {
  RETURN_IF_ERROR(CheckId(id));
  const std::string path = ManifestPath(id);
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat("repository ", root_, " has no manifest ", id));
  }
  ASSIGN_OR_RETURN(std::string sealed, ReadFileToString(path));
  auto opened = OpenBlob(keys_, ManifestBinding(id), sealed);
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
  return ListWithSuffix(JoinPath(root_, "manifests"), kManifestSuffix);
}

absl::Status Repository::RemoveManifest(const std::string& id) const {
  RETURN_IF_ERROR(CheckId(id));
  return RemoveDurably(ManifestPath(id));
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
