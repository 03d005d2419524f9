#include "common/metrics/exposition.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dagvault::metrics {

namespace {

bool NameChars(absl::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(letter || (colon && c == ':') || (i > 0 && digit))) return false;
  }
  return true;
}

std::string EscapeHelp(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '"') {
      out += "\\\"";
    } else {
      out += EscapeHelp(absl::string_view(&c, 1));
    }
  }
  return out;
}

const char* TypeName(Type t) {
  switch (t) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

bool ValidMetricName(absl::string_view name) { return NameChars(name, /*colon=*/true); }

bool ValidLabelName(absl::string_view name) {
  return NameChars(name, /*colon=*/false) && !absl::StartsWith(name, "__");
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 9.007199254740992e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // The shortest form that reads back as the same double, as Prometheus'
  // own clients write it ("0.1", not "0.10000000000000001").
  for (int precision = 15; precision < 17; ++precision) {
    std::string s = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(s.c_str(), nullptr) == value) return s;
  }
  return absl::StrFormat("%.17g", value);
}

void TextWriter::Fail(std::string message) {
  if (status_.ok()) status_ = absl::InvalidArgumentError(std::move(message));
}

void TextWriter::Family(absl::string_view name, Type type, absl::string_view help) {
  family_.clear();
  if (!ValidMetricName(name)) return Fail(absl::StrCat("metric name \"", name, "\" is invalid"));
  if (!families_.insert(std::string(name)).second) {
    return Fail(absl::StrCat("metric family ", name, " appears twice"));
  }
  family_ = std::string(name);
  absl::StrAppend(&text_, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ",
                  TypeName(type), "\n");
}

void TextWriter::Sample(const Labels& labels, double value, absl::string_view suffix) {
  if (family_.empty()) return Fail("a sample outside any (valid) metric family");
  std::string line = absl::StrCat(family_, suffix);
  if (!ValidMetricName(line)) return Fail(absl::StrCat("metric name \"", line, "\" is invalid"));
  if (!labels.empty()) {
    line += "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      if (!ValidLabelName(labels[i].first)) {
        return Fail(absl::StrCat(family_, ": label name \"", labels[i].first, "\" is invalid"));
      }
      absl::StrAppend(&line, i == 0 ? "" : ",", labels[i].first, "=\"",
                      EscapeLabelValue(labels[i].second), "\"");
    }
    line += "}";
  }
  absl::StrAppend(&text_, line, " ", FormatValue(value), "\n");
}

}  // namespace dagvault::metrics
