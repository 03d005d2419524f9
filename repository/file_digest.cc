#include "repository/file_digest.h"

#include "absl/strings/str_cat.h"
#include "repository/crypto.h"

namespace dagvault::repository {
namespace {

constexpr char kTreeLabel[] = "dagvault file tree v1";  // and its NUL

const std::string& ZeroLeafDigest() {
  static const std::string* digest = [] {
    auto* d = new std::string;
    AppendLeafDigests(std::string(kLeafSize, '\0'), d);
    return d;
  }();
  return *digest;
}

}  // namespace

FileTreeDigest::FileTreeDigest() { sha_.Update(kTreeLabel, sizeof(kTreeLabel)); }

void FileTreeDigest::AddData(absl::string_view data) {
  scratch_.clear();
  AppendLeafDigests(data, &scratch_);
  sha_.Update(scratch_);
}

void FileTreeDigest::AddZeros(uint64_t n) {
  scratch_.clear();
  AppendZeroLeafDigests(n, &scratch_);
  sha_.Update(scratch_);
}

void AppendZeroLeafDigests(uint64_t n, std::string* digests) {
  for (; n >= kLeafSize; n -= kLeafSize) digests->append(ZeroLeafDigest());
  if (n > 0) AppendLeafDigests(std::string(n, '\0'), digests);
}

absl::StatusOr<ExpectedFileDigest> ExpectedDigestOf(const dagvault::v1::ManifestFile& f,
                                                    absl::string_view where) {
  if (!f.tree_sha256().empty()) {
    if (f.tree_sha256().size() != 32) {
      return absl::DataLossError(
          absl::StrCat(where, ": its tree digest has ", f.tree_sha256().size(), " bytes, not 32"));
    }
    return ExpectedFileDigest{true, f.tree_sha256()};
  }
  if (f.sha256().size() != 32) {
    return absl::DataLossError(
        absl::StrCat(where, ": it records neither a tree digest nor a 32-byte SHA-256"));
  }
  return ExpectedFileDigest{false, f.sha256()};
}

}  // namespace dagvault::repository
