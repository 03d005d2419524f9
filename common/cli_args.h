// A small command-line parser for tools with subcommands:
//
//   mailstore-util check --deep a.edb b.log
//
// Flags are --name value, --name=value, or bare --name for booleans. Each
// subcommand declares its flags, so a typo is an error that says which
// flags exist, not a silently ignored argument.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dagvault {

class CliArgs {
 public:
  struct Spec {
    std::set<std::string> value_flags;  // take a value; may repeat
    std::set<std::string> bool_flags;
  };

  static absl::StatusOr<CliArgs> Parse(const std::vector<std::string>& args, const Spec& spec);
  // Arguments another parser has read (common/command_line.h): the
  // command path and positionals, and each flag with its values (a bare
  // flag with none).
  static CliArgs Of(std::vector<std::string> positional,
                    std::map<std::string, std::vector<std::string>> values);

  const std::vector<std::string>& positional() const { return positional_; }
  // The same flags, without the first positional (a command group's name).
  CliArgs WithoutFirstPositional() const;
  bool Has(const std::string& flag) const { return values_.count(flag) != 0; }
  std::optional<std::string> Get(const std::string& flag) const;
  std::vector<std::string> GetAll(const std::string& flag) const;
  std::string GetOr(const std::string& flag, const std::string& fallback) const;
  // Numeric flags, with an error naming the flag when the value is not a
  // number.
  absl::StatusOr<uint64_t> GetUint(const std::string& flag, uint64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& flag, double fallback) const;

 private:
  std::vector<std::string> positional_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace dagvault
