#include "mailstore/server/fencing_tokens.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/text_config.h"

namespace dagvault::mailstore {

absl::StatusOr<std::unique_ptr<FencingTokens>> FencingTokens::Open(std::string path,
                                                                   std::string node) {
  std::unique_ptr<FencingTokens> tokens(new FencingTokens(std::move(path), std::move(node)));
  if (!PathExists(tokens->path_)) return tokens;
  auto damaged = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat(
        "fencing token file ", tokens->path_, " is damaged: ", why,
        "; mailstored does not start without the highest fencing token it admitted per unit "
        "(a superseded backup or restore could start otherwise): restore the file, or remove "
        "it to forget every token"));
  };
  auto text = ReadFileToString(tokens->path_);
  if (!text.ok()) return damaged(text.status().message());
  if (text->empty()) return damaged("it is empty");
  if (absl::Status parsed = ParseTextConfig(*text, tokens->path_, &tokens->table_); !parsed.ok()) {
    return damaged(parsed.message());
  }
  return tokens;
}

absl::Status FencingTokens::Admit(const std::string& unit, uint64_t token, absl::string_view what) {
  if (token == 0) return absl::OkStatus();  // no coordinator: see the header
  std::lock_guard<std::mutex> lock(mu_);
  auto& highest = *table_.mutable_highest();
  const auto it = highest.find(unit);
  const uint64_t seen = it == highest.end() ? 0 : it->second;
  if (token < seen) {
    std::string message =
        absl::StrCat("unit ", unit, ": ", what, " carries fencing token ", token,
                     ", lower than the highest node ", node_, " has seen for the unit (", seen,
                     "): the assignment was superseded by a newer one; refused");
    logging::Get("mailstored.fencing")
        ->warn("[unit {}] {} refused: fencing token {}, highest seen {}", unit, what, token, seen);
    return absl::FailedPreconditionError(message);
  }
  if (token == seen) return absl::OkStatus();  // already on disk
  dagvault::v1::FencingTokensFile next = table_;
  (*next.mutable_highest())[unit] = token;
  // On disk before the session starts: a restart right after still knows it.
  RETURN_IF_ERROR(Annotate(WriteFileAtomically(path_, ToTextConfig(next)),
                           absl::StrCat("unit ", unit, ": recording fencing token ", token)));
  table_ = std::move(next);
  return absl::OkStatus();
}

uint64_t FencingTokens::Highest(const std::string& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = table_.highest().find(unit);
  return it == table_.highest().end() ? 0 : it->second;
}

}  // namespace dagvault::mailstore
