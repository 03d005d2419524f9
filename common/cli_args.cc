#include "common/cli_args.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dagvault {

CliArgs CliArgs::WithoutFirstPositional() const {
  CliArgs out = *this;
  if (!out.positional_.empty()) out.positional_.erase(out.positional_.begin());
  return out;
}

CliArgs CliArgs::Of(std::vector<std::string> positional,
                    std::map<std::string, std::vector<std::string>> values) {
  CliArgs out;
  out.positional_ = std::move(positional);
  out.values_ = std::move(values);
  return out;
}

absl::StatusOr<CliArgs> CliArgs::Parse(const std::vector<std::string>& args, const Spec& spec) {
  CliArgs out;
  bool only_positional = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || !absl::StartsWith(a, "--")) {
      out.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string name = a.substr(2);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (spec.bool_flags.count(name)) {
      if (value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      out.values_[name].push_back("true");
    } else if (spec.value_flags.count(name)) {
      if (!value) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        }
        value = args[++i];
      }
      out.values_[name].push_back(*value);
    } else {
      std::vector<std::string> known;
      for (const auto& f : spec.value_flags) known.push_back("--" + f);
      for (const auto& f : spec.bool_flags) known.push_back("--" + f);
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name,
                       known.empty() ? " (this command takes no flags)"
                                     : absl::StrCat(" (known: ", absl::StrJoin(known, " "), ")")));
    }
  }
  return out;
}

std::optional<std::string> CliArgs::Get(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> CliArgs::GetAll(const std::string& flag) const {
  auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::string CliArgs::GetOr(const std::string& flag, const std::string& fallback) const {
  return Get(flag).value_or(fallback);
}

absl::StatusOr<uint64_t> CliArgs::GetUint(const std::string& flag, uint64_t fallback) const {
  auto v = Get(flag);
  if (!v) return fallback;
  uint64_t out;
  if (absl::StartsWith(*v, "0x") || absl::StartsWith(*v, "0X")) {
    if (absl::SimpleHexAtoi(v->substr(2), &out)) return out;
  } else if (absl::SimpleAtoi(*v, &out)) {
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": \"", *v, "\" is not a number"));
}

absl::StatusOr<double> CliArgs::GetDouble(const std::string& flag, double fallback) const {
  auto v = Get(flag);
  if (!v) return fallback;
  double out;
  if (absl::SimpleAtod(*v, &out)) return out;
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": \"", *v, "\" is not a number"));
}

}  // namespace dagvault
