// Pieces every command line that opens a repository shares: the secret
// from a file or the environment (never an argument, which ps shows), and
// the way sizes, times and backup types are written and read.
#pragma once

#include <mutex>
#include <optional>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cli_args.h"
#include "dagvault/v1/writer.pb.h"
#include "repository/repository.h"

namespace dagvault::repository {

// --<file_flag> FILE, --<key_flag> FILE, or $<env>, in that order.
absl::StatusOr<Secret> SecretFromArgs(const CliArgs& args, const std::string& file_flag,
                                      const std::string& key_flag, const char* env);
// --repo PATH opened with --passphrase-file, --key-file or
// $DAGVAULT_PASSPHRASE.
absl::StatusOr<Repository> OpenRepositoryFromArgs(const CliArgs& args);

// For daemons: the repository at `root`, with the secret from a
// configuration's passphrase_file or key_file, else $DAGVAULT_PASSPHRASE.
absl::StatusOr<Repository> OpenRepositoryWithSecretFiles(const std::string& root,
                                                         const std::string& passphrase_file,
                                                         const std::string& key_file);

// A passphrase given as an argument (`--passphrase X`, which ps would
// show): the usage error to refuse it with, naming `tool`; OK otherwise.
absl::Status RefusePassphraseArgument(const std::vector<std::string>& argv,
                                      const std::string& tool);

// "1.5 GiB".
std::string HumanBytes(uint64_t n);

// A job's progress on stderr, for dagvault-agent's local mode and
// `dagvault backup start --wait`: a bar with rate and time left, redrawn in
// place on a terminal; elsewhere a plain line every five seconds and at each
// change of phase.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(std::ostream& err);
  ~ProgressPrinter();
  void Show(const std::string& phase, uint64_t bytes_done, uint64_t bytes_total,
            double bytes_per_second, const std::string& current_file);

 private:
  std::ostream& err_;
  const bool terminal_;
  std::mutex mu_;
  std::string phase_;
  absl::Time last_line_ = absl::InfinitePast();
  bool drawn_ = false;
};

// "2026-11-22 10:00:00" (UTC).
std::string HumanTime(int64_t unix_us);
// full|copy|incremental|differential, any case.
absl::StatusOr<dagvault::v1::BackupType> ParseBackupType(const std::string& text);

}  // namespace dagvault::repository
