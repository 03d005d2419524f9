#include "coordinator/schedule/cron.h"

#include <cstdint>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dagvault::coordinator {
namespace {

struct Field {
  const char* name;
  int low, high;
  std::vector<std::string> names;  // names[i] stands for low + i
};

const Field kFields[5] = {
    {"minute", 0, 59, {}},
    {"hour", 0, 23, {}},
    {"day of month", 1, 31, {}},
    {"month",
     1,
     12,
     {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
    {"day of week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
};

absl::Status FieldError(int i, const std::string& token, const std::string& why) {
  return absl::InvalidArgumentError(
      absl::StrCat("field ", i + 1, " (", kFields[i].name, "): \"", token, "\" ", why));
}

absl::StatusOr<int> Value(int i, const std::string& text, const std::string& token) {
  const Field& f = kFields[i];
  const std::string lower = absl::AsciiStrToLower(text);
  for (size_t k = 0; k < f.names.size(); ++k) {
    if (lower == f.names[k]) return f.low + static_cast<int>(k);
  }
  int v = 0;
  if (!absl::SimpleAtoi(text, &v)) return FieldError(i, token, "is not a number or a name");
  if (v < f.low || v > f.high) {
    return FieldError(i, token, absl::StrCat("is outside ", f.low, "-", f.high));
  }
  return v;
}

// Sets the values field `i` admits; `*restricted` is false for a bare `*`.
template <size_t N>
absl::Status ParseField(int i, const std::string& text, std::bitset<N>* bits, bool* restricted) {
  const Field& f = kFields[i];
  *restricted = text != "*";
  const std::vector<std::string> tokens = absl::StrSplit(text, ',');
  for (const std::string& token : tokens) {
    std::string range = token;
    int step = 1;
    if (auto slash = token.find('/'); slash != std::string::npos) {
      range = token.substr(0, slash);
      if (!absl::SimpleAtoi(token.substr(slash + 1), &step) || step < 1) {
        return FieldError(i, token, "has a step that is not a positive number");
      }
    }
    int from = f.low, to = f.high;
    if (range != "*") {
      if (auto dash = range.find('-'); dash != std::string::npos) {
        auto a = Value(i, range.substr(0, dash), token);
        if (!a.ok()) return a.status();
        auto b = Value(i, range.substr(dash + 1), token);
        if (!b.ok()) return b.status();
        from = *a;
        to = *b;
        if (from > to) return FieldError(i, token, "is a range that runs backwards");
      } else {
        auto a = Value(i, range, token);
        if (!a.ok()) return a.status();
        from = *a;
        to = token.find('/') != std::string::npos ? f.high : *a;
      }
    }
    // 64-bit: a step up to INT_MAX added to a value must not overflow.
    for (int64_t v = from; v <= to; v += step) {
      // Day of week 7 is Sunday, as 0.
      const size_t bit = (i == 4 && v == 7) ? 0 : static_cast<size_t>(v);
      if (bit < N) bits->set(bit);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CronSchedule> CronSchedule::Parse(const std::string& text) {
  std::vector<std::string> fields = absl::StrSplit(text, ' ', absl::SkipWhitespace());
  if (fields.size() != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" has ", fields.size(),
                     " fields; a schedule has five: minute hour day-of-month month day-of-week"));
  }
  CronSchedule s;
  s.text_ = text;
  bool unused = false;
  absl::Status st = ParseField(0, fields[0], &s.minutes_, &unused);
  if (st.ok()) st = ParseField(1, fields[1], &s.hours_, &unused);
  if (st.ok()) st = ParseField(2, fields[2], &s.days_, &s.days_restricted_);
  if (st.ok()) st = ParseField(3, fields[3], &s.months_, &unused);
  if (st.ok()) st = ParseField(4, fields[4], &s.weekdays_, &s.weekdays_restricted_);
  if (!st.ok())
    return absl::InvalidArgumentError(absl::StrCat("schedule \"", text, "\": ", st.message()));
  return s;
}

bool CronSchedule::Matches(absl::Time minute) const {
  const absl::CivilMinute c = absl::ToCivilMinute(minute, absl::UTCTimeZone());
  if (!minutes_.test(static_cast<size_t>(c.minute())) ||
      !hours_.test(static_cast<size_t>(c.hour())) ||
      !months_.test(static_cast<size_t>(c.month()))) {
    return false;
  }
  return DayMatches(absl::CivilDay(c));
}

bool CronSchedule::DayMatches(absl::CivilDay day) const {
  const bool d = days_.test(static_cast<size_t>(day.day()));
  // absl counts Monday as 0; cron, Sunday.
  const bool w =
      weekdays_.test(static_cast<size_t>((static_cast<int>(absl::GetWeekday(day)) + 1) % 7));
  return days_restricted_ && weekdays_restricted_ ? (d || w) : (d && w);
}

absl::Time CronSchedule::Next(absl::Time after) const {
  const absl::TimeZone utc = absl::UTCTimeZone();
  absl::CivilMinute m = absl::ToCivilMinute(after, utc) + 1;
  const absl::CivilMinute limit = m + 5 * 366 * 24 * 60;
  while (m < limit) {
    // Skip whole days, then hours, that cannot match.
    const absl::Time t = absl::FromCivil(m, utc);
    const absl::CivilDay day(m);
    if (!months_.test(static_cast<size_t>(m.month()))) {
      m = absl::CivilMinute(absl::CivilMonth(m) + 1);
      continue;
    }
    if (!DayMatches(day)) {
      m = absl::CivilMinute(day + 1);
      continue;
    }
    if (!hours_.test(static_cast<size_t>(m.hour()))) {
      m = absl::CivilMinute(absl::CivilHour(m) + 1);
      continue;
    }
    if (minutes_.test(static_cast<size_t>(m.minute()))) return t;
    m += 1;
  }
  return absl::InfiniteFuture();
}

}  // namespace dagvault::coordinator
