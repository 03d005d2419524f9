// Pieces every command line that opens a repository shares: the secret
// from a file or the environment (never an argument, which ps shows), and
// the way sizes, times and backup types are written and read.
#pragma once

#include <string>

#include "absl/status/statusor.h"
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
// True (with the message in `error`) when an argument tries to pass the
// passphrase itself.
bool PassphraseInArguments(const std::vector<std::string>& argv, const std::string& tool,
                           std::string* error);

// "1.5 GiB".
std::string HumanBytes(uint64_t n);
// "2026-11-22 10:00:00" (UTC).
std::string HumanTime(int64_t unix_us);
// full|copy|incremental|differential, any case.
absl::StatusOr<dagvault::v1::BackupType> ParseBackupType(const std::string& text);

}  // namespace dagvault::repository
