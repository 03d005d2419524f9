#include "mailstore/server/backup_registry.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "mailstore/format/types.h"

namespace dagvault::mailstore {

void BackupRegistry::ExpireLocked() {
  if (current_ && clock_->Monotonic() - renewed_ > lease_) {
    logging::Get("mailstored.backup")
        ->warn(
            "[unit {}] backup-in-progress of session {} expired: its holder on {} stopped "
            "renewing it",
            unit_, current_->session(), current_->holder_node());
    current_.reset();
  }
}

absl::Status BackupRegistry::Acquire(const dagvault::v1::BackupInProgress& backup) {
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLocked();
  if (current_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unit ", unit_, ": a backup is already in progress (", current_->type(), " backup of the ",
        current_->holder_role() == dagvault::v1::ACTIVE ? "active" : "passive", " copy on ",
        current_->holder_node(), ", started ", FormatTimeMicros(current_->started_us()),
        ", session ", current_->session(), ")"));
  }
  current_ = backup;
  renewed_ = clock_->Monotonic();
  return absl::OkStatus();
}

absl::Status BackupRegistry::UnknownSession(const std::string& session) const {
  return absl::FailedPreconditionError(absl::StrCat(
      "unit ", unit_, ": backup session ", session,
      " is not in progress here: the active copy's mailstored restarted, or the session expired; "
      "the backup failed"));
}

absl::Status BackupRegistry::Renew(const std::string& session) {
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLocked();
  if (!current_ || current_->session() != session) return UnknownSession(session);
  renewed_ = clock_->Monotonic();
  return absl::OkStatus();
}

absl::Status BackupRegistry::Release(const std::string& session) {
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLocked();
  if (!current_ || current_->session() != session) return UnknownSession(session);
  current_.reset();
  return absl::OkStatus();
}

bool BackupRegistry::ReleaseStale(const std::string& node, const std::string& current_incarnation) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!current_ || current_->holder_node() != node ||
      current_->holder_incarnation() == current_incarnation) {
    return false;
  }
  logging::Get("mailstored.backup")
      ->warn(
          "[unit {}] backup-in-progress of session {} released: mailstored on {} restarted "
          "since it began, so that backup failed",
          unit_, current_->session(), node);
  current_.reset();
  return true;
}

std::optional<dagvault::v1::BackupInProgress> BackupRegistry::Current() {
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLocked();
  return current_;
}

}  // namespace dagvault::mailstore
