#include "coordinator/console/console_tokens.h"

#include <array>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/evp.h"
#include "common/status_macros.h"

namespace dagvault::coordinator {
namespace {

std::string HashOf(const std::string& token) { return DigestToHex(Sha256::Of(token)); }

}  // namespace

absl::StatusOr<ConsoleTokens::Issued> ConsoleTokens::Issue(const PeerIdentity& person,
                                                           absl::Duration ttl) {
  if (!person.authenticated || person.common_name.empty()) {
    return absl::PermissionDeniedError("a console token is for a person with a certificate");
  }
  if (ttl == absl::ZeroDuration()) ttl = kDefaultTtl;
  if (ttl < absl::ZeroDuration() || ttl > kMaxTtl) {
    return absl::InvalidArgumentError(absl::StrCat("--ttl ", absl::FormatDuration(ttl),
                                                   ": a console token lives at most ",
                                                   absl::FormatDuration(kMaxTtl)));
  }
  std::array<uint8_t, 32> secret{};
  RETURN_IF_ERROR(RandomBytes(absl::MakeSpan(secret)));
  Issued out;
  out.token = absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(secret.data()), secret.size()));
  out.expires = clock_->Now() + ttl;
  const absl::Duration now = clock_->Monotonic();
  std::lock_guard<std::mutex> l(mu_);
  // Forget the expired ones while here: the map stays as small as the
  // sessions alive.
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    it = it->second.expires_at <= now ? by_hash_.erase(it) : std::next(it);
  }
  by_hash_[HashOf(out.token)] = Entry{person, now + ttl};
  return out;
}

std::optional<PeerIdentity> ConsoleTokens::Lookup(const std::string& token) {
  if (token.empty()) return std::nullopt;
  const std::string hash = HashOf(token);
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  if (it->second.expires_at <= clock_->Monotonic()) {
    by_hash_.erase(it);
    return std::nullopt;
  }
  return it->second.person;
}

}  // namespace dagvault::coordinator
