#include "coordinator/cli/cli_output.h"

#include <google/protobuf/util/json_util.h>

#include <atomic>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/command_line.h"
#include "repository/cli_support.h"

namespace dagvault::cli {

namespace {
constexpr char kUsagePayload[] = "type.dagvault.dev/usage";
}  // namespace

absl::Status Usage(const std::string& message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kUsagePayload, absl::Cord("1"));
  return s;
}

bool IsUsage(const absl::Status& s) { return s.GetPayload(kUsagePayload).has_value(); }

std::string Time(int64_t unix_us) { return unix_us == 0 ? "-" : repository::HumanTime(unix_us); }
std::string Gen(uint32_t generation) { return absl::StrFormat("0x%08X", generation); }

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      absl::StrAppend(&line, r[i],
                      i + 1 < r.size() ? std::string(width[i] - r[i].size() + 2, ' ') : "");
    }
    out << line << "\n";
  }
}

void PrintJson(const google::protobuf::Message& m, std::ostream& out) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &json, options);
  out << json;
}

namespace {
std::atomic<int> calls_made{0};
}  // namespace

int CallsMade() { return calls_made.load(); }
void ResetCallsMade() { calls_made.store(0); }

std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) {
  calls_made.fetch_add(1);
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  return c;
}

std::string Progress(const dagvault::v1::JobInfo& j) {
  if (j.bytes_total() == 0) return "-";
  return absl::StrFormat("%.0f%% of %s", 100.0 * j.bytes_done() / j.bytes_total(),
                         repository::HumanBytes(j.bytes_total()));
}

std::string NodeOf(const dagvault::v1::JobInfo& j) {
  return j.attempts_size() == 0 ? "-" : j.attempts(j.attempts_size() - 1).node();
}

void PrintJsonError(const absl::Status& s, int exit_code, std::ostream& out) {
  out << JsonErrorLine(s, exit_code);
}

}  // namespace dagvault::cli
