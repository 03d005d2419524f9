#include "common/duration_text.h"

#include <cctype>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dagvault {

std::string DurationText(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 0) return absl::StrCat("-", DurationText(-d));
  struct Unit {
    int64_t seconds;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {{86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}};
  std::vector<std::string> parts;
  for (const Unit& u : kUnits) {
    const int64_t n = s / u.seconds;
    s %= u.seconds;
    if (n != 0 || !parts.empty()) parts.push_back(absl::StrCat(n, u.suffix));
    if (parts.size() == 2) break;
  }
  if (parts.empty()) return "0s";
  if (parts.size() == 2 && parts[1][0] == '0') parts.pop_back();  // "2h", not "2h 0m"
  return parts.size() == 1 ? parts[0] : absl::StrCat(parts[0], " ", parts[1]);
}

absl::StatusOr<absl::Duration> ParseDurationText(absl::string_view text) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a duration (", why, "; e.g. 26h, 1d 12h, 90m, 45s)"));
  };
  absl::Duration total;
  size_t i = 0, terms = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      ++i;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return bad("a number must come first");
    int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > 1'000'000'000) return bad("the number is too large");
      n = n * 10 + (text[i++] - '0');
    }
    if (i == text.size()) return bad("each number needs a unit: d, h, m or s");
    switch (text[i++]) {
      case 'd':
        total += absl::Hours(24 * n);
        break;
      case 'h':
        total += absl::Hours(n);
        break;
      case 'm':
        total += absl::Minutes(n);
        break;
      case 's':
        total += absl::Seconds(n);
        break;
      default:
        return bad("units are d, h, m and s");
    }
    ++terms;
  }
  if (terms == 0) return bad("it is empty");
  if (total <= absl::ZeroDuration()) return bad("it must be more than zero");
  return total;
}

}  // namespace dagvault
