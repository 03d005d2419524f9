// Prometheus' text exposition format (version 0.0.4), written by hand
// because Debian ships no C++ client library: families of samples, each
// with # HELP and # TYPE, names and label names checked against the
// format's grammar, label values and help text escaped. Conventions kept by
// the callers (docs/monitoring.md): units in names (_seconds, _bytes),
// counters end in _total, no unbounded label values (no job ids).
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dagvault::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Type { kCounter, kGauge, kHistogram };

// [a-zA-Z_:][a-zA-Z0-9_:]* for metric names; labels the same without ':',
// and not starting with "__" (reserved).
bool ValidMetricName(absl::string_view name);
bool ValidLabelName(absl::string_view name);

class TextWriter {
 public:
  // Starts a family. A family name may appear once per exposition.
  void Family(absl::string_view name, Type type, absl::string_view help);
  // A sample of the current family: the family's name plus `suffix` (a
  // histogram's "_bucket", "_sum", "_count"; empty otherwise).
  void Sample(const Labels& labels, double value, absl::string_view suffix = "");

  // The exposition so far.
  const std::string& text() const { return text_; }
  // OK, or the first mistake (a bad name, a repeated family, a sample
  // before any family), naming it. Nothing bad is written to text().
  const absl::Status& status() const { return status_; }

 private:
  void Fail(std::string message);

  std::string text_;
  std::string family_;
  std::set<std::string> families_;
  absl::Status status_;
};

// A value as Prometheus parses it: integers exactly, "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);

}  // namespace dagvault::metrics
