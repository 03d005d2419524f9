// What the operator's commands (admin_commands.cc, status_command.cc)
// share: usage errors, tables, times, JSON, call deadlines.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "dagvault/v1/admin.pb.h"
#include "google/protobuf/message.h"

namespace dagvault::cli {

// A usage error (exit 2) is an InvalidArgument marked as the command
// line's own, so that a server's InvalidArgument stays a failure (exit 1).
absl::Status Usage(const std::string& message);
bool IsUsage(const absl::Status& s);

std::string Time(int64_t unix_us);  // "-" for 0
std::string Gen(uint32_t generation);

// Columns padded to their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Protobuf's JSON mapping, field names as in the .proto.
void PrintJson(const google::protobuf::Message& m, std::ostream& out);
// A failure under --json: {"error": {"code": "NOT_FOUND", "message": "...",
// "exit_code": 1}} on one line.
void PrintJsonError(const absl::Status& s, int exit_code, std::ostream& out);

// Every call the command line makes takes its context here, so that
// CallsMade() knows whether a refusal came on the command's first call.
std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(30));
int CallsMade();
void ResetCallsMade();  // at the start of a command

// "42% of 1.2 GiB", or "-".
std::string Progress(const dagvault::v1::JobInfo& j);
// The node of the job's newest attempt, or "-".
std::string NodeOf(const dagvault::v1::JobInfo& j);

}  // namespace dagvault::cli
