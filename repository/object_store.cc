#include "repository/object_store.h"

#include <cstring>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "repository/filesystem_object_store.h"
#include "repository/s3_object_store.h"

namespace dagvault::repository {

absl::StatusOr<absl::Span<char>> ObjectStore::GetRangeInto(const std::string& key, uint64_t offset,
                                                           uint64_t length,
                                                           AlignedBuffer* buffer) const {
  ASSIGN_OR_RETURN(std::string bytes, GetRange(key, offset, length));
  buffer->resize(bytes.size());
  if (!bytes.empty()) std::memcpy(buffer->data(), bytes.data(), bytes.size());
  return absl::MakeSpan(buffer->data(), buffer->size());
}

absl::Status ObjectStore::DeleteMany(const std::vector<std::string>& keys) const {
  for (const auto& key : keys) RETURN_IF_ERROR(Delete(key));
  return absl::OkStatus();
}

namespace {
constexpr char kRetainedUntilPayload[] = "type.dagvault.dev/retained-until-us";
}  // namespace

absl::Status RetainedError(const std::string& name, absl::Time until) {
  absl::Status s = absl::FailedPreconditionError(
      absl::StrCat(name, " is under retention (Object Lock) until ", FormatUtc(until),
                   "; it can be removed after that"));
  s.SetPayload(kRetainedUntilPayload, absl::Cord(absl::StrCat(absl::ToUnixMicros(until))));
  return s;
}

std::optional<absl::Time> RetainedUntil(const absl::Status& status) {
  auto payload = status.GetPayload(kRetainedUntilPayload);
  int64_t us = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &us)) return std::nullopt;
  return absl::FromUnixMicros(us);
}

absl::StatusOr<std::vector<ObjectInfo>> ListAll(const ObjectStore& store,
                                                const std::string& prefix) {
  std::vector<ObjectInfo> all;
  std::string token;
  do {
    ASSIGN_OR_RETURN(ObjectPage page, store.List(prefix, token, /*max_keys=*/0));
    for (auto& o : page.objects) all.push_back(std::move(o));
    token = std::move(page.next_token);
  } while (!token.empty());
  return all;
}

absl::StatusOr<std::shared_ptr<const ObjectStore>> OpenObjectStore(const std::string& location) {
  if (absl::StartsWith(location, "s3://")) {
    ASSIGN_OR_RETURN(auto s3, S3ObjectStore::Open(location));
    return std::shared_ptr<const ObjectStore>(std::move(s3));
  }
  if (location.empty()) return absl::InvalidArgumentError("the repository location is empty");
  return std::shared_ptr<const ObjectStore>(std::make_shared<FilesystemObjectStore>(location));
}

}  // namespace dagvault::repository
