#include "common/text_config.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "dagvault/v1/options.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace dagvault {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

class CollectingErrors : public google::protobuf::io::ErrorCollector {
 public:
  CollectingErrors(absl::string_view source, absl::string_view text)
      : source_(source), lines_(absl::StrSplit(text, '\n')) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    // The parser counts from zero; editors count from one.
    std::string error = absl::StrCat(source_, ":", line + 1, ":", column + 1, ": ", message);
    // The line itself, with a caret, so the field at fault is named even
    // when the parser's message does not name it.
    if (line >= 0 && static_cast<size_t>(line) < lines_.size()) {
      absl::StrAppend(&error, "\n    ", lines_[line], "\n    ",
                      std::string(std::max(column, 0), ' '), "^");
    }
    errors_.push_back(std::move(error));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    AddError(line, column, absl::StrCat("warning: ", message));
  }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string source_;
  std::vector<std::string> lines_;
  std::vector<std::string> errors_;
};

void CollectMissing(const Message& message, const std::string& prefix,
                    std::vector<std::string>* missing) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    std::string path = prefix.empty() ? field->name() : absl::StrCat(prefix, ".", field->name());
    const bool required = field->options().GetExtension(dagvault::v1::required);
    if (field->is_repeated()) {
      int size = reflection->FieldSize(message, field);
      if (required && size == 0) missing->push_back(path);
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        for (int j = 0; j < size; ++j) {
          CollectMissing(reflection->GetRepeatedMessage(message, field, j),
                         absl::StrCat(path, "[", j, "]"), missing);
        }
      }
      continue;
    }
    const bool present = reflection->HasField(message, field);
    if (required && !present) missing->push_back(path);
    if (present && field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      CollectMissing(reflection->GetMessage(message, field), path, missing);
    }
  }
}

}  // namespace

absl::Status ParseTextConfig(absl::string_view text, absl::string_view source, Message* out) {
  CollectingErrors errors(source, text);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  out->Clear();
  if (!parser.ParseFromString(std::string(text), out)) {
    if (errors.errors().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": not valid text format for ", out->GetDescriptor()->full_name()));
    }
    return absl::InvalidArgumentError(absl::StrJoin(errors.errors(), "\n"));
  }
  return CheckRequiredFields(*out, source);
}

absl::Status LoadTextConfig(const std::string& path, Message* out) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return Annotate(text.status(), "reading configuration");
  return ParseTextConfig(*text, path, out);
}

absl::Status CheckRequiredFields(const Message& message, absl::string_view source) {
  std::vector<std::string> missing;
  CollectMissing(message, "", &missing);
  if (missing.empty()) return absl::OkStatus();
  std::vector<std::string> lines;
  for (const auto& m : missing) {
    lines.push_back(absl::StrCat(source, ": field '", m, "' is required"));
  }
  return absl::InvalidArgumentError(absl::StrJoin(lines, "\n"));
}

std::string ToTextConfig(const Message& message) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(message, &out);
  return out;
}

}  // namespace dagvault
