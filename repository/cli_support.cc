#include "repository/cli_support.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

namespace dagvault::repository {

absl::StatusOr<Secret> SecretFromArgs(const CliArgs& args, const std::string& file_flag,
                                      const std::string& key_flag, const char* env) {
  if (auto f = args.Get(file_flag)) return PassphraseFromFile(*f);
  if (auto f = args.Get(key_flag)) return KeyFileSecret(*f);
  auto s = PassphraseFromEnv(env);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(
      absl::StrCat("no secret given: use --", file_flag, ", --", key_flag, " or set $", env));
}

absl::StatusOr<Repository> OpenRepositoryFromArgs(const CliArgs& args) {
  auto root = args.Get("repo");
  if (!root) return absl::InvalidArgumentError("--repo PATH is required");
  ASSIGN_OR_RETURN(Secret secret,
                   SecretFromArgs(args, "passphrase-file", "key-file", "DAGVAULT_PASSPHRASE"));
  return Repository::Open(*root, secret);
}

absl::StatusOr<Repository> OpenRepositoryWithSecretFiles(const std::string& root,
                                                         const std::string& passphrase_file,
                                                         const std::string& key_file) {
  if (root.empty()) return absl::InvalidArgumentError("no repository is configured");
  absl::StatusOr<Secret> secret;
  if (!passphrase_file.empty()) {
    secret = PassphraseFromFile(passphrase_file);
  } else if (!key_file.empty()) {
    secret = KeyFileSecret(key_file);
  } else {
    secret = PassphraseFromEnv("DAGVAULT_PASSPHRASE");
    if (!secret.ok()) {
      return absl::InvalidArgumentError(
          "no repository secret: set passphrase_file or key_file, or $DAGVAULT_PASSPHRASE");
    }
  }
  if (!secret.ok()) return secret.status();
  return Repository::Open(root, *secret);
}

absl::Status RefusePassphraseArgument(const std::vector<std::string>& argv,
                                      const std::string& tool) {
  for (const auto& a : argv) {
    if (a == "--passphrase" || a.rfind("--passphrase=", 0) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("a passphrase is never given as an argument to ", tool,
                       " (ps shows arguments); use --passphrase-file FILE or "
                       "$DAGVAULT_PASSPHRASE"));
    }
  }
  return absl::OkStatus();
}

std::string HumanBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? absl::StrCat(n, " B") : absl::StrFormat("%.1f %s", v, units[u]);
}

ProgressPrinter::ProgressPrinter(std::ostream& err)
    : err_(err), terminal_(isatty(STDERR_FILENO) == 1) {}

ProgressPrinter::~ProgressPrinter() {
  if (terminal_ && drawn_) err_ << "\n";
}

void ProgressPrinter::Show(const std::string& phase, uint64_t bytes_done, uint64_t bytes_total,
                           double bytes_per_second, const std::string& current_file) {
  std::lock_guard<std::mutex> l(mu_);
  const absl::Time now = absl::Now();
  const bool new_phase = phase != phase_;
  phase_ = phase;
  std::string line = phase;
  if (bytes_total > 0) {
    const double fraction =
        std::min(1.0, static_cast<double>(bytes_done) / static_cast<double>(bytes_total));
    if (terminal_) {
      const int width = 30, filled = static_cast<int>(fraction * width);
      line = absl::StrCat(phase, " [", std::string(filled, '='), std::string(width - filled, ' '),
                          "]");
    }
    absl::StrAppend(&line, absl::StrFormat(" %3.0f%% %s of %s, %s/s", fraction * 100,
                                           HumanBytes(bytes_done), HumanBytes(bytes_total),
                                           HumanBytes(static_cast<uint64_t>(bytes_per_second))));
    if (bytes_per_second > 0 && bytes_done < bytes_total) {
      const double eta = static_cast<double>(bytes_total - bytes_done) / bytes_per_second;
      absl::StrAppend(&line, absl::StrFormat(", %.0f s left", eta));
    }
    if (!current_file.empty()) absl::StrAppend(&line, "  ", current_file);
  }
  if (terminal_) {
    err_ << "\r" << line << "\033[K" << std::flush;
    drawn_ = true;
  } else if (new_phase || now - last_line_ >= absl::Seconds(5)) {
    err_ << line << "\n" << std::flush;
    last_line_ = now;
  }
}

std::string HumanTime(int64_t unix_us) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMicros(unix_us), absl::UTCTimeZone());
}

absl::StatusOr<dagvault::v1::BackupType> ParseBackupType(const std::string& text) {
  dagvault::v1::BackupType type;
  if (!dagvault::v1::BackupType_Parse(absl::AsciiStrToUpper(text), &type) ||
      type == dagvault::v1::BACKUP_TYPE_UNSPECIFIED || type == dagvault::v1::LOG_ARCHIVE) {
    return absl::InvalidArgumentError(
        absl::StrCat("--type ", text, " is not one of full, copy, incremental, differential"));
  }
  return type;
}

}  // namespace dagvault::repository
