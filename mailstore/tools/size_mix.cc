#include "mailstore/tools/size_mix.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dagvault::mailstore {
namespace {

bool ParseSize(std::string s, size_t* out) {
  s = absl::AsciiStrToLower(s);
  uint64_t mult = 1;
  if (!s.empty() && (s.back() == 'k' || s.back() == 'm')) {
    mult = s.back() == 'k' ? 1024 : 1024 * 1024;
    s.pop_back();
  }
  uint64_t v;
  if (!absl::SimpleAtoi(s, &v)) return false;
  *out = static_cast<size_t>(v * mult);
  return true;
}

}  // namespace

absl::StatusOr<SizeMix> SizeMix::Parse(const std::string& spec) {
  SizeMix mix;
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(part, ':');
    size_t size;
    double weight = 1;
    if (fields.size() > 2 || !ParseSize(fields[0], &size) ||
        (fields.size() == 2 && (!absl::SimpleAtod(fields[1], &weight) || weight <= 0))) {
      return absl::InvalidArgumentError(
          absl::StrCat("size mix \"", spec, "\": \"", part,
                       "\" is not SIZE or SIZE:WEIGHT (e.g. 4096, 75k:25, 2m:5)"));
    }
    mix.total_ += weight;
    mix.entries_.emplace_back(size, mix.total_);
  }
  if (mix.entries_.empty()) return absl::InvalidArgumentError("size mix is empty");
  return mix;
}

size_t SizeMix::Pick(std::mt19937_64& rng) const {
  const double r = std::uniform_real_distribution<double>(0, total_)(rng);
  for (const auto& [size, cumulative] : entries_) {
    if (r < cumulative) return size;
  }
  return entries_.back().first;
}

double SizeMix::MeanSize() const {
  double mean = 0, prev = 0;
  for (const auto& [size, cumulative] : entries_) {
    mean += static_cast<double>(size) * (cumulative - prev) / total_;
    prev = cumulative;
  }
  return mean;
}

std::string SizeMix::ToString() const {
  std::vector<std::string> parts;
  double prev = 0;
  for (const auto& [size, cumulative] : entries_) {
    parts.push_back(absl::StrCat(size, ":", cumulative - prev));
    prev = cumulative;
  }
  return absl::StrJoin(parts, ",");
}

void FillMailLikeBytes(std::mt19937_64& rng, size_t size, std::string* out) {
  static const char kWords[][10] = {"the ",      "meeting ", "budget ",  "please ",  "review ",
                                    "attached ", "thanks ",  "regards ", "quarter ", "report\n"};
  out->clear();
  out->reserve(size);
  while (out->size() < size) {
    if (rng() % 16 == 0) {
      // An attachment-like run that does not compress.
      const size_t run = std::min<size_t>(size - out->size(), 256 + rng() % 2048);
      for (size_t i = 0; i < run; i += 8) {
        uint64_t v = rng();
        out->append(reinterpret_cast<const char*>(&v), std::min<size_t>(8, run - i));
      }
    } else {
      const char* w = kWords[rng() % 10];
      out->append(w, std::min(strlen(w), size - out->size()));
    }
  }
}

}  // namespace dagvault::mailstore
